#!/usr/bin/env bash
# ntk.sh: one entry point for building, serving and testing ntk-serve on
# Debian 12. Every verb first installs the Debian packages that are missing
# (idempotent; a no-op when all are there), then configures and builds.
#
#   ./ntk.sh serve [server flags]   install, build, start ntk_server (NTK_LISTEN, NTK_MODEL_DIR, any NTK_<FLAG>)
#   ./ntk.sh test                   install, build, run the test suite (CI runs this first)
#   ./ntk.sh ci-checks              ASan+UBSan tests, 30 s per fuzzer, TSan concurrency
#                                   tests (docs/testing.md; CI runs it after `test`)
#   ./ntk.sh test-long              the long experiments left out of `test`
#   ./ntk.sh test-sanitize [asan|tsan]  ASan+UBSan unit/e2e tests, TSan concurrency tests
#   ./ntk.sh fuzz [seconds] [target...] the libFuzzer targets of fuzz/ (default 30 s each)
#   ./ntk.sh churn [seconds] [threads]  the churn test, longer (default 60 s, 48 clients)
#   ./ntk.sh crash [sequences]      the kill -9 crash test, more sequences (default 20)
#   ./ntk.sh bench                  install, build, run bench/ (see docs/performance.md)
#   ./ntk.sh evaluate               install, build, run the evaluation of docs/evaluation.md
#                                   (tools/evaluate/run.sh; ~50 min on 2 cores; QUICK=1: minutes)
#   ./ntk.sh build                  install and build only
#   ./ntk.sh deps                   install the packages only
#
# Environment: BUILD_DIR (default ./build), NTK_NATIVE=1 for -march=native,
# JOBS (default: number of cores). Sanitizer and fuzz builds live in
# build-asan/, build-tsan/, build-fuzz/ (docs/testing.md).
set -euo pipefail
cd "$(dirname "$0")"
ROOT=$(pwd)
BUILD_DIR=${BUILD_DIR:-$ROOT/build}
JOBS=${JOBS:-$(nproc)}

# Build and test packages (the runtime set is in docs/docker.md). The tests
# need every one of them: a missing one fails a test instead of skipping it
# (openssl makes the TLS tests' certificates).
PKGS_BUILD=(g++ make cmake pkg-config protobuf-compiler protobuf-compiler-grpc
  libgrpc++-dev libprotobuf-dev libeigen3-dev libopenblas-dev liblapacke-dev
  libgtest-dev libgmock-dev libbenchmark-dev grpc-proto openssl
  libcpp-httplib-dev prometheus-cpp-dev nlohmann-json3-dev
  openmpi-bin libopenmpi-dev libscalapack-openmpi-dev)
# The README's example data (digits CSV), the Python client example and
# package (client/python: `pip install` offline into a venv needs venv,
# setuptools and wheel), the OIP test's stubs (grpc_tools), and the Python
# benchmarks (bench/*.py: NumPy reference, Fashion-MNIST; h2load).
PKGS_DATA=(python3 python3-numpy python3-scipy python3-sklearn python3-grpcio python3-protobuf
  python3-venv python3-setuptools python3-wheel python3-grpc-tools nghttp2-client
  dataset-fashion-mnist)
# The evaluation's plots (tools/evaluate/report.py).
PKGS_EVAL=(python3-matplotlib)
# Sanitizer and fuzz builds: clang with libFuzzer and the sanitizer runtimes.
PKGS_SANITIZE=(clang-14 libclang-rt-14-dev libomp-14-dev)

log() { printf '[ntk.sh] %s\n' "$*" >&2; }

install_pkgs() {
  local missing=() p
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  local sudo=()
  if [ "$(id -u)" != 0 ]; then
    command -v sudo >/dev/null || { log "need root or sudo to install: ${missing[*]}"; exit 1; }
    sudo=(sudo)
  fi
  log "installing ${missing[*]}"
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
}

build() {
  local native=OFF
  [ "${NTK_NATIVE:-0}" = 1 ] && native=ON
  if [ ! -f "$BUILD_DIR/CMakeCache.txt" ]; then
    # ccache, when installed, only speeds rebuilds up; nothing needs it.
    local launcher=()
    command -v ccache >/dev/null && launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache)
    cmake -S "$ROOT" -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE=Release -DNTK_NATIVE=$native "${launcher[@]}"
  fi
  cmake --build "$BUILD_DIR" -j "$JOBS"
}

# After ctest: each skipped test and its reason, from the GoogleTest output
# in LastTest.log ("file:line: Skipped", the reason, then "[  SKIPPED ]").
# Only hardware-dependent skips remain (no AVX2, single-threaded OpenBLAS);
# listing them keeps the reason visible in the CI log. Never fails.
report_skips() {
  local log="$BUILD_DIR/Testing/Temporary/LastTest.log"
  [ -f "$log" ] || return 0
  awk '/: Skipped$/ { grab = 1; why = ""; next }
       /^\[  SKIPPED \] [^ ]+ \(/ { if (grab) printf "[ntk.sh] skipped %s: %s\n", $4, why; grab = 0; next }
       grab && NF { why = why (why == "" ? "" : " ") $0 }' "$log" | sort -u >&2
}

run_ctest() {
  local status=0
  ctest --test-dir "$BUILD_DIR" "$@" || status=$?
  report_skips
  return $status
}

# The TSan build compiles only what tests/sanitizers/run.sh tsan runs: the
# server and every test binary with a test named *Concurrency*, *Shutdown*
# or *Cache* (update both together).
TSAN_TARGETS=(ntk_server e2e_concurrency_test e2e_churn_test server_shutdown_test
  distribution_cache_test distribution_reuse_test distribution_test kernel_test
  model_cache_test server_registry_test)

# sanitizer_build DIR "TARGET..." CMAKE_ARGS...: clang-14 at -O1 -g with
# assertions on (no NDEBUG: Eigen's bounds checks stay active), no benchmarks.
sanitizer_build() {
  local dir=$1 targets=($2) launcher=()
  shift 2
  command -v ccache >/dev/null && launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache)
  if [ ! -f "$dir/CMakeCache.txt" ]; then
    cmake -S "$ROOT" -B "$dir" -DCMAKE_C_COMPILER=clang-14 -DCMAKE_CXX_COMPILER=clang++-14 \
      -DCMAKE_BUILD_TYPE=RelWithDebInfo "-DCMAKE_CXX_FLAGS_RELWITHDEBINFO=-O1 -g" \
      "-DCMAKE_C_FLAGS_RELWITHDEBINFO=-O1 -g" -DNTK_BUILD_BENCH=OFF "${launcher[@]}" "$@"
  fi
  cmake --build "$dir" -j "$JOBS" --target "${targets[@]}"
}

# test_sanitize asan|tsan [ctest args]
test_sanitize() {
  local mode=$1
  shift
  if [ "$mode" = asan ]; then
    # NTK_FUZZ=ON: the same ASan+UBSan objects also give the fuzzers CI runs.
    sanitizer_build "$ROOT/build-asan" all -DNTK_SANITIZE=address,undefined -DNTK_FUZZ=ON
  else
    sanitizer_build "$ROOT/build-tsan" "${TSAN_TARGETS[*]}" -DNTK_SANITIZE=thread
  fi
  "$ROOT/tests/sanitizers/run.sh" "$mode" "$ROOT/build-$mode" "$@"
}

# The CI part of `test` (docs/testing.md "What runs where"): ASan+UBSan
# unit and e2e tests, each fuzzer for 30 s (from the same ASan build), TSan
# concurrency tests.
ci_checks() {
  install_pkgs "${PKGS_SANITIZE[@]}"
  local t0=$SECONDS
  test_sanitize asan
  "$ROOT/fuzz/run.sh" "$ROOT/build-asan" 30
  test_sanitize tsan
  log "CI sanitizer and fuzz checks passed in $(( SECONDS - t0 )) s"
}

verb=${1:-help}
[ $# -gt 0 ] && shift
case "$verb" in
  deps)  install_pkgs "${PKGS_BUILD[@]}" "${PKGS_DATA[@]}" ;;
  build) install_pkgs "${PKGS_BUILD[@]}" "${PKGS_DATA[@]}"; build ;;
  serve)
    install_pkgs "${PKGS_BUILD[@]}" "${PKGS_DATA[@]}"; build
    log "starting ntk_server (Ctrl-C stops it gracefully)"
    # NTK_LISTEN / NTK_MODEL_DIR (like every NTK_<FLAG>) win over these defaults.
    exec "$BUILD_DIR/server/ntk_server" --listen="${NTK_LISTEN:-127.0.0.1:50051}" \
      --model_dir="${NTK_MODEL_DIR:-$ROOT/models}" "$@" ;;
  test)
    install_pkgs "${PKGS_BUILD[@]}" "${PKGS_DATA[@]}"; build
    run_ctest -L unit --output-on-failure -j "$JOBS" --timeout 900 "$@" ;;
  ci-checks)
    install_pkgs "${PKGS_BUILD[@]}" "${PKGS_DATA[@]}"
    ci_checks ;;
  test-sanitize)
    install_pkgs "${PKGS_BUILD[@]}" "${PKGS_DATA[@]}" "${PKGS_SANITIZE[@]}"
    case "${1:-all}" in
      asan|tsan) mode=$1; shift; test_sanitize "$mode" "$@" ;;
      all) [ $# -gt 0 ] && shift; test_sanitize asan; test_sanitize tsan ;;
      *) log "test-sanitize: asan, tsan or all"; exit 2 ;;
    esac ;;
  fuzz)
    install_pkgs "${PKGS_BUILD[@]}" "${PKGS_SANITIZE[@]}"
    sanitizer_build "$ROOT/build-fuzz" fuzzers -DNTK_FUZZ=ON -DNTK_BUILD_TESTS=OFF
    exec "$ROOT/fuzz/run.sh" "$ROOT/build-fuzz" "$@" ;;
  churn)
    # tests/e2e_churn_test.cc at a larger scale than in `test` (docs/testing.md).
    install_pkgs "${PKGS_BUILD[@]}"; build
    NTK_CHURN_SECONDS=${1:-60} NTK_CHURN_THREADS=${2:-48} \
      run_ctest -R '^ConcurrencyChurnTest\.' --output-on-failure --timeout 3600 -V ;;
  crash)
    # tests/e2e_crash_test.cc with more kill -9 sequences (docs/testing.md).
    install_pkgs "${PKGS_BUILD[@]}"; build
    NTK_CRASH_SEQUENCES=${1:-20} \
      run_ctest -R '^CrashTest\.' --output-on-failure --timeout 3600 -V ;;
  test-long)
    install_pkgs "${PKGS_BUILD[@]}" "${PKGS_DATA[@]}"; build
    run_ctest -L long --output-on-failure "$@" ;;
  evaluate)
    install_pkgs "${PKGS_BUILD[@]}" "${PKGS_DATA[@]}" "${PKGS_EVAL[@]}"; build
    BUILD_DIR="$BUILD_DIR" SKIP_BUILD=1 exec "$ROOT/tools/evaluate/run.sh" ;;
  bench)
    install_pkgs "${PKGS_BUILD[@]}" "${PKGS_DATA[@]}"; build
    exec "$ROOT/bench/run.sh" "$BUILD_DIR" "$@" ;;
  *) sed -n '2,23p' "$0"; [ "$verb" = help ] || exit 2 ;;
esac

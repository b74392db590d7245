#!/usr/bin/env bash
# fuzz/run.sh BUILD_DIR [SECONDS_PER_TARGET] [TARGET...]: runs each libFuzzer
# target of fuzz/ (default: all) for SECONDS_PER_TARGET (default 30), one
# after the other on one core, starting from a temporary copy of the
# committed seed corpus fuzz/corpus/<target>/ (the repository is not
# modified). Prints a table target / executions / exec/s / result; exits 1
# on any finding (crash, leak, timeout, out-of-memory). Called by
# `./ntk.sh fuzz`; see docs/testing.md.
#
# Findings: BUILD_DIR/fuzz-artifacts/<target>/ (reproduce with
# `BUILD_DIR/fuzz/<target>_fuzzer <artifact>`); logs: BUILD_DIR/fuzz-logs/.
# Environment: FUZZ_TIMEOUT (seconds per input, default 20),
# FUZZ_RSS_MB (default 2048), FUZZ_ARGS (extra libFuzzer flags, e.g.
# -fork=2), FUZZ_CORPUS (a directory kept between runs: each target's corpus
# is FUZZ_CORPUS/<target>/, seeded from fuzz/corpus/<target>/ the first
# time, so a long campaign can run in slices; keep it outside the
# repository).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=$1
SECONDS_PER_TARGET=${2:-30}
shift $(( $# >= 2 ? 2 : 1 ))
TARGETS=("$@")
[ ${#TARGETS[@]} -eq 0 ] && TARGETS=(model csv idx request fit oip_json)

# One core per fuzzer: no OpenMP / OpenBLAS thread pools.
export OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$BUILD/fuzz-logs"
failed=0
rows=()
for t in "${TARGETS[@]}"; do
  bin="$BUILD/fuzz/${t}_fuzzer"
  [ -x "$bin" ] || { echo "fuzz/run.sh: $bin not built" >&2; exit 2; }
  corpus="${FUZZ_CORPUS:-$work}/$t"
  artifacts="$BUILD/fuzz-artifacts/$t"
  fresh=0
  [ -d "$corpus" ] && [ -n "$(ls -A "$corpus")" ] || fresh=1
  mkdir -p "$corpus" "$artifacts"
  [ "$fresh" = 1 ] && { cp -r "$ROOT/fuzz/corpus/$t/." "$corpus/" 2>/dev/null || true; }
  dict=()
  [ -f "$ROOT/fuzz/dict/$t.dict" ] && dict=(-dict="$ROOT/fuzz/dict/$t.dict")
  log="$BUILD/fuzz-logs/$t.log"
  echo "fuzz: $t for ${SECONDS_PER_TARGET}s (log $log)" >&2
  rc=0
  # shellcheck disable=SC2086
  TMPDIR="$work" "$bin" "$corpus" "${dict[@]}" -max_total_time="$SECONDS_PER_TARGET" \
    -print_final_stats=1 -timeout="${FUZZ_TIMEOUT:-20}" -rss_limit_mb="${FUZZ_RSS_MB:-2048}" \
    -artifact_prefix="$artifacts/" ${FUZZ_ARGS:-} >"$log" 2>&1 || rc=$?
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
  result=ok
  if [ "$rc" -ne 0 ]; then
    failed=1
    result=$(grep -m1 -oE 'ERROR: libFuzzer: [a-z-]+|ERROR: AddressSanitizer: [a-z-]+|runtime error|ERROR: LeakSanitizer' "$log" || true)
    result="FAIL (${result:-exit $rc}; see $log)"
  fi
  rows+=("$(printf '%-10s %14s %10s  %s' "$t" "${execs:-?}" "${rate:-?}" "$result")")
done
printf '%-10s %14s %10s  %s\n' target executions exec/s result
printf '%s\n' "${rows[@]}"
exit $failed

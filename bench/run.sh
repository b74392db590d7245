#!/usr/bin/env bash
# bench/run.sh BUILD_DIR [options]: run every benchmark of bench/ and write a
# summary of RATIOS against references measured in the same run.
# `./ntk.sh bench [options]` builds first and then runs this.
#
#   --quick          small sizes, about 5 minutes: checks that everything runs
#   --big            adds N = 10000 to GEMM/Cholesky and 2 repetitions of Fit
#   --only=LIST      comma list of: linalg,fit,predict,distribution,memory,load,other,
#                    nystrom (issue 12's exact vs Nystrom table, bench/nystrom_fashion.py;
#                    not in the default list: hours at N = 60000),
#                    targets (issue 10's table: bench/e2e_vs_numpy.py + bench/targets.py;
#                    not in the default list; ~15 min on an idle machine at today's speed,
#                    hours when the machine is shared; --quick: ~2-3 min),
#                    selection (issue 14: model selection over the issue's grid vs the
#                    brute-force loop of plain Fits vs one 2b fit, bench/selection_timing.cc;
#                    not in the default list; NTK_BENCH_SELECTION_N=5000 [quick 300],
#                    NTK_BENCH_SELECTION_BRUTE=1: the brute force takes hours at 5000),
#                    criteria (issue 14: CV against the Laplace evidence on the 2a grid,
#                    test scores of each choice, bench/selection_criteria.cc; not in the
#                    default list; NTK_BENCH_CRITERIA_N=2000 [quick 300], ~10 min at 2000),
#                    h2load (bench/h2load_bench.py: Predict and OIP ModelInfer under
#                    h2load at concurrency 1-64, rows/s and p50/p99; not in the default
#                    list; ~6 min, --quick ~1 min; needs nghttp2-client),
#                    stop (bench/stop_latency.py: how long the server works on after a
#                    deadline or a cancel, issue 11 item 2; not in the default list;
#                    ~1 min, --quick ~30 s)
#   --out=FILE       summary file (default BUILD_DIR/bench-results.md)
#
# Default sizes (about 15-20 minutes on an idle 2-core machine, several times
# that when the machine is shared), each overridable by env:
#   NTK_BENCH_LINALG_MAX_N=8000   GEMM/LLT at 2000, 4000, 8000 (--big: 10000)
#   NTK_BENCH_LINALG_ROUNDS=2     alternating runs of the Eigen and OpenBLAS builds
#   NTK_BENCH_FIT_N=10000         Fit 2b vs TrainKernels + LLT
#   NTK_BENCH_FIT_2A_N=5000       Fit 2a vs Fit 2b
#   NTK_BENCH_REPS=1              repetitions of each Fit (random interleaving)
#   NTK_BENCH_PREDICT_N=10000     training rows of the Predict model
#   NTK_BENCH_DIST_N=5000         training rows of the PredictDistribution models
#   NTK_BENCH_DIST_POINTS=16      query points per PredictDistribution call
#   NTK_BENCH_MC_SAMPLES=2        MONTE_CARLO 2a solves per call (the API default is 64;
#                                 the cost grows linearly in it)
#   NTK_BENCH_MEMORY_N=20000      Fit peak RSS (lowered, and said so, when RAM is short)
#   NTK_BENCH_LOAD_MS=3000        measured milliseconds per load cell (plus 500 warm-up)
#   NTK_BENCH_SYNTHETIC=1         synthetic data instead of Fashion-MNIST
# Sizes of --only=targets (bench/targets.py, bench/e2e_vs_numpy.py; quick in brackets):
#   NTK_BENCH_T_E2E_2B_N=3000 [800]   end to end vs NumPy, 2b
#   NTK_BENCH_T_E2E_2A_N=1500 [500]   end to end vs NumPy, 2a (lambda = 0.01, LINEARIZED)
#   NTK_BENCH_T_EXACT_N=10000 [2000]  (a) 2b EXACT first call / Fit
#   NTK_BENCH_T_LIN_N=5000 [1000]     (b) LINEARIZED first call / Fit, (c) MONTE_CARLO
#   NTK_BENCH_T_BIG_N=0 [0]           (b) at this N (20000: the issue's; 0 skips it)
#   NTK_BENCH_T_MC_SAMPLES=64 [16]    (c) MONTE_CARLO S
#   NTK_BENCH_T_LOAD_N=3000 [800]     (e) the model whose first LINEARIZED runs meanwhile
#   NTK_BENCH_T_SERVER_ARGS=          extra ntk_server flags (e.g. --blas_threads=0)
# Threads: OMP_NUM_THREADS and OPENBLAS_NUM_THREADS (default: all cores).
#
# Output: BUILD_DIR/bench-results/<UTC time>/ (raw JSON and logs of each
# step) and the Markdown summary, also printed at the end.
set -uo pipefail

usage() { sed -n '2,/^set -uo/{/^#/p}' "$0"; }
[ $# -ge 1 ] || { usage; exit 2; }
BUILD=$(cd "$1" && pwd) || exit 2
shift
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
BIN=$BUILD/bench
MODE=default
ONLY=linalg,fit,predict,distribution,memory,load,other
OUT=$BUILD/bench-results.md
for a in "$@"; do
  case "$a" in
    --quick) MODE=quick ;;
    --big) MODE=big ;;
    --only=*) ONLY=${a#--only=} ;;
    --out=*) OUT=${a#--out=} ;;
    -h|--help) usage; exit 0 ;;
    *) echo "run.sh: unknown option $a" >&2; usage; exit 2 ;;
  esac
done

if [ "$MODE" = quick ]; then
  T_E2E_2B=800 T_E2E_2A=500 T_EXACT=2000 T_LIN=1000 T_MC=16 T_LOAD=800 T_PROBES=50
else
  T_E2E_2B=3000 T_E2E_2A=1500 T_EXACT=10000 T_LIN=5000 T_MC=64 T_LOAD=3000 T_PROBES=200
fi
if [ "$MODE" = quick ]; then
  D_LINALG=4000 D_ROUNDS=1 D_FIT=3000 D_FIT2A=2000 D_REPS=1 D_PRED=3000 D_DIST=2000 D_PTS=8 D_MC=2 D_MEM=5000 D_LOAD=1000
elif [ "$MODE" = big ]; then
  D_LINALG=10000 D_ROUNDS=2 D_FIT=10000 D_FIT2A=5000 D_REPS=2 D_PRED=10000 D_DIST=5000 D_PTS=16 D_MC=2 D_MEM=20000 D_LOAD=3000
else
  D_LINALG=8000 D_ROUNDS=2 D_FIT=10000 D_FIT2A=5000 D_REPS=1 D_PRED=10000 D_DIST=5000 D_PTS=16 D_MC=2 D_MEM=20000 D_LOAD=3000
fi
LINALG_MAX_N=${NTK_BENCH_LINALG_MAX_N:-$D_LINALG}
LINALG_ROUNDS=${NTK_BENCH_LINALG_ROUNDS:-$D_ROUNDS}
FIT_N=${NTK_BENCH_FIT_N:-$D_FIT}
FIT_2A_N=${NTK_BENCH_FIT_2A_N:-$D_FIT2A}
REPS=${NTK_BENCH_REPS:-$D_REPS}
PREDICT_N=${NTK_BENCH_PREDICT_N:-$D_PRED}
DIST_N=${NTK_BENCH_DIST_N:-$D_DIST}
DIST_POINTS=${NTK_BENCH_DIST_POINTS:-$D_PTS}
MC_SAMPLES=${NTK_BENCH_MC_SAMPLES:-$D_MC}
MEMORY_N=${NTK_BENCH_MEMORY_N:-$D_MEM}
LOAD_MS=${NTK_BENCH_LOAD_MS:-$D_LOAD}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-$(nproc)}
export OPENBLAS_NUM_THREADS=${OPENBLAS_NUM_THREADS:-$(nproc)}

RES=$BUILD/bench-results/$(date -u +%Y%m%dT%H%M%SZ)
mkdir -p "$RES"
log() { printf '[bench %s] %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }
want() { case ",$ONLY," in *",$1,"*) return 0 ;; *) return 1 ;; esac; }
FAILED=()

# step NAME TIMEOUT_S CMD...: runs CMD with stdout+stderr in NAME.log; a
# failure is recorded and the run goes on.
step() {
  local name=$1 limit=$2
  shift 2
  if [ ! -x "$1" ]; then
    log "$name: $1 is not built, skipped"
    FAILED+=("$name (not built)")
    return 1
  fi
  log "$name: $(basename "$1") ${*:2}"
  local t0=$SECONDS
  if timeout --signal=TERM --kill-after=30 "$limit" "$@" >"$RES/$name.log" 2>&1; then
    log "$name: done in $((SECONDS - t0)) s"
  else
    log "$name: FAILED (exit $?) after $((SECONDS - t0)) s, see $RES/$name.log"
    tail -5 "$RES/$name.log" >&2
    FAILED+=("$name")
    return 1
  fi
}

# Google Benchmark JSON goes to a file; the console table to the log.
gbench() {
  local name=$1 limit=$2 exe=$3
  shift 3
  step "$name" "$limit" "$exe" "$@" --benchmark_out="$RES/$name.json" --benchmark_out_format=json \
    || rm -f "$RES/$name.json"
}

# ---- the machine ----
CPU=$(grep -m1 'model name' /proc/cpuinfo | sed 's/.*: //')
MEM_KB=$(awk '/MemTotal/ {print $2}' /proc/meminfo)
AVAIL_KB=$(awk '/MemAvailable/ {print $2}' /proc/meminfo)
OPENBLAS_LIB=$(readlink -f /usr/lib/x86_64-linux-gnu/libopenblas.so.0 2>/dev/null || echo none)
COMMIT=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)
cat >"$RES/meta.json" <<EOF
{"date": "$(date -u +%Y-%m-%dT%H:%M:%SZ)", "commit": "$COMMIT", "mode": "$MODE",
 "nproc": $(nproc), "cpu": "$CPU", "mem_gb": $((MEM_KB / 1024 / 1024)),
 "openblas": "$OPENBLAS_LIB", "omp": "$OMP_NUM_THREADS", "openblas_threads": "$OPENBLAS_NUM_THREADS",
 "command": "bench/run.sh BUILD_DIR $*"}
EOF
log "results in $RES ($(nproc) cores, $CPU, mode $MODE)"
START=$SECONDS

# ---- 1. GEMM / Cholesky ----
# The two builds alternate for LINALG_ROUNDS rounds; the summary keeps each
# one's best time, so a burst of load from elsewhere hits both alike.
if want linalg; then
  for r in $(seq 1 "$LINALG_ROUNDS"); do
    gbench "linalg_eigen.$r" 1200 "$BIN/linalg_eigen_bench" --max_n="$LINALG_MAX_N"
    gbench "linalg_openblas.$r" 1200 "$BIN/linalg_openblas_bench" --max_n="$LINALG_MAX_N"
  done
fi

# ---- 2. Fit ----
if want fit; then
  gbench fit 1800 "$BIN/fit_bench" --n="$FIT_N" --n_2a="$FIT_2A_N" \
    --benchmark_repetitions="$REPS" --benchmark_enable_random_interleaving=true
fi

# ---- 3. Predict ----
if want predict; then
  gbench predict 900 "$BIN/predict_bench" --n="$PREDICT_N"
fi

# ---- 4. PredictDistribution ----
if want distribution; then
  gbench distribution 1800 "$BIN/distribution_bench" --n="$DIST_N" --points="$DIST_POINTS" \
    --mc_samples="$MC_SAMPLES"
fi

# ---- 5. Peak memory of Fit ----
if want memory; then
  # Four N x N double matrices plus 10% must fit in the available memory.
  MEM_N=$MEMORY_N
  while [ "$MEM_N" -gt 1000 ] &&
        [ $(( MEM_N * MEM_N * 8 / 1024 * 44 / 10 )) -gt "$AVAIL_KB" ]; do
    MEM_N=$(( MEM_N * 9 / 10 ))
  done
  [ "$MEM_N" != "$MEMORY_N" ] &&
    log "memory: only $((AVAIL_KB / 1024)) MB available: N lowered from $MEMORY_N to $MEM_N"
  if step memory 1800 "$BIN/fit_memory" --n="$MEM_N"; then
    grep '^{' "$RES/memory.log" | tail -1 >"$RES/memory.json"
  fi
fi

# ---- 6. gRPC load ----
if want load; then
  step loadgen 600 "$BIN/ntk_loadgen" --duration_ms="$LOAD_MS" --json_out="$RES/loadgen.json" \
    || true
fi

# ---- 6b. concurrency under h2load (issue 13 item 4) ----
if want h2load; then
  if [ "$MODE" = quick ]; then H2_N=2000 H2_S=2; else H2_N=10000 H2_S=10; fi
  step h2load 3600 /usr/bin/python3 -B "$HERE/h2load_bench.py" "$BUILD" \
    --large_n="${NTK_BENCH_H2LOAD_LARGE_N:-$H2_N}" --seconds="${NTK_BENCH_H2LOAD_SECONDS:-$H2_S}" \
    --json_out="$RES/h2load.json"
fi

# ---- 7. issue 10's targets: end to end vs NumPy, then the ratios ----
if want targets; then
  step e2e 3600 /usr/bin/python3 -B "$HERE/e2e_vs_numpy.py" "$BUILD" \
    --n_2b="${NTK_BENCH_T_E2E_2B_N:-$T_E2E_2B}" --n_2a="${NTK_BENCH_T_E2E_2A_N:-$T_E2E_2A}" \
    --server_args="${NTK_BENCH_T_SERVER_ARGS:-}" --json_out="$RES/e2e.json"
  step targets 10800 /usr/bin/python3 -B "$HERE/targets.py" "$BUILD" \
    --n_exact="${NTK_BENCH_T_EXACT_N:-$T_EXACT}" --n_lin="${NTK_BENCH_T_LIN_N:-$T_LIN}" \
    --n_big="${NTK_BENCH_T_BIG_N:-0}" --mc_samples="${NTK_BENCH_T_MC_SAMPLES:-$T_MC}" \
    --n_load="${NTK_BENCH_T_LOAD_N:-$T_LOAD}" --probes="$T_PROBES" \
    --server_args="${NTK_BENCH_T_SERVER_ARGS:-}" \
    --e2e_json="$RES/e2e.json" --json_out="$RES/targets.json"
fi

# ---- issue 12: exact vs Nystrom scaling on Fashion-MNIST (hours at N = 60000) ----
if want nystrom; then
  step nystrom 21600 /usr/bin/python3 -B "$HERE/nystrom_fashion.py" "$BUILD" \
    --ns="${NTK_BENCH_NYSTROM_NS:-5000,10000,20000,60000}" \
    --exact_max_n="${NTK_BENCH_NYSTROM_EXACT_MAX_N:-20000}" \
    --json_out="$RES/nystrom.json"
fi

# ---- issue 11: work after a deadline or a cancel ----
if want stop; then
  STOP_ARGS=()
  [ "$MODE" = quick ] && STOP_ARGS=(--quick)
  step stop 1800 /usr/bin/python3 -B "$HERE/stop_latency.py" "$BUILD" "${STOP_ARGS[@]}" \
    --json_out="$RES/stop.json"
fi

# ---- issue 14: model selection vs brute force vs one 2b fit ----
if want selection; then
  SEL_N=${NTK_BENCH_SELECTION_N:-5000}
  [ "$MODE" = quick ] && SEL_N=${NTK_BENCH_SELECTION_N:-300}
  step selection 43200 "$BIN/selection_timing" --n="$SEL_N" \
    --brute="${NTK_BENCH_SELECTION_BRUTE:-1}"
fi

# ---- issue 14: the selection criteria, CV against the Laplace evidence ----
if want criteria; then
  CRIT_N=${NTK_BENCH_CRITERIA_N:-2000}
  [ "$MODE" = quick ] && CRIT_N=${NTK_BENCH_CRITERIA_N:-300}
  step criteria 14400 "$BIN/selection_criteria" --n="$CRIT_N"
fi

# ---- other benchmarks (e.g. kernel_bench) with their defaults ----
if want other; then
  for exe in "$BIN"/*_bench; do
    [ -x "$exe" ] || continue
    name=$(basename "$exe" _bench)
    case "$name" in linalg_eigen|linalg_openblas|fit|predict|distribution) continue ;; esac
    gbench "$name" 900 "$exe"
  done
fi

log "all steps done in $((SECONDS - START)) s"
/usr/bin/python3 "$HERE/summarize.py" "$RES" >"$RES/summary.md"
{
  cat "$RES/summary.md"
  echo
  echo "Total bench time: $((SECONDS - START)) s. Raw results: $RES"
  [ ${#FAILED[@]} -eq 0 ] || echo "Failed steps: ${FAILED[*]}"
} >"$OUT"
cat "$OUT"
log "summary written to $OUT"
[ ${#FAILED[@]} -eq 0 ]

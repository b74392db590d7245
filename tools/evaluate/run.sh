#!/usr/bin/env bash
# tools/evaluate/run.sh: the whole evaluation of docs/evaluation.md in one
# command. Builds ntk_server and ntk_evaluate, starts ntk_server on
# 127.0.0.1 (ephemeral port, temporary model directory), runs the NTK
# evaluation through the C++ client, stops the server, runs the scikit-learn
# baselines (scripts/baselines.py), and writes the tables into
# docs/evaluation.md and the plots into docs/img/eval_*.png.
#
#   tools/evaluate/run.sh            # full run (~50 min on 2 cores; ./ntk.sh evaluate installs first)
#   QUICK=1 tools/evaluate/run.sh    # small development run (a few minutes)
#
# Environment: BUILD_DIR (default ./build), OUT (default $BUILD_DIR/eval),
# SIZES (default 1000,5000,10000,20000), OOD_N (default 2000),
# CV_N (default 3000: the baselines' CV rows; the NTK's only with
# NTK_ARGS=--selection=client, else each Fit selects on its own rows),
# SKIP_NTK=1 / SKIP_BASELINES=1 (reuse the previous output in $OUT),
# NO_REPORT=1, SKIP_BUILD=1 (use the binaries in $BUILD_DIR as they are),
# NTK_ARGS / BASELINE_ARGS (extra flags).
# Needs Debian's python3-sklearn, python3-matplotlib and the Fashion-MNIST
# IDX files in /usr/share/datasets/fashion-mnist.
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$(pwd)
BUILD_DIR=${BUILD_DIR:-$ROOT/build}
OUT=${OUT:-$BUILD_DIR/eval}
PY=/usr/bin/python3
if [ "${QUICK:-0}" = 1 ]; then
  SIZES=${SIZES:-1000}; OOD_N=${OOD_N:-1000}; CV_N=${CV_N:-1500}; GRID=small
else
  SIZES=${SIZES:-1000,5000,10000,20000}; OOD_N=${OOD_N:-2000}; CV_N=${CV_N:-3000}; GRID=full
fi
MAX_N=$(echo "$SIZES,$OOD_N" | tr ',' '\n' | sort -n | tail -1)
mkdir -p "$OUT"
log() { printf '[run.sh %s] %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }

if [ "${SKIP_NTK:-0}" != 1 ]; then
  if [ "${SKIP_BUILD:-0}" != 1 ]; then
    if [ ! -f "$BUILD_DIR/CMakeCache.txt" ]; then
      cmake -S "$ROOT" -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE=Release >/dev/null
    fi
    cmake --build "$BUILD_DIR" -j "${JOBS:-$(nproc)}" --target ntk_server ntk_evaluate >/dev/null
  fi
  MODEL_DIR=$(mktemp -d)
  SERVER_OUT="$OUT/server.stdout"
  "$BUILD_DIR/server/ntk_server" --listen=127.0.0.1:0 --model_dir="$MODEL_DIR" \
      --max_train_rows="$MAX_N" --blas_threads=0 --log_rpcs=false >"$SERVER_OUT" 2>"$OUT/server.stderr" &
  SERVER_PID=$!
  cleanup() { kill "$SERVER_PID" 2>/dev/null || true; wait "$SERVER_PID" 2>/dev/null || true; rm -rf "$MODEL_DIR"; }
  trap cleanup EXIT
  ADDR=""
  for _ in $(seq 1 300); do
    ADDR=$(sed -n 's/.*listening on \([^ ]*\).*/\1/p' "$SERVER_OUT" | head -1)
    [ -n "$ADDR" ] && break
    kill -0 "$SERVER_PID" 2>/dev/null || { cat "$OUT/server.stderr" >&2; exit 1; }
    sleep 0.1
  done
  [ -n "$ADDR" ] || { log "ntk_server did not start"; exit 1; }
  log "ntk_server on $ADDR; NTK evaluation (sizes $SIZES, OOD N=$OOD_N, CV N=$CV_N, grid $GRID)"
  "$BUILD_DIR/tools/evaluate/ntk_evaluate" --target="$ADDR" --out="$OUT" --sizes="$SIZES" \
      --ood_n="$OOD_N" --cv_n="$CV_N" --grid="$GRID" ${NTK_ARGS:-} 2>&1 | tee "$OUT/ntk.log" >&2
  cleanup
  trap - EXIT
fi

if [ "${SKIP_BASELINES:-0}" != 1 ]; then
  log "scikit-learn baselines"
  "$PY" "$ROOT/scripts/baselines.py" --out "$OUT/baselines.json" --sizes="$SIZES" \
      --ood_n="$OOD_N" --cv_n="$CV_N" ${BASELINE_ARGS:-} 2>&1 | tee "$OUT/baselines.log" >&2
fi

if [ "${NO_REPORT:-0}" != 1 ]; then
  "$PY" "$ROOT/tools/evaluate/report.py" --out "$OUT" --repo "$ROOT"
fi
log "done: $ROOT/docs/evaluation.md, $ROOT/docs/img/eval_*.png (raw outputs in $OUT)"

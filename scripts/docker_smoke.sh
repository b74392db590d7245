#!/usr/bin/env bash
# docker_smoke.sh: builds the container image and checks that it works end
# to end (takes minutes; not part of ./ntk.sh test):
#
#   1. builds the image with docker or podman, whichever is installed
#      (podman: build --format docker, to keep the HEALTHCHECK)
#   2. checks every shared library of the binaries resolves in the image and
#      reports the image size (and its size on top of debian:bookworm)
#   3. starts the container (--network=host, a fresh named volume, listening
#      on 127.0.0.1:<free port>, HTTP on another) and waits for its
#      HEALTHCHECK to pass; checks /v2/health/ready and /metrics over HTTP
#   4. fits a small model with ntkctl inside the container (digits rows from
#      scikit-learn's CSV when the host has it, else a generated CSV),
#      predicts and saves the output
#   5. replaces the container by a new one on the same volume, waits for
#      health, predicts again: the output must be byte-identical
#   6. cleans up (containers, volume; the image is kept), exits non-zero on
#      any failure
#
# Usage: scripts/docker_smoke.sh [--no-build | --from-git]
#   --no-build: reuse the image; --from-git: build from `git archive HEAD`
#   (the committed tree) instead of the working tree.
# Env: IMAGE (default ntk-serve), JOBS (build parallelism, default 2),
#      CMAKE_ARGS (extra CMake arguments for the image's build),
#      ENGINE (docker or podman; default: podman if installed, else docker),
#      CONTAINER_ENV (optional: a file sourced first, e.g. to set up podman).
# Nothing outside the repository is needed.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
IMAGE=${IMAGE:-ntk-serve}
JOBS=${JOBS:-2}
BUILD=1
FROM_GIT=0
case "${1:-}" in
  --no-build) BUILD=0 ;;
  --from-git) FROM_GIT=1 ;;
  "") ;;
  *) sed -n '2,27p' "$0" >&2; exit 2 ;;
esac

log() { printf '[smoke %4ds] %s\n' "$SECONDS" "$*" >&2; }
die() { log "FAIL: $*"; exit 1; }

if [ -n "${CONTAINER_ENV:-}" ]; then
  # shellcheck disable=SC1090
  . "$CONTAINER_ENV"
fi
if [ -z "${ENGINE:-}" ]; then
  if command -v podman >/dev/null; then ENGINE=podman
  elif command -v docker >/dev/null; then ENGINE=docker
  else die "neither podman nor docker is installed"; fi
fi
command -v "$ENGINE" >/dev/null || die "ENGINE=$ENGINE is not installed"
log "container engine: $ENGINE"

# The engines' differences, in one place. podman without systemd complains
# on every run/stop that it cannot set up the healthcheck timer; drop those
# lines (the HEALTHCHECK itself is run by wait_healthy below).
eng() { "$ENGINE" "$@" 2> >(grep -v 'systemd connection' >&2); }
if [ "$ENGINE" = podman ]; then
  BUILD_FORMAT=(--format docker)
  RUN_HEALTH=(--health-interval=disable)   # no systemd timer; see wait_healthy
  RM_TIMEOUT=(-t 2)
  image_exists() { podman image exists "$1"; }
  healthy() { podman healthcheck run "$1" >/dev/null 2>&1; }
else
  BUILD_FORMAT=()
  RUN_HEALTH=(--health-interval=1s)        # dockerd runs the HEALTHCHECK itself
  RM_TIMEOUT=()
  image_exists() { docker image inspect "$1" >/dev/null 2>&1; }
  healthy() { [ "$(docker inspect --format '{{.State.Health.Status}}' "$1")" = healthy ]; }
fi

TAG=ntk-smoke-$$
WORK=$(mktemp -d /tmp/ntk-smoke.XXXXXX)
VOLUME=$TAG-models
NAME=$TAG
cleanup() {
  local rc=$?
  "$ENGINE" rm -f "${RM_TIMEOUT[@]}" "$NAME" >/dev/null 2>&1 || true
  "$ENGINE" volume rm -f "$VOLUME" >/dev/null 2>&1 || true
  rm -rf "$WORK"
  [ $rc -eq 0 ] && log "PASS" || log "exit code $rc"
}
trap cleanup EXIT

# ---- 1. Build ------------------------------------------------------------------
if [ $BUILD = 1 ]; then
  context=.
  if [ $FROM_GIT = 1 ]; then
    context="$WORK/src"
    mkdir -p "$context"
    git archive --format=tar HEAD | tar -x -C "$context"
    log "context: git HEAD $(git rev-parse --short HEAD)"
  fi
  log "building $IMAGE ($ENGINE build, -j$JOBS)"
  t0=$SECONDS
  "$ENGINE" build "${BUILD_FORMAT[@]}" --build-arg JOBS="$JOBS" \
    --build-arg CMAKE_ARGS="${CMAKE_ARGS:-}" -f "$context/docker/Dockerfile" \
    -t "$IMAGE" "$context" >"$WORK/build.log" 2>&1 \
    || { tail -40 "$WORK/build.log" >&2; die "$ENGINE build failed"; }
  log "build took $((SECONDS - t0)) s"
fi
image_exists "$IMAGE" || die "no image $IMAGE (run without --no-build)"

# ---- 2. Libraries and size -------------------------------------------------------
missing=$(eng run --rm --no-healthcheck --entrypoint /bin/sh "$IMAGE" -c \
  'ldd /usr/local/bin/ntk_server /usr/local/bin/ntkctl | grep "not found" || true')
[ -z "$missing" ] || die "missing libraries in the image: $missing"
uid=$(eng run --rm --no-healthcheck --entrypoint /usr/bin/id "$IMAGE" -u)
[ "$uid" != 0 ] || die "the image runs as root"
size=$("$ENGINE" image inspect --format '{{.Size}}' "$IMAGE")
base=$("$ENGINE" image inspect --format '{{.Size}}' docker.io/library/debian:bookworm)
mb() { awk -v b="$1" 'BEGIN { printf "%.1f MB", b / 1e6 }'; }
log "image $IMAGE: $(mb "$size") total, $(mb $((size - base))) on top of debian:bookworm ($(mb "$base")); runs as uid $uid"
"$ENGINE" history --format '{{.Size}}\t{{.CreatedBy}}' "$IMAGE" 2>/dev/null \
  | grep -v '^0 B' | head -4 | cut -c1-110 >&2 || true

# ---- 3. Start ---------------------------------------------------------------------
free_port() { /usr/bin/python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
port=$(free_port)
http_port=$(free_port)
mkdir -p "$WORK/data"
DIGITS=/usr/lib/python3/dist-packages/sklearn/datasets/data/digits.csv.gz
if [ -f "$DIGITS" ]; then
  cp "$DIGITS" "$WORK/data/train.csv.gz"
  TRAIN=(--data=/data/train.csv.gz --rows=0:500 --normalize_rows)
  TEST=(--data=/data/train.csv.gz --rows=1500:)
  log "data: digits (fit rows 0:500, predict rows 1500:1797)"
else
  # 3 classes in 4 dimensions: class k has mean 2 * e_k plus a deterministic
  # perturbation.
  awk 'BEGIN { for (i = 0; i < 150; i++) { k = i % 3; s = "";
         for (j = 0; j < 4; j++) s = s sprintf("%.4f,", (j == k) * 2 + sin(i * 7 + j * 3));
         print s k } }' >"$WORK/data/train.csv"
  TRAIN=(--data=/data/train.csv --rows=0:120)
  TEST=(--data=/data/train.csv --rows=120:)
  log "data: generated 150 x 4 CSV (fit rows 0:120, predict rows 120:150)"
fi
chmod -R a+rX "$WORK/data"
"$ENGINE" volume create "$VOLUME" >/dev/null

start() {
  eng run -d --name "$NAME" --network=host "${RUN_HEALTH[@]}" \
    -v "$VOLUME:/models" -v "$WORK/data:/data:ro" -e NTK_LISTEN="127.0.0.1:$port" \
    -e NTK_HTTP_LISTEN="127.0.0.1:$http_port" "$IMAGE" >/dev/null
}
ctl() { "$ENGINE" exec "$NAME" ntkctl --server="127.0.0.1:$port" "$@"; }
wait_healthy() {
  local t0=$SECONDS
  for _ in $(seq 1 120); do
    # Runs the image's HEALTHCHECK command (no systemd timers here).
    if healthy "$NAME"; then
      log "healthy after $((SECONDS - t0)) s (HEALTHCHECK: ntkctl health)"
      return 0
    fi
    if [ "$("$ENGINE" inspect --format '{{.State.Running}}' "$NAME")" != true ]; then
      "$ENGINE" logs "$NAME" >&2 || true
      die "container exited"
    fi
    sleep 0.5
  done
  "$ENGINE" logs "$NAME" >&2 || true
  die "not healthy after 60 s"
}

log "starting $NAME on 127.0.0.1:$port, volume $VOLUME"
start
wait_healthy
http_get() { /usr/bin/python3 -c 'import sys, urllib.request; print(urllib.request.urlopen(sys.argv[1], timeout=10).read().decode())' "http://127.0.0.1:$http_port$1"; }
http_get /v2/health/ready | grep -q '"ready":true' || die "HTTP /v2/health/ready"
http_get /metrics | grep -q '^ntk_models_loaded ' || die "HTTP /metrics"
log "HTTP on 127.0.0.1:$http_port: /v2/health/ready and /metrics answer"

# ---- 4. Fit and predict -------------------------------------------------------------
t0=$SECONDS
ctl fit --model=smoke "${TRAIN[@]}" >"$WORK/fit.txt" || { cat "$WORK/fit.txt" >&2; die "fit"; }
log "fit took $((SECONDS - t0)) s: $(grep -E '^(num_train|regime|train_accuracy)' "$WORK/fit.txt" | tr -s ' ' | paste -sd';')"
ctl predict --model=smoke "${TEST[@]}" --format=csv >"$WORK/pred1.csv" 2>"$WORK/pred1.err" \
  || { cat "$WORK/pred1.err" >&2; die "predict"; }
ctl predict-dist --model=smoke "${TEST[@]}" --format=json >"$WORK/dist1.json" 2>/dev/null \
  || die "predict-dist"
log "predicted $(($(wc -l <"$WORK/pred1.csv") - 1)) rows, $(grep accuracy "$WORK/pred1.err")"

# ---- 5. A new container on the same volume ------------------------------------------
t0=$SECONDS
eng stop -t 10 "$NAME" >/dev/null
code=$("$ENGINE" inspect --format '{{.State.ExitCode}}' "$NAME")
[ "$code" = 0 ] || die "server exited with $code on SIGTERM (graceful shutdown expected)"
eng rm "$NAME" >/dev/null
start
wait_healthy
log "restart took $((SECONDS - t0)) s (stop, new container, healthy)"
ctl list | grep -q '^smoke ' || { ctl list >&2; die "model 'smoke' not listed after restart"; }
ctl predict --model=smoke "${TEST[@]}" --format=csv >"$WORK/pred2.csv" 2>/dev/null || die "predict after restart"
ctl predict-dist --model=smoke "${TEST[@]}" --format=json >"$WORK/dist2.json" 2>/dev/null \
  || die "predict-dist after restart"
diff -q "$WORK/pred1.csv" "$WORK/pred2.csv" >/dev/null || { diff "$WORK/pred1.csv" "$WORK/pred2.csv" | head >&2; die "predictions differ after restart"; }
diff -q "$WORK/dist1.json" "$WORK/dist2.json" >/dev/null || die "predict-dist differs after restart"
log "predictions after restart identical ($(wc -c <"$WORK/pred1.csv") + $(wc -c <"$WORK/dist1.json") bytes)"
ctl delete --model=smoke >/dev/null || die "delete"

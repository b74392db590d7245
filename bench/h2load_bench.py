#!/usr/bin/python3
"""bench/h2load_bench.py BUILD_DIR: Predict and ModelInfer under concurrency,
driven by h2load (Debian's nghttp2-client: C, so the client is not the
bottleneck) speaking gRPC framing over HTTP/2 (issue 13 item 4).

For a small model (N = 1000, d = 64, C = 10) and a large one (N = --large_n,
d = 784, C = 10), synthetic Gaussian blobs, each cell is one h2load run of
--seconds on one connection with `concurrency` streams:

  Predict 1 row, Predict 256 rows (ntk.v1, repeated double),
  ModelInfer 1 row (OIP, typed FP64), ModelInfer 1 row (OIP, raw FP64)

and reports requests/s, rows/s, and p50 / p99 latency from h2load's
per-request log (--log-file). Each request body is checked once through
Python grpc before it is replayed (h2load sees HTTP 200 even for a gRPC
error; the gRPC status is in the trailers). The ratios the issue asks for
are printed last: 1-row / 256-row rows/s at the highest concurrency per
model (target >= 0.7 small, >= 1.0 large) and ModelInfer / Predict 1-row
p50 (target within 10%).

After each h2load run the bench waits until the server is idle (its CPU
time, from /proc, stops growing) and reports how long that took (drain_s):
a client that leaves with requests in flight can leave queued work behind
(the 256-row cells at concurrency 64 did, ~15-20 s of it on the large
model before the server skipped calls whose client had gone), and the next
cell, measured while that drains, measured the backlog, not itself. It also
reports the server's CPU time per request (from /proc, drain included),
which is steadier than req/s on a shared machine.

--models / --calls run a subset; --perf DIR records `perf record -g` of the
server during every run (DIR/<model>-<call>-c<c>.data) for profiles.

Run with `bench/run.sh BUILD_DIR --only=h2load` (or directly).
"""
import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import bench_client  # noqa: E402


def oip_stubs(out_dir):
    from grpc_tools import protoc
    proto_dir = os.path.join(os.path.dirname(HERE), "third_party", "open-inference-protocol",
                             "proto", "inference")
    if protoc.main(["protoc", "-I" + proto_dir, "--python_out=" + out_dir,
                    os.path.join(proto_dir, "grpc_predict_v2.proto")]) != 0:
        sys.exit("grpc_tools.protoc failed")
    sys.path.insert(0, out_dir)
    import grpc_predict_v2_pb2
    return grpc_predict_v2_pb2


def frame(msg):
    payload = msg.SerializeToString()
    return b"\0" + len(payload).to_bytes(4, "big") + payload


def percentile(values, q):
    return float(np.percentile(np.array(values, dtype=np.float64), q)) if values else float("nan")


def cpu_seconds(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def wait_idle(pid, limit_s=120.0):
    """Waits until the server used < 5% of one core over 0.2 s; returns the
    seconds waited."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < limit_s:
        c0 = cpu_seconds(pid)
        time.sleep(0.2)
        if cpu_seconds(pid) - c0 < 0.01:
            break
    return time.monotonic() - t0


def run_h2load(url, body_path, concurrency, seconds, log_path):
    cmd = ["h2load", "-c", "1", "-m", str(concurrency), "-D", str(seconds),
           "-d", body_path, "-H", "content-type: application/grpc", "-H", "te: trailers",
           "--log-file=" + log_path, url]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 120)
    m = re.search(r"finished in [0-9.]+\w*, ([0-9.]+) req/s", out.stdout)
    done = re.search(r"requests: \d+ total, \d+ started, (\d+) done, (\d+) succeeded", out.stdout)
    if out.returncode != 0 or not m or not done:
        raise RuntimeError("h2load failed: %s\n%s" % (" ".join(cmd), out.stdout + out.stderr))
    lat_us = []
    with open(log_path) as f:  # a fresh file per run (see main)
        for line in f:
            parts = line.split()
            if len(parts) >= 3 and parts[1] == "200":
                lat_us.append(float(parts[2]))
    return {"req_per_s": float(m.group(1)), "succeeded": int(done.group(2)),
            "latency_samples": len(lat_us),
            "p50_ms": percentile(lat_us, 50) / 1e3, "p99_ms": percentile(lat_us, 99) / 1e3}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("build")
    ap.add_argument("--large_n", type=int, default=10000)
    ap.add_argument("--concurrency", default="1,4,16,64")
    ap.add_argument("--seconds", type=int, default=10)
    ap.add_argument("--json_out", default="")
    ap.add_argument("--server_args", default="")
    ap.add_argument("--models", default="small,large")
    ap.add_argument("--calls", default="Predict,ModelInfer,ModelInfer raw")
    ap.add_argument("--no_wait_idle", action="store_true",
                    help="start each run at once (as before: queued work may still drain)")
    ap.add_argument("--perf", default="", help="directory for perf record -g data per run")
    args = ap.parse_args()
    if shutil.which("h2load") is None:
        sys.exit("h2load missing (apt-get install nghttp2-client)")
    import grpc
    work = tempfile.mkdtemp(prefix="ntk-h2load-")
    oip = oip_stubs(work)
    stubs = bench_client.load_stubs()
    server_bin = os.path.join(args.build, "server", "ntk_server")
    extra = ["--log_rpcs=false"] + [a for a in args.server_args.split() if a]
    rng = np.random.default_rng(1)
    results = []
    with bench_client.Server(server_bin, extra) as server:
        client = bench_client.Client(server.address, stubs)
        pb = client.pb
        models = args.models.split(",")
        calls = args.calls.split(",")
        for label, n, d in (("small", 1000, 64), ("large", args.large_n, 784)):
            if label not in models:
                continue
            y = np.arange(n) % 10
            x = rng.normal(size=(n, d)) + 2.0 * np.eye(10, d)[y]
            client.fit(label, x, y, client.spec(depth=2))
            q = rng.normal(size=(256, d))
            cells = []
            for rows in (1, 256):
                cells.append(("Predict", rows, "/ntk.v1.NtkService/Predict", pb.PredictRequest(
                    model_id=label, features=client.matrix(q[:rows]))))
            for raw in (False, True):
                req = oip.ModelInferRequest(model_name=label)
                t = req.inputs.add(name="features", datatype="FP64", shape=[1, d])
                if raw:
                    req.raw_input_contents.append(np.ascontiguousarray(q[:1], "<f8").tobytes())
                else:
                    t.contents.fp64_contents.extend(q[0])
                cells.append(("ModelInfer raw" if raw else "ModelInfer", 1,
                              "/inference.GRPCInferenceService/ModelInfer", req))
            for name, rows, path, msg in cells:
                if name not in calls:
                    continue
                # The body must be a request the server answers OK.
                client.channel.unary_unary(path)(msg.SerializeToString(), timeout=60)
                body_path = os.path.join(work, "body.bin")
                with open(body_path, "wb") as f:
                    f.write(frame(msg))
                for c in [int(v) for v in args.concurrency.split(",")]:
                    log_path = os.path.join(work, "h2load-%d.log" % len(results))
                    if not results and not args.no_wait_idle:
                        wait_idle(server.proc.pid)  # the fits
                    cpu0 = cpu_seconds(server.proc.pid)
                    perf = None
                    if args.perf:
                        os.makedirs(args.perf, exist_ok=True)
                        perf = subprocess.Popen(
                            ["perf", "record", "-g", "-q", "-p", str(server.proc.pid), "-o",
                             os.path.join(args.perf, "%s-%s-r%d-c%d.data" % (
                                 label, name.replace(" ", "_"), rows, c))],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                    try:
                        r = run_h2load("http://%s%s" % (server.address, path), body_path, c,
                                       args.seconds, log_path)
                    finally:
                        if perf is not None:
                            perf.send_signal(subprocess.signal.SIGINT)
                            perf.wait()
                    # Work the run left queued drains before the next run.
                    drain_s = 0.0 if args.no_wait_idle else wait_idle(server.proc.pid)
                    cpu_ms = 1e3 * (cpu_seconds(server.proc.pid) - cpu0) / max(1, r["succeeded"])
                    r.update(model=label, n=n, d=d, call=name, rows=rows, concurrency=c,
                             rows_per_s=r["req_per_s"] * rows, drain_after_s=drain_s,
                             server_cpu_ms_per_req=cpu_ms)
                    results.append(r)
                    print("%-5s %-15s rows %3d  c %2d  %9.0f req/s %10.0f rows/s  p50 %7.3f ms"
                          "  p99 %7.3f ms  server CPU %.3f ms/req  (%d done, %d timed; %.1f s to drain)" % (
                              label, name, rows, c, r["req_per_s"], r["rows_per_s"], r["p50_ms"],
                              r["p99_ms"], cpu_ms, r["succeeded"], r["latency_samples"],
                              drain_s),
                          flush=True)
        client.close()
    print("\n| model | call | rows | concurrency | req/s | rows/s | p50 ms | p99 ms "
          "| server CPU ms/req | drain s |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in results:
        print("| %s (N=%d, d=%d) | %s | %d | %d | %.0f | %.0f | %.3f | %.3f | %.3f | %.1f |" % (
            r["model"], r["n"], r["d"], r["call"], r["rows"], r["concurrency"], r["req_per_s"],
            r["rows_per_s"], r["p50_ms"], r["p99_ms"], r["server_cpu_ms_per_req"],
            r["drain_after_s"]))
    if args.json_out:
        with open(args.json_out, "w") as f:
            json.dump(results, f, indent=1)
    levels = [int(v) for v in args.concurrency.split(",")]
    cmax, cmin = max(levels), min(levels)
    cell = {(r["model"], r["call"], r["rows"], r["concurrency"]): r for r in results}
    print()
    for label, target in (("small", 0.7), ("large", 1.0)):
        one = cell.get((label, "Predict", 1, cmax))
        big = cell.get((label, "Predict", 256, cmax))
        if one and big:
            print("%s: 1-row / 256-row Predict rows/s at concurrency %d = %.2f (target >= %.1f)"
                  % (label, cmax, one["rows_per_s"] / big["rows_per_s"], target))
        for name in ("ModelInfer", "ModelInfer raw"):
            if (label, name, 1, cmin) not in cell or (label, "Predict", 1, cmin) not in cell:
                continue
            p_oip = cell[(label, name, 1, cmin)]["p50_ms"]
            p_v1 = cell[(label, "Predict", 1, cmin)]["p50_ms"]
            print("%s: %s / Predict 1-row p50 at concurrency %d = %.2f (target <= 1.10 at 1)" % (
                label, name, cmin, p_oip / p_v1))
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()

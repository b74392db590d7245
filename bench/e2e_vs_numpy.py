#!/usr/bin/python3
"""bench/e2e_vs_numpy.py BUILD_DIR: ntk-serve end to end through gRPC from
Python vs the NumPy reference (bench/numpy_reference.py) on the same data.

    /usr/bin/python3 bench/e2e_vs_numpy.py build [--n_2b=3000 --n_2a=1500 ...]

For each case, 2b (lambda = 0, label smoothing 0.1, EXACT) at N = --n_2b and
2a (lambda = --lam, LINEARIZED) at N = --n_2a, with d = 784, C = 10,
depth-3 ReLU, standardize + normalize_rows (Fashion-MNIST; digits when the
package is missing), the same work is timed on both sides:

    Fit on N rows + Predict 500 rows + the first PredictDistribution, 100 rows

Service: an ntk_server started here (127.0.0.1:0, its default flags plus
--server_args), one fresh model per encoding; per RPC the client encode
time (numpy -> proto -> bytes), the RPC wall time, the decode time (bytes ->
proto -> numpy) and the server's own handler time (its log line). Encodings:
repeated double ("values"), and raw bytes ("data", round-2 Matrix.data with
a columnar distribution answer) when the proto has them. NumPy: the
reference's stages (kernels, solve, predict, distribution factor, points).

The ratio is NumPy's total / the service's total (> 1: the service is
faster). Writes --json_out and prints a Markdown table.
"""
import argparse
import json
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.dont_write_bytecode = True
import bench_client  # noqa: E402
import bench_data  # noqa: E402
import numpy_reference as nr  # noqa: E402
from issue10_tables import e2e_markdown  # noqa: E402


def run_numpy(data, lam, depth, predict_rows, dist_rows):
    ref = nr.Reference(nr.KernelSpec("relu", depth), lam=lam)
    t0 = time.perf_counter()
    ref.fit(data.x_train, data.y_train, data.classes)
    ref.predict(data.x_query[:predict_rows])
    ref.distribution(data.x_query[:dist_rows])
    total = time.perf_counter() - t0
    return {"total_s": total, "stages": ref.times, "newton_iterations": ref.iterations}


def run_service(client, server, data, lam, depth, predict_rows, dist_rows, method,
                encoding, model_id):
    spec = client.spec(depth=depth, lam=lam)
    stages = {}
    t0 = time.perf_counter()
    fit, t = client.fit(model_id, data.x_train, data.y_train, spec, encoding)
    stages["Fit"] = t
    _, t = client.predict(model_id, data.x_query[:predict_rows], encoding)
    stages["Predict"] = t
    _, t = client.distribution(model_id, data.x_query[:dist_rows], method=method,
                               encoding=encoding)
    stages["PredictDistribution"] = t
    total = time.perf_counter() - t0
    for rpc, st in stages.items():
        ms = server.server_ms(rpc, model_id)
        st["server"] = ms[-1] / 1e3 if ms and ms[-1] is not None else None
    client.delete(model_id)
    return {"total_s": total, "stages": stages,
            "fit_seconds": fit.model.stats.fit_seconds,
            "regime": fit.model.stats.regime}


def load_average():
    try:
        return [float(v) for v in open("/proc/loadavg").read().split()[:3]]
    except OSError:
        return None


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("build", help="build directory holding server/ntk_server")
    ap.add_argument("--n_2b", type=int, default=3000)
    ap.add_argument("--n_2a", type=int, default=1500)
    ap.add_argument("--lam", type=float, default=0.01)
    ap.add_argument("--depth", type=int, default=3)
    ap.add_argument("--predict_rows", type=int, default=500)
    ap.add_argument("--dist_rows", type=int, default=100)
    ap.add_argument("--cases", default="2b,2a")
    ap.add_argument("--server_args", default="", help="extra ntk_server flags, space-separated")
    ap.add_argument("--json_out", default="")
    args = ap.parse_args()

    binary = os.path.join(args.build, "server", "ntk_server")
    stubs = bench_client.load_stubs()
    res = {"load_average_start": load_average(), "cases": [],
           "server_args": args.server_args, "blas": nr.blas_library(),
           "openblas_threads": os.environ.get("OPENBLAS_NUM_THREADS", "(default)")}
    extra = ["--max_message_mb=1024", "--max_train_rows=100000"] + args.server_args.split()
    with bench_client.Server(binary, extra) as server:
        client = bench_client.Client(server.address, stubs)
        for case in args.cases.split(","):
            lam = 0.0 if case == "2b" else args.lam
            n = args.n_2b if case == "2b" else args.n_2a
            method = "EXACT" if case == "2b" else "LINEARIZED"
            data = bench_data.load(n, max(args.predict_rows, args.dist_rows))
            print("[e2e] %s N = %d (%s): NumPy ..." % (case, len(data.x_train), data.source),
                  file=sys.stderr, flush=True)
            c = {"case": case, "n": len(data.x_train), "d": data.x_train.shape[1],
                 "data": data.source, "method": method,
                 "numpy": run_numpy(data, lam, args.depth, args.predict_rows, args.dist_rows),
                 "service": {}}
            for enc in client.encodings():
                print("[e2e] %s: service, %s encoding ..." % (case, enc), file=sys.stderr,
                      flush=True)
                c["service"][enc] = run_service(
                    client, server, data, lam if case == "2a" else None, args.depth,
                    args.predict_rows, args.dist_rows, method, enc, "e2e-%s-%s" % (case, enc))
            c["ratio"] = {enc: c["numpy"]["total_s"] / sv["total_s"]
                          for enc, sv in c["service"].items()}
            res["cases"].append(c)
        client.close()
    res["load_average_end"] = load_average()
    if args.json_out:
        with open(args.json_out, "w") as f:
            json.dump(res, f, indent=1)
    print(e2e_markdown(res))
    print("\nload average at start %s, at end %s" % (res["load_average_start"],
                                                     res["load_average_end"]))


if __name__ == "__main__":
    main()

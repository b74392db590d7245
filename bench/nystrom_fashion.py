#!/usr/bin/python3
"""bench/nystrom_fashion.py BUILD_DIR: issue 12's scaling table, exact vs
Nystrom on Fashion-MNIST through ntk_server (docs/model-contract.md
"6. Nystrom models").

    /usr/bin/python3 bench/nystrom_fashion.py build [--ns=5000,10000,20000,60000]
    bench/run.sh build --only=nystrom          # the usual way

For each N (training rows from the training file, d = 784, C = 10) and
each kind (exact only while N <= --exact_max_n; Nystrom with --num_centers,
0 = the server's default ~16 sqrt(N)), a FRESH ntk_server fits depth-2
ReLU, standardize + normalize_rows, the server's default training objective
(hard labels: eps = 0.1, lambda = 0, regime 2b; --lam sets lambda, e.g. 2a),
then predicts the --n_test test rows. Printed per row: fit time (the
client's Fit RPC wall time), the server's peak RSS (VmHWM over fit and
predict), test accuracy, NLL (mean -log p_y) and ECE (15 equal-width bins
of the top probability). A fit that fails (e.g. RESOURCE_EXHAUSTED by the
memory budget) is reported as such. Writes --json_out when given.
"""
import argparse
import json
import os
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import bench_client  # noqa: E402
import bench_data  # noqa: E402


def ece(prob, y, bins=15):
    conf = prob.max(axis=1)
    correct = (prob.argmax(axis=1) == y).astype(np.float64)
    edges = np.linspace(0, 1, bins + 1)
    total = 0.0
    for lo, hi in zip(edges[:-1], edges[1:]):
        m = (conf > lo) & (conf <= hi)
        if m.any():
            total += m.sum() * abs(correct[m].mean() - conf[m].mean())
    return total / len(y)


def run_one(args, stubs, data, n, kind):
    server_args = ["--max_train_rows=%d" % n, "--max_nystrom_train_rows=%d" % n,
                   "--max_message_mb=2047", "--max_predict_rows=100000"]
    server_args += args.server_args.split() if args.server_args else []
    row = {"n": n, "kind": kind}
    with bench_client.Server(os.path.join(args.build, "server", "ntk_server"),
                             server_args) as server:
        client = bench_client.Client(server.address, stubs)
        pb = client.pb
        spec = client.spec(depth=2, lam=args.lam)
        if kind == "nystrom":
            spec.approximation.kind = pb.Approximation.NYSTROM
            spec.approximation.num_centers = args.num_centers
            spec.approximation.seed = 1
        enc = "data" if client.has_data_field else "values"
        print("  N = %d %s: fitting ..." % (n, kind), flush=True)
        try:
            resp, t = client.fit("m", data.x_train[:n], data.y_train[:n], spec, encoding=enc)
        except client.grpc.RpcError as e:
            row["error"] = "%s: %s" % (e.code().name, e.details())
            row["peak_rss_gib"] = server.peak_rss_bytes() / 2**30
            client.close()
            return row
        row["fit_s"] = t["rpc"]
        row["m"] = resp.model.spec.approximation.num_centers if kind == "nystrom" else n
        row["regime"] = resp.model.stats.regime
        probs = []
        for b in range(0, len(data.x_query), 2000):
            out, _ = client.predict("m", data.x_query[b:b + 2000], encoding=enc)
            probs.append(out["probabilities"])
        p = np.vstack(probs)
        y = data.y_query
        row["accuracy"] = float((p.argmax(axis=1) == y).mean())
        row["nll"] = float(-np.log(np.maximum(p[np.arange(len(y)), y], 1e-300)).mean())
        row["ece"] = float(ece(p, y))
        row["peak_rss_gib"] = server.peak_rss_bytes() / 2**30
        client.close()
    return row


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("build", help="build directory holding server/ntk_server")
    ap.add_argument("--ns", default="5000,10000,20000,60000")
    ap.add_argument("--exact_max_n", type=int, default=20000)
    ap.add_argument("--num_centers", type=int, default=0)
    ap.add_argument("--lam", type=float, default=None)
    ap.add_argument("--n_test", type=int, default=10000)
    ap.add_argument("--server_args", default="")
    ap.add_argument("--json_out", default="")
    args = ap.parse_args()
    ns = [int(v) for v in args.ns.split(",") if v]
    data = bench_data.load(max(ns), args.n_test)
    print("data: %s, %d train rows available, %d test rows" % (
        data.source, len(data.x_train), len(data.x_query)), flush=True)
    stubs = bench_client.load_stubs()
    rows = []
    for n in ns:
        n = min(n, len(data.x_train))
        for kind in (["exact"] if n <= args.exact_max_n else []) + ["nystrom"]:
            t0 = time.time()
            rows.append(run_one(args, stubs, data, n, kind))
            print("  ... %.0f s" % (time.time() - t0), flush=True)
    print("\n| N | kind | m | regime | fit s | peak RSS GiB | accuracy | NLL | ECE |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        if "error" in r:
            print("| %d | %s | | | failed: %s | %.2f | | | |" % (
                r["n"], r["kind"], r["error"], r["peak_rss_gib"]))
        else:
            print("| %d | %s | %d | %s | %.1f | %.2f | %.4f | %.4f | %.4f |" % (
                r["n"], r["kind"], r["m"], r["regime"], r["fit_s"], r["peak_rss_gib"],
                r["accuracy"], r["nll"], r["ece"]))
    if args.json_out:
        with open(args.json_out, "w") as f:
            json.dump(rows, f, indent=1)


if __name__ == "__main__":
    main()

#!/usr/bin/python3
"""client/python/fashion_fitstream.py BUILD_DIR: the Python package end to end
on all of Fashion-MNIST (issue 13's target "end to end FitStream of
60000 x 784 works (chunked) from the Python package").

    /usr/bin/python3 client/python/gen_stubs.py      # once: stubs in the source tree
    /usr/bin/python3 client/python/fashion_fitstream.py build [--rows=60000]

Starts a fresh BUILD_DIR/server/ntk_server on 127.0.0.1 (ephemeral port,
temporary model directory, bench/bench_client.py Server), then with
`ntk_client.Client` only: fits a Nystrom model (docs/model-contract.md "6.
Nystrom models"; the server's default number of centers) on the first
--rows training images as float64 (784 features / 255, labels 0-9), which
the package sends as FitStream chunks since the request is far above 3/4 of
max_message_mb; predicts the 10000 test images; asks PredictDistribution
(EXACT, 2b) for --pd_rows of them. Prints the chunk count and size, the
client's wall time per call, the server's peak RSS, test accuracy and NLL,
and the mean mutual information of correct vs wrong predictions. Exits 1
when any call fails or an answer has the wrong shape. Not part of
`./ntk.sh test` (minutes of both cores); a small chunked FitStream is, in
tests/python_client_test.py.
"""
import argparse
import os
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(ROOT, "bench"))
import bench_client  # noqa: E402  (the server subprocess)
import bench_data  # noqa: E402  (Fashion-MNIST IDX reader)
from ntk_client import Client  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("build")
    ap.add_argument("--rows", type=int, default=60000, help="training rows (<= 60000)")
    ap.add_argument("--test_rows", type=int, default=10000)
    ap.add_argument("--pd_rows", type=int, default=100)
    ap.add_argument("--max_message_mb", type=int, default=64,
                    help="server's and client's message limit: sets the chunk size")
    args = ap.parse_args()
    if not bench_data.fashion_available():
        print("Fashion-MNIST not installed (package dataset-fashion-mnist)")
        return 1
    d = bench_data.FASHION_DIR
    x = bench_data.read_idx_images(os.path.join(d, "train-images-idx3-ubyte.gz"), args.rows)
    y = bench_data.read_idx_labels(os.path.join(d, "train-labels-idx1-ubyte.gz"), args.rows)
    xt = bench_data.read_idx_images(os.path.join(d, "t10k-images-idx3-ubyte.gz"), args.test_rows)
    yt = bench_data.read_idx_labels(os.path.join(d, "t10k-labels-idx1-ubyte.gz"), args.test_rows)
    x = x.astype(np.float64) / 255.0
    xt = xt.astype(np.float64) / 255.0
    server_args = ["--max_message_mb=%d" % args.max_message_mb,
                   "--max_nystrom_train_rows=%d" % max(args.rows, 1),
                   "--max_predict_rows=%d" % max(args.test_rows, 1)]
    binary = os.path.join(args.build, "server", "ntk_server")
    with bench_client.Server(binary, server_args) as server:
        c = Client(server.address, max_message_mb=args.max_message_mb, timeout=3600)
        from ntk_client import make_spec, pb
        spec = make_spec(depth=2, standardize=True, normalize_rows=True)
        spec.approximation.kind = pb.Approximation.NYSTROM
        spec.approximation.seed = 1
        # The package's own rule (ntk_client.Client.fit): one Fit message up
        # to 3/4 of max_message_mb, else FitStream chunks of ~1/4 of it.
        row_bytes = x.shape[1] * 8 + 4
        if x.shape[0] * row_bytes + 4096 <= c.max_message_bytes * 3 // 4:
            print("fit: %d x %d float64 (%.0f MB): one Fit message"
                  % (x.shape[0], x.shape[1], x.nbytes / 1e6))
        else:
            chunk_rows = max(1, (c.max_message_bytes // 4) // row_bytes)
            print("fit: %d x %d float64 (%.0f MB): FitStream, %d chunks of %d rows "
                  "(1/4 of %d MB)" % (x.shape[0], x.shape[1], x.nbytes / 1e6,
                                      -(-x.shape[0] // chunk_rows), chunk_rows,
                                      args.max_message_mb))
        t = time.monotonic()
        info = c.fit(x, y, "fashion", spec)
        fit_s = time.monotonic() - t
        m = info.spec.approximation.num_centers
        print("fit: %.1f s wall, state %s, %d centers (the server's default for N)"
              % (fit_s, pb.ModelState.Name(info.state), m))
        t = time.monotonic()
        p = c.predict("fashion", xt)
        pred_s = time.monotonic() - t
        prob = p["probabilities"]
        if prob.shape != (len(yt), 10):
            print("predict: wrong shape %s" % (prob.shape,))
            return 1
        acc = float((p["labels"] == yt).mean())
        nll = float(-np.log(np.maximum(prob[np.arange(len(yt)), yt], 1e-300)).mean())
        print("predict: %d rows in %.1f s; test accuracy %.4f, NLL %.4f"
              % (len(yt), pred_s, acc, nll))
        t = time.monotonic()
        dist = c.predict_distribution("fashion", xt[:args.pd_rows], method="exact")
        pd_s = time.monotonic() - t
        mi = dist["mutual_information"]
        if mi.shape != (args.pd_rows,):
            print("predict_distribution: wrong shape %s" % (mi.shape,))
            return 1
        right = dist["labels"] == yt[:args.pd_rows]
        print("predict_distribution EXACT: %d rows in %.1f s; mean MI %.3g (correct) "
              "vs %.3g (wrong, %d rows)"
              % (args.pd_rows, pd_s, mi[right].mean() if right.any() else float("nan"),
                 mi[~right].mean() if (~right).any() else float("nan"), int((~right).sum())))
        print("server peak RSS (VmHWM): %.2f GB" % (server.peak_rss_bytes() / 1e9))
    return 0


if __name__ == "__main__":
    sys.exit(main())

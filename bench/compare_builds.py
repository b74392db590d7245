#!/usr/bin/env python3
"""bench/compare_builds.py: do two builds of ntk_server give the same answers?

A refactoring must not change what the service computes (issue 9: "behavior,
wire contract and numerical results do not change"). This script starts each
binary in turn on the same data, runs the same calls through gRPC and
compares every number of every answer:

  Fit 2a (lambda = 0.01), 2b (defaults: eps = 0.1) and 2c (squared loss),
  Predict on all three, and PredictDistribution with EXACT (2b, 2c),
  LINEARIZED (2a, 2b), MONTE_CARLO (2a, S = 16, seed 7) and LAPLACE_POSTERIOR
  (2a).

It prints, per call, the largest absolute and relative difference between the
two builds (relative to the largest magnitude of that output) and the
wall time of each build's call (min over --reps repetitions, alternating the
builds so that a shared machine affects both alike). Exit status 1 when an
output differs by more than --rtol (default 1e-9: the reductions may be
reordered by a refactoring, so bit identity is not required; 1e-9 is far below
any tolerance the oracle tests use and far above double rounding on these
well-conditioned sizes).

  bench/compare_builds.py OLD/ntk_server NEW/ntk_server [--n=600] [--m=50] [--reps=1]

Only round-1 wire features are used (repeated double values), so a build
from before the round-2 additions can be compared with one after.
Data: Fashion-MNIST when dataset-fashion-mnist is installed, else digits.
"""
import argparse
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench_client  # noqa: E402
import bench_data  # noqa: E402

METHODS_2A = [("LINEARIZED", 0), ("MONTE_CARLO", 16), ("LAPLACE_POSTERIOR", 0)]
METHODS_2B = [("EXACT", 0), ("LINEARIZED", 0)]
METHODS_2C = [("EXACT", 0)]


def specs(client):
    pb = client.pb
    sq = client.spec(depth=2)
    sq.training.loss = pb.SQUARED
    sq.training.regularization = 0.0
    return {"2a": (client.spec(depth=2, lam=0.01), METHODS_2A),
            "2b": (client.spec(depth=2), METHODS_2B),
            "2c": (sq, METHODS_2C)}


def run_calls(binary, data, stubs):
    """{call name: (outputs dict, seconds)} for one build."""
    results = {}
    with bench_client.Server(binary) as server:
        client = bench_client.Client(server.address, stubs)
        for name, (spec, methods) in specs(client).items():
            t0 = time.perf_counter()
            resp, _ = client.fit(name, data.x_train, data.y_train, spec)
            st = resp.model.stats
            # fit_seconds differs by nature; the rest is the fit's result.
            results[f"Fit {name}"] = ({"stats": [st.train_accuracy, st.train_nll,
                                                 st.solver_iterations]},
                                      time.perf_counter() - t0)
            t0 = time.perf_counter()
            out, _ = client.predict(name, data.x_query)
            results[f"Predict {name}"] = (out, time.perf_counter() - t0)
            for method, samples in methods:
                t0 = time.perf_counter()
                out, _ = client.distribution(name, data.x_query, method=method,
                                             num_samples=samples, seed=7)
                results[f"PD {method} {name}"] = (out, time.perf_counter() - t0)
    return results


def largest_difference(a, b):
    """(max |a - b|, that / max(|a|, |b|, tiny)), the worst over the arrays of two answers."""
    worst_abs, worst_rel = 0.0, 0.0
    for key in a:
        x, y = np.asarray(a[key], dtype=float), np.asarray(b[key], dtype=float)
        if x.shape != y.shape:
            return float("inf"), float("inf")
        if x.size == 0:
            continue
        d = float(np.max(np.abs(x - y)))
        scale = max(float(np.max(np.abs(x))), float(np.max(np.abs(y))), 1e-300)
        worst_abs, worst_rel = max(worst_abs, d), max(worst_rel, d / scale)
    return worst_abs, worst_rel


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("old")
    ap.add_argument("new")
    ap.add_argument("--n", type=int, default=600, help="training rows")
    ap.add_argument("--m", type=int, default=50, help="query rows")
    ap.add_argument("--reps", type=int, default=1, help="repetitions (min time kept)")
    ap.add_argument("--rtol", type=float, default=1e-9)
    args = ap.parse_args()
    data = bench_data.load(args.n, args.m)
    stubs = bench_client.load_stubs()
    runs = {"old": [], "new": []}
    for rep in range(args.reps):
        order = ["old", "new"] if rep % 2 == 0 else ["new", "old"]
        for which in order:
            runs[which].append(run_calls(getattr(args, which), data, stubs))
    print(f"data: {data.source}, N = {len(data.x_train)}, M = {len(data.x_query)}, "
          f"reps = {args.reps}")
    print(f"{'call':28} {'max |old-new|':>14} {'relative':>10} {'old s':>8} {'new s':>8} "
          f"{'new/old':>8}")
    failed = False
    for call in runs["old"][0]:
        old_out, new_out = runs["old"][0][call][0], runs["new"][0][call][0]
        dabs, drel = largest_difference(old_out, new_out)
        t_old = min(r[call][1] for r in runs["old"])
        t_new = min(r[call][1] for r in runs["new"])
        bad = drel > args.rtol
        failed |= bad
        print(f"{call:28} {dabs:14.3e} {drel:10.2e} {t_old:8.3f} {t_new:8.3f} "
              f"{t_new / t_old:8.2f}{'  DIFFERS' if bad else ''}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/python3
"""Does a post-hoc temperature on the logits improve NLL / ECE? (issue 14)

For each model (spec) and N: k-fold out-of-fold logits on the first N
Fashion-MNIST training images (plain Fits through the server), the
temperature T minimizing their NLL (softmax(z / T)), then the model fitted
on all N rows, scored on the 10000 test images with T = 1 and with that T.
Prints a table and writes JSON. See docs/evaluation.md "Temperature".

Usage: /usr/bin/python3 tools/evaluate/temperature.py --server build/server/ntk_server
         [--sizes 1000,5000] [--folds 3] [--out build/eval/temperature.json]
"""

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile

import numpy as np
from scipy.optimize import minimize_scalar

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "scripts"))
sys.path.insert(0, os.path.join(ROOT, "client", "python"))
import baselines  # noqa: E402  (data loading and metrics: one implementation)
from ntk_client import Client  # noqa: E402

# The specs compared: the 2a and 2b settings the evaluation's selections chose
# most often (docs/evaluation.md), and 2b with a larger eps (in 2b eps only
# rescales the centered logits, so T must undo exactly that rescaling).
MODELS = {
    "2a relu L=1 lambda=0.1 eps=0.01": dict(depth=1, regularization=0.1, label_smoothing=0.01),
    "2a relu L=2 lambda=0.1 eps=0.01": dict(depth=2, regularization=0.1, label_smoothing=0.01),
    "2b relu L=3 eps=0.01": dict(depth=3, regularization=0.0, label_smoothing=0.01),
    "2b relu L=3 eps=0.1": dict(depth=3, regularization=0.0, label_smoothing=0.1),
}


def softmax(z):
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def fit_temperature(z, y):
    """argmin_T mean -log softmax(z / T)_y over log T in [-4, 4] (the NLL is
    convex in 1 / T, so the bounded 1-D search finds the minimum)."""
    r = minimize_scalar(lambda lt: baselines.nll(softmax(z / np.exp(lt)), y),
                        bounds=(-4.0, 4.0), method="bounded", options={"xatol": 1e-6})
    return float(np.exp(r.x))


def folds_of(y, k, seed=1):
    """Stratified folds: each class's rows shuffled, dealt round-robin."""
    rng = np.random.default_rng(seed)
    fold = np.empty(len(y), int)
    for c in np.unique(y):
        idx = np.flatnonzero(y == c)
        rng.shuffle(idx)
        fold[idx] = np.arange(len(idx)) % k
    return fold


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--server", default=os.path.join(ROOT, "build", "server", "ntk_server"))
    ap.add_argument("--sizes", default="1000,5000")
    ap.add_argument("--folds", type=int, default=3)
    ap.add_argument("--out", default=os.path.join(ROOT, "build", "eval", "temperature.json"))
    args = ap.parse_args()
    xtr, ytr, xte, yte = baselines.load_fmnist()
    sizes = [int(s) for s in args.sizes.split(",") if s]
    model_dir = tempfile.mkdtemp(prefix="ntk-temperature-")
    srv = subprocess.Popen([args.server, "--listen=127.0.0.1:0", f"--model_dir={model_dir}",
                            f"--max_train_rows={max(sizes)}", "--log_rpcs=false"],
                           stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        addr = None
        for line in srv.stdout:
            m = re.search(r"listening on (\S+)", line)
            if m:
                addr = m.group(1)
                break
        if addr is None:
            sys.exit("temperature.py: the server did not start")
        client = Client(addr)
        rows = []
        for n in sizes:
            x, y = xtr[:n], ytr[:n]
            fold = folds_of(y, args.folds)
            for name, kw in MODELS.items():
                spec = dict(standardize=True, normalize_rows=True, num_classes=10, **kw)
                z_oof = np.zeros((n, 10))
                for k in range(args.folds):
                    tr, ho = fold != k, fold == k
                    client.fit(x[tr], y[tr], "t-fold", replace=True, **spec)
                    z_oof[ho] = client.predict("t-fold", x[ho])["logits"]
                t = fit_temperature(z_oof, y)
                client.fit(x, y, "t-all", replace=True, **spec)
                z = client.predict("t-all", xte)["logits"]
                p1, pt = softmax(z), softmax(z / t)
                r = {"n": n, "model": name, "temperature": t,
                     "held_out_nll_T1": baselines.nll(softmax(z_oof), y),
                     "held_out_nll_T": baselines.nll(softmax(z_oof / t), y),
                     "test_accuracy": baselines.accuracy(p1, yte),
                     "test_nll_T1": baselines.nll(p1, yte), "test_nll_T": baselines.nll(pt, yte),
                     "test_ece_T1": baselines.ece(p1, yte), "test_ece_T": baselines.ece(pt, yte)}
                rows.append(r)
                print(f"N={n:6d} {name:34s} T={t:6.3f}  held-out NLL {r['held_out_nll_T1']:.4f} -> "
                      f"{r['held_out_nll_T']:.4f}  test NLL {r['test_nll_T1']:.4f} -> {r['test_nll_T']:.4f}  "
                      f"ECE {r['test_ece_T1']:.4f} -> {r['test_ece_T']:.4f}  acc {r['test_accuracy']:.4f}",
                      flush=True)
        os.makedirs(os.path.dirname(args.out), exist_ok=True)
        with open(args.out, "w") as f:
            json.dump({"folds": args.folds, "rows": rows}, f, indent=1)
    finally:
        srv.terminate()
        srv.wait()
        subprocess.run(["rm", "-rf", model_dir], check=False)


if __name__ == "__main__":
    main()

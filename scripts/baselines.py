#!/usr/bin/python3
"""scikit-learn baselines for the ntk-serve evaluation (docs/evaluation.md).

Runs, on exactly the splits and preprocessing that tools/evaluate uses:
  * multinomial logistic regression (lbfgs),
  * RBF SVC with Platt probabilities (probability=True),
  * Gaussian process classification (Laplace, one-vs-rest, RBF kernel with
    fitted hyperparameters) -- only where N is small enough (see GP_MAX_N),
  * an ensemble of 5 MLPs (different seeds; probabilities averaged),
and writes one JSON file with accuracy, NLL, Brier, ECE (15 bins), fit and
predict times, and the OOD AUROCs (entropy, mutual information where it
exists, 1 - max probability).

Data rules (shared with tools/evaluate/datasets.h; keep them in sync):
  digits:  sklearn's digits.csv.gz, 64 features / 16, then the label.
           Test = rows with index % 4 == 3 (449), train = the rest (1348).
  fmnist:  Fashion-MNIST IDX files, pixels / 255. Training subset of size n =
           the first n training images (the file is already shuffled); test =
           all 10000 test images.
  ood:     train = the first N_OOD training images with label < 8; test = the
           first 3000 test images, positives (OOD) = labels 8 and 9.
  cv:      digits: the whole digits training set; fmnist: the first 3000
           training images. 3 folds, fold k = positions i with i % 3 == k.
Preprocessing, as the NTK model's own: z-score each feature with training
statistics (zero-spread features only centered), then scale each row to L2
norm sqrt(d) (zero rows stay zero).

Hyperparameters are chosen by 3-fold cross-validation on the CV subset only
(never on test data), selecting by validation NLL, as for the NTK.

Usage: /usr/bin/python3 scripts/baselines.py --out results/baselines.json
       [--sizes 1000,5000,10000,20000] [--ood_n 10000] [--quick]
"""

import argparse
import gzip
import json
import os
import struct
import sys
import time
import warnings

import numpy as np

DIGITS = "/usr/lib/python3/dist-packages/sklearn/datasets/data/digits.csv.gz"
FMNIST = "/usr/share/datasets/fashion-mnist"
ECE_BINS = 15
GP_MAX_N = 1500          # GP classification above this does not fit the time budget
SVC_MAX_N = 20000        # probability=True costs ~6 SVC fits (5-fold Platt + final)
ENSEMBLE_SIZE = 5


# ---------------------------------------------------------------- data ------
def load_digits():
    rows = np.loadtxt(gzip.open(DIGITS, "rt"), delimiter=",")
    x = rows[:, :64] / 16.0
    y = rows[:, 64].astype(np.int64)
    idx = np.arange(len(y))
    test = idx % 4 == 3
    return x[~test], y[~test], x[test], y[test]


def _idx(path):
    with gzip.open(path, "rb") as f:
        data = f.read()
    magic = struct.unpack(">I", data[:4])[0]
    ndim = magic & 0xFF
    dims = struct.unpack(">" + "I" * ndim, data[4:4 + 4 * ndim])
    arr = np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim)
    return arr.reshape(dims)


_FM = {}


def load_fmnist():
    if not _FM:
        _FM["xtr"] = _idx(os.path.join(FMNIST, "train-images-idx3-ubyte.gz")).reshape(60000, 784) / 255.0
        _FM["ytr"] = _idx(os.path.join(FMNIST, "train-labels-idx1-ubyte.gz")).astype(np.int64)
        _FM["xte"] = _idx(os.path.join(FMNIST, "t10k-images-idx3-ubyte.gz")).reshape(10000, 784) / 255.0
        _FM["yte"] = _idx(os.path.join(FMNIST, "t10k-labels-idx1-ubyte.gz")).astype(np.int64)
    return _FM["xtr"], _FM["ytr"], _FM["xte"], _FM["yte"]


class Preprocessor:
    """z-score with training statistics, then rows to L2 norm sqrt(d)."""

    def __init__(self, x):
        self.mean = x.mean(axis=0)
        sd = x.std(axis=0)
        self.scale = np.where(sd > 0, 1.0 / np.where(sd > 0, sd, 1.0), 1.0)

    def __call__(self, x):
        z = (x - self.mean) * self.scale
        norm = np.linalg.norm(z, axis=1, keepdims=True)
        d = z.shape[1]
        return np.where(norm > 0, z * np.sqrt(d) / np.where(norm > 0, norm, 1.0), 0.0)


# ------------------------------------------------------------- metrics ------
def accuracy(p, y):
    return float(np.mean(np.argmax(p, axis=1) == y))


def nll(p, y):
    py = np.maximum(p[np.arange(len(y)), y], np.finfo(float).tiny)
    return float(np.mean(-np.log(py)))


def brier(p, y):
    onehot = np.zeros_like(p)
    onehot[np.arange(len(y)), y] = 1.0
    return float(np.mean(np.sum((p - onehot) ** 2, axis=1)))


def ece_bins(p, y, bins=ECE_BINS):
    """Equal-width confidence bins (lo, hi]; confidence = max probability."""
    conf = p.max(axis=1)
    correct = (np.argmax(p, axis=1) == y).astype(float)
    b = np.clip(np.ceil(conf * bins).astype(int) - 1, 0, bins - 1)
    out = []
    for k in range(bins):
        m = b == k
        n = int(m.sum())
        out.append({"count": n,
                    "confidence": float(conf[m].mean()) if n else 0.0,
                    "accuracy": float(correct[m].mean()) if n else 0.0})
    return out


def ece(p, y, bins=ECE_BINS):
    n = len(y)
    return float(sum(b["count"] / n * abs(b["accuracy"] - b["confidence"])
                     for b in ece_bins(p, y, bins)))


def entropy(p):
    with np.errstate(divide="ignore", invalid="ignore"):
        t = np.where(p > 0, p * np.log(p), 0.0)
    return -t.sum(axis=1)


def auroc(score, positive):
    """P(score of a positive > score of a negative), ties counted 1/2."""
    from scipy.stats import rankdata
    r = rankdata(score)
    npos = int(positive.sum())
    nneg = len(score) - npos
    return float((r[positive].sum() - npos * (npos + 1) / 2) / (npos * nneg))


def metrics(p, y):
    return {"accuracy": accuracy(p, y), "nll": nll(p, y), "brier": brier(p, y),
            "ece": ece(p, y), "reliability": ece_bins(p, y)}


# ------------------------------------------------------------- methods ------
def make_logreg(c):
    from sklearn.linear_model import LogisticRegression
    return LogisticRegression(C=c, max_iter=2000, tol=1e-4)


def make_svc(c):
    from sklearn.svm import SVC
    return SVC(C=c, kernel="rbf", gamma="scale", probability=True, random_state=0,
               cache_size=2000)


def make_gpc(amplitude, length_scale, d):
    """Laplace GP classification (one-vs-rest), RBF kernel with fixed
    hyperparameters: sklearn's marginal-likelihood optimizer took > 5 min at
    N = 1000 here, so amplitude and length scale are chosen by the same CV as
    everything else. Inputs have <x,x>/d = 1, so squared distances are O(d):
    the length scale is given in units of sqrt(d)."""
    from sklearn.gaussian_process import GaussianProcessClassifier
    from sklearn.gaussian_process.kernels import RBF, ConstantKernel
    kernel = ConstantKernel(amplitude, "fixed") * RBF(length_scale * np.sqrt(d), "fixed")
    return GaussianProcessClassifier(kernel, optimizer=None, multi_class="one_vs_rest",
                                     max_iter_predict=100, n_jobs=1)


class MLPEnsemble:
    """ENSEMBLE_SIZE MLPClassifiers differing only in their seed."""

    def __init__(self, alpha, hidden=(256, 256)):
        self.alpha, self.hidden = alpha, hidden

    def fit(self, x, y):
        from sklearn.neural_network import MLPClassifier
        self.members = []
        for s in range(ENSEMBLE_SIZE):
            m = MLPClassifier(hidden_layer_sizes=self.hidden, alpha=self.alpha,
                              early_stopping=True, validation_fraction=0.1,
                              n_iter_no_change=10, max_iter=200, random_state=s)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                m.fit(x, y)
            self.members.append(m)
        return self

    def member_probas(self, x):
        return np.stack([m.predict_proba(x) for m in self.members])

    def predict_proba(self, x):
        return self.member_probas(x).mean(axis=0)


def full_proba(model, x, num_classes):
    """predict_proba with columns for every class (a fold may miss one)."""
    p = model.predict_proba(x)
    out = np.zeros((x.shape[0], num_classes))
    out[:, model.classes_ if hasattr(model, "classes_") else model.members[0].classes_] = p
    return out


METHODS = {
    # name: (factory(param) , grid of the CV-selected parameter, parameter name)
    "logistic_regression": (make_logreg, [0.01, 0.1, 1.0], "C"),
    "rbf_svc": (make_svc, [1.0, 10.0], "C"),
    "mlp_ensemble": (lambda a: MLPEnsemble(a), [1e-4, 1e-2], "alpha"),
    # (amplitude, length scale / sqrt(d)); d is bound in cross_validate/run_all.
    "gp_classification": (None, [(10.0, 1.0), (10.0, 2.0)], "amplitude,length_scale"),
}


def factory_for(name, value, d):
    if name == "gp_classification":
        return make_gpc(value[0], value[1], d)
    return METHODS[name][0](value)


def cross_validate(name, x, y, num_classes, log):
    _, grid, pname = METHODS[name]
    if name == "gp_classification" and len(y) * 2 // 3 > GP_MAX_N:
        # CV folds of at most GP_MAX_N training points, like the runs.
        keep = np.arange(len(y)) < GP_MAX_N * 3 // 2
        x, y = x[keep], y[keep]
    results = []
    for v in grid:
        losses = []
        for k in range(3):
            val = np.arange(len(y)) % 3 == k
            pre = Preprocessor(x[~val])
            m = factory_for(name, v, x.shape[1]).fit(pre(x[~val]), y[~val])
            losses.append(nll(full_proba(m, pre(x[val]), num_classes), y[val]))
        results.append({pname: v, "val_nll": float(np.mean(losses))})
        log(f"  cv {name} {pname}={v}: val NLL {np.mean(losses):.4f}")
    best = min(results, key=lambda r: r["val_nll"])
    return best[pname], results


def evaluate(name, factory, xtr, ytr, xte, yte, num_classes, ood=None):
    pre = Preprocessor(xtr)
    t0 = time.perf_counter()
    m = factory().fit(pre(xtr), ytr)
    fit_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    p = full_proba(m, pre(xte), num_classes)
    predict_s = time.perf_counter() - t0
    # With an OOD split the model knows only the in-distribution classes:
    # the classification metrics are over the in-distribution test points.
    inside = np.ones(len(yte), bool) if ood is None else ~ood
    r = metrics(p[inside], yte[inside])
    r.update({"fit_seconds": fit_s, "predict_seconds": predict_s})
    if ood is not None:
        positive = ood
        scores = {"entropy": entropy(p), "one_minus_max_p": 1.0 - p.max(axis=1)}
        if isinstance(m, MLPEnsemble):
            members = m.member_probas(pre(xte))
            scores["mutual_information"] = entropy(p) - entropy(
                members.reshape(-1, members.shape[2])).reshape(members.shape[:2]).mean(axis=0)
        r["ood_auroc"] = {k: auroc(v, positive) for k, v in scores.items()}
        r["ood_scores"] = {k: v.tolist() for k, v in scores.items()}
        r["ood_is_out"] = positive.astype(int).tolist()
    return r


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--sizes", default="1000,5000,10000,20000")
    ap.add_argument("--ood_n", type=int, default=2000)
    ap.add_argument("--cv_n", type=int, default=3000)
    ap.add_argument("--ood_test_rows", type=int, default=3000,
                    help="OOD: the first ood_test_rows test images (0: all), as ntk_evaluate")
    ap.add_argument("--methods", default="logistic_regression,rbf_svc,gp_classification,mlp_ensemble")
    ap.add_argument("--skip_digits", action="store_true")
    ap.add_argument("--deadline_unix", type=float, default=0,
                    help="skip (and report as not run) every fit that would start after this time")
    ap.add_argument("--skip_ood", action="store_true")
    args = ap.parse_args()
    sizes = [int(s) for s in args.sizes.split(",") if s]
    methods = args.methods.split(",")
    t_start = time.perf_counter()

    def log(msg):
        print(f"[baselines {time.perf_counter() - t_start:7.1f}s] {msg}", file=sys.stderr, flush=True)

    out = {"runs": [], "cv": {}, "skipped": [], "settings": {
        "ece_bins": ECE_BINS, "gp_max_n": GP_MAX_N, "svc_max_n": SVC_MAX_N,
        "ensemble_size": ENSEMBLE_SIZE, "cv_n": args.cv_n, "ood_n": args.ood_n}}

    def save():
        # Written after every run, so that an interrupted run keeps its results.
        out["total_seconds"] = time.perf_counter() - t_start
        os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
        with open(args.out + ".tmp", "w") as f:
            json.dump(out, f)
        os.replace(args.out + ".tmp", args.out)

    def run_all(dataset, xtr, ytr, xte, yte, num_classes, chosen, ood=None):
        n, d = xtr.shape
        for name in methods:
            if args.deadline_unix and time.time() > args.deadline_unix:
                out["skipped"].append({"dataset": dataset, "n_train": n, "method": name,
                                       "reason": "time budget of the evaluation run exhausted"})
                log(f"{dataset} N={n} {name}: skipped (time budget)")
                save()
                continue
            if name == "gp_classification" and n > GP_MAX_N:
                out["skipped"].append({"dataset": dataset, "n_train": n, "method": name,
                                       "reason": f"N > {GP_MAX_N}: O(N^3) Laplace fits per class "
                                                 "(one-vs-rest) do not fit the time budget"})
                log(f"{dataset} N={n} {name}: skipped (N > {GP_MAX_N})")
                continue
            if name == "rbf_svc" and n > SVC_MAX_N:
                out["skipped"].append({"dataset": dataset, "n_train": n, "method": name,
                                       "reason": f"N > {SVC_MAX_N}: time budget"})
                continue
            v = chosen[name]
            factory = lambda name=name, v=v: factory_for(name, v, d)
            param = dict(zip(METHODS[name][2].split(","), v if isinstance(v, tuple) else (v,)))
            r = evaluate(name, factory, xtr, ytr, xte, yte, num_classes, ood)
            r.update({"dataset": dataset, "n_train": n, "n_test": len(yte), "method": name,
                      "params": param})
            out["runs"].append(r)
            save()
            extra = ""
            if "ood_auroc" in r:
                extra = " OOD AUROC " + ", ".join(f"{k} {v:.3f}" for k, v in r["ood_auroc"].items())
            log(f"{dataset} N={n} {name} {param}: acc {r['accuracy']:.4f} NLL {r['nll']:.4f} "
                f"ECE {r['ece']:.4f} fit {r['fit_seconds']:.1f}s{extra}")

    def choose(dataset, xcv, ycv, num_classes):
        chosen = {}
        for name in methods:
            if name in METHODS:
                best, res = cross_validate(name, xcv, ycv, num_classes, log)
                chosen[name] = best
                out["cv"].setdefault(dataset, {})[name] = {"grid": res, "chosen": best}
        return chosen

    if not args.skip_digits:
        xtr, ytr, xte, yte = load_digits()
        chosen = choose("digits", xtr, ytr, 10)
        run_all("digits", xtr, ytr, xte, yte, 10, chosen)

    if sizes or not args.skip_ood:
        fxtr, fytr, fxte, fyte = load_fmnist()
        chosen = choose("fmnist", fxtr[:args.cv_n], fytr[:args.cv_n], 10)
        save()
        if not args.skip_ood:
            inside = np.flatnonzero(fytr < 8)[:args.ood_n]
            rows = args.ood_test_rows if args.ood_test_rows > 0 else len(fyte)
            run_all("fmnist_ood", fxtr[inside], fytr[inside], fxte[:rows], fyte[:rows], 8, chosen,
                    ood=fyte[:rows] >= 8)
        for n in sizes:
            run_all("fmnist", fxtr[:n], fytr[:n], fxte, fyte, 10, chosen)
    save()
    log(f"wrote {args.out}")


if __name__ == "__main__":
    main()

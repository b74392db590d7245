#!/usr/bin/python3
"""bench/numpy_reference.py: the hand-written alternative to ntk-serve.

The math of docs/model-contract.md written directly in NumPy/SciPy (BLAS and
LAPACK: Debian's OpenBLAS through the libblas/liblapack alternatives), the
way a user without the service would write it. bench/e2e_vs_numpy.py times
it against the service; tests/numpy_reference_test.py checks that both
compute the same numbers.

    /usr/bin/python3 bench/numpy_reference.py --regime=2b --n=3000   # timings as JSON

What is implemented (section names of docs/model-contract.md):
- "1. The network and its two kernels": NNGP K and NTK Theta of a ReLU or
  erf network of depth L, diagonals with rho = 1 exactly; the optional
  preprocessing (z-score with training statistics, rows to norm sqrt(d)),
  as core/model/preprocess.cc.
- "2b. Unregularized": Cholesky of Theta + jitter I, jitter = 1e-10 *
  mean(diag Theta) (raised x10 while the factorization fails, as the
  service), targets log of the label-smoothed Y.
- "2a. Regularized": Newton's method on the convex objective, Rasmussen &
  Williams (2006) algorithm 3.3 with prior K = Theta / lambda, plus a
  backtracking line search on the objective.
- "3. Predict": centered logits Theta_xX dual and their softmax.
- "4. PredictDistribution": EXACT for 2b (logit mean, s(x) (I - 11^T/C));
  LINEARIZED for 2a with the R&W-structured factors E_c, M = sum_c E_c (the
  derivation in core/distribution/distribution.cc, LinearizedBatch);
  probability moments, entropies and mutual information from S logit
  samples (NumPy's generator: the service's own stream is not reproduced,
  so probability moments agree within Monte Carlo error, not bitwise).

Everything is float64. No function here keeps state; each returns arrays.
"""
import argparse
import json
import math
import os
import sys
import time

import numpy as np
import scipy.linalg as sla

# "2b. Unregularized": jitter = kRelativeJitter * mean(diag Theta), x10 per
# failed Cholesky up to kMaxRelativeJitter (core/training/solvers.h).
RELATIVE_JITTER = 1e-10
MAX_RELATIVE_JITTER = 1e-4
# core/model/preprocess.cc: a feature has zero spread when its standard
# deviation is below this fraction of its largest absolute value.
ZERO_SPREAD_RELATIVE = 1e-12
DEFAULT_LABEL_SMOOTHING = 0.1  # 2b with hard labels (core/training/problem.cc)
DEFAULT_NUM_SAMPLES = 1000     # logit samples per point (core/model/model.h)


# ---------------------------------------------------------------------------
# Preprocessing and kernels ("1. The network and its two kernels").

class Preprocessor:
    """z-score with training statistics, then rows scaled to norm sqrt(d)."""

    def __init__(self, x, standardize=True, normalize_rows=True):
        self.standardize = standardize
        self.normalize_rows = normalize_rows
        if standardize:
            self.mean = x.mean(axis=0)
            sd = np.sqrt(((x - self.mean) ** 2).mean(axis=0))
            max_abs = np.abs(x).max(axis=0)
            ok = (sd > ZERO_SPREAD_RELATIVE * max_abs) & (sd > 0)
            self.scale = np.where(ok, 1.0 / np.where(ok, sd, 1.0), 1.0)

    def apply(self, x):
        z = np.array(x, dtype=np.float64)
        if self.standardize:
            z = (z - self.mean) * self.scale
        if self.normalize_rows and z.shape[1] > 0:
            norm = np.sqrt((z * z).sum(axis=1))
            factor = np.where(norm > 0, math.sqrt(z.shape[1]) / np.where(norm > 0, norm, 1.0), 1.0)
            z *= factor[:, None]
        return z


class KernelSpec:
    def __init__(self, activation="relu", depth=3, weight_variance=2.0, bias_variance=0.0):
        assert activation in ("relu", "erf")
        self.activation = activation
        self.depth = depth
        self.sw2 = weight_variance
        self.sb2 = bias_variance


def _layer(spec, s, a, b):
    """E[phi phi], E[phi' phi'] for covariances s (any shape), variances a, b
    (broadcastable to s)."""
    if spec.activation == "relu":
        sab = np.sqrt(a * b)
        rho = np.clip(np.divide(s, sab, out=np.zeros_like(s), where=sab > 0), -1.0, 1.0)
        t = np.arccos(rho)
        e_pp = sab * (np.sqrt(np.maximum(0.0, 1.0 - rho * rho)) + (math.pi - t) * rho) / (2 * math.pi)
        e_dd = (math.pi - t) / (2 * math.pi)
    else:
        den = (1 + 2 * a) * (1 + 2 * b)
        e_pp = (2 / math.pi) * np.arcsin(np.clip(2 * s / np.sqrt(den), -1.0, 1.0))
        e_dd = (4 / math.pi) / np.sqrt(np.maximum(den - 4 * s * s, 1 + 2 * a + 2 * b))
    return e_pp, e_dd


def kernel_diag(spec, x):
    """(K(x, x), Theta(x, x)) per row, with rho = 1 exactly."""
    d = x.shape[1]
    s = spec.sw2 * (x * x).sum(axis=1) / d + spec.sb2
    t = s.copy()
    for _ in range(spec.depth):
        if spec.activation == "relu":
            e_pp, e_dd = 0.5 * s, np.full_like(s, 0.5)
        else:
            e_pp = (2 / math.pi) * np.arcsin(2 * s / (1 + 2 * s))
            e_dd = (4 / math.pi) / np.sqrt(1 + 4 * s)
        s = spec.sw2 * e_pp + spec.sb2
        t = s + spec.sw2 * e_dd * t
    return s, t


def kernels(spec, x1, x2=None):
    """(K, Theta) between the rows of x1 and x2 (x2 None: x1 with itself,
    the diagonal set with rho = 1 exactly)."""
    same = x2 is None
    if same:
        x2 = x1
    d = x1.shape[1]
    s = (spec.sw2 / d) * (x1 @ x2.T) + spec.sb2
    t = s.copy()
    a = spec.sw2 * (x1 * x1).sum(axis=1) / d + spec.sb2
    b = a if same else spec.sw2 * (x2 * x2).sum(axis=1) / d + spec.sb2
    for _ in range(spec.depth):
        e_pp, e_dd = _layer(spec, s, a[:, None], b[None, :])
        s = spec.sw2 * e_pp + spec.sb2
        t = s + spec.sw2 * e_dd * t
        # The variances of the next layer (the diagonal recursion).
        if spec.activation == "relu":
            a = spec.sw2 * 0.5 * a + spec.sb2
            b = a if same else spec.sw2 * 0.5 * b + spec.sb2
        else:
            a = spec.sw2 * (2 / math.pi) * np.arcsin(2 * a / (1 + 2 * a)) + spec.sb2
            b = a if same else spec.sw2 * (2 / math.pi) * np.arcsin(2 * b / (1 + 2 * b)) + spec.sb2
    if same:
        kd, td = kernel_diag(spec, x1)
        np.fill_diagonal(s, kd)
        np.fill_diagonal(t, td)
    return s, t


# ---------------------------------------------------------------------------
# Targets and fits ("2. Training objective").

def smoothed_targets(labels, num_classes, eps):
    y = np.full((len(labels), num_classes), eps / num_classes)
    y[np.arange(len(labels)), labels] += 1.0 - eps
    return y


def softmax(f):
    z = f - f.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def center(f):
    return f - f.mean(axis=-1, keepdims=True)


def fit_2b(theta, y):
    """2b: dual = (Theta + jitter I)^{-1} log Y. Returns (dual, lower factor, jitter)."""
    n = theta.shape[0]
    scale = float(np.mean(np.diag(theta))) or 1.0
    jitter = RELATIVE_JITTER * scale
    while True:
        a = theta.copy()
        a[np.diag_indices(n)] += jitter
        try:
            chol = sla.cholesky(a, lower=True, overwrite_a=True, check_finite=False)
            break
        except np.linalg.LinAlgError:
            jitter *= 10
            if jitter > MAX_RELATIVE_JITTER * scale * (1 + 1e-12):
                raise
    dual = sla.cho_solve((chol, True), np.log(y), check_finite=False)
    return dual, chol, jitter


def _cross_entropy(y, f):
    z = f - f.max(axis=1, keepdims=True)
    return float((np.log(np.exp(z).sum(axis=1)) - (y * z).sum(axis=1)).sum())


def laplace_factors(theta, p, lam):
    """R&W algorithm 3.3's E_c = D_c^1/2 (I + D_c^1/2 (Theta/lambda) D_c^1/2)^{-1} D_c^1/2
    (list of N x N) and the lower Cholesky factor of M = sum_c E_c."""
    n, c_count = p.shape
    es = []
    m = np.zeros((n, n))
    for c in range(c_count):
        sd = np.sqrt(p[:, c])
        b = (sd[:, None] * theta * sd[None, :]) / lam
        b[np.diag_indices(n)] += 1.0
        l = sla.cholesky(b, lower=True, overwrite_a=True, check_finite=False)
        linv, info = sla.lapack.dtrtri(l, lower=1)
        if info != 0:
            raise np.linalg.LinAlgError("dtrtri failed: %d" % info)
        v = linv * sd[None, :]          # L_c^{-1} D_c^{1/2}
        e = v.T @ v                      # E_c = V^T V
        es.append(e)
        m += e
    lm = sla.cholesky(m, lower=True, check_finite=False)
    return es, lm


def fit_2a(theta, y, lam, tol=1e-10, max_iter=100):
    """2a: F* = Theta (Y - softmax F*) / lambda by Newton's method (R&W
    algorithm 3.3, prior covariance K = Theta / lambda) with a backtracking
    line search on Psi(a) = a^T K a / 2 + CE(Y, K a). Returns (dual, F*,
    iterations, fixed-point residual); dual = (Y - softmax F*) / lambda.
    Stops after a step that changed F by <= tol * max(1, |F|_inf): Newton
    converges quadratically, so the error left is of order the square of
    that step (rounding level), far below the last step itself."""
    n, c_count = y.shape
    k = theta / lam
    f = np.zeros((n, c_count))
    a = np.zeros((n, c_count))
    psi = _cross_entropy(y, f)
    it = 0
    for it in range(1, max_iter + 1):
        p = softmax(f)
        es, lm = laplace_factors(theta, p, lam)
        # W f with W = blockdiag_i(diag p_i - p_i p_i^T), classes as columns.
        wf = p * f - p * (p * f).sum(axis=1, keepdims=True)
        b = wf + y - p
        kb = k @ b
        cm = np.column_stack([es[c] @ kb[:, c] for c in range(c_count)])
        r = sla.cho_solve((lm, True), cm.sum(axis=1), check_finite=False)
        a_new = b - cm + np.column_stack([es[c] @ r for c in range(c_count)])
        step = a_new - a
        t = 1.0
        while True:
            a_try = a + t * step
            f_try = k @ a_try
            psi_try = 0.5 * float((a_try * f_try).sum()) + _cross_entropy(y, f_try)
            if psi_try <= psi + 1e-12 * abs(psi) or t < 1e-6:
                break
            t *= 0.5
        change = np.abs(f_try - f).max()
        a, f, psi = a_try, f_try, psi_try
        if change <= tol * max(1.0, np.abs(f).max()):
            break
    dual = (y - softmax(f)) / lam
    f = theta @ dual
    residual = float(np.abs(f - theta @ (y - softmax(f)) / lam).max())
    return dual, f, it, residual


# ---------------------------------------------------------------------------
# PredictDistribution ("4. PredictDistribution").

P_BATCH = 100  # query points per batch of the distribution formulas


def exact_logits(chol, dual, k_train, k_q, theta_q, k_qq):
    """2b EXACT: centered means (M x C) and s(x) (M) of s(x) (I - 11^T/C).
    k_q, theta_q: N x M cross kernels; k_qq: M diagonal of K."""
    mean = center(theta_q.T @ dual)
    r = sla.cho_solve((chol, True), theta_q, check_finite=False)
    s = k_qq - 2 * (r * k_q).sum(axis=0) + (r * (k_train @ r)).sum(axis=0)
    return mean, np.maximum(s, 0.0)


def exact_covariances(s, c_count):
    p = np.eye(c_count) - 1.0 / c_count
    return s[:, None, None] * p[None, :, :]


def linearized_logits(es, lm, dual, k_train, k_q, theta_q, k_qq, lam):
    """2a LINEARIZED: centered means (M x C) and covariances (M x C x C).

    df(x) = df0(x) - Q^T dF0, Q's column c = B (e_c (x) k'), k' = Theta_Xx / lambda,
    B_cc'' = delta E_c - E_c M^{-1} E_c'' (R&W's (K + W^{-1})^{-1}); with
    U_{c,c''} = delta_cc'' A_c - E_c'' G_c, A_c = E_c k', G_c = M^{-1} A_c:
      T1_cc' = delta A_c.K_Xx - G_c.(E_c' K_Xx),
      T2_cc' = sum_c'' U_{c,c''}^T K_XX U_{c',c''},
      Cov = K_xx I - T1 - T1^T + T2, then centered."""
    n, m = theta_q.shape
    c_count = len(es)
    mean = center(theta_q.T @ dual)
    kp = theta_q / lam
    a = np.stack([e @ kp for e in es], axis=1)                       # N x C x M
    g = sla.cho_solve((lm, True), a.reshape(n, -1), check_finite=False)  # N x (C M)
    ek = np.stack([e @ k_q for e in es], axis=1)                      # N x C x M
    t1 = -np.einsum("ncm,ndm->mcd", g.reshape(n, c_count, m), ek)
    t1[:, np.arange(c_count), np.arange(c_count)] += (a * k_q[:, None, :]).sum(axis=0).T
    t2 = np.zeros((m, c_count, c_count))
    for c2 in range(c_count):
        u = -(es[c2] @ g).reshape(n, c_count, m)
        u[:, c2, :] += a[:, c2, :]
        ku = (k_train @ u.reshape(n, -1)).reshape(n, c_count, m)
        t2 += np.einsum("ncm,ndm->mcd", u, ku)
    cov = t2 - t1 - t1.transpose(0, 2, 1)
    cov[:, np.arange(c_count), np.arange(c_count)] += k_qq[:, None]
    pm = np.eye(c_count) - 1.0 / c_count
    cov = pm @ cov @ pm
    return mean, 0.5 * (cov + cov.transpose(0, 2, 1))


SAMPLE_CHUNK = 1 << 22  # logit values drawn at once (bounds the memory)


def probability_moments(mean, cov, num_samples, rng):
    """Probability-space moments from num_samples logit samples per point
    mean + A eps, A = the symmetric square root of cov. Returns a dict of
    arrays (divisor S, entropies in nats, 0 log 0 = 0) and the per-sample
    probabilities and entropies (samples_p M x S x C, samples_h M x S) the
    tests take standard errors from."""
    m, c_count = mean.shape
    w, v = np.linalg.eigh(cov)
    root = (v * np.sqrt(np.maximum(w, 0.0))[:, None, :]) @ v.transpose(0, 2, 1)
    p = np.empty((m, num_samples, c_count))
    h = np.empty((m, num_samples))
    step = max(1, SAMPLE_CHUNK // (num_samples * c_count))
    for b in range(0, m, step):
        sl = slice(b, min(m, b + step))
        eps = rng.standard_normal((sl.stop - sl.start, num_samples, c_count))
        z = mean[sl, None, :] + eps @ root[sl].transpose(0, 2, 1)
        z -= z.max(axis=2, keepdims=True)
        pb = np.exp(z, out=z)
        pb /= pb.sum(axis=2, keepdims=True)
        p[sl] = pb
        h[sl] = -np.where(pb > 0, pb * np.log(np.where(pb > 0, pb, 1.0)), 0.0).sum(axis=2)
    pm = p.mean(axis=1)
    pcov = np.empty((m, c_count, c_count))
    for j in range(m):
        dev = p[j] - pm[j]
        pcov[j] = dev.T @ dev / num_samples
    pred = -np.where(pm > 0, pm * np.log(np.where(pm > 0, pm, 1.0)), 0.0).sum(axis=1)
    exp_h = h.mean(axis=1)
    return {"probability_mean": pm, "probability_covariance": pcov,
            "predictive_entropy": pred, "expected_entropy": exp_h,
            "mutual_information": np.maximum(0.0, pred - exp_h),
            "label": pm.argmax(axis=1), "samples_p": p, "samples_h": h}


# ---------------------------------------------------------------------------
# One model end to end, timed by stage.

class Reference:
    """A fitted model: fit(), predict(), distribution(). Timings of each
    stage in self.times (seconds)."""

    def __init__(self, spec, lam=0.0, label_smoothing=None, standardize=True,
                 normalize_rows=True):
        self.spec = spec
        self.lam = lam
        self.eps = (DEFAULT_LABEL_SMOOTHING if lam == 0 else 0.0) \
            if label_smoothing is None else label_smoothing
        self.standardize = standardize
        self.normalize_rows = normalize_rows
        self.times = {}
        self._lin = None

    def _time(self, name, t0):
        self.times[name] = self.times.get(name, 0.0) + time.perf_counter() - t0

    def fit(self, x, labels, num_classes):
        t0 = time.perf_counter()
        self.pre = Preprocessor(x, self.standardize, self.normalize_rows)
        self.x = self.pre.apply(x)
        self.k_train, self.theta = kernels(self.spec, self.x)
        self._time("fit_kernels", t0)
        t0 = time.perf_counter()
        self.y = smoothed_targets(np.asarray(labels), num_classes, self.eps)
        if self.lam == 0:
            self.dual, self.chol, self.jitter = fit_2b(self.theta, self.y)
            self.iterations, self.residual = 0, 0.0
        else:
            self.dual, self.f, self.iterations, self.residual = fit_2a(self.theta, self.y, self.lam)
        self._time("fit_solve", t0)

    def _query(self, x):
        xq = self.pre.apply(x)
        k_q, theta_q = kernels(self.spec, self.x, xq)
        k_qq, _ = kernel_diag(self.spec, xq)
        return k_q, theta_q, k_qq

    def predict(self, x):
        t0 = time.perf_counter()
        k_q, theta_q, _ = self._query(x)
        logits = center(theta_q.T @ self.dual)
        out = {"logits": logits, "probabilities": softmax(logits)}
        self._time("predict", t0)
        return out

    def distribution(self, x, num_samples=DEFAULT_NUM_SAMPLES, seed=0):
        """EXACT (2b) or LINEARIZED (2a): dict of per-point arrays."""
        c_count = self.y.shape[1]
        if self.lam > 0 and self._lin is None:
            t0 = time.perf_counter()
            self._lin = laplace_factors(self.theta, softmax(self.theta @ self.dual), self.lam)
            self._time("distribution_factor", t0)
        t0 = time.perf_counter()
        rng = np.random.default_rng(seed)
        parts = []
        for b in range(0, x.shape[0], P_BATCH):
            k_q, theta_q, k_qq = self._query(x[b:b + P_BATCH])
            if self.lam == 0:
                mean, s = exact_logits(self.chol, self.dual, self.k_train, k_q, theta_q, k_qq)
                cov = exact_covariances(s, c_count)
            else:
                mean, cov = linearized_logits(self._lin[0], self._lin[1], self.dual,
                                              self.k_train, k_q, theta_q, k_qq, self.lam)
            out = probability_moments(mean, cov, num_samples, rng)
            out["logit_mean"], out["logit_covariance"] = mean, cov
            parts.append(out)
        res = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
        self._time("distribution_points", t0)
        return res


# ---------------------------------------------------------------------------
# Data and the command line.

def blas_library():
    """The BLAS shared object this process loaded (from /proc/self/maps)."""
    try:
        with open("/proc/self/maps") as f:
            libs = {line.split()[-1] for line in f if "blas" in line and ".so" in line}
        return ", ".join(sorted(os.path.realpath(p) for p in libs)) or "unknown"
    except OSError:
        return "unknown"


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    sys.path.insert(0, here)
    import bench_data  # noqa: E402 (bench/ helper)
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--regime", choices=("2a", "2b"), default="2b")
    ap.add_argument("--n", type=int, default=3000)
    ap.add_argument("--lam", type=float, default=0.01, help="lambda of 2a")
    ap.add_argument("--depth", type=int, default=3)
    ap.add_argument("--predict_rows", type=int, default=500)
    ap.add_argument("--dist_rows", type=int, default=100)
    args = ap.parse_args()
    data = bench_data.load(args.n, args.predict_rows)
    ref = Reference(KernelSpec("relu", args.depth), lam=0.0 if args.regime == "2b" else args.lam)
    t0 = time.perf_counter()
    ref.fit(data.x_train, data.y_train, data.classes)
    pred = ref.predict(data.x_query)
    dist = ref.distribution(data.x_query[:args.dist_rows])
    total = time.perf_counter() - t0
    acc = float((pred["probabilities"].argmax(axis=1) == data.y_query).mean())
    print(json.dumps({"regime": args.regime, "n": args.n, "data": data.source,
                      "blas": blas_library(), "total_s": total, "times": ref.times,
                      "iterations": ref.iterations, "residual": ref.residual,
                      "query_accuracy": acc,
                      "mean_mi": float(dist["mutual_information"].mean())}, indent=1))


if __name__ == "__main__":
    main()

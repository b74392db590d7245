#!/usr/bin/python3
"""tests/numpy_reference_test.py NTK_SERVER: the NumPy reference
(bench/numpy_reference.py) and the service compute the same numbers.

Registered with CTest (label unit) by tests/CMakeLists.txt. Exit 77 (CTest
SKIP_RETURN_CODE) when /usr/bin/python3 lacks numpy/scipy/grpc or protoc is
missing. Three checks:

1. The reference's structured LINEARIZED formulas (R&W's E_c, M) against a
   brute-force dense evaluation of docs/model-contract.md "4.
   PredictDistribution" (the NC x NC matrices (I + (Theta (x) I) W /
   lambda)^{-1} formed explicitly) at N = 36, C = 3.
2. 2b (lambda = 0, label smoothing 0.1): Predict and EXACT
   PredictDistribution of an ntk_server fit vs the reference, digits data
   (N = 300, d = 64, C = 10, 40 query rows, depth 3 ReLU, standardize +
   normalize_rows).
3. 2a (lambda = 0.01): Predict and LINEARIZED, same data.

Deterministic fields (logits, probabilities, logit mean and covariance)
must agree to 1e-6 relative (Frobenius norm over all points); probability
moments and entropies come from different random streams (the service's
mt19937_64 + Box-Muller seeded per point, NumPy's PCG64) and must agree
within 5 standard errors of the difference of two independent estimates.
"""
import os
import sys

SKIP = 77
HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)

# Normwise relative tolerance of the deterministic fields. Both sides
# evaluate the same double-precision formulas; they differ in the rounding
# of the kernels (arccos/arcsin implementations, GEMM summation order:
# ~1e-15 relative, ~1e-8 for nearly parallel rows whose arccos is
# ill-conditioned) amplified by the solves (the fit's condition estimate,
# checked below to be <= 1e6 here) and in the 2a solvers' stopping points
# (fixed-point residuals ~1e-12). 1e-6 leaves a margin of 1e2-1e3 over
# those and still fails for any formula difference (a wrong jitter, a
# missing centering or a class-ordering error change entries at 1e-3 or
# more).
REL_TOL = 1e-6
# Standard errors allowed between two independent Monte Carlo estimates.
# The seeds are fixed, so the outcome is deterministic; at 5 sigma the
# chance that a correct implementation fails one of the ~5000 comparisons
# for an unlucky seed is about 0.3% (normal approximation, see NUM_SAMPLES).
Z = 5.0
# Samples per point, the service's and the reference's (whose per-sample
# standard deviations set the bounds). The covariance estimators are
# right-skewed (rare samples with a large probability): at 4000 samples a
# correct service value was measured 6 standard errors above the reference
# (seed 7, a 2a point with p ~ 0.002: of 400 replicate estimates the 99th
# percentile was 3.5 standard deviations above the median). The skewness of
# a mean of S samples falls like 1/sqrt(S), so 40000 samples make the
# normal approximation behind Z fit 3x better.
NUM_SAMPLES = 40000
REF_SAMPLES = 40000


def fail(msg):
    print("FAIL: " + msg)
    sys.exit(1)


def rel_err(a, b):
    import numpy as np
    den = np.linalg.norm(b)
    return float(np.linalg.norm(a - b) / (den if den > 0 else 1.0))


def check_rel(name, got, want, tol=REL_TOL):
    e = rel_err(got, want)
    print("  %-28s relative error %.2e (tolerance %.0e)" % (name, e, tol))
    if not e <= tol:
        fail("%s: relative error %.3g > %.3g" % (name, e, tol))


def check_moments(srv, ref):
    """Probability moments and entropies of the service (srv, NUM_SAMPLES
    samples per point) against the reference's (ref, REF_SAMPLES samples,
    with its per-sample probabilities and entropies): per entry
    |srv - ref| <= Z * sd * sqrt(1 / NUM_SAMPLES + 1 / REF_SAMPLES) + 1e-12,
    sd the per-sample standard deviation from the reference's samples (both
    estimators sample the same distribution: the logit moments agree to
    REL_TOL). Delta method for the entropies: H(mean p) moves like
    g . mean p, g = -(log p + 1)."""
    import numpy as np
    scale = np.sqrt(1.0 / NUM_SAMPLES + 1.0 / REF_SAMPLES)
    worst = {}

    def check(name, j, got, want, sd):
        bound = Z * sd * scale + 1e-12
        z = np.abs(got - want) / bound
        worst[name] = max(worst.get(name, 0.0), float(np.max(z)) * Z)
        if not np.all(z <= 1):
            i = np.unravel_index(np.argmax(z), np.shape(z))
            fail("%s at point %d %s: service %.6g, reference %.6g, allowed %.3g" % (
                name, j, i, np.reshape(got, -1)[np.argmax(z)],
                np.reshape(want, -1)[np.argmax(z)], np.reshape(bound, -1)[np.argmax(z)]))

    for j in range(ref["samples_p"].shape[0]):
        p = ref["samples_p"][j]                  # S x C
        h = ref["samples_h"][j]                  # S
        pm = ref["probability_mean"][j]
        dev = p - pm
        check("probability_mean", j, srv["probability_mean"][j], pm, p.std(axis=0))
        prod = dev[:, :, None] * dev[:, None, :]
        check("probability_covariance", j, srv["probability_covariance"][j],
              ref["probability_covariance"][j], prod.std(axis=0))
        gp = p @ -(np.log(np.maximum(pm, 1e-300)) + 1.0)   # linearized H(mean p)
        check("predictive_entropy", j, srv["predictive_entropy"][j],
              ref["predictive_entropy"][j], gp.std())
        check("expected_entropy", j, srv["expected_entropy"][j],
              ref["expected_entropy"][j], h.std())
        check("mutual_information", j, srv["mutual_information"][j],
              ref["mutual_information"][j], (gp - h).std())
    print("  probability moments: largest |difference| / its standard error: " +
          ", ".join("%s %.2f" % (k, v) for k, v in worst.items()))


def brute_force_linearized(nr, x, y):
    """Check 1 (see the module docstring)."""
    import numpy as np
    c_count, lam = 3, 0.5
    sel = np.where(y < c_count)[0]
    xt, yt, xq = x[sel[:36]], y[sel[:36]], x[sel[36:42]]
    ref = nr.Reference(nr.KernelSpec("relu", 3), lam=lam)
    ref.fit(xt, yt, c_count)
    d = ref.distribution(xq, num_samples=10)
    n = len(xt)
    theta, k = ref.theta, ref.k_train
    f = theta @ ref.dual
    # 2a fixed point F* = Theta (Y - softmax F*) / lambda.
    res = np.abs(f - theta @ (ref.y - nr.softmax(f)) / lam).max()
    print("  2a Newton fixed-point residual %.2e" % res)
    if not res <= 1e-10 * max(1.0, np.abs(f).max()):
        fail("reference 2a fixed-point residual %.3g" % res)
    p = nr.softmax(f)
    w = np.zeros((n * c_count, n * c_count))  # class-major: index c * N + i
    for i in range(n):
        blk = np.diag(p[i]) - np.outer(p[i], p[i])
        idx = np.arange(c_count) * n + i
        w[np.ix_(idx, idx)] = blk
    th, kk = np.kron(np.eye(c_count), theta), np.kron(np.eye(c_count), k)
    dfstar = np.linalg.inv(np.eye(n * c_count) + th @ w / lam)   # dF* / dF0
    k_q, theta_q, k_qq = ref._query(xq)
    center = np.eye(c_count) - 1.0 / c_count
    want = []
    for j in range(len(xq)):
        # df(x) = df0(x) - (Theta_xX (x) I) W dF* / lambda
        r = np.kron(np.eye(c_count), theta_q[:, j][None, :]) @ w @ dfstar / lam
        kx = np.kron(np.eye(c_count), k_q[:, j][:, None])       # Cov(F0, f0(x))
        cov = k_qq[j] * np.eye(c_count) - r @ kx - kx.T @ r.T + r @ kk @ r.T
        want.append(center @ cov @ center)
    # Both are the same double-precision quantities by different routes
    # (NC x NC inverse vs C Cholesky factors): agreement to rounding,
    # ~1e-15 relative at this size; 1e-10 allows the inverse's condition.
    check_rel("LINEARIZED vs brute force", d["logit_covariance"], np.array(want), 1e-10)


def compare(client, nr, data, lam, method, model_id):
    spec = client.spec(depth=3, lam=lam)
    fit, _ = client.fit(model_id, data.x_train, data.y_train, spec)
    stats = fit.model.stats
    print("  service fit: regime %s, condition %.3g, residual %.2e" % (
        stats.regime, stats.condition_estimate, stats.fixed_point_residual))
    if stats.regime == "2b" and not stats.condition_estimate <= 1e6:
        fail("condition estimate %.3g too large for the tolerance's reasoning" %
             stats.condition_estimate)
    ref = nr.Reference(nr.KernelSpec("relu", 3), lam=0.0 if lam is None else lam)
    ref.fit(data.x_train, data.y_train, data.classes)
    pred, _ = client.predict(model_id, data.x_query)
    rpred = ref.predict(data.x_query)
    check_rel("Predict logits", pred["logits"], rpred["logits"])
    check_rel("Predict probabilities", pred["probabilities"], rpred["probabilities"])
    dist, _ = client.distribution(model_id, data.x_query, method=method,
                                  num_samples=NUM_SAMPLES, seed=7)
    rdist = ref.distribution(data.x_query, num_samples=REF_SAMPLES, seed=11)
    check_rel(method + " logit_mean", dist["logit_mean"], rdist["logit_mean"])
    check_rel(method + " logit_covariance", dist["logit_covariance"],
              rdist["logit_covariance"])
    check_moments(dist, rdist)
    mi = rdist["mutual_information"]
    if not (mi.max() > 0):
        fail("mutual information is 0 everywhere: the check would be vacuous")


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: numpy_reference_test.py PATH_TO_NTK_SERVER")
    try:
        import grpc  # noqa: F401
        import numpy as np  # noqa: F401
        import scipy.linalg  # noqa: F401
        import google.protobuf  # noqa: F401
    except ImportError as e:
        print("SKIP: /usr/bin/python3 cannot import %s" % e.name)
        sys.exit(SKIP)
    import shutil
    for tool in ("protoc", "/usr/bin/grpc_python_plugin"):
        if shutil.which(tool) is None:
            print("SKIP: %s missing" % tool)
            sys.exit(SKIP)
    sys.dont_write_bytecode = True
    sys.path.insert(0, os.path.join(ROOT, "bench"))
    import bench_client
    import bench_data
    import numpy_reference as nr
    x, y = bench_data.load_digits()

    print("1. structured LINEARIZED vs brute force (N = 36, C = 3)")
    brute_force_linearized(nr, x, y)

    data = bench_data.Dataset(x[:300], y[:300], x[-40:], y[-40:], 10, "digits")
    stubs = bench_client.load_stubs()
    with bench_client.Server(sys.argv[1], ["--log_rpcs=false"]) as server:
        client = bench_client.Client(server.address, stubs)
        print("2. 2b, EXACT (N = 300, d = 64, C = 10, 40 query rows)")
        compare(client, nr, data, None, "EXACT", "ref-2b")
        print("3. 2a, lambda = 0.01, LINEARIZED (same data)")
        compare(client, nr, data, 0.01, "LINEARIZED", "ref-2a")
        client.close()
    print("PASS")


if __name__ == "__main__":
    main()

// Tests of core/kernels/kernel.h (docs/model-contract.md "1. The network and its two kernels"): closed forms at hand-computed
// points, an independent scalar implementation of the recursion, the
// vectorized arcsine/arccosine against glibc, spec validation, structural
// properties (symmetry, PSD, cross/train/diagonal consistency) and edge cases
// (Monte Carlo over finite random networks: tests/kernel_monte_carlo_test.cc).
#include "core/kernels/kernel.h"
#include "core/numerics/random.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "core/kernels/kernel_internal.h"
#include "core/kernels/kernel_rows.h"
#include "tests/testing/test_data.h"

namespace ntk {
namespace {

using testing::Spec;

Eigen::MatrixXd RandomMatrix(int rows, int cols, uint64_t seed) {
  return testing::StdNormalMatrix(rows, cols, seed);
}

using Eigen::MatrixXd;
using Eigen::VectorXd;

constexpr double kPi = 3.14159265358979323846;

// ---------------------------------------------------------------------------
// Independent scalar reference: docs/model-contract.md "1. The network and its two kernels" written out literally for
// one pair (x, y), with glibc's acos/asin and the diagonal entries computed
// with rho = 1 exactly where x and y are the same point (same_point).
// ---------------------------------------------------------------------------
struct Expect {
  double pp;  // E[phi(u) phi(v)]
  double dd;  // E[phi'(u) phi'(v)]
};

Expect GaussianExpectations(Activation act, double a, double b, double c,
                            bool same_point) {
  if (act == Activation::kRelu) {
    const double sab = std::sqrt(a * b);
    double rho = same_point ? 1.0 : (sab > 0 ? c / sab : 0.0);
    rho = std::max(-1.0, std::min(1.0, rho));
    const double t = std::acos(rho);
    return {sab * (std::sin(t) + (kPi - t) * std::cos(t)) / (2 * kPi),
            (kPi - t) / (2 * kPi)};
  }
  const double p = (1 + 2 * a) * (1 + 2 * b);
  return {(2 / kPi) * std::asin(2 * c / std::sqrt(p)),
          (4 / kPi) / std::sqrt(p - 4 * c * c)};
}

struct Pair {
  double nngp, ntk;
};

Pair ReferenceKernel(const KernelSpec& spec, const VectorXd& x,
                     const VectorXd& y, bool same_point) {
  const double sw2 = spec.weight_variance, sb2 = spec.bias_variance;
  const double d = static_cast<double>(x.size());
  double a = sw2 * x.squaredNorm() / d + sb2;
  double b = sw2 * y.squaredNorm() / d + sb2;
  double c = same_point ? a : sw2 * x.dot(y) / d + sb2;
  double t = c;
  for (int l = 0; l < spec.depth; ++l) {
    const Expect ab = GaussianExpectations(spec.activation, a, b, c, same_point);
    const Expect aa = GaussianExpectations(spec.activation, a, a, a, true);
    const Expect bb = GaussianExpectations(spec.activation, b, b, b, true);
    c = sw2 * ab.pp + sb2;
    t = c + sw2 * ab.dd * t;
    a = sw2 * aa.pp + sb2;
    b = sw2 * bb.pp + sb2;
  }
  return {c, t};
}

double RelErr(double got, double want) {
  return std::abs(got - want) / std::max(std::abs(want), 1e-300);
}

// ---------------------------------------------------------------------------
// Vectorized arcsine / arccosine.
// ---------------------------------------------------------------------------

// Tolerance 1e-15 relative (about 4.5 ulp): fdlibm's rational is accurate to
// < 1 ulp; our branch-free assembly skips fdlibm's extra-precision tricks
// (split sqrt, pi/2 in two parts for the asin of |x| in (1/2, 0.975)), which
// costs up to ~3 ulp where pi/2 - 2 asin(s) cancels (|x| near 1/2), plus
// glibc's own < 1 ulp.
TEST(VectorArcsine, MatchesGlibcOnDenseGridIncludingEndpoints) {
  std::vector<double> xs;
  const int kGrid = 400000;
  for (int k = 0; k <= kGrid; ++k) xs.push_back(-1.0 + 2.0 * k / kGrid);
  for (int e = 1; e <= 60; ++e) {  // approaching +-1, +-1/2, 0
    const double h = std::ldexp(1.0, -e);
    for (double base : {1.0, 0.5}) {
      for (double v : {base - h, base + h}) {
        if (std::abs(v) <= 1.0) {
          xs.push_back(v);
          xs.push_back(-v);
        }
      }
    }
    xs.push_back(h);
    xs.push_back(-h);
  }
  for (double v : {0.5, std::nextafter(0.5, 1.0), std::nextafter(0.5, 0.0),
                   1.0, std::nextafter(1.0, 0.0), 0.0, 1e-300, 5e-324}) {
    xs.push_back(v);
    xs.push_back(-v);
  }
  std::vector<double> as(xs.size()), ac(xs.size());
  internal::AsinArray(xs.data(), as.data(), xs.size());
  internal::AcosArray(xs.data(), ac.data(), xs.size());
  double max_asin = 0, max_acos = 0;
  for (size_t i = 0; i < xs.size(); ++i) {
    const double ra = std::asin(xs[i]), rc = std::acos(xs[i]);
    ASSERT_FALSE(std::isnan(as[i])) << xs[i];
    ASSERT_FALSE(std::isnan(ac[i])) << xs[i];
    if (ra == 0) {
      EXPECT_EQ(as[i], 0.0) << xs[i];
    } else {
      max_asin = std::max(max_asin, RelErr(as[i], ra));
      EXPECT_LE(RelErr(as[i], ra), 1e-15) << "asin(" << xs[i] << ")";
    }
    if (rc == 0) {
      EXPECT_EQ(ac[i], 0.0) << xs[i];
    } else {
      max_acos = std::max(max_acos, RelErr(ac[i], rc));
      EXPECT_LE(RelErr(ac[i], rc), 1e-15) << "acos(" << xs[i] << ")";
    }
  }
  std::printf("max relative error: asin %.3g, acos %.3g (ulp = %.3g)\n",
              max_asin, max_acos, std::numeric_limits<double>::epsilon());
}

TEST(VectorArcsine, ClipsOutOfRangeInputs) {
  const double xs[4] = {1.0 + 1e-15, -1.0 - 1e-15, 2.0, -3.0};
  double as[4], ac[4];
  internal::AsinArray(xs, as, 4);
  internal::AcosArray(xs, ac, 4);
  EXPECT_EQ(as[0], std::asin(1.0));
  EXPECT_EQ(as[1], -std::asin(1.0));
  EXPECT_EQ(as[2], std::asin(1.0));
  EXPECT_EQ(ac[0], 0.0);
  EXPECT_EQ(ac[1], std::acos(-1.0));
  EXPECT_EQ(ac[3], std::acos(-1.0));
}

// ---------------------------------------------------------------------------
// Spec validation.
// ---------------------------------------------------------------------------
TEST(ValidateKernelSpec, AcceptsValidSpecs) {
  EXPECT_TRUE(ValidateKernelSpec(KernelSpec{}).ok());
  EXPECT_TRUE(ValidateKernelSpec(Spec(Activation::kErf, 100, 0.5, 0.0)).ok());
}

TEST(ValidateKernelSpec, NamesTheField) {
  struct Case {
    KernelSpec spec;
    std::string message;
  };
  const double nan = std::numeric_limits<double>::quiet_NaN();
  const double inf = std::numeric_limits<double>::infinity();
  const Case cases[] = {
      {Spec(Activation::kRelu, 0, 2, 0),
       "spec.kernel.depth: must be in [1, 100], got 0"},
      {Spec(Activation::kRelu, 101, 2, 0),
       "spec.kernel.depth: must be in [1, 100], got 101"},
      {Spec(Activation::kRelu, 1, 0, 0), "spec.kernel.weight_variance: "},
      {Spec(Activation::kRelu, 1, -1, 0), "spec.kernel.weight_variance: "},
      {Spec(Activation::kRelu, 1, nan, 0), "spec.kernel.weight_variance: "},
      {Spec(Activation::kRelu, 1, inf, 0), "spec.kernel.weight_variance: "},
      {Spec(Activation::kRelu, 1, 2, -0.1), "spec.kernel.bias_variance: "},
      {Spec(Activation::kRelu, 1, 2, nan), "spec.kernel.bias_variance: "},
      {Spec(Activation::kRelu, 1, 2, inf), "spec.kernel.bias_variance: "},
      {Spec(static_cast<Activation>(7), 1, 2, 0), "spec.kernel.activation: "},
      {Spec(static_cast<Activation>(0), 1, 2, 0), "spec.kernel.activation: "},
  };
  for (const Case& c : cases) {
    const absl::Status s = ValidateKernelSpec(c.spec);
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << c.message;
    EXPECT_EQ(std::string(s.message()).rfind(c.message, 0), 0u)
        << "got: " << s.message() << "\nwant prefix: " << c.message;
  }
}

// ---------------------------------------------------------------------------
// Closed forms at hand-computed points.
// ---------------------------------------------------------------------------

// ReLU, depth 1, sw^2 = 2, sb^2 = 0, x = e1, x' = e2 in d = 2:
// S1(x,x) = 2 * 1/2 = 1, S1(x,x') = 0 -> rho = 0, t = pi/2,
// K(x,x') = 2 * (1 * (1 + (pi/2) * 0)) / (2 pi) = 1/pi, Sd = 2 (pi/2)/(2 pi) = 1/2,
// Theta(x,x') = 1/pi + 1/2 * 0 = 1/pi. K(x,x) = 2 * 1/2 = 1,
// Theta(x,x) = 1 + 2 * (1/2) * 1 = 2.
// Tolerance: a few ulp of the values (1e-15 relative).
TEST(ClosedForm, ReluDepth1OrthogonalUnitPoints) {
  MatrixXd x(2, 2);
  x << 1, 0, 0, 1;
  const KernelMatrices k = TrainKernels(Spec(Activation::kRelu, 1, 2, 0), x);
  EXPECT_NEAR(k.nngp(0, 1), 1 / kPi, 1e-15);
  EXPECT_NEAR(k.ntk(0, 1), 1 / kPi, 1e-15);
  EXPECT_DOUBLE_EQ(k.nngp(0, 0), 1.0);
  EXPECT_DOUBLE_EQ(k.ntk(0, 0), 2.0);
}

// ReLU, depth 2, sw^2 = 1, sb^2 = 1, x = (1, 1), x' = (1, -1), d = 2:
// S1(x,x) = 1 + 1 = 2 = S1(x',x'), S1(x,x') = 0 + 1 = 1 -> rho = 1/2, t = pi/3.
// E[phi phi] = 2 (sqrt(3)/2 + (2pi/3)(1/2)) / (2pi) = (sqrt(3)/2 + pi/3)/pi,
// E[phi' phi'] = (2pi/3)/(2pi) = 1/3.
// S2 = E[phi phi] + 1, T2 = S2 + (1/3) * 1.  Diagonal: S2(x,x) = 2/2 + 1 = 2
// (a fixed point), T2(x,x) = 2 + (1/2) * 2 = 3, T3(x,x) = 2 + (1/2) * 3 = 3.5.
// Layer 2: a = b = 2, c = S2, rho2 = S2/2, t2 = acos(rho2);
// K = 2 (sin t2 + (pi - t2) rho2)/(2pi) + 1, Theta = K + ((pi - t2)/(2pi)) T2.
// Tolerance 1e-14 relative: glibc acos/sin at a few points, a few ulp.
TEST(ClosedForm, ReluDepth2WithBias) {
  MatrixXd x(2, 2);
  x << 1, 1, 1, -1;
  const KernelMatrices k = TrainKernels(Spec(Activation::kRelu, 2, 1, 1), x);
  const double s2 = (std::sqrt(3.0) / 2 + kPi / 3) / kPi + 1;
  const double t2 = s2 + 1.0 / 3.0;
  const double rho2 = s2 / 2, th2 = std::acos(rho2);
  const double kk = 2 * (std::sin(th2) + (kPi - th2) * rho2) / (2 * kPi) + 1;
  const double tt = kk + (kPi - th2) / (2 * kPi) * t2;
  EXPECT_LE(RelErr(k.nngp(0, 1), kk), 1e-14);
  EXPECT_LE(RelErr(k.ntk(0, 1), tt), 1e-14);
  EXPECT_DOUBLE_EQ(k.nngp(0, 0), 2.0);
  EXPECT_DOUBLE_EQ(k.ntk(0, 0), 3.5);
}

// erf, depth 1, sw^2 = 1, sb^2 = 0.5, d = 1, x = 1, x' = -2:
// S1(x,x) = 1.5, S1(x',x') = 4.5, S1(x,x') = -2 + 0.5 = -1.5.
// E[phi phi] = (2/pi) asin(2 (-1.5) / sqrt(4 * 10)) = (2/pi) asin(-3/sqrt(40)),
// E[phi' phi'] = (4/pi) / sqrt(40 - 9) = (4/pi)/sqrt(31).
// K = E[phi phi] + 0.5, Theta = K + (4/pi)/sqrt(31) * (-1.5).
// Diagonal at x: (2/pi) asin(3/4) + 0.5 and Theta = K + (4/pi)/sqrt(7) * 1.5.
// Tolerance 1e-14 relative (a few ulp through glibc asin / our asin).
TEST(ClosedForm, ErfDepth1WithBias) {
  MatrixXd x(2, 1);
  x << 1, -2;
  const KernelMatrices k = TrainKernels(Spec(Activation::kErf, 1, 1, 0.5), x);
  const double kk = (2 / kPi) * std::asin(-3 / std::sqrt(40.0)) + 0.5;
  const double tt = kk + (4 / kPi) / std::sqrt(31.0) * (-1.5);
  EXPECT_LE(RelErr(k.nngp(0, 1), kk), 1e-14);
  EXPECT_LE(RelErr(k.ntk(0, 1), tt), 1e-14);
  const double kd = (2 / kPi) * std::asin(0.75) + 0.5;
  EXPECT_LE(RelErr(k.nngp(0, 0), kd), 1e-14);
  EXPECT_LE(RelErr(k.ntk(0, 0), kd + (4 / kPi) / std::sqrt(7.0) * 1.5), 1e-14);
}

// Every entry of Train/Cross kernels against the independent scalar
// reference, depth 1 and 2 (and 3), both activations, nonzero bias, sizes
// that are not multiples of the tile size (so partial and mirrored tiles
// are exercised). Errors are measured relative to the entry's natural scale
// sqrt(k(x,x) k(y,y)) (Cauchy-Schwarz), because erf kernels with a bias
// cross zero. Tolerance 1e-12: the two paths differ by the GEMM's summation
// order and a few ulp of arcsine per layer (~1e-16), amplified by arccos's
// condition number 1/sqrt(1 - rho^2) (< ~1e3 for these random points); any
// formula error would be >> 1e-12.
TEST(ClosedForm, AllEntriesMatchScalarReference) {
  const MatrixXd x1 = RandomMatrix(150, 7, 1);
  const MatrixXd x2 = RandomMatrix(131, 7, 2);
  // The baseline-ISA copy of the recursion (the AVX2 copy, used by default
  // where available, is checked bit for bit against it below).
  ASSERT_TRUE(internal::ForceVectorIsaForTesting(internal::VectorIsa::kBaseline));
  for (Activation act : {Activation::kRelu, Activation::kErf}) {
    for (int depth : {1, 2, 3}) {
      const KernelSpec spec = Spec(act, depth, 1.7, 0.3);
      const KernelMatrices tr = TrainKernels(spec, x1);
      const KernelMatrices cr = CrossKernels(spec, x1, x2);
      auto diag = [&](const MatrixXd& x, int i) {
        return ReferenceKernel(spec, x.row(i), x.row(i), true);
      };
      auto scaled_err = [](double got, double want, double di, double dj) {
        return std::abs(got - want) / std::sqrt(di * dj);
      };
      double worst = 0;
      for (int i = 0; i < x1.rows(); ++i) {
        const Pair di = diag(x1, i);
        for (int j = 0; j < x1.rows(); ++j) {
          const Pair r = ReferenceKernel(spec, x1.row(i), x1.row(j), i == j);
          const Pair dj = diag(x1, j);
          worst = std::max({worst,
                            scaled_err(tr.nngp(i, j), r.nngp, di.nngp, dj.nngp),
                            scaled_err(tr.ntk(i, j), r.ntk, di.ntk, dj.ntk)});
        }
        for (int j = 0; j < x2.rows(); ++j) {
          const Pair r = ReferenceKernel(spec, x1.row(i), x2.row(j), false);
          const Pair dj = diag(x2, j);
          worst = std::max({worst,
                            scaled_err(cr.nngp(i, j), r.nngp, di.nngp, dj.nngp),
                            scaled_err(cr.ntk(i, j), r.ntk, di.ntk, dj.ntk)});
        }
      }
      std::printf("activation %d depth %d: worst scaled error %.3g\n",
                  static_cast<int>(act), depth, worst);
      EXPECT_LE(worst, 1e-12) << "activation " << static_cast<int>(act)
                              << " depth " << depth;
    }
  }
  internal::ForceVectorIsaForTesting(internal::VectorIsa::kAuto);
}

// ---------------------------------------------------------------------------
// Structure.
// ---------------------------------------------------------------------------

// Exact symmetry (mirrored), and PSD: the smallest eigenvalue >= -1e-10 x the
// largest. A PSD matrix computed to ~1e-15 relative per entry has computed
// eigenvalues >= -N * 1e-15 * max|entry| ~ -1e-12 x largest for N = 300;
// 1e-10 leaves margin and still catches any genuine indefiniteness.
TEST(Structure, TrainKernelsSymmetricAndPsd) {
  MatrixXd x = RandomMatrix(300, 12, 3);
  x.row(7) = x.row(3);         // a duplicate point: exactly singular kernel
  x.row(8) = 2.5 * x.row(3);   // a parallel one
  for (Activation act : {Activation::kRelu, Activation::kErf}) {
    for (double sb2 : {0.0, 0.2}) {
      const KernelMatrices k = TrainKernels(Spec(act, 3, 2.0, sb2), x);
      for (const MatrixXd* m : {&k.nngp, &k.ntk}) {
        ASSERT_TRUE(*m == m->transpose());
        Eigen::SelfAdjointEigenSolver<MatrixXd> es(*m, Eigen::EigenvaluesOnly);
        const double lo = es.eigenvalues().minCoeff();
        const double hi = es.eigenvalues().maxCoeff();
        EXPECT_GT(hi, 0);
        EXPECT_GE(lo, -1e-10 * hi) << "activation " << static_cast<int>(act);
      }
    }
  }
}

// CrossKernels(x, x) equals TrainKernels(x) off the diagonal to ~1e-12 (same
// recursion; the Gram matrices differ only in summation order, see
// AllEntriesMatchScalarReference), and on the diagonal to ~1e-7: the cross
// path computes rho = c / sqrt(a b) = 1 - O(eps) and arccos turns O(eps) into
// O(sqrt(eps)) = 1.5e-8 per layer (docs/model-contract.md "1. The network and its two kernels").
TEST(Structure, CrossOfSelfMatchesTrain) {
  const MatrixXd x = RandomMatrix(140, 9, 4);
  for (Activation act : {Activation::kRelu, Activation::kErf}) {
    const KernelSpec spec = Spec(act, 3, 2.0, 0.1);
    const KernelMatrices tr = TrainKernels(spec, x);
    const KernelMatrices cr = CrossKernels(spec, x, x);
    for (int i = 0; i < x.rows(); ++i) {
      for (int j = 0; j < x.rows(); ++j) {
        // Relative to the entry's scale sqrt(k(x,x) k(y,y)) (entries of erf
        // kernels with a bias can be near 0).
        const double tol = i == j ? 1e-7 : 1e-12;
        EXPECT_LE(std::abs(cr.nngp(i, j) - tr.nngp(i, j)),
                  tol * std::sqrt(tr.nngp(i, i) * tr.nngp(j, j)))
            << i << "," << j;
        EXPECT_LE(std::abs(cr.ntk(i, j) - tr.ntk(i, j)),
                  tol * std::sqrt(tr.ntk(i, i) * tr.ntk(j, j)))
            << i << "," << j;
      }
    }
  }
}

// The overload with precomputed squared norms (what a model caches for its
// training set) runs the same arithmetic, so it gives identical bits.
TEST(Structure, CachedSquaredNormsGiveIdenticalBits) {
  const MatrixXd x1 = RandomMatrix(300, 11, 21);
  const MatrixXd x2 = RandomMatrix(7, 11, 22);
  const Eigen::VectorXd sq = x1.rowwise().squaredNorm();
  for (Activation act : {Activation::kRelu, Activation::kErf}) {
    const KernelSpec spec = Spec(act, 2, 1.5, 0.2);
    const KernelMatrices plain = CrossKernels(spec, x1, x2);
    const KernelMatrices cached = CrossKernels(spec, x1, x2, sq);
    EXPECT_TRUE((plain.nngp.array() == cached.nngp.array()).all());
    EXPECT_TRUE((plain.ntk.array() == cached.ntk.array()).all());
    // And with x1's whole per-row data kept (kernel_rows.h), for several
    // query sets: the kept rows are not changed by a call.
    const KernelRows rows = KernelRows::Compute(spec, x1, sq);
    for (uint64_t seed : {22, 23}) {
      const MatrixXd q = RandomMatrix(seed == 22 ? 7 : 1, 11, seed);
      const KernelMatrices want = CrossKernels(spec, x1, q);
      const KernelMatrices kept = CrossKernels(spec, x1, q, rows);
      EXPECT_TRUE((want.nngp.array() == kept.nngp.array()).all()) << seed;
      EXPECT_TRUE((want.ntk.array() == kept.ntk.array()).all()) << seed;
    }
  }
}

// DiagonalKernels is the same per-point computation as TrainKernels'
// diagonal, so they agree exactly.
TEST(Structure, DiagonalMatchesTrainDiagonal) {
  const MatrixXd x = RandomMatrix(200, 5, 5);
  for (Activation act : {Activation::kRelu, Activation::kErf}) {
    const KernelSpec spec = Spec(act, 4, 1.5, 0.05);
    const KernelMatrices tr = TrainKernels(spec, x);
    const KernelDiagonal dg = DiagonalKernels(spec, x);
    ASSERT_EQ(dg.nngp.size(), x.rows());
    ASSERT_EQ(dg.ntk.size(), x.rows());
    for (int i = 0; i < x.rows(); ++i) {
      EXPECT_EQ(dg.nngp(i), tr.nngp(i, i));
      EXPECT_EQ(dg.ntk(i), tr.ntk(i, i));
    }
  }
}

// The recursion exists in two compiled copies (baseline ISA and AVX2, see
// core/kernels/kernel.cc); both use only elementwise IEEE operations without FMA, so
// they must agree bit for bit. Skipped on CPUs without AVX2.
TEST(Structure, BaselineAndAvx2PathsAreBitIdentical) {
  const MatrixXd x = RandomMatrix(170, 9, 9);
  const MatrixXd q = RandomMatrix(37, 9, 10);
  if (!internal::ForceVectorIsaForTesting(internal::VectorIsa::kAvx2)) {
    GTEST_SKIP() << "no AVX2 on this CPU";
  }
  for (Activation act : {Activation::kRelu, Activation::kErf}) {
    const KernelSpec spec = Spec(act, 3, 2.0, 0.1);
    ASSERT_TRUE(internal::ForceVectorIsaForTesting(internal::VectorIsa::kAvx2));
    const KernelMatrices tr_avx = TrainKernels(spec, x);
    const KernelMatrices cr_avx = CrossKernels(spec, q, x);
    ASSERT_TRUE(internal::ForceVectorIsaForTesting(internal::VectorIsa::kBaseline));
    const KernelMatrices tr_base = TrainKernels(spec, x);
    const KernelMatrices cr_base = CrossKernels(spec, q, x);
    EXPECT_TRUE(tr_avx.nngp == tr_base.nngp);
    EXPECT_TRUE(tr_avx.ntk == tr_base.ntk);
    EXPECT_TRUE(cr_avx.nngp == cr_base.nngp);
    EXPECT_TRUE(cr_avx.ntk == cr_base.ntk);
  }
  internal::ForceVectorIsaForTesting(internal::VectorIsa::kAuto);
}

TEST(Structure, EmptyInputs) {
  const MatrixXd none(0, 3), some = RandomMatrix(4, 3, 6);
  const KernelSpec spec;
  EXPECT_EQ(TrainKernels(spec, none).nngp.size(), 0);
  const KernelMatrices c = CrossKernels(spec, some, none);
  EXPECT_EQ(c.nngp.rows(), 4);
  EXPECT_EQ(c.nngp.cols(), 0);
  EXPECT_EQ(DiagonalKernels(spec, none).ntk.size(), 0);
}

// ---------------------------------------------------------------------------
// Edge cases: zero vectors, parallel and antiparallel points.
// ---------------------------------------------------------------------------
TEST(EdgeCases, ZeroParallelAntiparallelGiveNoNaN) {
  const int d = 6;
  MatrixXd x(5, d);
  x.setZero();
  x.row(1) = RandomMatrix(1, d, 7);
  x.row(2) = 3.0 * x.row(1);
  x.row(3) = -2.0 * x.row(1);
  x.row(4) = RandomMatrix(1, d, 8);
  for (Activation act : {Activation::kRelu, Activation::kErf}) {
    for (double sb2 : {0.0, 0.4}) {
      const KernelSpec spec = Spec(act, 3, 2.0, sb2);
      const KernelMatrices tr = TrainKernels(spec, x);
      const KernelMatrices cr = CrossKernels(spec, x, x);
      const KernelDiagonal dg = DiagonalKernels(spec, x);
      ASSERT_TRUE(tr.nngp.allFinite() && tr.ntk.allFinite());
      ASSERT_TRUE(cr.nngp.allFinite() && cr.ntk.allFinite());
      ASSERT_TRUE(dg.nngp.allFinite() && dg.ntk.allFinite());
      if (sb2 == 0.0) {
        // The zero input gives h = 0 in every layer: both kernels vanish
        // (for erf too, since erf(0) = 0 and sb = 0).
        for (int j = 0; j < x.rows(); ++j) {
          EXPECT_EQ(tr.nngp(0, j), 0.0);
          EXPECT_EQ(tr.ntk(0, j), 0.0);
          EXPECT_EQ(cr.nngp(j, 0), 0.0);
          EXPECT_EQ(cr.ntk(j, 0), 0.0);
        }
      }
      // Parallel and antiparallel pairs against the reference with the
      // exact rho = +-1. Tolerance 1e-7 relative + 1e-12 absolute (entries
      // that vanish at rho = -1): docs/model-contract.md's sqrt(eps) ill-conditioning of
      // arccos at rho = +-1 gives ~1e-8 per layer.
      for (int i = 0; i < x.rows(); ++i) {
        for (int j = 0; j < x.rows(); ++j) {
          const Pair r = ReferenceKernel(spec, x.row(i), x.row(j), i == j);
          for (const KernelMatrices* k : {&tr, &cr}) {
            EXPECT_NEAR(k->nngp(i, j), r.nngp, 1e-7 * std::abs(r.nngp) + 1e-12)
                << i << "," << j;
            EXPECT_NEAR(k->ntk(i, j), r.ntk, 1e-7 * std::abs(r.ntk) + 1e-12)
                << i << "," << j;
          }
        }
      }
    }
  }
}

}  // namespace
}  // namespace ntk

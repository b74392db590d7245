// Tests of docs/model-contract.md "4. PredictDistribution" (core/distribution/distribution.cc): PredictDistribution's
// methods against independent references built here.
//
// Tolerances: Monte Carlo comparisons use a bound of k standard errors with
// the standard error computed from the quantities being estimated (stated
// next to each); deterministic comparisons against dense references use
// bounds from double rounding of the O(N) - O(N^3) operations involved.
//
// Over 500 lines because the methods' tests share the problems, sampled
// initializations and dense references built in this file; the moments of
// Gaussian logits are in tests/distribution_moments_test.cc.
#include <cfloat>
#include <cmath>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <omp.h>

#include "core/distribution/distribution.h"
#include "core/distribution/factors.h"
#include "core/distribution/moments.h"
#include "core/numerics/random.h"
#include "core/kernels/kernel.h"
#include "core/training/solvers.h"
#include "tests/testing/distribution_fixtures.h"
#include "tests/testing/test_data.h"

namespace ntk {
namespace {

using Eigen::MatrixXd;
using Eigen::VectorXd;
using testing::MakeState;
using testing::RandomFeatures;
using testing::RandomTargets;
using testing::Relu2;
using testing::Centering;
using testing::ExpectWithinSE;

// --- Fixtures --------------------------------------------------------------

struct Problem {
  MatrixXd x_train, y, x_query;
};

Problem MakeProblem(int n, int d, int C, int m, double eps, uint64_t seed) {
  Problem p;
  p.x_train = RandomFeatures(n, d, seed);
  p.y = RandomTargets(p.x_train, C, eps, seed + 1);
  p.x_query = RandomFeatures(m, d, seed + 2);
  return p;
}

absl::StatusOr<DistributionResult> RunDist(const FittedModel::State& st,
                                       const MatrixXd& xq,
                                       DistributionMethod method,
                                       int num_samples = 0, uint64_t seed = 0) {
  DistributionOptions o;
  o.method = method;
  o.num_samples = num_samples;
  o.seed = seed;
  return ComputeDistribution(st, xq, o);
}

// Joint samples of f0 over train + query points: rows 0..N-1 train,
// N..N+M-1 query, S * C columns (sample s, class c at s * C + c).
MatrixXd JointPriorSamples(const KernelSpec& k, const MatrixXd& xt,
                           const MatrixXd& xq, int S, int C, uint64_t seed) {
  MatrixXd all(xt.rows() + xq.rows(), xt.cols());
  all << xt, xq;
  MatrixXd kk = TrainKernels(k, all).nngp;
  kk.diagonal().array() += 1e-12 * kk.diagonal().mean();
  Eigen::LLT<MatrixXd> llt(kk);
  EXPECT_EQ(llt.info(), Eigen::Success);
  return llt.matrixL() * testing::StdNormalMatrix(all.rows(), S * C, seed);
}

// Sample mean and covariance (divisor S) of centered rows of `f` (S x C).
void SampleMoments(const MatrixXd& f, VectorXd* mean, MatrixXd* cov) {
  MatrixXd c = f;
  for (Eigen::Index s = 0; s < c.rows(); ++s) c.row(s).array() -= c.row(s).mean();
  *mean = c.colwise().mean().transpose();
  const MatrixXd d = c.rowwise() - mean->transpose();
  *cov = d.transpose() * d / static_cast<double>(c.rows());
}

// --- EXACT (2b, 2c) against sampled initializations ------------------------

// The training map of docs/model-contract.md "2b. Unregularized" / "2c. Squared loss" written out here: with
// A = Theta + s I and T = log Y (2b) or Y (2c),
//   f(x) = f0(x) + Theta_xX A^{-1} (T - F0).
// Apply it to S joint prior samples and compare the sample moments of the
// centered logits with EXACT within 5 SE (a bound exceeded by chance with
// probability ~6e-7 per entry; ~100 entries are checked).
void CheckExactAgainstSampling(Regime regime, double lambda) {
  const int N = 25, d = 4, C = 3, M = 3, S = 6000;
  const KernelSpec k = Relu2();
  const Problem p = MakeProblem(N, d, C, M, 0.2, 11);
  auto st = MakeState(k, regime, lambda, p.x_train, p.y);
  ASSERT_NE(st, nullptr);
  auto res = RunDist(*st, p.x_query, DistributionMethod::kExact);
  ASSERT_TRUE(res.ok()) << res.status();
  EXPECT_EQ(res->method, DistributionMethod::kExact);

  const MatrixXd f0 = JointPriorSamples(k, p.x_train, p.x_query, S, C, 99);
  MatrixXd a = TrainKernels(k, p.x_train).ntk;
  double shift = st->stats.jitter + (regime == Regime::kSquared ? lambda : 0.0);
  a.diagonal().array() += shift;
  const MatrixXd t = regime == Regime::kSquared ? p.y : MatrixXd(p.y.array().log().matrix());
  const MatrixXd tq = CrossKernels(k, p.x_query, p.x_train).ntk;  // M x N
  const MatrixXd r = a.ldlt().solve(tq.transpose()).transpose();  // M x N
  for (int j = 0; j < M; ++j) {
    MatrixXd f(S, C);
    for (int s = 0; s < S; ++s) {
      const MatrixXd F0 = f0.block(0, s * C, N, C);
      f.row(s) = f0.block(N + j, s * C, 1, C) + r.row(j) * (t - F0);
    }
    VectorXd mean;
    MatrixXd cov;
    SampleMoments(f, &mean, &cov);
    SCOPED_TRACE(::testing::Message() << "query " << j);
    const PointDistribution& pd = res->points[j];
    ExpectWithinSE(mean, cov, pd.logit_mean, pd.logit_covariance, S, 5.0, 1e-9);
    // The EXACT covariance is s(x) P: rank C - 1, rows summing to 0.
    EXPECT_LT(pd.logit_covariance.rowwise().sum().cwiseAbs().maxCoeff(), 1e-12);
  }
}

TEST(DistributionExact, UnregularizedMatchesSampledInitializations) {
  CheckExactAgainstSampling(Regime::kUnregularizedCE, 0.0);
}
TEST(DistributionExact, SquaredMatchesSampledInitializations) {
  CheckExactAgainstSampling(Regime::kSquared, 0.5);
}

TEST(DistributionExact, MeanIsPredictAndIndependentOfFitF0) {
  // The mean is over initializations (E f0 = 0), so a model fitted with a
  // particular F0 has the same distribution as the F0 = 0 model. Tolerance:
  // the two duals differ by rounding of two Cholesky solves, ~1e-12 here.
  const Problem p = MakeProblem(20, 3, 3, 4, 0.2, 5);
  auto st0 = MakeState(Relu2(), Regime::kUnregularizedCE, 0, p.x_train, p.y);
  auto st1 = MakeState(Relu2(), Regime::kUnregularizedCE, 0, p.x_train, p.y,
                       RandomFeatures(20, 3, 77));
  ASSERT_TRUE(st0 && st1);
  auto r0 = RunDist(*st0, p.x_query, DistributionMethod::kUnspecified);
  auto r1 = RunDist(*st1, p.x_query, DistributionMethod::kUnspecified);
  ASSERT_TRUE(r0.ok() && r1.ok());
  EXPECT_EQ(r0->method, DistributionMethod::kExact);
  const MatrixXd pred = CrossKernels(Relu2(), p.x_query, p.x_train).ntk * st0->dual;
  for (int j = 0; j < 4; ++j) {
    VectorXd c = pred.row(j).transpose();
    c.array() -= c.mean();
    EXPECT_LT((r0->points[j].logit_mean - c).cwiseAbs().maxCoeff(), 1e-12);
    EXPECT_LT((r0->points[j].logit_mean - r1->points[j].logit_mean).cwiseAbs().maxCoeff(), 1e-9);
    EXPECT_LT((r0->points[j].logit_covariance - r1->points[j].logit_covariance).cwiseAbs().maxCoeff(), 1e-9);
  }
}

// EXACT and LINEARIZED (which for 2b / 2c is the same linear map) against
// the dense formula of docs/model-contract.md "4. PredictDistribution",
// written here without the code's Cholesky factors or cross-kernel paths:
// with A = Theta_XX + shift I (shift = jitter, + lambda for 2c) and
// r = A^{-1} Theta_Xx by a full-pivot LU, f(x) - E f(x) = f0(x) - r^T F0
// per class, so s(x,x) = v^T K v with v = (1, -r) and K the NNGP kernel of
// the stacked points (x, X) from one TrainKernels call:
//   s(x,x) = K_xx - 2 r^T K_Xx + r^T K_XX r,  Cov = s(x,x) (I - 11^T / C),
//   mean = center(Theta_xX A^{-1} T), T = log Y (2b) or Y (2c).
// Tolerance: a backward-stable solve perturbs r by ~ N cond(A) eps |r|
// (Higham, Thm. 7.2), which moves s by at most 2 |K v| |dr|; bound
// 100 N cond(A) eps |K| (1 + |r|)^2, far below s itself (checked).
TEST(DistributionExact, ExactAndLinearizedMatchDenseFormulaFor2b2c) {
  const int N = 20, C = 4, M = 3;
  const Problem p = MakeProblem(N, 3, C, M, 0.2, 8);
  for (Regime regime : {Regime::kUnregularizedCE, Regime::kSquared}) {
    SCOPED_TRACE(RegimeName(regime));
    const double lambda = regime == Regime::kSquared ? 0.1 : 0.0;
    auto st = MakeState(Relu2(), regime, lambda, p.x_train, p.y);
    ASSERT_NE(st, nullptr);
    auto e = RunDist(*st, p.x_query, DistributionMethod::kExact, 300, 3);
    auto l = RunDist(*st, p.x_query, DistributionMethod::kLinearized, 300, 3);
    ASSERT_TRUE(e.ok() && l.ok()) << e.status() << l.status();
    EXPECT_EQ(e->method, DistributionMethod::kExact);
    EXPECT_EQ(l->method, DistributionMethod::kLinearized);

    MatrixXd all(M + N, p.x_train.cols());
    all << p.x_query, p.x_train;  // rows 0..M-1 queries, then training
    const KernelMatrices k = TrainKernels(Relu2(), all);
    MatrixXd a = k.ntk.bottomRightCorner(N, N);
    a.diagonal().array() += st->stats.jitter + lambda;
    const Eigen::FullPivLU<MatrixXd> lu(a);
    const MatrixXd r = lu.solve(k.ntk.bottomLeftCorner(N, M));  // N x M
    const MatrixXd t = regime == Regime::kSquared ? p.y : MatrixXd(p.y.array().log().matrix());
    const MatrixXd mean = r.transpose() * t;  // M x C
    const double cond = a.norm() * a.inverse().norm();
    for (int j = 0; j < M; ++j) {
      VectorXd v = VectorXd::Zero(M + N);
      v[j] = 1;
      v.tail(N) = -r.col(j);
      const double s = v.dot(k.nngp * v);
      const double tol = 100 * N * cond * DBL_EPSILON * k.nngp.norm() *
                         std::pow(1 + r.col(j).norm(), 2);
      ASSERT_GT(s, 100 * tol) << "the check would be vacuous";
      const MatrixXd cov = s * Centering(C);
      VectorXd mu = mean.row(j).transpose();
      mu.array() -= mu.mean();
      SCOPED_TRACE(::testing::Message() << "query " << j << " s " << s << " tol " << tol);
      for (const DistributionResult* res : {&*e, &*l}) {
        const PointDistribution& pd = res->points[j];
        EXPECT_LT((pd.logit_covariance - cov).cwiseAbs().maxCoeff(), tol);
        EXPECT_LT((pd.logit_mean - mu).cwiseAbs().maxCoeff(),
                  100 * N * cond * DBL_EPSILON * (1 + t.cwiseAbs().maxCoeff()) * r.col(j).norm());
      }
    }
  }
}

// MONTE_CARLO for 2b / 2c samples the same Gaussian as EXACT: sample
// moments within 5 SE of EXACT's (S = 4000).
TEST(DistributionMonteCarlo, MatchesExactFor2b2c) {
  const Problem p = MakeProblem(20, 3, 3, 3, 0.2, 9);
  for (Regime r : {Regime::kUnregularizedCE, Regime::kSquared}) {
    auto st = MakeState(Relu2(), r, r == Regime::kSquared ? 0.3 : 0.0, p.x_train, p.y);
    ASSERT_NE(st, nullptr);
    const int S = 4000;
    auto e = RunDist(*st, p.x_query, DistributionMethod::kExact);
    auto m = RunDist(*st, p.x_query, DistributionMethod::kMonteCarlo, S, 17);
    ASSERT_TRUE(e.ok() && m.ok()) << m.status();
    EXPECT_EQ(m->method, DistributionMethod::kMonteCarlo);
    for (int j = 0; j < 3; ++j) {
      ExpectWithinSE(m->points[j].logit_mean, m->points[j].logit_covariance,
                     e->points[j].logit_mean, e->points[j].logit_covariance, S, 5.0, 1e-9);
    }
  }
}

// --- LINEARIZED / LAPLACE (2a) against dense references ---------------------

// Dense NC x NC reference (class-major index c * N + i) of
//   B = W (I + Kp W)^{-1},  Kp = Theta / lambda (x) I_C,
// W = blockdiag_i(diag p_i - p_i p_i^T).
struct DenseRef {
  MatrixXd b;        // NC x NC
  MatrixXd kxx_n, tq, kq;  // helpers
};

MatrixXd DenseB(const MatrixXd& theta, const MatrixXd& probs, double lambda) {
  const int N = static_cast<int>(theta.rows()), C = static_cast<int>(probs.cols());
  MatrixXd w = MatrixXd::Zero(N * C, N * C), kp = MatrixXd::Zero(N * C, N * C);
  for (int i = 0; i < N; ++i) {
    for (int a = 0; a < C; ++a) {
      for (int b = 0; b < C; ++b) {
        w(a * N + i, b * N + i) = (a == b ? probs(i, a) : 0.0) - probs(i, a) * probs(i, b);
      }
    }
  }
  for (int c = 0; c < C; ++c) kp.block(c * N, c * N, N, N) = theta / lambda;
  const MatrixXd ikw = MatrixXd::Identity(N * C, N * C) + kp * w;
  return w * ikw.inverse();
}

TEST(DistributionLaplace, MatchesDenseReference) {
  const int N = 8, C = 3, M = 3;
  const double lambda = 0.7;
  const Problem p = MakeProblem(N, 3, C, M, 0.0, 21);  // hard labels: 2a allows
  auto st = MakeState(Relu2(), Regime::kRegularizedCE, lambda, p.x_train, p.y);
  ASSERT_NE(st, nullptr);
  auto res = RunDist(*st, p.x_query, DistributionMethod::kLaplacePosterior);
  ASSERT_TRUE(res.ok()) << res.status();
  EXPECT_EQ(res->method, DistributionMethod::kLaplacePosterior);
  const MatrixXd theta = TrainKernels(Relu2(), p.x_train).ntk;
  const MatrixXd b = DenseB(theta, RowSoftmax(st->train_logits), lambda);
  const KernelMatrices cross = CrossKernels(Relu2(), p.x_train, p.x_query);
  const KernelDiagonal dq = DiagonalKernels(Relu2(), p.x_query);
  for (int j = 0; j < M; ++j) {
    // (k' (x) I): NC x C, column c = e_c (x) Theta_Xx / lambda.
    MatrixXd kx = MatrixXd::Zero(N * C, C);
    for (int c = 0; c < C; ++c) kx.block(c * N, c, N, 1) = cross.ntk.col(j) / lambda;
    const MatrixXd cov = dq.ntk[j] / lambda * MatrixXd::Identity(C, C) - kx.transpose() * b * kx;
    const MatrixXd ref = Centering(C) * cov * Centering(C);
    // Tolerance: dense inverse of a 24 x 24 well-conditioned matrix vs
    // Cholesky factors; entries O(1): 1e-10 is ~1e5 ulps.
    EXPECT_LT((res->points[j].logit_covariance - ref).cwiseAbs().maxCoeff(), 1e-10);
    VectorXd mean = (cross.ntk.col(j).transpose() * st->dual).transpose();
    mean.array() -= mean.mean();
    EXPECT_LT((res->points[j].logit_mean - mean).cwiseAbs().maxCoeff(), 1e-12);
  }
}

TEST(DistributionLinearized, MatchesDenseReference) {
  const int N = 8, C = 3, M = 3;
  const double lambda = 0.7;
  const Problem p = MakeProblem(N, 3, C, M, 0.0, 22);
  auto st = MakeState(Relu2(), Regime::kRegularizedCE, lambda, p.x_train, p.y);
  ASSERT_NE(st, nullptr);
  auto res = RunDist(*st, p.x_query, DistributionMethod::kUnspecified);
  ASSERT_TRUE(res.ok()) << res.status();
  EXPECT_EQ(res->method, DistributionMethod::kLinearized);
  const KernelMatrices tr = TrainKernels(Relu2(), p.x_train);
  const MatrixXd b = DenseB(tr.ntk, RowSoftmax(st->train_logits), lambda);
  const KernelMatrices cross = CrossKernels(Relu2(), p.x_train, p.x_query);
  const KernelDiagonal dq = DiagonalKernels(Relu2(), p.x_query);
  MatrixXd kbig = MatrixXd::Zero(N * C, N * C);
  for (int c = 0; c < C; ++c) kbig.block(c * N, c * N, N, N) = tr.nngp;
  for (int j = 0; j < M; ++j) {
    // df(x) = f0(x) - G F0 with G = (k' (x) I)^T B (C x NC); joint cov of
    // (f0(x), F0) is [[K_xx I, Kx^T], [Kx, K_XX (x) I]].
    MatrixXd kp = MatrixXd::Zero(N * C, C), kx = MatrixXd::Zero(N * C, C);
    for (int c = 0; c < C; ++c) {
      kp.block(c * N, c, N, 1) = cross.ntk.col(j) / lambda;
      kx.block(c * N, c, N, 1) = cross.nngp.col(j);
    }
    const MatrixXd g = kp.transpose() * b;
    const MatrixXd cov = dq.nngp[j] * MatrixXd::Identity(C, C) - g * kx - kx.transpose() * g.transpose() +
                         g * kbig * g.transpose();
    const MatrixXd ref = Centering(C) * cov * Centering(C);
    EXPECT_LT((res->points[j].logit_covariance - ref).cwiseAbs().maxCoeff(), 1e-10);
  }
}

// LINEARIZED against a finite-difference Jacobian of the 2a map (solved by
// the test's own dense Newton, DenseSolve2a): an independent check of the
// linear map (no W, no B). With
// f(x) = f0(x) + Theta_xX dual(F0), J = d(Theta_xX dual)/dF0 (C x NC) by
// central differences, step h = 1e-4 (truncation O(h^2 |f'''|) ~ 1e-8,
// solver residual 1e-13 / h ~ 1e-9), then
//   Cov = K_xx I + J Kx + Kx^T J^T + J (K_XX (x) I) J^T.
// Tolerance 1e-6 absolute on O(1) entries: 100x the estimated FD error.
TEST(DistributionLinearized, MatchesFiniteDifferenceJacobian) {
  const int N = 10, C = 3, M = 2;
  const double lambda = 0.5;
  const KernelSpec k = Relu2();
  const Problem p = MakeProblem(N, 3, C, M, 0.0, 23);
  auto st = MakeState(k, Regime::kRegularizedCE, lambda, p.x_train, p.y);
  ASSERT_NE(st, nullptr);
  auto res = RunDist(*st, p.x_query, DistributionMethod::kLinearized);
  ASSERT_TRUE(res.ok()) << res.status();
  const KernelMatrices tr = TrainKernels(k, p.x_train);
  const KernelMatrices cross = CrossKernels(k, p.x_query, p.x_train);  // M x N
  const KernelDiagonal dq = DiagonalKernels(k, p.x_query);
  const double h = 1e-4;
  std::vector<MatrixXd> jac(M, MatrixXd(C, N * C));
  for (int c = 0; c < C; ++c) {
    for (int i = 0; i < N; ++i) {
      MatrixXd fp = MatrixXd::Zero(N, C), fm = MatrixXd::Zero(N, C);
      fp(i, c) = h;
      fm(i, c) = -h;
      const MatrixXd dp = testing::DenseSolve2a(tr.ntk, p.y, fp, lambda);
      const MatrixXd dm = testing::DenseSolve2a(tr.ntk, p.y, fm, lambda);
      const MatrixXd diff = cross.ntk * (dp - dm) / (2 * h);  // M x C
      for (int j = 0; j < M; ++j) jac[j].col(c * N + i) = diff.row(j).transpose();
    }
  }
  MatrixXd kbig = MatrixXd::Zero(N * C, N * C);
  for (int c = 0; c < C; ++c) kbig.block(c * N, c * N, N, N) = tr.nngp;
  for (int j = 0; j < M; ++j) {
    MatrixXd kx = MatrixXd::Zero(N * C, C);
    for (int c = 0; c < C; ++c) kx.block(c * N, c, N, 1) = cross.nngp.row(j).transpose();
    const MatrixXd& J = jac[j];
    const MatrixXd cov = dq.nngp[j] * MatrixXd::Identity(C, C) + J * kx + kx.transpose() * J.transpose() +
                         J * kbig * J.transpose();
    const MatrixXd ref = Centering(C) * cov * Centering(C);
    EXPECT_LT((res->points[j].logit_covariance - ref).cwiseAbs().maxCoeff(), 1e-6)
        << "linearized\n" << res->points[j].logit_covariance << "\nfinite differences\n" << ref;
  }
}

// --- LINEARIZED vs MONTE_CARLO (2a) ------------------------------------------

// Where the linearization error is below the Monte Carlo error. Both
// methods give f(x) = f0(x) - e(F0) with a training correction
// e = Theta_xX (p(F*) - p(0)) / lambda (MONTE_CARLO) or its tangent at
// F0 = 0 (LINEARIZED). Since |p_a(F*) - p_a(0)| <= 1 and the tangent
// W dF* has entries <= |F0| / 2 ~ 1, either correction is at most
// delta = sum_i |Theta_xi| / lambda per class: with N = 20, Theta_xi <~ 2,
// lambda = 1000, delta <~ 0.04 logits. Their covariances then differ by at
// most 2 sd(f0(x)) delta + delta^2 <~ 0.1 (K_xx ~ 1-2), while 5 Monte
// Carlo SEs of a covariance entry, 5 sqrt(2 sigma^2 / S) with sigma ~ K_xx
// and S = 2000, are ~0.16 K_xx. So at lambda = 1000 the methods must agree
// within 5 SE, and any error of order one fails. (At lambda = 0.05 or 50
// delta is O(1) and they differ by 5-18%: MONTE_CARLO is checked there
// against explicit training below, LINEARIZED against finite differences
// above.)
TEST(DistributionLinearized, AgreesWithMonteCarloForLargeLambda) {
  const int N = 20, C = 3, M = 3, S = 2000;
  const Problem p = MakeProblem(N, 3, C, M, 0.0, 31);
  auto st = MakeState(Relu2(), Regime::kRegularizedCE, 1000.0, p.x_train, p.y);
  ASSERT_NE(st, nullptr);
  auto lin = RunDist(*st, p.x_query, DistributionMethod::kLinearized);
  auto mc = RunDist(*st, p.x_query, DistributionMethod::kMonteCarlo, S, 5);
  ASSERT_TRUE(lin.ok() && mc.ok()) << lin.status() << " " << mc.status();
  for (int j = 0; j < M; ++j) {
    const PointDistribution& l = lin->points[j];
    const PointDistribution& m = mc->points[j];
    ExpectWithinSE(m.logit_mean, m.logit_covariance, l.logit_mean, l.logit_covariance, S, 5.0, 0.0);
  }
}

// MONTE_CARLO for 2a in the nonlinear regime (lambda = 0.05, where the
// linearization is off by ~5% and no closed form exists) against the
// test's own Monte Carlo of the same definition: S_t joint prior draws
// (F0, f0(x)) from StdNormalMatrix, each trained by the dense Newton solver
// DenseSolve2a, f(x) = f0(x) + Theta_xX dual(F0), centered. The two
// estimates are independent, so each entry's difference has SE
// sqrt(var / S_mc + var / S_t), with var the per-draw variance of the
// estimated quantity (for covariance entries the variance of
// (d_a d_b), d the centered deviation) taken from the test's draws.
// Bound: 5 SE (2 points x 12 entries: false alarm ~ 1e-5).
TEST(DistributionMonteCarlo, MatchesExplicitlyTrainedInitializationsFor2a) {
  const int N = 10, C = 3, M = 2, S_mc = 500, S_t = 2000;
  const double lambda = 0.05;
  const KernelSpec k = Relu2();
  const Problem p = MakeProblem(N, 3, C, M, 0.0, 31);
  auto st = MakeState(k, Regime::kRegularizedCE, lambda, p.x_train, p.y);
  ASSERT_NE(st, nullptr);
  auto mc = RunDist(*st, p.x_query, DistributionMethod::kMonteCarlo, S_mc, 5);
  ASSERT_TRUE(mc.ok()) << mc.status();
  EXPECT_EQ(mc->method, DistributionMethod::kMonteCarlo);

  const MatrixXd theta = TrainKernels(k, p.x_train).ntk;
  const MatrixXd tq = CrossKernels(k, p.x_query, p.x_train).ntk;  // M x N
  const MatrixXd f0 = JointPriorSamples(k, p.x_train, p.x_query, S_t, C, 77);
  std::vector<MatrixXd> f(M, MatrixXd(S_t, C));
  for (int s = 0; s < S_t; ++s) {
    const MatrixXd F0 = f0.block(0, s * C, N, C);
    const MatrixXd dual = testing::DenseSolve2a(theta, p.y, F0, lambda);
    const MatrixXd fq = f0.block(N, s * C, M, C) + tq * dual;
    for (int j = 0; j < M; ++j) f[j].row(s) = fq.row(j).array() - fq.row(j).mean();
  }
  for (int j = 0; j < M; ++j) {
    SCOPED_TRACE(::testing::Message() << "query " << j);
    const VectorXd mean = f[j].colwise().mean().transpose();
    const MatrixXd d = f[j].rowwise() - mean.transpose();
    const MatrixXd cov = d.transpose() * d / S_t;
    const PointDistribution& pd = mc->points[j];
    for (int a = 0; a < C; ++a) {
      const double se_mean = std::sqrt(cov(a, a) / S_mc + cov(a, a) / S_t);
      EXPECT_NEAR(pd.logit_mean[a], mean[a], 5 * se_mean) << "mean " << a;
      for (int b = 0; b < C; ++b) {
        const VectorXd prod = d.col(a).cwiseProduct(d.col(b));
        const double var = (prod.array() - cov(a, b)).square().mean();
        const double se = std::sqrt(var / S_mc + var / S_t);
        EXPECT_NEAR(pd.logit_covariance(a, b), cov(a, b), 5 * se) << "cov " << a << "," << b;
      }
    }
  }
}

// --- Determinism, batching, errors --------------------------------------------

TEST(DistributionDeterminism, SameRequestBitIdenticalAndBatchIndependent) {
  const Problem p = MakeProblem(30, 4, 3, 6, 0.0, 41);
  auto st = MakeState(Relu2(), Regime::kRegularizedCE, 1.0, p.x_train, p.y);
  ASSERT_NE(st, nullptr);
  for (DistributionMethod m : {DistributionMethod::kLinearized, DistributionMethod::kMonteCarlo,
                               DistributionMethod::kLaplacePosterior}) {
    auto a = RunDist(*st, p.x_query, m, 200, 42);
    auto b = RunDist(*st, p.x_query, m, 200, 42);
    ASSERT_TRUE(a.ok() && b.ok());
    // A single point, and the points in reverse order.
    auto single = RunDist(*st, p.x_query.row(4), m, 200, 42);
    MatrixXd rev = p.x_query.colwise().reverse();
    auto reversed = RunDist(*st, rev, m, 200, 42);
    ASSERT_TRUE(single.ok() && reversed.ok());
    for (int j = 0; j < 6; ++j) {
      const PointDistribution &x = a->points[j], &y = b->points[j];
      EXPECT_EQ(x.logit_mean, y.logit_mean);
      EXPECT_EQ(x.logit_covariance, y.logit_covariance);
      EXPECT_EQ(x.probability_mean, y.probability_mean);
      EXPECT_EQ(x.probability_covariance, y.probability_covariance);
      EXPECT_EQ(x.expected_entropy, y.expected_entropy);
      // Batch composition changes only BLAS rounding (GEMM widths): 1e-12.
      const PointDistribution& r = reversed->points[5 - j];
      EXPECT_LT((x.probability_mean - r.probability_mean).cwiseAbs().maxCoeff(), 1e-12);
      EXPECT_LT((x.logit_covariance - r.logit_covariance).cwiseAbs().maxCoeff(), 1e-12);
      EXPECT_NEAR(x.mutual_information, r.mutual_information, 1e-12);
    }
    EXPECT_LT((a->points[4].probability_mean - single->points[0].probability_mean).cwiseAbs().maxCoeff(), 1e-12);
    // A different seed changes the sampled moments.
    auto c = RunDist(*st, p.x_query, m, 200, 43);
    ASSERT_TRUE(c.ok());
    EXPECT_NE(a->points[0].probability_mean, c->points[0].probability_mean);
  }
}

// EXACT covariances s (I - 11^T / C) have a (C-1)-fold eigenvalue: the
// sampling must use a square root that is continuous in the covariance
// (the symmetric root), or a 1e-16 change from another batch shape rotates
// every sample. The same point alone and inside a batch: within 1e-12.
TEST(DistributionDeterminism, ExactPointIndependentOfBatch) {
  const Problem p = MakeProblem(30, 4, 4, 7, 0.2, 44);
  auto st = MakeState(Relu2(), Regime::kSquared, 0.1, p.x_train, p.y);
  ASSERT_NE(st, nullptr);
  auto all = RunDist(*st, p.x_query, DistributionMethod::kExact, 500, 9);
  ASSERT_TRUE(all.ok());
  for (int j = 0; j < 7; ++j) {
    auto one = RunDist(*st, p.x_query.row(j), DistributionMethod::kExact, 500, 9);
    ASSERT_TRUE(one.ok());
    EXPECT_LT((all->points[j].probability_mean - one->points[0].probability_mean).cwiseAbs().maxCoeff(), 1e-12);
    EXPECT_LT((all->points[j].probability_covariance - one->points[0].probability_covariance).cwiseAbs().maxCoeff(),
              1e-12);
    EXPECT_NEAR(all->points[j].expected_entropy, one->points[0].expected_entropy, 1e-12);
  }
}

TEST(DistributionDeterminism, ThreadCountDoesNotChangeTheAnswer) {
  // A fresh model per thread count (MONTE_CARLO caches its solves per seed,
  // so reusing one model would compare the cache with itself). N = 300 makes
  // the 2a fit's Theta products take the parallel path of core/numerics/linalg.h
  // (N^2 > 65536), and MONTE_CARLO's 2a solves run one per thread.
  const Problem p = MakeProblem(300, 4, 3, 20, 0.0, 43);
  const int saved = omp_get_max_threads();
  std::vector<std::vector<PointDistribution>> runs;
  for (int threads : {1, 2}) {
    omp_set_num_threads(threads);
    auto st = MakeState(Relu2(), Regime::kRegularizedCE, 1.0, p.x_train, p.y);
    ASSERT_NE(st, nullptr);
    for (DistributionMethod m : {DistributionMethod::kLinearized, DistributionMethod::kMonteCarlo}) {
      auto r = RunDist(*st, p.x_query, m, m == DistributionMethod::kMonteCarlo ? 8 : 100, 1);
      ASSERT_TRUE(r.ok()) << r.status();
      runs.push_back(r->points);
    }
  }
  omp_set_num_threads(saved);
  ASSERT_EQ(runs.size(), 4u);
  for (int k = 0; k < 2; ++k) {
    for (int j = 0; j < 20; ++j) {
      EXPECT_EQ(runs[k][j].probability_mean, runs[k + 2][j].probability_mean) << k << " " << j;
      EXPECT_EQ(runs[k][j].logit_covariance, runs[k + 2][j].logit_covariance) << k << " " << j;
    }
  }
}

TEST(DistributionErrors, MethodApplicability) {
  const Problem p = MakeProblem(10, 3, 3, 2, 0.2, 51);
  auto st2a = MakeState(Relu2(), Regime::kRegularizedCE, 1.0, p.x_train, p.y);
  auto st2b = MakeState(Relu2(), Regime::kUnregularizedCE, 0.0, p.x_train, p.y);
  auto st2c = MakeState(Relu2(), Regime::kSquared, 0.0, p.x_train, p.y);
  ASSERT_TRUE(st2a && st2b && st2c);
  auto e = RunDist(*st2a, p.x_query, DistributionMethod::kExact);
  EXPECT_EQ(e.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(e.status().message().rfind("method:", 0), 0u) << e.status();
  for (auto* st : {st2b.get(), st2c.get()}) {
    auto l = RunDist(*st, p.x_query, DistributionMethod::kLaplacePosterior);
    EXPECT_EQ(l.status().code(), absl::StatusCode::kFailedPrecondition);
  }
  auto u = RunDist(*st2c, p.x_query, DistributionMethod::kUnspecified);
  ASSERT_TRUE(u.ok());
  EXPECT_EQ(u->method, DistributionMethod::kExact);
  auto neg = RunDist(*st2a, p.x_query, DistributionMethod::kLinearized, -1);
  EXPECT_EQ(neg.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(neg.status().message().rfind("num_samples:", 0), 0u);
  auto cols = RunDist(*st2a, MatrixXd::Zero(2, 4), DistributionMethod::kLinearized);
  EXPECT_EQ(cols.status().code(), absl::StatusCode::kInvalidArgument);
  auto empty = RunDist(*st2a, MatrixXd::Zero(0, 3), DistributionMethod::kLinearized);
  ASSERT_TRUE(empty.ok());
  EXPECT_TRUE(empty->points.empty());
}

TEST(DistributionErrors, BudgetAndCancellation) {
  const Problem p = MakeProblem(30, 3, 3, 2, 0.0, 52);
  auto st = MakeState(Relu2(), Regime::kRegularizedCE, 1.0, p.x_train, p.y);
  ASSERT_NE(st, nullptr);
  DistributionOptions o;
  o.method = DistributionMethod::kLinearized;
  o.max_cache_bytes = 1000;
  auto r = ComputeDistribution(*st, p.x_query, o);
  EXPECT_EQ(r.status().code(), absl::StatusCode::kResourceExhausted);
  // The streamed factor (the kept one, (C + 2) N^2 + N C, does not fit
  // either): 2 N^2 + N C + N doubles = 1800 + 90 + 30 = 1920 doubles =
  // 15360 bytes (core/distribution/linearized_solver.h LinearizedFactorBytes).
  EXPECT_NE(r.status().message().find("15360 bytes"), std::string::npos) << r.status();
  o.max_cache_bytes = 8LL << 30;
  int calls = 0;
  o.progress = [&](double, const char*) { return ++calls < 2; };
  r = ComputeDistribution(*st, p.x_query, o);
  EXPECT_EQ(r.status().code(), absl::StatusCode::kCancelled);
  // After a cancelled build the next request still works.
  o.progress = nullptr;
  r = ComputeDistribution(*st, p.x_query, o);
  EXPECT_TRUE(r.ok()) << r.status();
}

TEST(DistributionMonteCarlo, SampleSetsAreCachedPerSeed) {
  const Problem p = MakeProblem(20, 3, 3, 2, 0.0, 61);
  auto st = MakeState(Relu2(), Regime::kRegularizedCE, 1.0, p.x_train, p.y);
  ASSERT_NE(st, nullptr);
  // The factors live in the caller's DistributionCache, one entry per
  // (seed, S) beside the shared prior and Theta_XX.
  DistributionCache cache(DistributionCache::Options{});
  DistributionOptions o;
  o.method = DistributionMethod::kMonteCarlo;
  o.num_samples = 16;
  o.cache = {&cache, "m", 1};
  for (uint64_t seed : {1, 2, 3, 4, 5, 1}) {
    o.seed = seed;
    ASSERT_TRUE(ComputeDistribution(*st, p.x_query, o).ok());
  }
  for (uint64_t seed : {1, 2, 3, 4, 5}) {
    auto e = cache.Lookup({"m", 1, "mc/seed=" + std::to_string(seed) + "/S=16"});
    ASSERT_NE(e, nullptr) << seed;
    const auto* smp = dynamic_cast<const MonteCarloSamples*>(e.get());
    ASSERT_NE(smp, nullptr);
    EXPECT_EQ(smp->seed, seed);
    EXPECT_EQ(smp->num_samples, 16);
  }
  EXPECT_NE(cache.Lookup({"m", 1, "prior"}), nullptr);
  EXPECT_NE(cache.Lookup({"m", 1, "ntk_train"}), nullptr);
}

// --- End to end through FittedModel -----------------------------------------

TEST(DistributionEndToEnd, FitThenDistributionAndSerializedCopyAgree) {
  const Problem p = MakeProblem(40, 5, 3, 5, 0.0, 71);
  ModelSpec spec;
  spec.kernel = Relu2();
  spec.training.regularization = 0.5;
  TrainingData data;
  data.features = p.x_train;
  data.labels.resize(40);
  for (int i = 0; i < 40; ++i) p.y.row(i).maxCoeff(&data.labels[i]);
  auto model = FittedModel::Fit(spec, data);
  ASSERT_TRUE(model.ok()) << model.status();
  auto copy = FittedModel::Deserialize((*model)->Serialize());
  ASSERT_TRUE(copy.ok()) << copy.status();
  auto pred = (*model)->Predict(p.x_query);
  ASSERT_TRUE(pred.ok());
  for (DistributionMethod m : {DistributionMethod::kUnspecified, DistributionMethod::kMonteCarlo,
                               DistributionMethod::kLaplacePosterior}) {
    DistributionOptions o;
    o.method = m;
    o.num_samples = 64;
    o.seed = 3;
    auto a = (*model)->PredictDistribution(p.x_query, o);
    auto b = (*copy)->PredictDistribution(p.x_query, o);
    ASSERT_TRUE(a.ok() && b.ok()) << a.status() << b.status();
    EXPECT_EQ(a->method, m == DistributionMethod::kUnspecified ? DistributionMethod::kLinearized : m);
    for (int j = 0; j < 5; ++j) {
      // The loaded model rebuilds its cache from the persisted fields:
      // same code, same inputs, bit-identical.
      EXPECT_EQ(a->points[j].logit_covariance, b->points[j].logit_covariance);
      EXPECT_EQ(a->points[j].probability_mean, b->points[j].probability_mean);
      if (m != DistributionMethod::kMonteCarlo) {
        // Gaussian methods are centered on Predict's logits.
        EXPECT_LT((a->points[j].logit_mean - pred->logits.row(j).transpose()).cwiseAbs().maxCoeff(), 1e-12);
      }
    }
  }
  DistributionOptions o;
  o.method = DistributionMethod::kExact;
  EXPECT_EQ((*model)->PredictDistribution(p.x_query, o).status().code(),
            absl::StatusCode::kFailedPrecondition);
}

}  // namespace
}  // namespace ntk

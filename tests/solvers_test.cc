// Tests of core/training/solvers.h (docs/model-contract.md "2. Training objective") on kernels built by a private
// naive ReLU NTK (depth 1, sw^2 = 2, sb^2 = 0.1) so that these tests do not
// depend on core/kernels/kernel.cc.
#include "core/training/solvers.h"

#include <cmath>
#include <limits>
#include <random>

#include <Eigen/Dense>
#include <gtest/gtest.h>

#include "tests/testing/test_data.h"

namespace ntk {
namespace {

using Eigen::MatrixXd;

MatrixXd Gaussian(int rows, int cols, uint64_t seed, double scale = 1.0) {
  return testing::StdNormalMatrix(rows, cols, seed, scale);
}
using Eigen::VectorXd;

constexpr double kPi = 3.14159265358979323846;

// Depth-1 ReLU NTK (docs/model-contract.md "1. The network and its two kernels") between the rows of a and b.
MatrixXd NaiveReluNtk(const MatrixXd& a, const MatrixXd& b) {
  const double sw2 = 2.0, sb2 = 0.1;
  const double d = static_cast<double>(a.cols());
  MatrixXd out(a.rows(), b.rows());
  for (int i = 0; i < a.rows(); ++i) {
    for (int j = 0; j < b.rows(); ++j) {
      const double s11 = sw2 * a.row(i).squaredNorm() / d + sb2;
      const double s22 = sw2 * b.row(j).squaredNorm() / d + sb2;
      const double s12 = sw2 * a.row(i).dot(b.row(j)) / d + sb2;
      const double rho = std::clamp(s12 / std::sqrt(s11 * s22), -1.0, 1.0);
      const double t = std::acos(rho);
      const double e_phi = std::sqrt(s11 * s22) *
                           (std::sin(t) + (kPi - t) * std::cos(t)) / (2 * kPi);
      const double e_dphi = (kPi - t) / (2 * kPi);
      out(i, j) = (sw2 * e_phi + sb2) + sw2 * e_dphi * s12;
    }
  }
  return out;
}

// Smoothed one-hot targets of labels correlated with the first feature
// (a learnable but noisy problem).
MatrixXd SmoothedTargets(const MatrixXd& x, int c, double eps, uint64_t seed) {
  std::mt19937_64 gen(seed);
  std::uniform_int_distribution<int> coin(0, c - 1);
  MatrixXd y = MatrixXd::Constant(x.rows(), c, eps / c);
  for (int i = 0; i < x.rows(); ++i) {
    int k = static_cast<int>(std::floor((std::tanh(x(i, 0)) + 1) / 2 * c));
    k = std::clamp(k, 0, c - 1);
    if (i % 4 == 3) k = coin(gen);  // label noise
    y(i, k) += 1 - eps;
  }
  return y;
}

MatrixXd Center(const MatrixXd& f) {
  MatrixXd g = f;
  g.colwise() -= f.rowwise().mean();
  return g;
}

// RK4 integration of the function-space flow of docs/model-contract.md "2. Training objective",
//   dF/dt = -Theta (softmax(F) - Y) - lambda (F - F0)
//   df/dt = -Theta_xX (softmax(F) - Y) - lambda (f - f0)
// with step h = 1 / (||Theta||_2 / 2 + lambda): the Jacobian's eigenvalues
// are real-negative with modulus <= ||Theta||_2 * max||W_i|| + lambda and
// max||W_i|| <= 1/2, so h |eig| <= 1, well inside RK4's stability interval
// (-2.78, 0]. Runs until ||dF/dt||_inf < stop or max_steps.
struct FlowResult {
  MatrixXd f_train, f_query;
  double final_speed;
};
FlowResult IntegrateFlow(const MatrixXd& theta, const MatrixXd& theta_qx,
                         const MatrixXd& y, const MatrixXd& f0,
                         const MatrixXd& f0q, double lambda, double stop,
                         long max_steps) {
  Eigen::SelfAdjointEigenSolver<MatrixXd> es(theta, Eigen::EigenvaluesOnly);
  const double h = 1.0 / (es.eigenvalues().maxCoeff() / 2 + lambda);
  auto rhs = [&](const MatrixXd& f, const MatrixXd& fq, MatrixXd* df,
                 MatrixXd* dfq) {
    const MatrixXd g = RowSoftmax(f) - y;
    *df = -theta * g - lambda * (f - f0);
    *dfq = -theta_qx * g - lambda * (fq - f0q);
  };
  MatrixXd f = f0, fq = f0q;
  MatrixXd k1, k2, k3, k4, q1, q2, q3, q4;
  double speed = 0;
  for (long s = 0; s < max_steps; ++s) {
    rhs(f, fq, &k1, &q1);
    speed = k1.cwiseAbs().maxCoeff();
    if (speed < stop) break;
    rhs(f + h / 2 * k1, fq + h / 2 * q1, &k2, &q2);
    rhs(f + h / 2 * k2, fq + h / 2 * q2, &k3, &q3);
    rhs(f + h * k3, fq + h * q3, &k4, &q4);
    f += h / 6 * (k1 + 2 * k2 + 2 * k3 + k4);
    fq += h / 6 * (q1 + 2 * q2 + 2 * q3 + q4);
  }
  return {f, fq, speed};
}

// ---------------------------------------------------------------- 2a

struct Case2a {
  int n, c;
  double lambda;
};

class FixedPoint2a : public ::testing::TestWithParam<Case2a> {};

TEST_P(FixedPoint2a, ResidualAtMachinePrecision) {
  const Case2a k = GetParam();
  const MatrixXd x = Gaussian(k.n, 6, 100 + k.n + k.c);
  const MatrixXd theta = NaiveReluNtk(x, x);
  const MatrixXd y = SmoothedTargets(x, k.c, 0.05, 7);
  const MatrixXd f0 = Gaussian(k.n, k.c, 9, 0.7);  // F0 != 0
  absl::StatusOr<SolverSolution> s = SolveRegularizedCE(theta, y, f0, k.lambda);
  ASSERT_TRUE(s.ok()) << s.status();
  // Recompute the residual here, independently of the solver's report.
  const MatrixXd p = RowSoftmax(s->logits);
  const MatrixXd r = s->logits - f0 - theta * (y - p) / k.lambda;
  const double scale = std::max(1.0, s->logits.cwiseAbs().maxCoeff());
  // 1e-12 relative is the solver's default target (FitOptions.tolerance).
  // For small lambda the dual is large and the rounding floor of evaluating
  // Theta * dual, sqrt(N) eps max_i sum_j |Theta_ij| |dual_ij|, can exceed
  // it; the solver then stops at that floor (allow 4x it).
  const MatrixXd abs_prod = theta.cwiseAbs() * s->dual.cwiseAbs();
  const double floor = 4 * std::sqrt(double(k.n)) *
                       std::numeric_limits<double>::epsilon() * abs_prod.maxCoeff();
  EXPECT_LE(r.cwiseAbs().maxCoeff() / scale, std::max(1e-12, floor / scale))
      << "n=" << k.n << " c=" << k.c << " lambda=" << k.lambda
      << " newton=" << s->info.newton_iterations << " cg=" << s->info.cg_iterations;
  EXPECT_NEAR(s->info.fixed_point_residual, r.cwiseAbs().maxCoeff(),
              1e-14 * scale * k.n);
  // dual is exactly (Y - softmax(F*)) / lambda.
  EXPECT_LE((s->dual - (y - p) / k.lambda).cwiseAbs().maxCoeff(),
            1e-15 / k.lambda * 4);
  EXPECT_GT(s->info.newton_iterations, 0);
  EXPECT_LE(s->info.newton_iterations, 40);
}

INSTANTIATE_TEST_SUITE_P(
    Lambdas, FixedPoint2a,
    ::testing::Values(Case2a{80, 2, 1e-3}, Case2a{80, 2, 1.0},
                      Case2a{120, 3, 1e-2}, Case2a{120, 5, 0.1},
                      Case2a{150, 10, 1e-3}, Case2a{150, 10, 1.0},
                      Case2a{200, 7, 10.0}, Case2a{60, 4, 100.0}));

TEST(Solver2a, EqualsIntegratedFlow) {
  const int n = 30, c = 3, m = 5;
  const double lambda = 0.5;
  const MatrixXd x = Gaussian(n, 4, 21);
  const MatrixXd xq = Gaussian(m, 4, 22);
  const MatrixXd theta = NaiveReluNtk(x, x);
  const MatrixXd theta_qx = NaiveReluNtk(xq, x);
  const MatrixXd y = SmoothedTargets(x, c, 0.0, 3);  // hard labels: fine for lambda > 0
  const MatrixXd f0 = Gaussian(n, c, 23, 0.5);
  const MatrixXd f0q = Gaussian(m, c, 24, 0.5);
  absl::StatusOr<SolverSolution> s = SolveRegularizedCE(theta, y, f0, lambda);
  ASSERT_TRUE(s.ok()) << s.status();
  // The flow contracts at rate >= lambda, so ||dF/dt|| < 1e-12 means
  // ||F - F*|| <~ 1e-12 / lambda.
  const FlowResult flow =
      IntegrateFlow(theta, theta_qx, y, f0, f0q, lambda, 1e-12, 2000000);
  ASSERT_LT(flow.final_speed, 1e-12);
  EXPECT_LE((flow.f_train - s->logits).cwiseAbs().maxCoeff(), 1e-10);
  const MatrixXd pred = f0q + theta_qx * s->dual;
  EXPECT_LE((flow.f_query - pred).cwiseAbs().maxCoeff(), 1e-10);
}

TEST(Solver2a, WarmStartAndFarStartConverge) {
  const int n = 100, c = 4;
  const MatrixXd x = Gaussian(n, 5, 31);
  const MatrixXd theta = NaiveReluNtk(x, x);
  const MatrixXd y = SmoothedTargets(x, c, 0.0, 4);
  const MatrixXd f0 = Gaussian(n, c, 32, 1.0);
  absl::StatusOr<SolverSolution> cold = SolveRegularizedCE(theta, y, f0, 0.05);
  ASSERT_TRUE(cold.ok()) << cold.status();
  // Warm start from the solution of a nearby problem (different F0).
  const MatrixXd f0b = f0 + 0.1 * Gaussian(n, c, 33, 1.0);
  RegularizedCEOptions warm_opt;
  warm_opt.warm_start_dual = &cold->dual;
  absl::StatusOr<SolverSolution> warm = SolveRegularizedCE(theta, y, f0b, 0.05, warm_opt);
  absl::StatusOr<SolverSolution> coldb = SolveRegularizedCE(theta, y, f0b, 0.05);
  ASSERT_TRUE(warm.ok() && coldb.ok());
  EXPECT_LE(warm->info.newton_iterations, coldb->info.newton_iterations);
  // Both solve the same strictly convex problem: same minimizer, up to the
  // 1e-12 relative residual amplified by the conditioning of the Newton map.
  EXPECT_LE((warm->logits - coldb->logits).cwiseAbs().maxCoeff(), 1e-9);
  // A start far away (huge dual) still converges thanks to the line search.
  const MatrixXd far = 1e3 * Gaussian(n, c, 34, 1.0);
  RegularizedCEOptions far_opt;
  far_opt.warm_start_dual = &far;
  absl::StatusOr<SolverSolution> from_far = SolveRegularizedCE(theta, y, f0b, 0.05, far_opt);
  ASSERT_TRUE(from_far.ok()) << from_far.status();
  EXPECT_LE((from_far->logits - coldb->logits).cwiseAbs().maxCoeff(), 1e-9);
}

TEST(Solver2a, PrecomputedEigenbasisAndRankZero) {
  const int n = 120, c = 5;
  const MatrixXd x = Gaussian(n, 6, 35);
  const MatrixXd theta = NaiveReluNtk(x, x);
  const MatrixXd y = SmoothedTargets(x, c, 0.0, 6);
  const MatrixXd f0 = Gaussian(n, c, 36, 0.5);
  absl::StatusOr<SolverSolution> own = SolveRegularizedCE(theta, y, f0, 0.01);
  const ThetaEigenbasis basis = ComputeThetaEigenbasis(theta, 32);
  ASSERT_EQ(basis.vectors.cols(), 32);
  // Orthonormal columns and Rayleigh quotients equal to the values.
  EXPECT_LE((basis.vectors.transpose() * basis.vectors - MatrixXd::Identity(32, 32))
                .cwiseAbs().maxCoeff(), 1e-12);
  RegularizedCEOptions with_basis;
  with_basis.eigenbasis = &basis;
  absl::StatusOr<SolverSolution> given = SolveRegularizedCE(theta, y, f0, 0.01, with_basis);
  RegularizedCEOptions jacobi;
  jacobi.preconditioner_rank = 0;
  absl::StatusOr<SolverSolution> plain = SolveRegularizedCE(theta, y, f0, 0.01, jacobi);
  ASSERT_TRUE(own.ok() && given.ok() && plain.ok());
  // Same computation, same seed: identical.
  EXPECT_EQ(own->logits, given->logits);
  EXPECT_EQ(own->info.cg_iterations, given->info.cg_iterations);
  // The preconditioner changes the path, not the answer (tolerance: two
  // 1e-12-residual solutions of one strictly convex problem).
  EXPECT_LE((plain->logits - own->logits).cwiseAbs().maxCoeff(), 1e-9);
  // ... and it saves CG iterations.
  EXPECT_LT(own->info.cg_iterations, plain->info.cg_iterations);
}

TEST(Solver2a, Cancel) {
  const MatrixXd x = Gaussian(50, 3, 41);
  const MatrixXd theta = NaiveReluNtk(x, x);
  const MatrixXd y = SmoothedTargets(x, 3, 0.0, 5);
  RegularizedCEOptions opt;
  int calls = 0;
  opt.progress = [&](double, const char*) { return ++calls < 2; };
  absl::StatusOr<SolverSolution> s = SolveRegularizedCE(theta, y, {}, 0.1, opt);
  EXPECT_EQ(s.status().code(), absl::StatusCode::kCancelled);
  EXPECT_EQ(calls, 2);
}

TEST(Solver2a, RejectsBadLambdaAndShapes) {
  const MatrixXd theta = MatrixXd::Identity(4, 4);
  const MatrixXd y = MatrixXd::Constant(4, 2, 0.5);
  EXPECT_EQ(SolveRegularizedCE(theta, y, {}, 0.0).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(SolveRegularizedCE(theta, y, MatrixXd::Zero(3, 2), 1.0).status().code(),
            absl::StatusCode::kInvalidArgument);
}

// ---------------------------------------------------------------- 2b

TEST(Solver2b, SoftmaxOfTrainLogitsIsTargetsAndPredictionIsFormula) {
  const int n = 60, c = 4, m = 7;
  const MatrixXd x = Gaussian(n, 8, 51);
  const MatrixXd xq = Gaussian(m, 8, 52);
  const MatrixXd theta = NaiveReluNtk(x, x);
  const MatrixXd theta_qx = NaiveReluNtk(xq, x);
  const MatrixXd y = SmoothedTargets(x, c, 0.1, 6);
  const MatrixXd f0 = Gaussian(n, c, 53, 0.3);
  absl::StatusOr<SolverSolution> s = SolveUnregularizedCE(theta, y, f0);
  ASSERT_TRUE(s.ok()) << s.status();
  const double mean_diag = theta.diagonal().mean();
  EXPECT_DOUBLE_EQ(s->info.jitter, kRelativeJitter * mean_diag);
  // Independent reference: eigen-decomposition of Theta.
  Eigen::SelfAdjointEigenSolver<MatrixXd> es(theta);
  const VectorXd ev = es.eigenvalues();
  const double cond = ev.maxCoeff() / ev.minCoeff();
  // The estimate is dpocon's 1-norm condition number of Theta + jitter I:
  // a lower bound on the exact ||A||_1 ||A^{-1}||_1 (computed here from an
  // explicit inverse), and Hager/Higham's estimator is rarely more than 3x
  // low (Higham, "Accuracy and Stability of Numerical Algorithms", 15.3).
  MatrixXd a = theta;
  a.diagonal().array() += s->info.jitter;
  const double cond1 = a.cwiseAbs().colwise().sum().maxCoeff() *
                       a.inverse().cwiseAbs().colwise().sum().maxCoeff();
  EXPECT_LE(s->info.condition_estimate, cond1 * (1 + 1e-6));
  EXPECT_GE(s->info.condition_estimate, cond1 / 3);
  // Exact: Theta dual = log Y - F0 - jitter dual, so the train logits differ
  // from log Y by jitter * |dual| <= jitter * ||Theta^-1|| * ||log Y - F0||
  // (the jitter's own effect), plus rounding cond * eps.
  const MatrixXd rhs = y.array().log().matrix() - f0;
  const double tol_train =
      s->info.jitter * rhs.cwiseAbs().maxCoeff() * n / ev.minCoeff() + cond * 1e-14;
  const MatrixXd softmax_train = RowSoftmax(s->logits);
  EXPECT_LE((softmax_train - y).cwiseAbs().maxCoeff(), tol_train);
  // Prediction == f0(x) + Theta_xX Theta^{-1} (log Y - F0), with Theta^{-1}
  // from the eigen-decomposition (no jitter); same tolerance origin.
  const MatrixXd dual_ref =
      es.eigenvectors() * (ev.cwiseInverse().asDiagonal() * (es.eigenvectors().transpose() * rhs));
  const MatrixXd pred = theta_qx * s->dual;
  const MatrixXd pred_ref = theta_qx * dual_ref;
  EXPECT_LE((pred - pred_ref).cwiseAbs().maxCoeff(),
            tol_train * theta_qx.cwiseAbs().rowwise().sum().maxCoeff());
  EXPECT_LE(s->info.relative_residual, 1e-12);
}

TEST(Solver2b, EqualsLongFlow) {
  // Small N and near-orthogonal points in d = 40 make Theta well conditioned
  // (cond ~ 3), and eps = 0.3 keeps the smallest nonzero eigenvalue of W at
  // the fixed point >= min y ~ 0.1, so every mode (except the per-point
  // constant, which softmax ignores) contracts at a rate >= ~0.1 * lambda_min(Theta).
  const int n = 8, c = 3, m = 3;
  const MatrixXd x = Gaussian(n, 40, 61);
  const MatrixXd xq = Gaussian(m, 40, 62);
  const MatrixXd theta = NaiveReluNtk(x, x);
  const MatrixXd theta_qx = NaiveReluNtk(xq, x);
  const MatrixXd y = SmoothedTargets(x, c, 0.3, 7);
  const MatrixXd f0 = Gaussian(n, c, 63, 0.3);
  const MatrixXd f0q = Gaussian(m, c, 64, 0.3);
  absl::StatusOr<SolverSolution> s = SolveUnregularizedCE(theta, y, f0);
  ASSERT_TRUE(s.ok()) << s.status();
  const FlowResult flow =
      IntegrateFlow(theta, theta_qx, y, f0, f0q, 0.0, 1e-13, 5000000);
  ASSERT_LT(flow.final_speed, 1e-13);
  // Tolerance: ||dF/dt|| < 1e-13 with a contraction rate >~ 0.01 leaves
  // ||F - F_inf|| <~ 1e-11; the jitter moves the 2b answer by ~1e-10 *
  // mean diag * |dual| ~ 1e-10. So 1e-8 has two orders of slack.
  EXPECT_LE((Center(flow.f_train) - Center(s->logits)).cwiseAbs().maxCoeff(), 1e-8);
  EXPECT_LE((Center(flow.f_query) - Center(f0q + theta_qx * s->dual)).cwiseAbs().maxCoeff(),
            1e-8);
}

TEST(Solver2b, RefusesZeroTargetsAndSurvivesDuplicates) {
  MatrixXd x = Gaussian(10, 3, 71);
  x.row(9) = x.row(2);  // duplicate point with different targets
  const MatrixXd theta = NaiveReluNtk(x, x);
  MatrixXd y = SmoothedTargets(x, 3, 0.2, 8);
  y.row(9) = y.row(2).reverse();
  absl::StatusOr<SolverSolution> s = SolveUnregularizedCE(theta, y, {});
  ASSERT_TRUE(s.ok()) << s.status();  // held together by the jitter only
  EXPECT_GT(s->info.condition_estimate, 1e6);
  EXPECT_TRUE(s->logits.allFinite());
  y(0, 0) = 0;
  y(0, 1) += 0.5 * y(0, 0);
  EXPECT_EQ(SolveUnregularizedCE(theta, y, {}).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(Solver2b, JitterGrowsForSingularKernel) {
  // Rank-1 PSD matrix with rounding-level negative eigenvalues: the first
  // Cholesky attempt may fail; whatever jitter is used must be reported
  // and the result finite.
  const VectorXd v = Gaussian(30, 1, 81).col(0);
  MatrixXd theta = v * v.transpose();
  const MatrixXd y = MatrixXd::Constant(30, 2, 0.5);
  absl::StatusOr<SolverSolution> s = SolveUnregularizedCE(theta, y, {});
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_GE(s->info.jitter, kRelativeJitter * theta.diagonal().mean());
  EXPECT_TRUE(s->dual.allFinite());
  // Cholesky solves are backward stable: relative residual <~ N eps cond.
  EXPECT_LE(s->info.relative_residual,
            30 * std::numeric_limits<double>::epsilon() * s->info.condition_estimate);
}

// ---------------------------------------------------------------- 2c

TEST(Solver2c, Formula) {
  const int n = 50, c = 3;
  const MatrixXd x = Gaussian(n, 5, 91);
  const MatrixXd theta = NaiveReluNtk(x, x);
  const MatrixXd y = SmoothedTargets(x, c, 0.0, 9);
  const MatrixXd f0 = Gaussian(n, c, 92, 0.2);
  for (double lambda : {0.0, 1e-3, 0.5}) {
    absl::StatusOr<SolverSolution> s = SolveSquared(theta, y, f0, lambda);
    ASSERT_TRUE(s.ok()) << s.status();
    const double shift = lambda + s->info.jitter;
    if (lambda > 0) {
      EXPECT_EQ(s->info.jitter, 0.0);
    }
    MatrixXd a = theta;
    a.diagonal().array() += shift;
    const MatrixXd ref = a.colPivHouseholderQr().solve(y - f0);
    // QR vs Cholesky: both backward stable, so they agree to ~cond * eps.
    const double cond = s->info.condition_estimate;
    EXPECT_LE((s->dual - ref).cwiseAbs().maxCoeff(),
              cond * 1e-14 * std::max(1.0, ref.cwiseAbs().maxCoeff()))
        << "lambda=" << lambda;
    EXPECT_LE((s->logits - (f0 + theta * s->dual)).cwiseAbs().maxCoeff(), 1e-12);
  }
  EXPECT_EQ(SolveSquared(theta, y, f0, -1.0).status().code(),
            absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace ntk

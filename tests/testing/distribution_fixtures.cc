#include "tests/testing/distribution_fixtures.h"

#include <algorithm>
#include <cmath>

#include <gtest/gtest.h>

#include "core/numerics/random.h"
#include "core/kernels/kernel.h"
#include "core/training/solvers.h"

namespace ntk::testing {

KernelSpec Relu2() {
  KernelSpec k;
  k.activation = Activation::kRelu;
  k.depth = 2;
  k.weight_variance = 2.0;
  k.bias_variance = 0.1;
  return k;
}

void ExpectWithinSE(const Eigen::VectorXd& mean, const Eigen::MatrixXd& cov,
                    const Eigen::VectorXd& mu, const Eigen::MatrixXd& sigma, int S,
                    double k, double abs) {
  const Eigen::Index C = mu.size();
  for (Eigen::Index a = 0; a < C; ++a) {
    EXPECT_NEAR(mean[a], mu[a], k * std::sqrt(sigma(a, a) / S) + abs) << "mean " << a;
    for (Eigen::Index b = 0; b < C; ++b) {
      const double se =
          std::sqrt((sigma(a, a) * sigma(b, b) + sigma(a, b) * sigma(a, b)) / S);
      EXPECT_NEAR(cov(a, b), sigma(a, b), k * se + abs) << "cov " << a << "," << b;
    }
  }
}

Eigen::MatrixXd RandomFeatures(int n, int d, uint64_t seed) {
  NormalStream s(seed);
  Eigen::MatrixXd x(n, d);
  for (int i = 0; i < n; ++i) {
    for (int j = 0; j < d; ++j) x(i, j) = s.Next();
  }
  return x;
}

Eigen::MatrixXd RandomTargets(const Eigen::MatrixXd& x, int num_classes,
                              double eps, uint64_t seed) {
  Eigen::MatrixXd w = RandomFeatures(static_cast<int>(x.cols()), num_classes, seed);
  Eigen::MatrixXd scores = x * w;
  Eigen::MatrixXd y =
      Eigen::MatrixXd::Constant(x.rows(), num_classes, eps / num_classes);
  for (Eigen::Index i = 0; i < x.rows(); ++i) {
    Eigen::Index k;
    scores.row(i).maxCoeff(&k);
    y(i, k) += 1.0 - eps;
  }
  return y;
}

Eigen::MatrixXd DenseSolve2a(const Eigen::MatrixXd& theta, const Eigen::MatrixXd& y,
                             const Eigen::MatrixXd& f0_in, double lambda,
                             Eigen::MatrixXd* logits) {
  const Eigen::Index N = y.rows(), C = y.cols();
  const Eigen::MatrixXd f0 = f0_in.size() ? f0_in : Eigen::MatrixXd::Zero(N, C);
  auto residual = [&](const Eigen::MatrixXd& f) {
    return Eigen::MatrixXd(f - f0 - theta * (y - RowSoftmax(f)) / lambda);
  };
  Eigen::MatrixXd f = f0;
  Eigen::MatrixXd g = residual(f);
  for (int it = 0; it < 200; ++it) {
    if (g.cwiseAbs().maxCoeff() <= 1e-13 * std::max(1.0, f.cwiseAbs().maxCoeff())) break;
    const Eigen::MatrixXd p = RowSoftmax(f);
    // Class-major index c * N + i.
    Eigen::MatrixXd jac = Eigen::MatrixXd::Identity(N * C, N * C);
    for (Eigen::Index a = 0; a < C; ++a) {
      for (Eigen::Index b = 0; b < C; ++b) {
        // d(theta (Y - p))_a / dF_b = -theta diag(dp_a / dF_b).
        for (Eigen::Index k = 0; k < N; ++k) {
          const double w = (a == b ? p(k, a) : 0.0) - p(k, a) * p(k, b);
          jac.block(a * N, b * N + k, N, 1) += theta.col(k) * w / lambda;
        }
      }
    }
    Eigen::VectorXd gv = Eigen::Map<const Eigen::VectorXd>(g.data(), N * C);
    Eigen::VectorXd step = jac.partialPivLu().solve(gv);
    Eigen::MatrixXd dir = Eigen::Map<Eigen::MatrixXd>(step.data(), N, C);
    double t = 1;
    const double g0 = g.norm();
    for (int ls = 0; ls < 40; ++ls, t *= 0.5) {
      Eigen::MatrixXd gt = residual(f - t * dir);
      if (gt.norm() < g0 || ls == 39) {
        f -= t * dir;
        g = gt;
        break;
      }
    }
  }
  EXPECT_LE(g.cwiseAbs().maxCoeff(), 1e-13 * std::max(1.0, f.cwiseAbs().maxCoeff()))
      << "DenseSolve2a did not converge";
  if (logits) *logits = f;
  return (y - RowSoftmax(f)) / lambda;
}

std::unique_ptr<FittedModel::State> MakeState(const KernelSpec& kernel,
                                              Regime regime, double lambda,
                                              const Eigen::MatrixXd& x,
                                              const Eigen::MatrixXd& y,
                                              const Eigen::MatrixXd& f0) {
  auto state = std::make_unique<FittedModel::State>();
  TrainingProblem& problem = state->problem;
  problem.spec.kernel = kernel;
  problem.spec.training.loss =
      regime == Regime::kSquared ? Loss::kSquared : Loss::kCrossEntropy;
  problem.spec.training.regularization = lambda;
  problem.spec.training.label_smoothing = 0.0;
  problem.spec.num_classes = static_cast<int>(y.cols());
  problem.regime = regime;
  problem.regime_reason = "test fixture";
  problem.lambda = lambda;
  problem.label_smoothing = 0.0;
  problem.num_classes = static_cast<int>(y.cols());
  problem.targets = y;
  state->preprocessor.spec = problem.spec.preprocessing;
  state->x_train = x;
  state->x_train_sq_norms = x.rowwise().squaredNorm();
  state->initial_train_outputs = f0;
  const Eigen::MatrixXd theta = TrainKernels(kernel, x).ntk;
  absl::StatusOr<SolverSolution> sol;
  switch (regime) {
    case Regime::kRegularizedCE:
      if (x.rows() * y.cols() <= 600) {
        SolverSolution s;
        s.dual = DenseSolve2a(theta, y, f0, lambda, &s.logits);
        sol = std::move(s);
      } else {
        sol = SolveRegularizedCE(theta, y, f0, lambda);
      }
      break;
    case Regime::kUnregularizedCE:
      sol = SolveUnregularizedCE(theta, y, f0);
      break;
    case Regime::kSquared:
      sol = SolveSquared(theta, y, f0, lambda);
      break;
  }
  if (!sol.ok()) {
    ADD_FAILURE() << "solver: " << sol.status();
    return nullptr;
  }
  state->train_logits = sol->logits;
  state->dual = sol->dual;
  state->stats.jitter = sol->info.jitter;
  state->stats.condition_estimate = sol->info.condition_estimate;
  state->stats.fixed_point_residual = sol->info.fixed_point_residual;
  return state;
}

}  // namespace ntk::testing

#include "tests/testing/distribution_fixtures.h"

#include <gtest/gtest.h>

#include "core/distribution_sampling.h"
#include "core/kernel.h"
#include "core/solvers.h"

namespace ntk::testing {

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

std::unique_ptr<FittedModel::State> MakeState(const KernelSpec& kernel,
                                              Regime regime, double lambda,
                                              const Eigen::MatrixXd& x,
                                              const Eigen::MatrixXd& y,
                                              const Eigen::MatrixXd& f0) {
  auto state = std::make_unique<FittedModel::State>();
  state->resolved.spec.kernel = kernel;
  state->resolved.spec.training.loss =
      regime == Regime::kSquared ? Loss::kSquared : Loss::kCrossEntropy;
  state->resolved.spec.training.regularization = lambda;
  state->resolved.spec.training.label_smoothing = 0.0;
  state->resolved.spec.num_classes = static_cast<int>(y.cols());
  state->resolved.regime = regime;
  state->resolved.lambda = lambda;
  state->resolved.label_smoothing = 0.0;
  state->resolved.num_classes = static_cast<int>(y.cols());
  state->preprocessor.spec = state->resolved.spec.preprocessing;
  state->x_train = x;
  state->targets = y;
  state->initial_train_outputs = f0;
  const Eigen::MatrixXd theta = TrainKernels(kernel, x).ntk;
  absl::StatusOr<SolverSolution> sol;
  switch (regime) {
    case Regime::kRegularizedCE:
      sol = SolveRegularizedCE(theta, y, f0, lambda);
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

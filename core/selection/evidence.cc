// ntk/core/selection/evidence.cc: the Laplace evidence (evidence.h,
// docs/model-contract.md "7. Model selection").
#include "core/selection/evidence.h"

#include <cmath>

#include "absl/strings/str_format.h"
#include "core/distribution/linearized_solver.h"
#include "core/training/solvers.h"

namespace ntk {

absl::StatusOr<LaplaceEvidence> ComputeLaplaceEvidence(const TrainingProblem& problem,
                                                       const Eigen::MatrixXd& theta,
                                                       const Eigen::MatrixXd& dual,
                                                       const ProgressFn& progress) {
  if (problem.regime != Regime::kRegularizedCE) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "laplace evidence: needs regime 2a (cross-entropy, lambda > 0), got %s",
        RegimeName(problem.regime)));
  }
  const Eigen::MatrixXd& y = problem.targets;
  if (!(y.array() == 0.0 || y.array() == 1.0).all()) {
    return absl::InvalidArgumentError(
        "laplace evidence: needs one-hot targets (hard labels, label_smoothing 0): the "
        "categorical likelihood");
  }
  const Eigen::Index n = y.rows();
  if (theta.rows() != n || theta.cols() != n || dual.rows() != n || dual.cols() != y.cols()) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "laplace evidence: theta must be %d x %d and dual %d x %d, got %d x %d and %d x %d", n,
        n, n, y.cols(), theta.rows(), theta.cols(), dual.rows(), dual.cols()));
  }
  const Eigen::MatrixXd f = theta * dual;  // F* (F0 = 0)
  const Eigen::MatrixXd p = RowSoftmax(f);
  LaplaceEvidence e;
  // log p_{i, y_i} from the logits (log-sum-exp), not from p, so that a
  // confident row costs no precision.
  for (Eigen::Index i = 0; i < n; ++i) {
    const double top = f.row(i).maxCoeff();
    const double lse = top + std::log((f.row(i).array() - top).exp().sum());
    Eigen::Index label = 0;
    y.row(i).maxCoeff(&label);
    e.log_likelihood += f(i, label) - lse;
  }
  e.log_prior = -0.5 * problem.lambda * dual.cwiseProduct(f).sum();
  absl::StatusOr<double> log_det = LaplaceLogDet(theta, p, problem.lambda, progress);
  if (!log_det.ok()) return log_det.status();
  e.log_det = *log_det;
  e.log_evidence = e.log_likelihood + e.log_prior - 0.5 * e.log_det;
  return e;
}

}  // namespace ntk

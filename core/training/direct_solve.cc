// ntk/core/training/direct_solve.cc: the direct solves of
// docs/model-contract.md "2b. Unregularized" and "2c. Squared loss": one
// Cholesky of Theta + (lambda + jitter) I with the jitter policy of
// problem.h. See solvers.h.
#include <algorithm>
#include <cmath>
#include <utility>

#include "absl/strings/str_cat.h"
#include "core/training/solver_util.h"
#include "core/training/solvers.h"

namespace ntk {

using Eigen::Index;
using Eigen::MatrixXd;
using solver_internal::CheckShapes;
using solver_internal::InfNorm;

namespace {

// Solves (Theta + shift I) dual = rhs by Cholesky with the jitter policy of
// problem.h (JitterPolicy). `base_shift` is lambda (2c) or 0 (2b).
absl::StatusOr<SolverSolution> SolveShifted(const MatrixXd& theta,
                                            const MatrixXd& rhs,
                                            const MatrixXd& f0,
                                            double base_shift,
                                            const ProgressFn& progress,
                                            const JitterPolicy& policy,
                                            bool keep_factor) {
  const Index n = theta.rows();
  absl::StatusOr<solver_internal::FactoredSolve> solved = solver_internal::FactorAndSolve(
      [&theta](double shift, MatrixXd* a) {
        *a = theta;
        a->diagonal().array() += shift;
      },
      base_shift, solver_internal::JitterScale(theta), policy, progress, "the training NTK",
      rhs);
  if (!solved.ok()) return solved.status();
  SolverSolution sol;
  sol.info.jitter = solved->jitter;
  sol.dual = std::move(solved->solution);
  // Residual of the linear system with the matrix actually factored.
  MatrixXd theta_dual(n, rhs.cols());
  theta_dual.noalias() = theta * sol.dual;
  const double shift = base_shift + solved->jitter;
  sol.info.fixed_point_residual = InfNorm(theta_dual + shift * sol.dual - rhs);
  sol.info.relative_residual =
      sol.info.fixed_point_residual / std::max(1.0, InfNorm(rhs));
  sol.logits = theta_dual;
  if (f0.size() != 0) sol.logits += f0;
  // Condition estimate (see solvers.h): from the factor, O(N^2), not
  // another pass of O(N^3) work.
  if (n > 0) {
    sol.info.condition_estimate = solver_internal::ConditionEstimate(solved->factor, solved->anorm);
  }
  if (keep_factor) sol.cholesky_factor = std::move(solved->factor);
  return sol;
}

}  // namespace

absl::StatusOr<SolverSolution> SolveUnregularizedCE(const Eigen::MatrixXd& theta,
                                                    const Eigen::MatrixXd& y,
                                                    const Eigen::MatrixXd& f0,
                                                    const ProgressFn& progress,
                                                    const JitterPolicy& jitter,
                                                    bool keep_factor) {
  if (absl::Status s = CheckShapes(theta, y, f0); !s.ok()) return s;
  absl::StatusOr<MatrixXd> rhs = solver_internal::DirectRhs(Regime::kUnregularizedCE, y, f0);
  if (!rhs.ok()) return rhs.status();
  return SolveShifted(theta, *rhs, f0, 0.0, progress, jitter, keep_factor);
}

absl::StatusOr<SolverSolution> SolveSquared(const Eigen::MatrixXd& theta,
                                            const Eigen::MatrixXd& y,
                                            const Eigen::MatrixXd& f0,
                                            double lambda,
                                            const ProgressFn& progress,
                                            const JitterPolicy& jitter,
                                            bool keep_factor) {
  if (absl::Status s = CheckShapes(theta, y, f0); !s.ok()) return s;
  if (!(lambda >= 0) || !std::isfinite(lambda)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "spec.training.regularization: must be a finite number >= 0, got ", lambda));
  }
  absl::StatusOr<MatrixXd> rhs = solver_internal::DirectRhs(Regime::kSquared, y, f0);
  if (!rhs.ok()) return rhs.status();
  return SolveShifted(theta, *rhs, f0, lambda, progress, jitter, keep_factor);
}

}  // namespace ntk

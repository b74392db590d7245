// ntk/core/training/direct_solve.cc: the direct solves of
// docs/model-contract.md "2b. Unregularized" and "2c. Squared loss": one
// Cholesky of Theta + (lambda + jitter) I with the jitter policy of
// problem.h. See solvers.h.
#include <algorithm>
#include <cmath>
#include <limits>

#include <Eigen/Cholesky>
#include <lapacke.h>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "core/numerics/cholesky.h"
#include "core/training/solver_util.h"
#include "core/training/solvers.h"

namespace ntk {

using Eigen::Index;
using Eigen::MatrixXd;
using solver_internal::CheckShapes;
using solver_internal::FactorWithJitter;
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
  const double scale = solver_internal::JitterScale(theta);
  MatrixXd factor(n, n);
  double anorm = 0;  // ||Theta + shift I||_1, for the condition estimate
  const absl::StatusOr<double> jittered = FactorWithJitter(
      [&theta](double shift, MatrixXd* a) {
        *a = theta;
        a->diagonal().array() += shift;
      },
      base_shift, scale, policy, progress, "the training NTK", &factor, &anorm);
  if (!jittered.ok()) return jittered.status();
  const double jitter = *jittered;
  // `factor` now holds L (lower triangle; strict upper triangle zero).
  absl::StatusOr<MatrixXd> dual = solver_internal::SolveFactored(factor, rhs, progress);
  if (!dual.ok()) return dual.status();
  SolverSolution sol;
  sol.info.jitter = jitter;
  sol.dual = *std::move(dual);
  // Residual of the linear system with the matrix actually factored.
  MatrixXd theta_dual(n, rhs.cols());
  theta_dual.noalias() = theta * sol.dual;
  const double shift = base_shift + jitter;
  sol.info.fixed_point_residual = InfNorm(theta_dual + shift * sol.dual - rhs);
  sol.info.relative_residual =
      sol.info.fixed_point_residual / std::max(1.0, InfNorm(rhs));
  sol.logits = theta_dual;
  if (f0.size() != 0) sol.logits += f0;
  // Condition estimate (see solvers.h): LAPACK dpocon from the factor,
  // O(N^2) (a few triangular solves), not another pass of O(N^3) work.
  if (n > 0) {
    double rcond = 0;
    const lapack_int info = LAPACKE_dpocon(
        LAPACK_COL_MAJOR, 'L', static_cast<lapack_int>(n), factor.data(),
        static_cast<lapack_int>(factor.outerStride()), anorm, &rcond);
    sol.info.condition_estimate =
        info == 0 && rcond > 0 ? 1.0 / rcond : std::numeric_limits<double>::infinity();
  }
  if (keep_factor) sol.cholesky_factor = std::move(factor);
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
  if (!(y.array() > 0).all()) {
    return absl::InvalidArgumentError(
        "targets: 2b (lambda = 0) needs every target > 0 (docs/model-contract.md \"2b. Unregularized\")");
  }
  MatrixXd rhs = y.array().log().matrix();
  if (f0.size() != 0) rhs -= f0;
  return SolveShifted(theta, rhs, f0, 0.0, progress, jitter, keep_factor);
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
  MatrixXd rhs = y;
  if (f0.size() != 0) rhs -= f0;
  return SolveShifted(theta, rhs, f0, lambda, progress, jitter, keep_factor);
}

}  // namespace ntk

// ntk/core/training/solver_util.cc: RowSoftmax, SumCrossEntropy (solvers.h)
// and the internal helpers of solver_util.h.
#include "core/training/solver_util.h"

#include <cmath>
#include <limits>
#include <utility>

#include <lapacke.h>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "core/numerics/cholesky.h"
#include "core/training/solvers.h"

namespace ntk {

using Eigen::Index;
using Eigen::MatrixXd;

Eigen::MatrixXd RowSoftmax(const Eigen::MatrixXd& logits) {
  MatrixXd p(logits.rows(), logits.cols());
  for (Index i = 0; i < logits.rows(); ++i) {
    const double m = logits.row(i).maxCoeff();
    p.row(i) = (logits.row(i).array() - m).exp().matrix();
    p.row(i) /= p.row(i).sum();
  }
  return p;
}

double SumCrossEntropy(const Eigen::MatrixXd& y, const Eigen::MatrixXd& logits) {
  double total = 0;
  for (Index i = 0; i < logits.rows(); ++i) {
    const double m = logits.row(i).maxCoeff();
    const double lse = m + std::log((logits.row(i).array() - m).exp().sum());
    total += y.row(i).sum() * lse - y.row(i).dot(logits.row(i));
  }
  return total;
}

namespace solver_internal {

double InfNorm(const MatrixXd& m) {
  return m.size() == 0 ? 0.0 : m.cwiseAbs().maxCoeff();
}

absl::Status CheckShapes(const MatrixXd& theta, const MatrixXd& y,
                         const MatrixXd& f0) {
  if (theta.rows() != theta.cols()) {
    return absl::InvalidArgumentError("theta: must be square");
  }
  if (y.rows() != theta.rows() || y.cols() < 1) {
    return absl::InvalidArgumentError(absl::StrCat(
        "targets: expected ", theta.rows(), " rows, got ", y.rows()));
  }
  if (f0.size() != 0 && (f0.rows() != y.rows() || f0.cols() != y.cols())) {
    return absl::InvalidArgumentError(absl::StrCat(
        "initial_train_outputs: expected ", y.rows(), " x ", y.cols(),
        ", got ", f0.rows(), " x ", f0.cols()));
  }
  return absl::OkStatus();
}

double JitterScale(const MatrixXd& theta) {
  return JitterScaleOfDiagonal(theta.diagonal());
}

double JitterScaleOfDiagonal(const Eigen::VectorXd& diagonal) {
  const double mean_diag = diagonal.size() > 0 ? diagonal.mean() : 1.0;
  return mean_diag > 0 ? mean_diag : 1.0;
}

double FirstJitter(double base_shift, double scale, const JitterPolicy& policy) {
  return base_shift >= policy.relative * scale ? 0.0 : policy.relative * scale;
}

bool NextJitter(double scale, const JitterPolicy& policy, double* jitter) {
  const double next = *jitter == 0 ? policy.relative * scale : *jitter * 10;
  if (next > policy.max_relative * scale * (1 + 1e-12)) return false;
  *jitter = next;
  return true;
}

absl::Status NotPositiveDefiniteError(const char* what, double jitter,
                                      const JitterPolicy& policy) {
  return absl::FailedPreconditionError(absl::StrFormat(
      "features: %s is not positive definite even with jitter %.3g (%.0e x mean diagonal); "
      "the kernel has non-finite or inconsistent entries",
      what, jitter, policy.max_relative));
}

absl::StatusOr<double> FactorWithJitter(
    const std::function<void(double shift, MatrixXd* a)>& build, double base_shift,
    double scale, const JitterPolicy& policy, const ProgressFn& progress, const char* what,
    MatrixXd* factor, double* anorm) {
  double jitter = FirstJitter(base_shift, scale, policy);
  if (!ReportProgress(progress, 0.0, "cholesky")) {
    return absl::CancelledError("fit cancelled before the Cholesky factorization");
  }
  for (;;) {
    build(base_shift + jitter, factor);
    *anorm = factor->size() > 0 ? factor->cwiseAbs().colwise().sum().maxCoeff() : 0.0;
    const absl::Status st = CholeskyLowerInPlace(factor, [&] {
      return ReportProgress(progress, 0.0, "cholesky");
    });
    if (st.code() == absl::StatusCode::kCancelled) {
      return absl::CancelledError("fit cancelled during the Cholesky factorization");
    }
    if (st.ok()) return jitter;
    if (!NextJitter(scale, policy, &jitter)) break;
  }
  return NotPositiveDefiniteError(what, jitter, policy);
}

absl::StatusOr<FactoredSolve> FactorAndSolve(
    const std::function<void(double shift, MatrixXd* a)>& build, double base_shift,
    double scale, const JitterPolicy& policy, const ProgressFn& progress, const char* what,
    const MatrixXd& rhs) {
  FactoredSolve out;
  absl::StatusOr<double> jitter =
      FactorWithJitter(build, base_shift, scale, policy, progress, what, &out.factor, &out.anorm);
  if (!jitter.ok()) return jitter.status();
  out.jitter = *jitter;
  absl::StatusOr<MatrixXd> solution = SolveFactored(out.factor, rhs, progress);
  if (!solution.ok()) return solution.status();
  out.solution = *std::move(solution);
  return out;
}

double ConditionEstimate(const MatrixXd& factor, double anorm) {
  double rcond = 0;
  const lapack_int info = LAPACKE_dpocon(
      LAPACK_COL_MAJOR, 'L', static_cast<lapack_int>(factor.rows()), factor.data(),
      static_cast<lapack_int>(factor.outerStride()), anorm, &rcond);
  return info == 0 && rcond > 0 ? 1.0 / rcond : std::numeric_limits<double>::infinity();
}

absl::StatusOr<MatrixXd> DirectRhs(Regime regime, const MatrixXd& y, const MatrixXd& f0) {
  MatrixXd rhs;
  if (regime == Regime::kUnregularizedCE) {
    if (!(y.array() > 0).all()) {
      return absl::InvalidArgumentError(
          "targets: 2b (lambda = 0) needs every target > 0 (docs/model-contract.md "
          "\"2b. Unregularized\")");
    }
    rhs = y.array().log().matrix();
  } else {
    rhs = y;
  }
  if (f0.size() != 0) rhs -= f0;
  return rhs;
}

double Dot(const MatrixXd& a, const MatrixXd& b) {
  return (a.array() * b.array()).sum();
}

absl::StatusOr<Eigen::MatrixXd> SolveFactored(const Eigen::MatrixXd& factor,
                                              const Eigen::MatrixXd& rhs,
                                              const ProgressFn& progress) {
  if (!ReportProgress(progress, 0.8, "solve")) {
    return absl::CancelledError("fit cancelled after the Cholesky factorization");
  }
  Eigen::MatrixXd x = factor.triangularView<Eigen::Lower>().solve(rhs);
  factor.transpose().triangularView<Eigen::Upper>().solveInPlace(x);
  return x;
}

}  // namespace solver_internal
}  // namespace ntk

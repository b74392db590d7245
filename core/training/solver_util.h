// ntk/core/training/solver_util.h (internal to core/): small
// helpers shared by the solvers of docs/model-contract.md
// "2. Training objective" (newton_cg.cc, direct_solve.cc), the Nystrom
// solves (core/nystrom/) and the distributed 2b/2c solve in
// core/distributed/ (which factors with ScaLAPACK but follows the same
// jitter policy).
//
// Thread safety: pure functions.
#ifndef NTK_CORE_TRAINING_SOLVER_UTIL_H_
#define NTK_CORE_TRAINING_SOLVER_UTIL_H_

#include <Eigen/Dense>

#include <functional>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "core/training/problem.h"
#include "core/training/progress.h"

namespace ntk::solver_internal {

// max |m_ij|, 0 for an empty matrix.
double InfNorm(const Eigen::MatrixXd& m);

// sum_ij a_ij b_ij.
double Dot(const Eigen::MatrixXd& a, const Eigen::MatrixXd& b);

// The scale the 2b/2c jitter is relative to: mean(diag Theta), or 1 when
// that is not positive (or Theta is empty).
double JitterScale(const Eigen::MatrixXd& theta);
// The same from diag Theta alone.
double JitterScaleOfDiagonal(const Eigen::VectorXd& diagonal);

// The jitter policy's steps (problem.h JitterPolicy): the first jitter for
// a matrix whose base diagonal shift is base_shift (0 when base_shift >=
// policy.relative * scale, else policy.relative * scale), and the next one
// after a failed factorization (x10), or false when that would exceed
// policy.max_relative * scale.
double FirstJitter(double base_shift, double scale, const JitterPolicy& policy);
bool NextJitter(double scale, const JitterPolicy& policy, double* jitter);
// FAILED_PRECONDITION "features: <what> is not positive definite even with
// jitter ..." after the largest jitter `jitter`.
absl::Status NotPositiveDefiniteError(const char* what, double jitter,
                                      const JitterPolicy& policy);

// The Cholesky factor of the 2b/2c systems with the jitter policy of
// problem.h (JitterPolicy, docs/model-contract.md "2b. Unregularized"):
// build(shift, a) writes the matrix A(shift) into *a; the shift is
// base_shift + jitter, jitter = 0 when base_shift >= policy.relative *
// scale, else policy.relative * scale, x10 per failed factorization up to
// policy.max_relative * scale. On OK: *factor = L (lower, strict upper
// zero) with L L^T = A, *anorm = ||A||_1, and the jitter is returned.
// CANCELLED when progress (asked as (0, "cholesky") before and between the
// blocks) says stop; FAILED_PRECONDITION "features: <what> is not positive
// definite even with jitter ..." after the largest jitter.
absl::StatusOr<double> FactorWithJitter(
    const std::function<void(double shift, Eigen::MatrixXd* a)>& build, double base_shift,
    double scale, const JitterPolicy& policy, const ProgressFn& progress, const char* what,
    Eigen::MatrixXd* factor, double* anorm);

// After FactorWithJitter: asks progress (0.8, "solve"), then returns
// A^{-1} rhs = L^{-T} L^{-1} rhs from `factor` (L in its lower triangle).
// CANCELLED when progress says stop.
absl::StatusOr<Eigen::MatrixXd> SolveFactored(const Eigen::MatrixXd& factor,
                                              const Eigen::MatrixXd& rhs,
                                              const ProgressFn& progress);

// What FactorAndSolve returns: the factor of A = A(base_shift + jitter),
// ||A||_1 (for ConditionEstimate), the jitter and A^{-1} rhs.
struct FactoredSolve {
  Eigen::MatrixXd factor;    // L, lower triangle (strict upper zero), L L^T = A
  double anorm = 0;          // ||A||_1
  double jitter = 0;
  Eigen::MatrixXd solution;  // A^{-1} rhs
};

// The direct solve of 2b / 2c, for the exact model (A = Theta + delta I)
// and a Nystrom model (A = Theta_mn Theta_nm + delta Theta_mm) alike:
// FactorWithJitter (arguments as there), then SolveFactored(rhs). Errors
// are theirs.
absl::StatusOr<FactoredSolve> FactorAndSolve(
    const std::function<void(double shift, Eigen::MatrixXd* a)>& build, double base_shift,
    double scale, const JitterPolicy& policy, const ProgressFn& progress, const char* what,
    const Eigen::MatrixXd& rhs);

// 1 / rcond of A = L L^T, rcond LAPACK dpocon's 1-norm estimate from the
// factor L (lower) and anorm = ||A||_1: O(n^2), a few triangular solves.
// +infinity when dpocon fails or rcond is 0. REQUIRES: L n x n, n >= 1.
double ConditionEstimate(const Eigen::MatrixXd& factor, double anorm);

// The right-hand side T - F0 of the 2b / 2c systems (f0 empty: F0 = 0):
// T = log Y for kUnregularizedCE, INVALID_ARGUMENT "targets: ..." unless
// every target is > 0 (docs/model-contract.md "2b. Unregularized"); T = Y
// for kSquared. REQUIRES: regime is one of those two; f0 empty or y's shape.
absl::StatusOr<Eigen::MatrixXd> DirectRhs(Regime regime, const Eigen::MatrixXd& y,
                                          const Eigen::MatrixXd& f0);

// theta square, y N x C (C >= 1), f0 empty or N x C; INVALID_ARGUMENT naming
// the field otherwise.
absl::Status CheckShapes(const Eigen::MatrixXd& theta, const Eigen::MatrixXd& y,
                         const Eigen::MatrixXd& f0);

}  // namespace ntk::solver_internal

#endif  // NTK_CORE_TRAINING_SOLVER_UTIL_H_

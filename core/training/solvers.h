// ntk/core/training/solvers.h (internal to core/): the linear algebra of
// docs/model-contract.md "2. Training objective", separate from the model.
// Callers outside core/training/ use Solve (solve.h), which picks the solver
// from a TrainingProblem; these are its parts (and what solvers_test checks). Each solver takes the training NTK
// Theta_XX (N x N), the targets Y (N x C) and the initial outputs F0 (N x C,
// or 0 x 0 for zero) and returns the trained logits at the training points
// together with the "dual" matrix that makes predictions at new points:
//
//     f(x) = f0(x) + Theta(x, X) * dual.
//
//   2a SolveRegularizedCE   (cross-entropy, lambda > 0)
//        F* = F0 + Theta (Y - softmax(F*)) / lambda,  dual = (Y - softmax(F*)) / lambda
//   2b SolveUnregularizedCE (cross-entropy, lambda = 0, Y > 0)
//        dual = (Theta + jitter I)^{-1} (log Y - F0)
//   2c SolveSquared         (squared loss, lambda >= 0)
//        dual = (Theta + (lambda + jitter) I)^{-1} (Y - F0)
//
// Thread safety: pure functions of their arguments; safe to call
// concurrently. They use all cores: 2b/2c through the BLAS, 2a through
// OpenMP (core/numerics/linalg.h), with OpenBLAS set single-threaded process-wide
// for the duration of its Newton-CG loop (ScopedSingleThreadedBlas).
// Memory: 2a needs Theta plus O(N C^2) doubles; 2b/2c need Theta plus one
// N x N factor (Theta itself is kept intact, it gives the train logits),
// returned in SolverSolution::cholesky_factor when keep_factor is set.
#ifndef NTK_CORE_TRAINING_SOLVERS_H_
#define NTK_CORE_TRAINING_SOLVERS_H_

#include <Eigen/Dense>

#include "absl/status/statusor.h"
#include "core/training/problem.h"  // JitterPolicy
#include "core/training/progress.h"

namespace ntk {

struct SolverInfo {
  int newton_iterations = 0;  // 2a
  int cg_iterations = 0;      // 2a: total over all Newton steps
  // 2a: ||logits - F0 - Theta * dual||_inf for the returned logits and
  // dual, computed afresh from them. 2b, 2c: the linear-system residual
  // ||(Theta + s I) dual - rhs||_inf (s = lambda + jitter, rhs = log Y - F0
  // or Y - F0).
  double fixed_point_residual = 0;
  // fixed_point_residual / max(1, ||logits||_inf).
  double relative_residual = 0;
  double jitter = 0;              // 2b, 2c: added to the diagonal
  double condition_estimate = 0;  // 2b, 2c: 1-norm, of Theta + (lambda + jitter) I
};

struct SolverSolution {
  Eigen::MatrixXd logits;  // N x C trained logits at the training points
  Eigen::MatrixXd dual;    // N x C, see the header comment
  SolverInfo info;
  // 2b, 2c with keep_factor: the lower Cholesky factor L of
  // Theta + (lambda + jitter) I (core/numerics/cholesky.h; strict upper
  // triangle zero), the matrix EXACT needs. Otherwise empty.
  Eigen::MatrixXd cholesky_factor;
};

// Top eigenpairs of Theta used by the 2a preconditioner. Computing them
// costs three GEMMs of Theta with N x (rank + 16) blocks; callers solving
// many 2a problems with the same Theta (e.g. Monte Carlo over F0) can
// compute them once and pass them in RegularizedCEOptions.eigenbasis.
struct ThetaEigenbasis {
  Eigen::MatrixXd vectors;  // N x k, orthonormal columns
  Eigen::VectorXd values;   // k, >= 0
};
// Deterministic (fixed seed). rank is capped at N / 2.
ThetaEigenbasis ComputeThetaEigenbasis(const Eigen::MatrixXd& theta, int rank);

struct RegularizedCEOptions {
  // Stop when ||F - F0 - Theta (Y - softmax(F)) / lambda||_inf
  //   <= tolerance * max(1, ||F||_inf).
  double tolerance = 1e-12;
  int max_newton_iterations = 100;
  int max_cg_iterations = 2000;  // per Newton step
  // Rank k of the CG preconditioner's low-rank part (top-k eigenpairs of
  // Theta); 0: block-Jacobi only.
  int preconditioner_rank = 32;
  // Optional precomputed ComputeThetaEigenbasis(theta, k) for this theta
  // (not owned; must outlive the call); overrides preconditioner_rank.
  const ThetaEigenbasis* eigenbasis = nullptr;
  // Optional warm start: an initial dual beta (N x C), e.g. the dual of a
  // nearby problem; the solver starts at F = F0 + Theta * beta. Not owned;
  // must outlive the call. nullptr: start at beta = 0 (F = F0).
  const Eigen::MatrixXd* warm_start_dual = nullptr;
  ProgressFn progress;  // may be empty; false -> CANCELLED
};

// 2a. Newton's method on the convex objective in beta (F = F0 + Theta beta)
//   Psi(beta) = sum_i CE(y_i, softmax(F_i)) + (lambda / 2) tr(beta^T Theta beta)
// whose stationarity condition is the fixed point above. With the per-point
// C x C Hessian blocks W_i = diag(p_i) - p_i p_i^T = S_i^2, the Newton step
// solves (lambda I + W Theta) dbeta = lambda (dual - beta), rewritten as the
// SPD system (Rasmussen & Williams alg. 3.1's B = I + S K S, K = Theta/lambda)
//   (I + S (Theta / lambda (x) I_C) S) z = -S residual,
//   dbeta = (lambda (dual - beta) - S z) / lambda,
// solved by preconditioned conjugate gradients; the NC x NC matrix is never
// formed and each CG iteration is one product of Theta with an N x C
// matrix (TransposeTimesNarrow, core/numerics/linalg.h).
// Preconditioner: Theta ~= U diag(s) U^T + diag(rest) with the top
// `preconditioner_rank` eigenpairs of Theta (randomized subspace iteration,
// seeded, once per solve), applied exactly with the current W by Woodbury
// (a (rank C) x (rank C) Cholesky per Newton step) on top of the block
// diagonal I + rest_i / lambda W_i. The CG tolerance (forcing term) is
// min(1e-4, relative residual): loose far from the solution, tight near it,
// but never tighter than 0.1 * tolerance / residual (enough to finish).
// A backtracking (Armijo) line search on Psi makes the method converge from
// any start. Stops when the relative fixed-point residual reaches
// `tolerance`, or when it stops improving within 100x of it (the rounding
// floor of Theta * dual, ~sqrt(N) eps max_i sum_j |Theta_ij| |dual_j|,
// which exceeds 1e-12 relative for small lambda).
// CG stops after max_cg_iterations or 10 N C steps, whichever is fewer.
// Errors: INVALID_ARGUMENT for bad shapes / lambda <= 0, CANCELLED;
// INVALID_ARGUMENT naming spec.training.regularization if
// max_newton_iterations pass without reaching 1e3 x tolerance (data and
// lambda whose fit float64 cannot represent, e.g. a row of huge norm).
// A warm start of the wrong shape is ignored.
// REQUIRES: theta symmetric PSD, y rows on the simplex.
absl::StatusOr<SolverSolution> SolveRegularizedCE(
    const Eigen::MatrixXd& theta, const Eigen::MatrixXd& y,
    const Eigen::MatrixXd& f0, double lambda,
    const RegularizedCEOptions& options = {});

// 2b. REQUIRES: y > 0 everywhere. Cholesky (CholeskyLowerInPlace,
// core/numerics/cholesky.h, progress checked between its blocks) of
// Theta + jitter I, jitter = jitter.relative * mean(diag Theta), times 10
// per failed factorization up to jitter.max_relative (then FAILED_PRECONDITION).
// condition_estimate: LAPACK dpocon's estimate of the 1-norm condition
// number ||A||_1 ||A^{-1}||_1 of the factored matrix A = Theta + jitter I,
// from the Cholesky factor in O(N^2) (Hager/Higham: a lower bound, rarely
// more than 3x low). The 2-norm condition number lies within a factor N of it.
absl::StatusOr<SolverSolution> SolveUnregularizedCE(
    const Eigen::MatrixXd& theta, const Eigen::MatrixXd& y,
    const Eigen::MatrixXd& f0, const ProgressFn& progress = {},
    const JitterPolicy& jitter = {}, bool keep_factor = false);

// 2c. Like 2b with (Theta + (lambda + jitter) I) and (Y - F0); the jitter is
// 0 when lambda >= jitter.relative * mean(diag Theta), else the 2b jitter.
absl::StatusOr<SolverSolution> SolveSquared(const Eigen::MatrixXd& theta,
                                            const Eigen::MatrixXd& y,
                                            const Eigen::MatrixXd& f0,
                                            double lambda,
                                            const ProgressFn& progress = {},
                                            const JitterPolicy& jitter = {},
                                            bool keep_factor = false);

// Row-wise softmax (numerically stable) and mean cross-entropy helpers.
Eigen::MatrixXd RowSoftmax(const Eigen::MatrixXd& logits);
// sum_i CE(y_i, softmax(F_i)) = sum_i [ (sum_c y_ic) lse(F_i) - y_i . F_i ].
double SumCrossEntropy(const Eigen::MatrixXd& y, const Eigen::MatrixXd& logits);

}  // namespace ntk

#endif  // NTK_CORE_TRAINING_SOLVERS_H_

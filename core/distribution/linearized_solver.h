// ntk/core/distribution/linearized_solver.h (internal to core/): the
// LINEARIZED logit covariance of docs/model-contract.md
// "4. PredictDistribution" (2a, lambda > 0), exact, one class at a time so
// that memory stays at a few N x N matrices whatever C is, and the
// LAPLACE_POSTERIOR covariance from the same factor. The derivation, the
// cost model and the measurements that chose this method over low-rank
// approximations are in that section ("LINEARIZED: derivation and cost").
//
// Math (Theta' = Theta_XX / lambda, p = softmax(F*) at the F0 = 0 solution,
// D_c = diag(p_c), W = blockdiag_i(diag p_i - p_i p_i^T)):
//   S_c = I + D_c^{1/2} Theta' D_c^{1/2} = L_c L_c^T,
//   E_c = D_c^{1/2} S_c^{-1} D_c^{1/2},   M = sum_c E_c = L_M L_M^T,
//   B   = W (I + (Theta' (x) I) W)^{-1},  B_cc' = delta_cc' E_c - E_c M^{-1} E_c'.
// For a query x with v = Theta_Xx / lambda, k = K_Xx:
//   LINEARIZED  Cov f(x) = K_xx I - T1 - T1^T + T2,
//     T1 = (v (x) I)^T B (k (x) I),   T2 = (v (x) I)^T B (K_XX (x) I) B (v (x) I);
//   LAPLACE     Cov = Theta_xx / lambda I - (v (x) I)^T B (v (x) I);
// not centered: the caller reports P Cov P, P = I - 11^T / C.
//
// Theta_XX and K_XX are symmetric: the factor keeps them in ONE N x N
// matrix (Theta's strict lower triangle, K's upper triangle and diagonal,
// Theta's diagonal aside), so with L_M it holds 2 N^2 doubles.
// Two storage modes, chosen by the cost function KeepClassFactors:
//   streamed: Theta/K packed and L_M (2 N^2 doubles); every Apply
//     refactors each S_c (twice for LINEARIZED: 2 C N^3 / 3 flops per call);
//   kept:     plus the C factors L_c ((C + 2) N^2 doubles); Apply does no
//     factorization (only solves).
// Both give the same answer: the same S_c is factored by the same routine
// (CholeskyLowerInPlace with the same block size), so L_c is the same
// matrix; tests/linearized_solver_test.cc checks it.
//
// Cost (flops; N training points, C classes, m queries per Apply):
//   Prepare: C (N^3/3 factor + 2N^3/3 inverse) + N^3/3   ~ (C + 1/3) N^3.
//   Apply:   streamed 2C N^3/3 + (2C + 3) 2 N^2 C m; kept (2C + 3) 2 N^2 C m.
//   Laplace: streamed C N^3/3 + (C + 1) 2 N^2 C m;   kept (C + 1) 2 N^2 C m.
// Memory (doubles) beyond the factor: Prepare one N^2 (M) plus one work
// N^2; Apply one N^2 (streamed only) plus 5 N C m. Peak of a first call:
// 4 N^2 streamed (the kernels, then packed + M + work), (C + 4) N^2 kept.
// Cancellation: progress is asked before every step of at most ~kStepFlops
// flops (the Cholesky and inverse blocks, the column chunks of the
// products), so a "stop" ends the work within one step (< ~0.5 s on 2 cores).
//
// Thread safety: LinearizedFactor is immutable after Prepare; Apply may run
// concurrently on one factor (each call allocates its own work space). All
// use the BLAS's threads.
#ifndef NTK_CORE_DISTRIBUTION_LINEARIZED_SOLVER_H_
#define NTK_CORE_DISTRIBUTION_LINEARIZED_SOLVER_H_

#include <cstdint>
#include <memory>
#include <vector>

#include <Eigen/Dense>

#include "absl/status/statusor.h"
#include "core/distribution/cache.h"
#include "core/model/model.h"  // ProgressFn

namespace ntk {

// Flops between two progress checks (~0.2-0.5 s on this machine's 2 cores).
inline constexpr double kLinearizedStepFlops = 2e10;

// Bytes of the LinearizedFactor for n training points and c classes.
int64_t LinearizedFactorBytes(int64_t n, int64_t c, bool keep_class_factors);

// The storage choice (a cost function of memory only: keeping saves
// 2C N^3/3 flops per later call and costs (C - 1) N^2 doubles): keep the
// L_c when the kept factor fits in `capacity_bytes` (the smaller of the
// cache budget and the method's byte limit), so a cache that can hold them
// makes later calls solve-only, and a smaller one still gets the streamed
// factor (3 N^2).
bool KeepClassFactors(int64_t n, int64_t c, int64_t capacity_bytes);

// What Apply needs, built once per fitted model and kept in the
// DistributionCache (part "linearized").
class LinearizedFactor : public CacheEntry {
 public:
  int64_t Bytes() const override;
  Eigen::Index num_train() const { return packed_.rows(); }
  int num_classes() const { return static_cast<int>(sqrt_p_.cols()); }
  bool keeps_class_factors() const { return !chol_c_.empty(); }

 private:
  friend class LinearizedAccess;
  // Strict lower triangle: Theta_XX (unscaled); upper triangle and
  // diagonal: K_XX.
  Eigen::MatrixXd packed_;
  Eigen::VectorXd theta_diag_;  // diag Theta_XX
  Eigen::MatrixXd chol_m_;  // L_M, lower (strict upper zero)
  std::vector<Eigen::MatrixXd> chol_c_;  // L_c, lower; empty when streamed
  Eigen::MatrixXd sqrt_p_;  // N x C, sqrt(p)
  double lambda_ = 0;
};

// Builds the factor. theta, nngp: Theta_XX and K_XX (N x N, symmetric PSD),
// taken by value so a caller that no longer needs them can move them in.
// p: softmax(F*) at the F0 = 0 solution (N x C, rows on the simplex).
// Errors: INVALID_ARGUMENT naming the argument for bad shapes, lambda <= 0
// or p outside [0, 1]; INTERNAL if S_c or M is not positive definite
// (Theta not PSD); CANCELLED when progress (may be empty) returns false.
absl::StatusOr<std::shared_ptr<const LinearizedFactor>> PrepareLinearized(
    Eigen::MatrixXd theta, Eigen::MatrixXd nngp, const Eigen::MatrixXd& p,
    double lambda, bool keep_class_factors, const ProgressFn& progress = {});

// log det(I + (Theta_XX / lambda (x) I_C) W) with W as above: the Hessian
// term of the Laplace evidence (docs/model-contract.md "7. Model
// selection"), = sum_c log det S_c + log det M (the matrix determinant
// lemma with W = D - Pi Pi^T and sum_c D_c = I). Factors each S_c and M as
// Prepare does, keeping nothing: (C + 1/3) N^3 flops, 2 N^2 doubles beyond
// theta. theta: Theta_XX (its lower triangle and diagonal are read).
// Errors as PrepareLinearized (phase "laplace evidence: factor").
absl::StatusOr<double> LaplaceLogDet(const Eigen::MatrixXd& theta, const Eigen::MatrixXd& p,
                                     double lambda, const ProgressFn& progress = {});

// LINEARIZED: per query j (column j of theta_xq = Theta_Xq and
// nngp_xq = K_Xq, N x m; nngp_qq(j) = K(x_j, x_j)) the C x C covariance of
// the trained logits f(x_j), not centered.
// Errors: INVALID_ARGUMENT naming the argument for bad shapes; INTERNAL as
// above; CANCELLED.
absl::StatusOr<std::vector<Eigen::MatrixXd>> ApplyLinearized(
    const LinearizedFactor& factor, const Eigen::MatrixXd& theta_xq,
    const Eigen::MatrixXd& nngp_xq, const Eigen::VectorXd& nngp_qq,
    const ProgressFn& progress = {});

// LAPLACE_POSTERIOR (R&W algorithm 3.4 with prior Theta / lambda): per
// query Cov_cc' = delta_cc' (Theta_xx / lambda - v.a_c) + alpha_c.alpha_c',
// a_c = E_c v, alpha_c = L_M^{-1} a_c; theta_qq(j) = Theta(x_j, x_j).
// Errors as ApplyLinearized.
absl::StatusOr<std::vector<Eigen::MatrixXd>> ApplyLaplace(
    const LinearizedFactor& factor, const Eigen::MatrixXd& theta_xq,
    const Eigen::VectorXd& theta_qq, const ProgressFn& progress = {});

// The stepped dense work above, shared with the Nystrom 2a factors
// (core/distribution/nystrom.cc). They ask progress (phase `phase`) before
// each step of at most ~kFlopsPerStep (core/numerics/work_steps.h) (Cholesky and inverse blocks of at
// least 64 columns: more above n ~ 5600) and return CANCELLED when it says
// stop.
// Lower Cholesky factor of the symmetric *a in place (its lower triangle
// read); INTERNAL "<phase>: <what> is not positive definite" when it is not.
absl::Status CholeskyInSteps(Eigen::MatrixXd* a, const char* what, const ProgressFn& progress,
                             const char* phase);
// *x := (L L^T)^{-1} *x for lower L, in column chunks.
absl::Status SolveCholeskyInSteps(const Eigen::MatrixXd& l, const ProgressFn& progress,
                                  const char* phase, Eigen::MatrixXd* x);
// *inv := (L L^T)^{-1} (full, symmetric) for the lower factor L in *l, which
// is overwritten (by L^{-1}): 2 n^3 / 3 flops, a third of solving against I.
absl::Status InverseInSteps(Eigen::MatrixXd* l, const ProgressFn& progress, const char* phase,
                            Eigen::MatrixXd* inv);

}  // namespace ntk

#endif  // NTK_CORE_DISTRIBUTION_LINEARIZED_SOLVER_H_

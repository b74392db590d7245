// ntk/core/distribution/linearized_solver.h (internal to core/): the
// LINEARIZED logit covariance of docs/model-contract.md
// "4. PredictDistribution" (2a, lambda > 0), exact, streamed one class at a
// time so that memory stays at a few N x N matrices whatever C is.
// The derivation, the cost model and the measurements that chose this
// method over low-rank approximations are in docs/linearized-derivation.md.
//
// Math (Theta' = Theta_XX / lambda, p = softmax(F*) at the F0 = 0 solution,
// D_c = diag(p_c), W = blockdiag_i(diag p_i - p_i p_i^T)):
//   S_c = I + D_c^{1/2} Theta' D_c^{1/2} = L_c L_c^T,
//   E_c = D_c^{1/2} S_c^{-1} D_c^{1/2},   M = sum_c E_c = L_M L_M^T,
//   B   = W (I + (Theta' (x) I) W)^{-1},  B_cc' = delta_cc' E_c - E_c M^{-1} E_c'.
// For a query x with v = Theta_Xx / lambda, k = K_Xx:
//   Cov f(x) = K_xx I - T1 - T1^T + T2,
//   T1 = (v (x) I)^T B (k (x) I),   T2 = (v (x) I)^T B (K_XX (x) I) B (v (x) I),
// the covariance over F0 ~ N(0, K (x) I) of the trained logits (not
// centered: the caller reports P Cov P, P = I - 11^T / C).
//
// Cost (flops; N training points, C classes, m queries per Apply):
//   Prepare: C (N^3/3 dpotrf + 2N^3/3 dpotri) + N^3/3   ~ (C + 1/3) N^3.
//   Apply:   2C dpotrf (2C N^3/3) + (2C + 3) * 2 N^2 C m.
// (Today's LINEARIZED factors cost ~6.3 C N^3 and (C + 3) N^2 doubles.)
// Memory (doubles): the factor holds Theta_XX, K_XX and L_M (3 N^2) plus
// N C; Prepare needs one more N^2 transiently, Apply one N^2 plus 5 N C m.
// Accuracy: exact up to rounding (no knob): low-rank approximations of
// Theta or K were measured to miss the 1e-4 target by 10-100x at
// useful ranks (docs/linearized-derivation.md, "Why not low rank").
//
// Thread safety: LinearizedFactor is immutable after Prepare; Apply may run
// concurrently on one factor (each call allocates its own work space). Both
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

// What Apply needs, built once per fitted model and kept in the
// DistributionCache. Owns copies (moved in) of Theta_XX and K_XX.
class LinearizedFactor : public CacheEntry {
 public:
  int64_t Bytes() const override;
  Eigen::Index num_train() const { return theta_.rows(); }
  int num_classes() const { return static_cast<int>(sqrt_p_.cols()); }

 private:
  friend absl::StatusOr<std::shared_ptr<const LinearizedFactor>>
  PrepareLinearized(Eigen::MatrixXd, Eigen::MatrixXd, const Eigen::MatrixXd&,
                    double, const ProgressFn&);
  friend absl::StatusOr<std::vector<Eigen::MatrixXd>> ApplyLinearized(
      const LinearizedFactor&, const Eigen::MatrixXd&, const Eigen::MatrixXd&,
      const Eigen::VectorXd&, const ProgressFn&);
  Eigen::MatrixXd theta_;   // Theta_XX (unscaled)
  Eigen::MatrixXd nngp_;    // K_XX
  Eigen::MatrixXd chol_m_;  // L_M, lower triangle (upper part is garbage)
  Eigen::MatrixXd sqrt_p_;  // N x C, sqrt(p)
  double lambda_ = 0;
};

// Builds the factor. theta, nngp: Theta_XX and K_XX (N x N, symmetric PSD),
// taken by value so a caller that no longer needs them can move them in.
// p: softmax(F*) at the F0 = 0 solution (N x C, rows on the simplex, > 0).
// progress (may be empty) is called once per class; false -> CANCELLED.
// Errors: INVALID_ARGUMENT naming the argument for bad shapes, lambda <= 0
// or p outside (0, 1]; INTERNAL if S_c or M is not positive definite (Theta
// not PSD); CANCELLED.
absl::StatusOr<std::shared_ptr<const LinearizedFactor>> PrepareLinearized(
    Eigen::MatrixXd theta, Eigen::MatrixXd nngp, const Eigen::MatrixXd& p,
    double lambda, const ProgressFn& progress = {});

// Per query j (column j of theta_xq = Theta_Xq and nngp_xq = K_Xq, N x m;
// nngp_qq(j) = K(x_j, x_j)): the C x C covariance of the trained logits
// f(x_j), not centered. progress (may be empty) is called once per class of
// each of the two passes; false -> CANCELLED.
// Errors: INVALID_ARGUMENT naming the argument for bad shapes; INTERNAL as
// above; CANCELLED.
absl::StatusOr<std::vector<Eigen::MatrixXd>> ApplyLinearized(
    const LinearizedFactor& factor, const Eigen::MatrixXd& theta_xq,
    const Eigen::MatrixXd& nngp_xq, const Eigen::VectorXd& nngp_qq,
    const ProgressFn& progress = {});

}  // namespace ntk

#endif  // NTK_CORE_DISTRIBUTION_LINEARIZED_SOLVER_H_

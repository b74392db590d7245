// ntk/core/numerics/cholesky.h (internal to core/): the one Cholesky
// factorization of core's N x N matrices (2b/2c fit, EXACT, the
// PredictDistribution factors), blocked so that long factorizations can be
// cancelled between blocks.
//
//   absl::Status s = CholeskyLowerInPlace(&a, keep_going);
//
// Right-looking blocked algorithm with kCholeskyBlock columns per step: the
// diagonal block by LAPACK dpotrf (Eigen LLT under EIGEN_USE_LAPACKE), the
// panel by dtrsm, the trailing matrix by dsyrk (lower). Each step is at most
// ~N^2 kCholeskyBlock flops (N = 5000: ~0.1-0.2 s on 2 cores), so a
// `keep_going` checked between steps stops the work within one step.
// Deterministic: a fixed sequence of BLAS calls for a given N, so the same
// matrix gives the same bits in every caller (Fit hands its factor to EXACT;
// docs/model-contract.md "4. PredictDistribution").
//
// Thread safety: pure function of its arguments; the BLAS inside uses the
// BLAS thread pool. `keep_going` is called on the calling thread only.
#ifndef NTK_CORE_NUMERICS_CHOLESKY_H_
#define NTK_CORE_NUMERICS_CHOLESKY_H_

#include <functional>

#include <Eigen/Dense>

#include "absl/status/status.h"

namespace ntk {

inline constexpr Eigen::Index kCholeskyBlock = 512;

// Factors the symmetric matrix `a` (only its lower triangle is read) in
// place: on OK its lower triangle is L with A = L L^T and its strict upper
// triangle is zero. FAILED_PRECONDITION when A is not (numerically) positive
// definite, CANCELLED when keep_going (may be empty) returns false; on
// either error `a` holds partial work (callers start again from A).
// `block` (>= 1): columns per step; a smaller one checks keep_going more
// often (the same block gives the same bits).
absl::Status CholeskyLowerInPlace(Eigen::MatrixXd* a,
                                  const std::function<bool()>& keep_going = {},
                                  Eigen::Index block = kCholeskyBlock);

}  // namespace ntk

#endif  // NTK_CORE_NUMERICS_CHOLESKY_H_

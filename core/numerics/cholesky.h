// ntk/core/numerics/cholesky.h (internal to core/): the one Cholesky
// factorization of core's N x N matrices (2b/2c fit, EXACT, the
// PredictDistribution factors), blocked so that long factorizations can be
// cancelled between blocks.
//
//   absl::Status s = CholeskyLowerInPlace(&a, keep_going);
//
// Right-looking blocked algorithm with kCholeskyBlock columns per step: the
// diagonal block by LAPACK dpotrf (Eigen LLT under EIGEN_USE_LAPACKE), the
// panel by dtrsm in row blocks, the trailing matrix in column panels (dsyrk
// on the diagonal block, dgemm below it), the blocks and panels spread over
// the OpenMP threads (--threads): the server runs OpenBLAS with one thread
// per call (--blas_threads, server/README.md "Threads") so that concurrent
// small Predicts do not queue for its pool, and this is how a long
// factorization still uses every core. Each step is at most
// ~N^2 kCholeskyBlock flops (N = 5000: ~0.1-0.2 s on 2 cores), so a
// `keep_going` checked between steps stops the work within one step.
// Deterministic: a fixed set of BLAS calls for a given N, each on the same
// operands whatever the thread count, so the same matrix gives the same
// bits in every caller and for every --threads (Fit hands its factor to EXACT;
// docs/model-contract.md "4. PredictDistribution").
//
// Thread safety: pure function of its arguments; uses the OpenMP threads (a
// call from inside a parallel region runs on its thread alone) and the BLAS
// thread pool. `keep_going` is called on the calling thread only.
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

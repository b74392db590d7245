// ntk/core/numerics/linalg.h (internal to core/): dense kernels that BLAS does badly
// for the shapes the solvers use.
//
// The 2a Newton-CG solver multiplies the N x N training NTK Theta by an
// N x C block (C = number of classes, typically 10) well over a hundred times
// per fit. For such a narrow right-hand side OpenBLAS's dgemm copies (packs)
// all of Theta into a buffer on every call, so it moves Theta through memory
// twice, and its thread pool competes with OpenMP's on few cores. The kernel
// here streams Theta exactly once, without packing, on OpenMP threads.
//
// Thread safety: pure functions; safe to call concurrently. They use all
// OpenMP threads.
#ifndef NTK_CORE_NUMERICS_LINALG_H_
#define NTK_CORE_NUMERICS_LINALG_H_

#include <Eigen/Dense>

namespace ntk {

// out = a^T v for a (K x M) and v (K x C); out is resized to M x C. For a
// symmetric a (Theta) this is a * v.
//
// When C <= kMaxNarrowColumns and the CPU has AVX2 and FMA, a hand-written
// kernel processes four columns of a at a time against a row-major copy of
// v; otherwise it falls back to Eigen's product (BLAS). Each output entry is
// summed in the fixed order k = 0, 1, ..., K-1, so the result does not depend
// on the number of threads; it may differ in the last bits from the BLAS
// product and between CPUs with and without FMA.
// REQUIRES: a.rows() == v.rows(); out is not a or v.
inline constexpr int kMaxNarrowColumns = 12;
void TransposeTimesNarrow(const Eigen::MatrixXd& a, const Eigen::MatrixXd& v,
                          Eigen::MatrixXd* out);

// While at least one ScopedSingleThreadedBlas is alive anywhere in the
// process, OpenBLAS runs single-threaded (openblas_set_num_threads(1)); the
// thread count seen by the first scope is restored when the last one ends.
// For loops that run independent BLAS-using tasks on OpenMP threads, where
// OpenBLAS's own thread pool would oversubscribe the cores (measured: 64
// MONTE_CARLO 2a solves at N = 1000 took 2.2x longer with it).
// Thread safety: scopes may be created and destroyed concurrently. Other
// threads' BLAS calls during a scope run single-threaded too.
class ScopedSingleThreadedBlas {
 public:
  ScopedSingleThreadedBlas();
  ~ScopedSingleThreadedBlas();
  ScopedSingleThreadedBlas(const ScopedSingleThreadedBlas&) = delete;
  ScopedSingleThreadedBlas& operator=(const ScopedSingleThreadedBlas&) = delete;
};

namespace internal {
// Tests only: false forces the Eigen/BLAS fallback in later calls (all
// threads), true restores automatic selection. Returns whether the
// hand-written kernel is available on this CPU.
bool UseNarrowKernelForTesting(bool use);
}  // namespace internal

}  // namespace ntk

#endif  // NTK_CORE_NUMERICS_LINALG_H_

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

#include <functional>
#include <vector>

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

// outs[s] = a^T vs[s] for s = 0, ..., k-1: the same bits as k calls of
// TransposeTimesNarrow(a, *vs[s], outs[s]), but one pass over `a` for all of
// them. The hand-written path is a cache-blocked product of a^T with the k C
// columns side by side (AVX2, or AVX-512 where the CPU has it; blocks of
// 64-96 columns of a against 128 of its rows, so a is read from memory
// once instead of k times); every output entry is
// still one chain of fused multiply-adds in the order j = 0, 1, ..., K-1,
// exactly as in TransposeTimesNarrow, so neither k nor the other columns
// nor the thread count changes a result. Otherwise (no AVX2/FMA, C > 12,
// or the testing switch below) it is the k calls. It uses the OpenMP threads
// when K M k C >= kMinParallelBatchTerms. keep_going (may be empty)
// is asked between blocks, from the OpenMP threads one at a time; once it
// returns false the remaining blocks are skipped and the call returns false
// (outs then hold no result). Memory: about (K + M) k C doubles of workspace.
// REQUIRES: every vs[s] is K x C (one C for all), K == a.rows();
// vs.size() == outs.size(); no outs[s] is a or any vs[s].
inline constexpr Eigen::Index kMinParallelBatchTerms = Eigen::Index{1} << 21;
bool TransposeTimesNarrowBatch(const Eigen::MatrixXd& a,
                               const std::vector<const Eigen::MatrixXd*>& vs,
                               const std::vector<Eigen::MatrixXd*>& outs,
                               const std::function<bool()>& keep_going = {});

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
// Tests only: false makes TransposeTimesNarrowBatch's hand-written path use
// its AVX2 tile even where AVX-512 is available. Returns whether the
// AVX-512 tile is available.
bool UseAvx512BatchKernelForTesting(bool use);
}  // namespace internal

}  // namespace ntk

#endif  // NTK_CORE_NUMERICS_LINALG_H_

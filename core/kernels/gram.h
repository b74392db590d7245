// ntk/core/kernels/gram.h: the Gram matrix x x^T of the training rows, the
// first step of the kernels' layer recursion (docs/model-contract.md
// "1. The network and its two kernels"), computed so that long fits can
// stop quickly and use every core.
//
//   Eigen::MatrixXd g;
//   if (!GramUpper(x, keep_going, &g)) { /* stopped */ }
//   // g(i, j) = x.row(i) . x.row(j) for i <= j
//
// Thread safety: a pure function of its arguments; runs its blocks on the
// OpenMP threads with OpenBLAS single-threaded meanwhile
// (ScopedSingleThreadedBlas). keep_going is called on one thread only.
#ifndef NTK_CORE_KERNELS_GRAM_H_
#define NTK_CORE_KERNELS_GRAM_H_

#include <functional>

#include <Eigen/Dense>

namespace ntk {


// Resizes *g to n x n (n = x.rows()) and writes the upper triangle of
// x x^T (the lower triangle of each diagonal block is written too; the
// rest of the lower triangle is left as it was). Column blocks of
// width clamp(kFlopsPerStep / (2 n d), 64, 1024) (core/numerics/work_steps.h), each one dgemm of rows
// [0, block end) against the block's rows; keep_going (may be empty) is
// asked before each block on the calling thread; once it returns false
// the blocks left are skipped and the result is false (*g partial). The
// block partition depends on n and d only, so the bits do not depend on
// the number of threads.
bool GramUpper(const Eigen::MatrixXd& x, const std::function<bool()>& keep_going,
               Eigen::MatrixXd* g);

}  // namespace ntk

#endif  // NTK_CORE_KERNELS_GRAM_H_

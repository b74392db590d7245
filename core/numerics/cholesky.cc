// ntk/core/numerics/cholesky.cc: see cholesky.h.
#include "core/numerics/cholesky.h"

#include <algorithm>

#include <Eigen/Cholesky>

#include "core/numerics/parallel.h"

namespace ntk {

using Eigen::Index;

namespace {

// Rows or columns per parallel task. Fixed (not derived from the thread
// count), so that every element is computed by the same BLAS call on the
// same operands whatever the number of threads: the bits do not depend on
// --threads.
constexpr Index kTask = 256;

// A21 <- A21 L11^{-T} (dtrsm), in row blocks (rows are independent).
void PanelSolve(const Eigen::Ref<const Eigen::MatrixXd>& l11, Eigen::Ref<Eigen::MatrixXd> a21) {
  ParallelBlocks(a21.rows(), kTask, [&](Index r0, Index h) {
    auto block = a21.middleRows(r0, h);
    l11.triangularView<Eigen::Lower>().transpose().solveInPlace<Eigen::OnTheRight>(block);
  });
}

// The lower triangle of A22 -= L21 L21^T, in column panels: the panel's
// diagonal block by dsyrk (lower), the rows below it by dgemm. The first
// panels are the tallest; ParallelBlocks' dynamic schedule balances them.
void TrailingUpdate(const Eigen::Ref<const Eigen::MatrixXd>& l21, Eigen::Ref<Eigen::MatrixXd> a22) {
  const Index n = a22.rows();
  ParallelBlocks(n, kTask, [&](Index j0, Index w) {
    const Index below = n - j0 - w;
    a22.block(j0, j0, w, w).selfadjointView<Eigen::Lower>().rankUpdate(l21.middleRows(j0, w),
                                                                        -1.0);
    if (below > 0) {
      a22.block(j0 + w, j0, below, w).noalias() -=
          l21.middleRows(j0 + w, below) * l21.middleRows(j0, w).transpose();
    }
  });
}

}  // namespace

absl::Status CholeskyLowerInPlace(Eigen::MatrixXd* a_ptr,
                                  const std::function<bool()>& keep_going,
                                  Index block) {
  Eigen::MatrixXd& a = *a_ptr;
  const Index n = a.rows();
  for (Index k = 0; k < n; k += block) {
    if (keep_going && !keep_going()) {
      return absl::CancelledError("Cholesky factorization cancelled");
    }
    const Index b = std::min(block, n - k);
    const Index rest = n - k - b;
    Eigen::Ref<Eigen::MatrixXd> a11 = a.block(k, k, b, b);
    Eigen::LLT<Eigen::Ref<Eigen::MatrixXd>> llt(a11);  // dpotrf, in place
    if (llt.info() != Eigen::Success) {
      return absl::FailedPreconditionError("matrix is not positive definite");
    }
    if (rest == 0) break;
    // L21 = A21 L11^{-T}, then A22 -= L21 L21^T (lower), both on OpenMP
    // threads, each task one single-threaded BLAS call.
    auto a21 = a.block(k + b, k, rest, b);
    PanelSolve(a11, a21);
    TrailingUpdate(a21, a.block(k + b, k + b, rest, rest));
  }
  a.triangularView<Eigen::StrictlyUpper>().setZero();
  return absl::OkStatus();
}

}  // namespace ntk

// ntk/core/numerics/cholesky.cc: see cholesky.h.
#include "core/numerics/cholesky.h"

#include <algorithm>

#include <Eigen/Cholesky>

namespace ntk {

using Eigen::Index;

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
    // L21 = A21 L11^{-T} (dtrsm), then A22 -= L21 L21^T (dsyrk, lower).
    auto a21 = a.block(k + b, k, rest, b);
    a11.triangularView<Eigen::Lower>().transpose().solveInPlace<Eigen::OnTheRight>(a21);
    a.block(k + b, k + b, rest, rest).selfadjointView<Eigen::Lower>().rankUpdate(a21, -1.0);
  }
  a.triangularView<Eigen::StrictlyUpper>().setZero();
  return absl::OkStatus();
}

}  // namespace ntk

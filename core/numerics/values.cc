#include "core/numerics/values.h"

#include <cmath>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace ntk {
namespace {

absl::Status Check(const Eigen::MatrixXd& m, absl::string_view field, double limit) {
  // Fast path: one vectorized pass when everything is fine.
  if (m.allFinite() && (m.size() == 0 || m.cwiseAbs().maxCoeff() <= limit)) {
    return absl::OkStatus();
  }
  // Column-major storage: report the first bad entry in row-major (wire) order.
  for (Eigen::Index i = 0; i < m.rows(); ++i) {
    for (Eigen::Index j = 0; j < m.cols(); ++j) {
      const double v = m(i, j);
      if (std::isnan(v)) {
        return absl::InvalidArgumentError(
            absl::StrCat(field, ": row ", i, " column ", j, " is NaN"));
      }
      if (std::isinf(v)) {
        return absl::InvalidArgumentError(
            absl::StrCat(field, ": row ", i, " column ", j, " is ", v > 0 ? "+Inf" : "-Inf"));
      }
      if (std::fabs(v) > limit) {
        return absl::InvalidArgumentError(absl::StrFormat(
            "%s: row %d column %d is %g, larger in magnitude than %g (its square overflows "
            "in the kernel)",
            field, i, j, v, limit));
      }
    }
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status CheckInputValues(const Eigen::MatrixXd& m, absl::string_view field) {
  return Check(m, field, kMaxInputMagnitude);
}

absl::Status CheckFiniteValues(const Eigen::MatrixXd& m, absl::string_view field) {
  return Check(m, field, HUGE_VAL);
}

absl::Status NonFiniteKernelRowError(Eigen::Index row, absl::string_view field) {
  return absl::InvalidArgumentError(absl::StrCat(
      field, ": row ", row,
      " gives non-finite kernel values (its features are too large in magnitude for the "
      "kernel recursion)"));
}

}  // namespace ntk

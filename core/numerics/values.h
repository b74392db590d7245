// ntk/core/numerics/values.h: the one check that input numbers are safe for
// the kernels (docs/model-contract.md "1. The network and its two kernels":
// the kernels use squared norms and products of norms).
//
// A value is refused when it is NaN or +-Inf, or when its magnitude exceeds
// kMaxInputMagnitude: the kernels square it (and sum d squares), so beyond
// ~1.3e154 the square overflows to +Inf and every kernel value of that row
// becomes NaN. 1e150 leaves a factor 1e8 of headroom for the sum over up to
// 65536 columns (--max_features) and the variance factors of the recursion.
//
// Thread safety: pure functions.
#ifndef NTK_CORE_NUMERICS_VALUES_H_
#define NTK_CORE_NUMERICS_VALUES_H_

#include <Eigen/Dense>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace ntk {

inline constexpr double kMaxInputMagnitude = 1e150;

// OK when every entry of `m` is finite with |v| <= kMaxInputMagnitude; else
// INVALID_ARGUMENT naming the first bad entry in row-major (wire) order:
// "<field>: row <i> column <j> is NaN" / "is +Inf" / "is 1e+154, larger in
// magnitude than 1e+150 (its square overflows in the kernel)".
absl::Status CheckInputValues(const Eigen::MatrixXd& m, absl::string_view field);

// OK when every entry is finite (no magnitude limit): for values that are not
// squared, e.g. initial outputs and targets. Same messages as above.
absl::Status CheckFiniteValues(const Eigen::MatrixXd& m, absl::string_view field);

// INVALID_ARGUMENT for a query row whose kernel values came out non-finite
// although its inputs passed CheckInputValues (the kernel recursion
// overflowed): "<field>: row <i> gives non-finite kernel values ...".
absl::Status NonFiniteKernelRowError(Eigen::Index row, absl::string_view field);

}  // namespace ntk

#endif  // NTK_CORE_NUMERICS_VALUES_H_

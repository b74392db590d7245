// Finite width -> infinite width (docs/model-contract.md "5. Checks that tie the code to the theory"), long version: widths
// up to 16384, 4 seeds. See tests/testing/finite_width_check.h.
#include "tests/testing/finite_width_check.h"

namespace ntk {
namespace {

using testing_finite_width::ExpectOneOverSqrtWidth;
using testing_finite_width::MeasureFiniteWidthErrors;
using testing_finite_width::WidthError;

TEST(FiniteWidthLong, TrainedNetworkApproachesKernelModel) {
  std::vector<WidthError> errors;
  MeasureFiniteWidthErrors({256, 1024, 4096, 16384}, 4, &errors);
  if (HasFatalFailure()) return;
  // sqrt(16384 / 256) = 8; 1/sqrt(16384) ~ 0.008.
  ExpectOneOverSqrtWidth(errors, 8.0, 0.025);
}

}  // namespace
}  // namespace ntk

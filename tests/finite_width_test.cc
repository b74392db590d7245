// Finite width -> infinite width (docs/model-contract.md "5. Checks that tie the code to the theory"), fast version: see
// tests/testing/finite_width_check.h for the setup. Widths 256-4096, 3 seeds.
// (Measured when written with 4 seeds: 0.073, 0.042, 0.019, and 0.0089 at
// width 16384 (finite_width_long_test.cc): 8.2x over 64x in width.)
#include "tests/testing/finite_width_check.h"

namespace ntk {
namespace {

using testing_finite_width::ExpectOneOverSqrtWidth;
using testing_finite_width::MeasureFiniteWidthErrors;
using testing_finite_width::WidthError;

TEST(FiniteWidth, TrainedNetworkApproachesKernelModel) {
  std::vector<WidthError> errors;
  MeasureFiniteWidthErrors({256, 1024, 4096}, 3, &errors);
  if (HasFatalFailure()) return;
  // sqrt(4096 / 256) = 4; 1/sqrt(4096) ~ 0.016.
  ExpectOneOverSqrtWidth(errors, 4.0, 0.05);
}

}  // namespace
}  // namespace ntk

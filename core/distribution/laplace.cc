// ntk/core/distribution/laplace.cc: method LAPLACE_POSTERIOR (2a) of
// docs/model-contract.md "4. PredictDistribution": GP classification with
// prior GP(0, Theta / lambda (x) I) at the MAP (Predict's logits), the
// covariance of Rasmussen & Williams algorithm 3.4 (ApplyLaplace,
// linearized_solver.h) from the factor shared with LINEARIZED. See methods.h.
#include "core/distribution/linearized_solver.h"
#include "core/distribution/methods.h"
#include "core/distribution/moments.h"

namespace ntk::distribution_internal {

absl::Status LaplaceBatch(const LinearizedFactor& f, const MatrixXd& mean_dual, const Batch& b,
                          const Progress& progress, std::vector<PointDistribution>* out) {
  return StoreWithPredictMean(mean_dual, b,
                              ApplyLaplace(f, b.cross.ntk, b.diag.ntk, progress.fn()), out);
}

}  // namespace ntk::distribution_internal

// ntk/core/distribution.h (internal to core/): MODEL.md section 4, the
// distribution of trained predictors over random initializations.
//
// FittedModel::PredictDistribution validates and preprocesses the queries
// and then calls ComputeDistribution. Thread safety: safe to call
// concurrently on one State; the State's cache is built once under
// state.cache_mu.
#ifndef NTK_CORE_DISTRIBUTION_H_
#define NTK_CORE_DISTRIBUTION_H_

#include <Eigen/Dense>

#include "absl/status/statusor.h"
#include "core/distribution_cache.h"
#include "core/model.h"
#include "core/model_state.h"

namespace ntk {

// REQUIRES: x is preprocessed, x.cols() == state.x_train.cols(), finite.
absl::StatusOr<DistributionResult> ComputeDistribution(
    const FittedModel::State& state, const Eigen::MatrixXd& x,
    const DistributionOptions& options);

}  // namespace ntk

#endif  // NTK_CORE_DISTRIBUTION_H_

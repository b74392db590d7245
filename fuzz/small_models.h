// ntk/fuzz/small_models.h: tiny deterministic fitted models, one per
// training regime (docs/model-contract.md "2. Training objective"), for the
// Predict / PredictDistribution fuzzing and the model seed corpus.
//
// Thread safety: SmallModel() builds its models once (function-local
// statics); the returned models are immutable.
#ifndef NTK_FUZZ_SMALL_MODELS_H_
#define NTK_FUZZ_SMALL_MODELS_H_

#include "core/model/model.h"

namespace ntk::fuzz {

inline constexpr int kNumSmallModels = 6;

// which % kNumSmallModels: 0 = 2a (cross-entropy, lambda 1, ReLU depth 1),
// 1 = 2b (cross-entropy, lambda 0, smoothed labels, erf depth 2,
// standardized), 2 = 2c (squared loss, soft targets, normalized rows),
// 3 = 2a Nystrom with 6 centers (lambda 1: model file format 5, with the
// Newton summaries), 4 = 2b Nystrom with 6 centers (format 3)
// (docs/model-contract.md "6. Nystrom models"), 5 = 2a chosen by the
// Laplace evidence over lambda {0.1, 1} (format 6, with the selection
// report; "7. Model selection").
// 12 training rows, 3 features, 3 classes. Aborts if a fit fails.
const FittedModel& SmallModel(int which);

}  // namespace ntk::fuzz

#endif  // NTK_FUZZ_SMALL_MODELS_H_

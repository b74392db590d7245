// ntk/core/selection/folds.h: the stratified k-fold assignment of model
// selection (docs/model-contract.md "7. Model selection").
//
//   std::vector<int> strata = StratificationLabels(data);
//   std::vector<int> fold = StratifiedFolds(strata, 5, seed);  // fold[i] in [0, 5)
//
// Exposed so that tests (and anyone checking a SelectionReport) can rebuild
// the exact folds a selection used.
//
// Thread safety: pure functions.
#ifndef NTK_CORE_SELECTION_FOLDS_H_
#define NTK_CORE_SELECTION_FOLDS_H_

#include <cstdint>
#include <vector>

#include "core/training/spec.h"

namespace ntk {

// The class each row is stratified by: its label, or for soft targets the
// argmax of its target row (first maximum on ties).
// REQUIRES: data has labels or targets (one row per feature row).
std::vector<int> StratificationLabels(const TrainingData& data);

// Assigns each row a fold in [0, folds): per class (in increasing class
// order) the rows are shuffled by a Fisher-Yates shuffle driven by
// std::mt19937_64(Mix64(seed)) (one stream, continued across classes; the
// index drawn is draw % (i + 1)), then dealt round-robin, continuing where
// the previous class stopped. So every class is spread over the folds as
// evenly as possible (counts differ by at most 1) and fold sizes differ by
// at most 1. Same strata and seed: same folds on every build.
// REQUIRES: folds >= 1, strata >= 0.
std::vector<int> StratifiedFolds(const std::vector<int>& strata, int folds, uint64_t seed);

}  // namespace ntk

#endif  // NTK_CORE_SELECTION_FOLDS_H_

// ntk/core/selection/folds.cc: stratified folds (folds.h).
#include "core/selection/folds.h"

#include <algorithm>
#include <random>
#include <utility>

#include "core/numerics/random.h"

namespace ntk {

std::vector<int> StratificationLabels(const TrainingData& data) {
  if (!data.labels.empty()) return data.labels;
  std::vector<int> out(static_cast<size_t>(data.targets.rows()));
  for (Eigen::Index i = 0; i < data.targets.rows(); ++i) {
    Eigen::Index k = 0;
    data.targets.row(i).maxCoeff(&k);
    out[static_cast<size_t>(i)] = static_cast<int>(k);
  }
  return out;
}

std::vector<int> StratifiedFolds(const std::vector<int>& strata, int folds, uint64_t seed) {
  const int num_classes =
      strata.empty() ? 0 : 1 + *std::max_element(strata.begin(), strata.end());
  std::vector<std::vector<int>> members(static_cast<size_t>(num_classes));
  for (size_t i = 0; i < strata.size(); ++i) {
    members[static_cast<size_t>(strata[i])].push_back(static_cast<int>(i));
  }
  std::mt19937_64 gen(Mix64(seed));
  std::vector<int> fold(strata.size(), 0);
  int next = 0;
  for (std::vector<int>& rows : members) {
    for (size_t i = rows.size(); i > 1; --i) {
      std::swap(rows[i - 1], rows[static_cast<size_t>(gen() % i)]);
    }
    for (const int row : rows) {
      fold[static_cast<size_t>(row)] = next;
      next = (next + 1) % folds;
    }
  }
  return fold;
}

}  // namespace ntk

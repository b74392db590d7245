#include "fuzz/small_models.h"

#include <cstdio>
#include <cstdlib>
#include <memory>

#include "core/selection/selection.h"
#include "core/training/spec.h"

namespace ntk::fuzz {
namespace {

std::unique_ptr<FittedModel> FitOne(int which) {
  constexpr int kRows = 12, kCols = 3, kClasses = 3;
  TrainingData data;
  data.features.resize(kRows, kCols);
  for (int i = 0; i < kRows; ++i) {
    for (int j = 0; j < kCols; ++j) data.features(i, j) = ((i * 7 + j * 3) % 11) / 5.0 - 1.0 + (i % kClasses == j);
  }
  ModelSpec spec;
  spec.num_classes = kClasses;
  if (which == 2) {
    spec.training.loss = Loss::kSquared;
    spec.preprocessing.normalize_rows = true;
    data.targets = Eigen::MatrixXd::Constant(kRows, kClasses, 0.1);
    for (int i = 0; i < kRows; ++i) data.targets(i, i % kClasses) = 0.8;
  } else {
    for (int i = 0; i < kRows; ++i) data.labels.push_back(i % kClasses);
  }
  if (which == 0 || which == 3) spec.training.regularization = 1.0;
  if (which == 3 || which == 4) {  // Nystrom with 6 of the 12 rows as centers
    spec.approximation.kind = ApproximationKind::kNystrom;
    spec.approximation.num_centers = 6;
    spec.approximation.seed = 1;
  }
  if (which == 1) {
    spec.kernel.activation = Activation::kErf;
    spec.kernel.depth = 2;
    spec.preprocessing.standardize = true;
    spec.class_names = {"a", "b", "c"};
  }
  SelectionOptions selection;  // which == 5: chosen by the Laplace evidence
  if (which == 5) {
    selection.criterion = SelectionCriterion::kLaplaceEvidence;
    selection.regularizations = {0.1, 1.0};
  }
  absl::StatusOr<std::unique_ptr<FittedModel>> m = FitWithSelection(spec, data, selection);
  if (!m.ok()) {
    std::fprintf(stderr, "small model %d: %s\n", which, m.status().ToString().c_str());
    std::abort();
  }
  return *std::move(m);
}

}  // namespace

const FittedModel& SmallModel(int which) {
  static const FittedModel* const models[kNumSmallModels] = {
      FitOne(0).release(), FitOne(1).release(), FitOne(2).release(), FitOne(3).release(),
      FitOne(4).release(), FitOne(5).release()};
  return *models[((which % kNumSmallModels) + kNumSmallModels) % kNumSmallModels];
}

}  // namespace ntk::fuzz

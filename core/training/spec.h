// ntk/core/training/spec.h: what a user asks for when fitting a model.
//
// A ModelSpec is plain data: the kernel (network architecture), the training
// objective and the preprocessing. DecideTrainingProblem()
// (core/training/problem.h) checks it against the data, fills in the
// documented defaults and decides the regime; the result is what a fitted
// model stores and reports.
//
// Thread safety: plain values; no shared state.
#ifndef NTK_CORE_TRAINING_SPEC_H_
#define NTK_CORE_TRAINING_SPEC_H_

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "core/kernels/kernel.h"

namespace ntk {

enum class Loss { kCrossEntropy = 1, kSquared = 2 };

struct TrainingSpec {
  Loss loss = Loss::kCrossEntropy;
  // lambda >= 0. Unset: 0 when the smoothed targets are strictly positive
  // (or the loss is squared), otherwise kDefaultRegularization.
  std::optional<double> regularization;
  // eps in [0, 1). Unset: kDefaultLabelSmoothing for hard labels with
  // cross-entropy when regularization is unset or 0; otherwise 0.
  std::optional<double> label_smoothing;
};

inline constexpr double kDefaultRegularization = 1.0;
inline constexpr double kDefaultLabelSmoothing = 0.1;

struct PreprocessingSpec {
  bool standardize = false;     // z-score each feature (training statistics)
  bool normalize_rows = false;  // then scale each row to L2 norm sqrt(d)
};

// docs/model-contract.md "6. Nystrom models": the exact kernel, or the
// Nystrom approximation with m centers drawn uniformly (seeded) from the
// training rows.
enum class ApproximationKind { kExactKernel = 1, kNystrom = 2 };

struct ApproximationSpec {
  ApproximationKind kind = ApproximationKind::kExactKernel;
  // m; 0: DefaultNumCenters(N) (core/training/problem.h); > N: clipped to N.
  // DecideTrainingProblem stores the resolved m here.
  int num_centers = 0;
  uint64_t seed = 0;  // center selection: same seed, same centers
};

struct ModelSpec {
  KernelSpec kernel;
  TrainingSpec training;
  PreprocessingSpec preprocessing;
  int num_classes = 0;  // 0: 1 + the largest label (hard labels), or targets.cols()
  std::vector<std::string> class_names;  // empty, or exactly num_classes names
  ApproximationSpec approximation;

  bool nystrom() const { return approximation.kind == ApproximationKind::kNystrom; }
};

// Training data: features and exactly one of labels / targets.
struct TrainingData {
  Eigen::MatrixXd features;  // N x d, raw (before preprocessing)
  std::vector<int> labels;   // N hard labels in [0, C), or empty
  Eigen::MatrixXd targets;   // N x C soft targets on the simplex, or 0 x 0
};

}  // namespace ntk

#endif  // NTK_CORE_TRAINING_SPEC_H_

// ntk/core/training/spec.h: what a user asks for when fitting a model.
//
// A ModelSpec is plain data: the kernel (network architecture), the training
// objective and the preprocessing. ResolveSpec() fills in the documented
// defaults and checks every field against docs/model-contract.md; the result is what a
// fitted model stores and reports.
//
// Thread safety: plain values; no shared state.
#ifndef NTK_CORE_TRAINING_SPEC_H_
#define NTK_CORE_TRAINING_SPEC_H_

#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "core/kernels/kernel.h"

namespace ntk {

enum class Loss { kCrossEntropy = 1, kSquared = 2 };

// Which formula of docs/model-contract.md "2. Training objective" a resolved spec uses.
enum class Regime {
  kRegularizedCE,    // 2a: cross-entropy, lambda > 0 (Newton-type solver)
  kUnregularizedCE,  // 2b: cross-entropy, lambda = 0, targets all > 0
  kSquared,          // 2c: squared loss, any lambda >= 0
};
const char* RegimeName(Regime r);  // "2a", "2b", "2c"

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

struct ModelSpec {
  KernelSpec kernel;
  TrainingSpec training;
  PreprocessingSpec preprocessing;
  int num_classes = 0;  // 0: 1 + the largest label (hard labels), or targets.cols()
  std::vector<std::string> class_names;  // empty, or exactly num_classes names
};

// Training data: features and exactly one of labels / targets.
struct TrainingData {
  Eigen::MatrixXd features;  // N x d, raw (before preprocessing)
  std::vector<int> labels;   // N hard labels in [0, C), or empty
  Eigen::MatrixXd targets;   // N x C soft targets on the simplex, or 0 x 0
};

// A spec with every default filled in, plus the training targets Y it implies.
struct ResolvedSpec {
  ModelSpec spec;     // regularization and label_smoothing always set
  Regime regime;
  double lambda;      // == *spec.training.regularization
  double label_smoothing;
  int num_classes;    // == spec.num_classes
};

// Checks `spec` and `data` (NaN/Inf, ragged sizes, labels out of range,
// targets off the simplex, lambda < 0, eps outside [0,1), depth, variances,
// class names, lambda = 0 with degenerate targets) and fills in defaults.
// Errors are INVALID_ARGUMENT with a message that starts with the field's
// wire name, e.g. "spec.training.regularization: must be >= 0, got -1".
absl::StatusOr<ResolvedSpec> ResolveSpec(const ModelSpec& spec,
                                         const TrainingData& data);

// The N x C target matrix Y: one-hot (smoothed) labels or the given targets.
// REQUIRES: ResolveSpec(r.spec, data) succeeded.
Eigen::MatrixXd MakeTargets(const ResolvedSpec& r, const TrainingData& data);

}  // namespace ntk

#endif  // NTK_CORE_TRAINING_SPEC_H_

// ntk/core/training/problem.h: the training problem, decided once.
//
// A TrainingProblem is what docs/model-contract.md "2. Training objective"
// needs to train: the targets Y (hard labels one-hot, smoothed, or soft
// targets), the loss, lambda, eps, the regime (2a, 2b or 2c) with the reason
// it was chosen, and the jitter policy of the direct solves.
// DecideTrainingProblem is the ONLY place the regime is decided; every user
// (Fit, the PredictDistribution methods, tools/validate, tools/evaluate)
// takes the problem it returns (or the one a fitted model stores) and
// dispatches on `problem.regime`.
//
//   absl::StatusOr<TrainingProblem> p = DecideTrainingProblem(spec, data);
//   absl::StatusOr<SolverSolution> s = Solve(*p, theta, {});  // solve.h
//
// Thread safety: plain values and pure functions.
#ifndef NTK_CORE_TRAINING_PROBLEM_H_
#define NTK_CORE_TRAINING_PROBLEM_H_

#include <cstdint>
#include <string>

#include <Eigen/Dense>

#include "absl/status/statusor.h"
#include "core/training/spec.h"

namespace ntk {

// Which formula of docs/model-contract.md "2. Training objective" applies.
enum class Regime {
  kRegularizedCE,    // 2a: cross-entropy, lambda > 0 (Newton-type solver)
  kUnregularizedCE,  // 2b: cross-entropy, lambda = 0, targets all > 0
  kSquared,          // 2c: squared loss, any lambda >= 0
};
const char* RegimeName(Regime r);  // "2a", "2b", "2c"

// Relative jitter for 2b (and 2c with lambda = 0): jitter = this * mean(diag Theta).
inline constexpr double kRelativeJitter = 1e-10;
// Largest relative jitter tried (x10 per failed Cholesky) before giving up.
inline constexpr double kMaxRelativeJitter = 1e-4;

// The diagonal added to Theta_XX before the Cholesky of 2b/2c
// (docs/model-contract.md "2b. Unregularized"): start at
// relative * mean(diag Theta) (0 when the 2c lambda already exceeds it),
// x10 per failed factorization up to max_relative * mean(diag Theta).
struct JitterPolicy {
  double relative = kRelativeJitter;
  double max_relative = kMaxRelativeJitter;
};

struct TrainingProblem {
  ModelSpec spec;          // regularization, label_smoothing, num_classes set
  Regime regime = Regime::kRegularizedCE;
  std::string regime_reason;  // one sentence: why this regime
  double lambda = 0;          // == *spec.training.regularization
  double label_smoothing = 0;  // eps == *spec.training.label_smoothing
  int num_classes = 0;        // C == spec.num_classes
  Eigen::MatrixXd targets;    // Y, N x C, rows on the simplex
  JitterPolicy jitter;

  Loss loss() const { return spec.training.loss; }
};

// Checks `spec` and `data` (NaN/Inf, ragged sizes, labels out of range,
// targets off the simplex, lambda < 0, eps outside [0,1), depth, variances,
// class names), fills in the documented defaults, builds Y and decides the
// regime, refusing 2b with degenerate targets (lambda = 0, cross-entropy,
// some target 0 after smoothing), and resolves the approximation (unknown
// kind or m < 0 refused; spec.approximation.num_centers set to the m used,
// ResolveNumCenters; regime_reason says when m was clipped to N). Errors are INVALID_ARGUMENT with a message
// that starts with the field's wire name, e.g.
// "spec.training.regularization: must be a finite number >= 0, got -1".
absl::StatusOr<TrainingProblem> DecideTrainingProblem(const ModelSpec& spec,
                                                      const TrainingData& data);

// docs/model-contract.md "6. Nystrom models": the default number of
// centers, min(N, ceil(kCentersPerSqrtN * sqrt(N)) clamped to
// [kMinDefaultCenters, kMaxDefaultCenters]) -- all points up to N = 256,
// then growing like sqrt(N) (N = 5000: 1132, 60000: 3920), capped so that
// the m x m matrices stay under ~0.5 GiB each.
inline constexpr double kCentersPerSqrtN = 16;
inline constexpr int kMinDefaultCenters = 256;
inline constexpr int kMaxDefaultCenters = 8192;
int64_t DefaultNumCenters(int64_t n);
// The m a Nystrom fit of n rows uses: `requested` (0: DefaultNumCenters(n)),
// clipped to n. REQUIRES: requested >= 0, n >= 1.
int64_t ResolveNumCenters(int64_t requested, int64_t n);

// The reason string of a problem restored from a model file (the file keeps
// the decision, not the inputs that led to it).
std::string RestoredRegimeReason(Regime regime);

}  // namespace ntk

#endif  // NTK_CORE_TRAINING_PROBLEM_H_

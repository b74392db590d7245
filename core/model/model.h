// ntk/core/model/model.h: a fitted NTK classification model (docs/model-contract.md sections 2-4).
//
//   absl::StatusOr<std::unique_ptr<FittedModel>> m = FittedModel::Fit(spec, data);
//   absl::StatusOr<Prediction> p = (*m)->Predict(queries);
//   absl::StatusOr<std::vector<PointDistribution>> d =
//       (*m)->PredictDistribution(queries, {DistributionMethod::kLinearized});
//
// Fit does all O(N^3) work that Predict needs; factors that only
// PredictDistribution needs are built on first use and kept in the
// caller's DistributionCache (DistributionOptions::cache), not in the model.
//
// Thread safety: a FittedModel is immutable after Fit/Deserialize returns;
// all const methods may be called concurrently from any number of threads.
// Ownership: the model owns all its data; callers share it by
// std::shared_ptr<const FittedModel>.
#ifndef NTK_CORE_MODEL_MODEL_H_
#define NTK_CORE_MODEL_MODEL_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <Eigen/Dense>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "core/distribution/cache.h"
#include "core/kernels/kernel.h"
#include "core/model/selection_report.h"
#include "core/training/problem.h"
#include "core/training/progress.h"
#include "core/training/spec.h"

namespace ntk {

// z-score with training statistics, then rows scaled to L2 norm sqrt(d)
// (docs/model-contract.md "1. The network and its two kernels", "Input scale"). Features with zero spread are only
// centered; zero rows stay zero.
struct Preprocessor {
  PreprocessingSpec spec;
  Eigen::RowVectorXd mean;   // d (empty when !spec.standardize)
  Eigen::RowVectorXd scale;  // d, 1/std or 1 (empty when !spec.standardize)

  static Preprocessor FitTo(const PreprocessingSpec& spec,
                            const Eigen::MatrixXd& x);
  Eigen::MatrixXd Apply(const Eigen::MatrixXd& x) const;
};

struct FitStats {
  double fit_seconds = 0;
  int solver_iterations = 0;      // Newton iterations (2a); 0 otherwise
  int cg_iterations = 0;          // conjugate-gradient iterations, all Newton steps (2a)
  // 2a: ||F* - F0 - Theta (Y - p(F*)) / lambda||_inf. 2b, 2c: the residual
  // of the factored linear system, ||(Theta + s I) dual - rhs||_inf.
  double fixed_point_residual = 0;
  double train_accuracy = 0;
  double train_nll = 0;           // mean CE(y_i, softmax(F_i)) at the fit
  double jitter = 0;              // added to diag(Theta_XX) before factoring (2b, 2c)
  double condition_estimate = 0;  // of Theta_XX + jitter I (2b, 2c)
};

// The default cap on a Nystrom 2a model's PredictDistribution summaries
// (FitOptions::max_nystrom_summary_bytes): 1 GiB.
inline constexpr int64_t kDefaultNystromSummaryBytes = int64_t{1} << 30;
// Bytes of those summaries for m centers and c classes: the curvature-
// weighted Hessian and cross matrices, 2 (m c)^2 doubles.
inline int64_t NystromSummaryBytes(int64_t m, int64_t c) { return 16 * (m * c) * (m * c); }

struct FitOptions {
  // Initial outputs F0 at the training points (N x C). Empty: zero, which is
  // what Predict uses (docs/model-contract.md "3. Predict"). A real network's F0 makes the
  // model predict that network's trained outputs (validation).
  Eigen::MatrixXd initial_train_outputs;
  ProgressFn progress;             // may be empty
  double tolerance = 1e-12;        // 2a: relative fixed-point residual target
  int max_iterations = 100;        // 2a: Newton iterations
  // 2b / 2c: keep the EXACT factors the fit computes anyway (K_XX from the
  // kernel pass, the Cholesky factor of A = Theta_XX + (lambda + jitter) I
  // from the solve) and hand them to the caller in FitOutputs, so that the
  // first EXACT PredictDistribution does no O(N^3) work
  // (docs/model-contract.md "4. PredictDistribution"). Ignored for 2a and
  // when Fit gets no FitOutputs.
  // Memory: the fit's peak is then Theta + K + L = 3 N^2 doubles (instead
  // of Theta + L = 2 N^2), and 2 N^2 + N C doubles stay in the returned
  // entry. Time: none beyond a copy of the dual (2b/2c with F0: two
  // triangular solves).
  bool keep_distribution_factors = false;
  // Model selection's report (docs/model-contract.md "7. Model selection"),
  // kept in the model, reported by Info() and persisted; FitWithSelection
  // (core/selection/selection.h) sets it. Not checked against the fit.
  std::optional<SelectionReport> selection;
  // Nystrom 2a models (docs/model-contract.md "6. Nystrom models",
  // "PredictDistribution of a Nystrom model"): the fit keeps the Newton
  // summaries LINEARIZED and LAPLACE_POSTERIOR need (two (m C) x (m C)
  // matrices, NystromSummaryBytes) only when they take at most this many
  // bytes; above it the fit still succeeds without them and those methods
  // are refused with FAILED_PRECONDITION. The server lowers it to its memory
  // budget when that is smaller.
  int64_t max_nystrom_summary_bytes = kDefaultNystromSummaryBytes;
};

// What Fit computed beyond the model, for the caller's caches.
struct FitOutputs {
  // (part, entry) pairs with FitOptions::keep_distribution_factors (2b/2c:
  // one, "exact"), each meant for DistributionCache::Put under
  // (model id, generation, part) of the model this Fit returns (PutInto).
  // Bit-identical to what PredictDistribution would compute on demand
  // (same matrix, jitter and factorization routine), so answers do not
  // depend on where the factor came from. Not persisted: after eviction or
  // a restart PredictDistribution recomputes it (one Cholesky on the first
  // EXACT call) rather than writing 8 N^2 bytes more and fsyncing them on
  // the Fit's critical path.
  std::vector<std::pair<std::string, std::shared_ptr<const CacheEntry>>> distribution_factors;

  // Puts every entry into scope.cache (nothing when it is null).
  void PutInto(const DistributionCache::Scope& scope) const;
};

struct Prediction {
  Eigen::MatrixXd probabilities;  // M x C, softmax of the logits
  std::vector<int> labels;        // argmax per row
  Eigen::MatrixXd logits;         // M x C, centered (row mean subtracted)
};

enum class DistributionMethod {
  kUnspecified = 0,  // kExact where it exists (2b, 2c), else kLinearized
  kExact = 1,
  kLinearized = 2,
  kMonteCarlo = 3,
  kLaplacePosterior = 4,
};

// The wire name of `m` (ntk.v1.DistributionMethod without the prefix:
// "EXACT", "LINEARIZED", "MONTE_CARLO", "LAPLACE_POSTERIOR"; kUnspecified:
// "UNSPECIFIED"), for messages and reports.
const char* DistributionMethodName(DistributionMethod m);

// The method PredictDistribution uses for `requested` on a model of
// `regime`: kUnspecified means EXACT for 2b/2c and LINEARIZED for 2a
// (docs/model-contract.md "4. PredictDistribution"). The one place that rule lives.
inline DistributionMethod ResolvedMethod(DistributionMethod requested, Regime regime) {
  if (requested != DistributionMethod::kUnspecified) return requested;
  return regime == Regime::kRegularizedCE ? DistributionMethod::kLinearized
                                          : DistributionMethod::kExact;
}

inline constexpr int kDefaultNumSamples = 1000;       // probability moments
// Largest DistributionOptions::num_samples accepted (per point this many
// C-vectors are drawn); the one limit, used by core and the server alike.
inline constexpr int kMaxNumSamples = 1 << 20;
inline constexpr int kDefaultMonteCarloSamples = 64;  // 2a solves for kMonteCarlo

struct DistributionOptions {
  DistributionMethod method = DistributionMethod::kUnspecified;
  int num_samples = 0;  // 0: the method's documented default
  uint64_t seed = 0;
  ProgressFn progress;  // may be empty
  // Largest factor set (bytes) a method may build for this model; a method
  // whose factors would need more is refused with RESOURCE_EXHAUSTED.
  int64_t max_cache_bytes = 8LL << 30;
  // Where the method's factors are looked up and kept (core/distribution/cache.h).
  // scope.cache == nullptr: computed for this call and dropped after it.
  DistributionCache::Scope cache;
};

struct PointDistribution {
  Eigen::VectorXd logit_mean;              // C, centered
  Eigen::MatrixXd logit_covariance;        // C x C
  Eigen::VectorXd probability_mean;        // C
  Eigen::MatrixXd probability_covariance;  // C x C
  double predictive_entropy = 0;           // H[E p], nats
  double expected_entropy = 0;             // E[H p]
  double mutual_information = 0;           // predictive - expected
  int label = 0;                           // argmax of probability_mean
};

struct DistributionResult {
  std::vector<PointDistribution> points;
  DistributionMethod method;  // the method actually used
};

// What a fitted model is, for ModelInfo, logs and accounting.
struct FittedModelInfo {
  ModelSpec spec;              // every default filled in (resolved)
  Regime regime = Regime::kRegularizedCE;
  std::string regime_reason;   // TrainingProblem::regime_reason
  double lambda = 0;
  double label_smoothing = 0;
  FitStats stats;
  int num_train = 0;           // N
  int num_features = 0;        // d
  int num_classes = 0;         // C
  int64_t created_unix_ms = 0;
  int64_t memory_bytes = 0;    // FittedModel::MemoryBytes()
  std::optional<SelectionReport> selection;  // when the fit selected its spec
};

class FittedModel {
 public:
  // Fits `data` under `spec` (docs/model-contract.md "2. Training objective").
  // `outputs` (may be null) receives what FitOptions asks to keep (it is
  // cleared first). Errors: INVALID_ARGUMENT naming the field (see
  // DecideTrainingProblem), CANCELLED when progress returns false.
  static absl::StatusOr<std::unique_ptr<FittedModel>> Fit(
      const ModelSpec& spec, const TrainingData& data,
      const FitOptions& options = {}, FitOutputs* outputs = nullptr);

  // Restores a model written by Serialize(). DATA_LOSS when the bytes are
  // damaged (bad magic, checksum, truncation), UNIMPLEMENTED for a newer
  // format version.
  static absl::StatusOr<std::unique_ptr<FittedModel>> Deserialize(
      const std::string& bytes);

  FittedModel(const FittedModel&) = delete;
  FittedModel& operator=(const FittedModel&) = delete;
  ~FittedModel();

  // Probabilities, labels and centered logits at raw query rows (M x d).
  // INVALID_ARGUMENT ("features: ...") for a wrong column count or NaN/Inf.
  // `progress` (may be empty) is asked before each block of query rows (at
  // most ~2e9 flops of kernel work each, kFlopsPerStep); when it says
  // stop the rest is skipped and the result is CANCELLED. The blocks depend
  // on the model and the number of rows only; splitting the rows over
  // several calls changes rounding only.
  absl::StatusOr<Prediction> Predict(const Eigen::MatrixXd& features,
                                     const ProgressFn& progress = {}) const;

  // Trained logits f(x) (not centered) at raw query rows with initial
  // outputs f0 at them (M x C; empty: zero). Uses the fit's F0. `progress`
  // as for Predict.
  absl::StatusOr<Eigen::MatrixXd> PredictLogits(
      const Eigen::MatrixXd& features,
      const Eigen::MatrixXd& initial_query_outputs = {},
      const ProgressFn& progress = {}) const;

  // docs/model-contract.md "4. PredictDistribution". INVALID_ARGUMENT naming
  // the field ("features: ...", "num_samples: ..." outside
  // [0, kMaxNumSamples], "method: ..."), FAILED_PRECONDITION for a method
  // that does not apply (kExact for 2a, kLaplacePosterior for 2b/2c) or
  // whose summaries a Nystrom model lacks (older file, over the cap of
  // FitOptions::max_nystrom_summary_bytes, or a fit with initial outputs;
  // the message says which and what to do), UNIMPLEMENTED for kMonteCarlo on
  // a Nystrom 2a model, RESOURCE_EXHAUSTED when the method's factors would
  // exceed options.max_cache_bytes.
  absl::StatusOr<DistributionResult> PredictDistribution(
      const Eigen::MatrixXd& features, const DistributionOptions& options) const;

  // Versioned bytes with a checksum; Deserialize(Serialize()) predicts
  // bit-for-bit what this model predicts.
  std::string Serialize() const;

  FittedModelInfo Info() const;

  // Bytes of the model's own data (training rows, targets, dual, ...);
  // distribution factors are accounted by the DistributionCache.
  int64_t MemoryBytes() const;

  struct State;  // core/model/model_state.h (internal to core/)

 private:
  friend struct ModelInternals;
  explicit FittedModel(std::unique_ptr<State> state);

  std::unique_ptr<State> state_;
};

}  // namespace ntk

#endif  // NTK_CORE_MODEL_MODEL_H_

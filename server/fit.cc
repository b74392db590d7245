#include "server/fit.h"

#include <algorithm>
#include <chrono>
#include <memory>
#include <utility>

#include "absl/strings/str_format.h"
#include "core/model/cost.h"
#include "core/model/model.h"
#include "server/convert.h"
#include "server/finite_response.h"
#include "server/log.h"

namespace ntk::server {
namespace {

// Progress lines at most every 10% or 3 s; remembers the last phase.
class FitProgressLog {
 public:
  FitProgressLog(const std::string& id, bool enabled) : id_(id), enabled_(enabled) {}
  void Report(double fraction, const char* phase) {
    phase_ = phase != nullptr ? phase : "";
    const auto now = std::chrono::steady_clock::now();
    if (!enabled_ || (fraction < last_fraction_ + 0.1 && now - last_log_ <= kEvery)) return;
    last_fraction_ = fraction;
    last_log_ = now;
    Logf("fit model=%s phase=%s progress=%.0f%% elapsed_ms=%d", id_, phase_, 100.0 * fraction,
         std::chrono::duration_cast<std::chrono::milliseconds>(now - start_).count());
  }
  const std::string& phase() const { return phase_; }

 private:
  static constexpr std::chrono::seconds kEvery{3};
  const std::string& id_;
  const bool enabled_;
  const std::chrono::steady_clock::time_point start_ = std::chrono::steady_clock::now();
  std::chrono::steady_clock::time_point last_log_ = start_;
  double last_fraction_ = 0;
  std::string phase_ = "start";
};

// The number of classes a fit will have: the spec's, the targets' columns,
// or 1 + the largest label (as DecideTrainingProblem decides it).
int64_t ClassesOf(const ModelSpec& spec, const TrainingData& data) {
  int64_t c = std::max<int64_t>(spec.num_classes, data.targets.cols());
  for (const int label : data.labels) c = std::max<int64_t>(c, int64_t{label} + 1);
  return c;
}

}  // namespace

absl::Status RunFit(const ServerOptions& options, ModelRegistry* registry, MemoryBudget* budget,
                    RpcCall& call, FitJob job, v1::FitResponse* response) {
  if (call.Cancelled()) return absl::CancelledError("Fit: cancelled by the client");
  const std::string id = job.model_id.empty() ? GenerateModelId() : job.model_id;
  call.log().model_id = id;
  call.log().rows = job.data.features.rows();
  if (absl::Status s = ValidateModelId(id); !s.ok()) return s;
  if (job.selection != nullptr && job.selection->folds() != 0) {
    return absl::UnimplementedError("selection: model selection is not implemented yet");
  }
  if (job.background) {
    return absl::UnimplementedError("background: background fits are not implemented yet");
  }
  static const v1::ModelSpec kEmptySpec;
  absl::StatusOr<ModelSpec> spec =
      ModelSpecFromProto(job.spec != nullptr ? *job.spec : kEmptySpec, options);
  if (!spec.ok()) return spec.status();
  const int64_t rows = job.data.features.rows();
  const Cost cost = FitCostUpperBound(
      rows, job.data.features.cols(), ClassesOf(*spec, job.data),
      spec->training.loss == Loss::kSquared,
      spec->nystrom() && rows > 0 ? ResolveNumCenters(spec->approximation.num_centers, rows) : 0);
  absl::StatusOr<MemoryBudget::Reservation> reserved =
      budget->Reserve(cost.bytes, call.log().method);
  if (!reserved.ok()) return reserved.status();

  if (absl::Status s = registry->Reserve(id, job.replace); !s.ok()) return s;
  bool committed = false;
  struct ReleaseGuard {
    ModelRegistry* r;
    const std::string& id;
    bool* committed;
    ~ReleaseGuard() {
      if (!*committed) r->Release(id);
    }
  } guard{registry, id, &committed};

  if (options.log_rpcs) {
    Logf("fit model=%s phase=start rows=%d cols=%d", id, job.data.features.rows(),
         job.data.features.cols());
  }
  FitProgressLog progress(id, options.log_rpcs);
  bool stopped = false;
  FitOptions fit_options;
  fit_options.progress = [&](double fraction, const char* phase) {
    progress.Report(fraction, phase);
    stopped = call.Stopped();
    return !stopped;
  };
  // 2b/2c: the Fit's Cholesky factor (and K) go to the distribution cache,
  // so the first EXACT PredictDistribution does no O(N^3) work (issue 10).
  // The cost model already counts Theta + K + the factor at the Fit's peak.
  fit_options.keep_distribution_factors = registry->cache() != nullptr;
  FitOutputs outputs;
  absl::StatusOr<std::unique_ptr<FittedModel>> fitted =
      FittedModel::Fit(*spec, job.data, fit_options, &outputs);
  job.data = TrainingData();  // no longer needed: free it before persisting
  if ((stopped || !fitted.ok()) && call.PastDeadline()) {
    return absl::DeadlineExceededError(absl::StrFormat(
        "Fit: deadline exceeded (phase %s); no model was kept", progress.phase()));
  }
  if (stopped || call.Cancelled()) {
    return absl::CancelledError("Fit: cancelled; no model was kept");
  }
  if (!fitted.ok()) return fitted.status();
  if (call.PastDeadline()) {
    return absl::DeadlineExceededError("Fit: deadline exceeded; no model was kept");
  }
  std::shared_ptr<const FittedModel> model(std::move(*fitted));
  std::string payload = model->Serialize();
  committed = true;  // Commit releases the reservation in every case
  absl::StatusOr<std::shared_ptr<const ModelEntry>> entry =
      registry->Commit(id, NowUnixMs(), std::move(model), std::move(payload));
  if (!entry.ok()) return entry.status();
  outputs.PutInto((*entry)->CacheScope(registry->cache()));
  outputs = FitOutputs();
  if (options.log_rpcs) {
    const DistributionCache* cache = registry->cache();
    Logf("fit model=%s phase=done generation=%d model_bytes=%d cache_bytes=%d models=%d", id,
         (*entry)->generation, (*entry)->model_bytes,
         cache != nullptr ? cache->stats().bytes : 0, registry->size());
  }
  *response->mutable_model() = (*entry)->info;
  return CheckResponseFinite(call.log().method, *response);
}

}  // namespace ntk::server

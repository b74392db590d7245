#include "server/fit.h"

#include <algorithm>
#include <chrono>
#include <memory>
#include <utility>

#include "absl/strings/str_format.h"
#include "core/model/cost.h"
#include "core/model/model.h"
#include "core/selection/selection.h"
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

// What one fit needs once admitted; a background fit moves it into its closure.
struct PreparedFit {
  std::string id;
  ModelSpec spec;
  TrainingData data;
  SelectionOptions selection;         // folds 0: no selection
  MemoryBudget::Reservation memory;   // released when the fit ends
  std::shared_ptr<FitRecord> record;  // state and progress (server/fit_tracker.h)
};

// Core's fit with progress and cancellation, then persist and publish
// (*entry). Releases the registry's reservation of p.id in every case.
absl::Status Execute(const ServerOptions& options, ModelRegistry* registry, RpcCall& call,
                     PreparedFit& p, std::shared_ptr<const ModelEntry>* entry) {
  const std::string& id = p.id;
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
    Logf("fit model=%s phase=start rows=%d cols=%d", id, p.data.features.rows(),
         p.data.features.cols());
  }
  FitProgressLog progress(id, options.log_rpcs);
  bool stopped = false;
  FitOptions fit_options;
  fit_options.progress = [&](double fraction, const char* phase) {
    progress.Report(fraction, phase);
    p.record->Report(fraction, phase);
    stopped = call.Stopped();
    return !stopped;
  };
  // 2b/2c: the Fit's Cholesky factor (and K) go to the distribution cache,
  // so the first EXACT PredictDistribution does no O(N^3) work (issue 10).
  // The cost model already counts Theta + K + the factor at the Fit's peak.
  fit_options.keep_distribution_factors = registry->cache() != nullptr;
  // Nystrom 2a: the PredictDistribution summaries are kept under the core
  // default cap, lowered to the memory budget (docs/model-contract.md
  // "6. Nystrom models", "PredictDistribution of a Nystrom model").
  if (const int64_t budget = MemoryBudgetBytes(options); budget > 0) {
    fit_options.max_nystrom_summary_bytes = std::min(kDefaultNystromSummaryBytes, budget);
  }
  FitOutputs outputs;
  // With selection: the cross-validation (phase "selection"), then the
  // chosen candidate's Fit; the report is kept in the model (ModelInfo.selection).
  absl::StatusOr<std::unique_ptr<FittedModel>> fitted =
      FitWithSelection(p.spec, p.data, p.selection, fit_options, &outputs);
  p.data = TrainingData();  // no longer needed: free it before persisting
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
  p.record->Report(0, "persist");
  std::shared_ptr<const FittedModel> model(std::move(*fitted));
  std::string payload = model->Serialize();
  committed = true;  // Commit releases the reservation in every case
  absl::StatusOr<std::shared_ptr<const ModelEntry>> published =
      registry->Commit(id, NowUnixMs(), std::move(model), std::move(payload));
  if (!published.ok()) return published.status();
  outputs.PutInto((*published)->CacheScope(registry->cache()));
  outputs = FitOutputs();
  if (options.log_rpcs) {
    const DistributionCache* cache = registry->cache();
    Logf("fit model=%s phase=done generation=%d model_bytes=%d cache_bytes=%d models=%d", id,
         (*published)->generation, (*published)->model_bytes,
         cache != nullptr ? cache->stats().bytes : 0, registry->size());
  }
  *entry = *std::move(published);
  return absl::OkStatus();
}

// Execute, exceptions turned into a status, and the record ended with the
// outcome (so watchers and DeleteModel never wait for a fit that threw).
absl::Status ExecuteAndFinish(const ServerOptions& options, ModelRegistry* registry,
                              RpcCall& call, PreparedFit& p,
                              std::shared_ptr<const ModelEntry>* entry) {
  absl::Status s =
      RpcRunner::NoThrow([&] { return Execute(options, registry, call, p, entry); });
  registry->fits().Finish(p.record, s, s.ok() ? &(*entry)->info : nullptr);
  return s;
}

}  // namespace

absl::Status RunFit(RpcRunner* runner, ModelRegistry* registry, RpcCall& call, FitJob job,
                    v1::FitResponse* response) {
  const ServerOptions& options = runner->options();
  // Nobody waits any more (cancel, deadline passed during the upload, time
  // ceiling): no work. RpcRunner maps CANCELLED past the deadline to
  // DEADLINE_EXCEEDED.
  if (call.Stopped()) return absl::CancelledError("Fit: stopped before the work began");
  const std::string id = job.model_id.empty() ? GenerateModelId() : job.model_id;
  call.log().model_id = id;
  const int64_t rows = job.data.features.rows();
  call.log().rows = rows;
  if (absl::Status s = ValidateModelId(id); !s.ok()) return s;
  static const v1::ModelSpec kEmptySpec;
  const v1::ModelSpec& wire_spec = job.spec != nullptr ? *job.spec : kEmptySpec;
  absl::StatusOr<ModelSpec> spec = ModelSpecFromProto(wire_spec, options);
  if (!spec.ok()) return spec.status();
  const SelectionOptions selection = job.selection != nullptr
                                         ? SelectionOptionsFromProto(*job.selection)
                                         : SelectionOptions();
  const int64_t classes = ClassesOf(*spec, job.data);
  Cost cost = FitCostUpperBound(
      rows, job.data.features.cols(), classes, spec->training.loss == Loss::kSquared,
      spec->nystrom() && rows > 0 ? ResolveNumCenters(spec->approximation.num_centers, rows) : 0);
  std::string what = call.log().method;
  if (SelectionRequested(selection)) {
    // Bad grids are refused before anything is reserved; the estimate is
    // the larger of the cross-validation's and the final fit's.
    if (absl::Status s = ValidateSelection(*spec, job.data, selection); !s.ok()) return s;
    const SelectionShape shape = SelectionShapeOf(*spec, job.data, selection);
    cost.bytes = std::max(
        cost.bytes, SelectionCost(rows, job.data.features.cols(), classes, shape).bytes);
    what = absl::StrFormat("%s with selection (%d candidates x %d folds, %s)", what,
                           SelectionCandidates(*spec, job.data, selection).size(), selection.folds,
                           SelectionCriterionName(selection.criterion));
  }
  absl::StatusOr<MemoryBudget::Reservation> reserved =
      runner->memory_budget()->Reserve(cost.bytes, what);
  if (!reserved.ok()) return reserved.status();
  if (absl::Status s = registry->Reserve(id, job.replace); !s.ok()) return s;

  PreparedFit p;
  p.id = id;
  p.spec = *std::move(spec);
  p.selection = selection;
  p.record = registry->fits().Start(id, wire_spec, rows, job.data.features.cols(), job.background);
  p.data = std::move(job.data);
  p.memory = *std::move(reserved);
  if (!job.background) {
    call.set_cancel_flag(p.record->cancel_flag());
    std::shared_ptr<const ModelEntry> entry;
    if (absl::Status s = ExecuteAndFinish(options, registry, call, p, &entry); !s.ok()) return s;
    *response->mutable_model() = entry->info;
    return CheckResponseFinite(call.log().method, *response);
  }
  // Background: answer FITTING now; the fit keeps this call's fit slot and
  // runs on the fit pool (docs/api.md "Long fits").
  *response->mutable_model() = p.record->Snapshot().info;
  call.DetachFitSlot();
  auto shared = std::make_shared<PreparedFit>(std::move(p));
  runner->Schedule(Where::kFit, [runner, registry, shared, rows] {
    RpcCall background(nullptr, CallLog("Fit(background)", shared->id, rows));
    background.set_cancel_flag(shared->record->cancel_flag());
    std::shared_ptr<const ModelEntry> entry;
    const absl::Status s =
        ExecuteAndFinish(runner->options(), registry, background, *shared, &entry);
    if (!s.ok() && runner->options().log_rpcs) {
      Logf("fit model=%s phase=failed code=%s msg=%s", LogfmtValue(shared->id),
           absl::StatusCodeToString(s.code()), LogfmtValue(s.message(), /*always_quote=*/true));
    }
    shared->memory = MemoryBudget::Reservation();
    runner->ReleaseFitSlot();
  });
  return absl::OkStatus();
}

}  // namespace ntk::server

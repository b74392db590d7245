#include "server/inference.h"

#include <utility>

#include "absl/strings/str_format.h"
#include "core/model/cost.h"
#include "core/numerics/values.h"
#include "server/convert.h"
#include "server/fit_tracker.h"
#include "server/memory_budget.h"

namespace ntk::server {
namespace {

// The rows the cross kernels of a query run against: N training rows, or the
// m centers of a Nystrom model (docs/model-contract.md "6. Nystrom models").
int64_t KernelRows(const FittedModelInfo& info) {
  return info.spec.nystrom() ? info.spec.approximation.num_centers : info.num_train;
}

// CANCELLED when the call stopped before its work started (Finish turns
// it into DEADLINE_EXCEEDED past the deadline).
absl::Status NotStopped(const char* method, const RpcCall& call) {
  if (!call.Stopped()) return absl::OkStatus();
  return absl::CancelledError(
      absl::StrFormat("%s: the call ended before its work started", method));
}

}  // namespace

absl::StatusOr<std::shared_ptr<const ModelEntry>> Inference::FindModel(
    const std::string& model_id, absl::string_view field) const {
  if (absl::Status s = ValidateModelId(model_id, field); !s.ok()) return s;
  std::shared_ptr<const ModelEntry> entry = registry_->Get(model_id);
  if (entry != nullptr) return entry;
  if (std::shared_ptr<FitRecord> fit = registry_->fits().Find(model_id)) {
    const v1::ModelInfo info = fit->Snapshot().info;
    if (info.state() == v1::FAILED) {
      return absl::FailedPreconditionError(absl::StrFormat(
          "%s: model \"%s\" is FAILED (%s); fit it again", field, model_id, info.error()));
    }
    if (info.state() == v1::FITTING) {
      return absl::FailedPreconditionError(absl::StrFormat(
          "%s: model \"%s\" is FITTING (%s, %.0f%%); wait until it is READY (WatchModel)",
          field, model_id, info.progress().phase(), 100 * info.progress().fraction()));
    }
    entry = registry_->Get(model_id);  // the fit published it meanwhile
    if (entry != nullptr) return entry;
  }
  return absl::NotFoundError(absl::StrFormat("%s: no model \"%s\"", field, model_id));
}

Where Inference::PredictPlace(const std::string& model_id, int64_t rows, int64_t cols) const {
  std::shared_ptr<const ModelEntry> entry = registry_->Get(model_id);
  if (entry == nullptr) return Where::kInline;  // answered at once (NOT_FOUND, ...)
  return PlaceFor(entry->model->Info(), rows, cols);
}

Where Inference::PlaceFor(const FittedModelInfo& info, int64_t rows, int64_t cols) const {
  const double work = static_cast<double>(rows) * KernelRows(info) *
                      (static_cast<double>(cols) + info.num_classes);
  if (work <= options().inline_predict_max_work) return Where::kInline;
  return rows < options().predict_batch_max_rows ? Where::kPredict : Where::kCompute;
}

absl::StatusOr<Prediction> Inference::Predict(const char* method, const RpcCall& call,
                                              const ModelEntry& entry,
                                              const Eigen::MatrixXd& x) const {
  if (absl::Status s = NotStopped(method, call); !s.ok()) return s;
  const FittedModelInfo info = entry.model->Info();
  const int64_t rows = x.rows();
  absl::StatusOr<MemoryBudget::Reservation> reserved = AdmitRequest(
      runner_->memory_budget(), options(), method, PredictResponseBytes(rows, info.num_classes),
      PredictCost(rows, KernelRows(info), info.num_features, info.num_classes).bytes);
  if (!reserved.ok()) return reserved.status();
  // Only Predicts placed on the Predict pool wait for a batch (inline ones
  // must not block gRPC's threads), and only well-formed rows join one: a
  // request the model refuses (columns, NaN/Inf, magnitude) gets its own
  // error, computed alone. A call computed alone stops between blocks of
  // rows once nobody waits for it (deadline, cancel, time ceiling); a batch
  // serves several calls and is small (predict_batch_max_rows): it runs
  // to its end.
  if (entry.batcher == nullptr || call.where() != Where::kPredict ||
      x.cols() != info.num_features || !CheckInputValues(x, "features").ok()) {
    return entry.model->Predict(x, call.ContinueWhileWanted());
  }
  return entry.batcher->Predict(
      x, [&entry](const Eigen::MatrixXd& rows) { return entry.model->Predict(rows); });
}

absl::StatusOr<DistributionResult> Inference::PredictDistribution(
    const char* method, RpcCall& call, const ModelEntry& entry, const Eigen::MatrixXd& x,
    DistributionOptions options) const {
  if (absl::Status s = NotStopped(method, call); !s.ok()) return s;
  const FittedModelInfo info = entry.model->Info();
  const int64_t rows = x.rows();
  options.cache = entry.CacheScope(registry_->cache());
  absl::StatusOr<MemoryBudget::Reservation> reserved = AdmitRequest(
      runner_->memory_budget(), this->options(), method,
      DistributionResponseBytes(rows, info.num_classes),
      DistributionCost(options.method, info.regime, rows, info.num_train, info.num_features,
                       info.num_classes, options.num_samples,
                       DistributionFactorCapacity(options),
                       info.spec.nystrom() ? info.spec.approximation.num_centers : 0)
          .bytes);
  if (!reserved.ok()) return reserved.status();
  options.progress = call.ContinueWhileWanted();
  absl::StatusOr<DistributionResult> d = entry.model->PredictDistribution(x, options);
  if (registry_->cache() != nullptr) {
    call.log().extra = absl::StrFormat("model_bytes=%d model_cache_bytes=%d cache_bytes=%d",
                                       entry.model_bytes, registry_->cache()->ModelBytes(entry.id),
                                       registry_->cache()->stats().bytes);
  }
  return d;
}

}  // namespace ntk::server

#include "server/service.h"

#include <utility>

#include "absl/strings/str_format.h"
#include "core/model/cost.h"
#include "server/convert.h"
#include "server/fit.h"
#include "server/finite_response.h"
#include "server/fit_stream.h"

namespace ntk::server {

NtkServiceImpl::NtkServiceImpl(const ServerOptions& options, ModelRegistry* registry,
                               WorkerPool* compute_pool, WorkerPool* fit_pool,
                               InflightCalls* inflight)
    : options_(options),
      auth_(options.auth_token),
      registry_(registry),
      runner_(options, &auth_, compute_pool, fit_pool, inflight) {}

absl::StatusOr<std::shared_ptr<const ModelEntry>> NtkServiceImpl::FindModel(
    const std::string& model_id) const {
  if (absl::Status s = ValidateModelId(model_id); !s.ok()) return s;
  std::shared_ptr<const ModelEntry> entry = registry_->Get(model_id);
  if (entry == nullptr) {
    return absl::NotFoundError(absl::StrFormat("model_id: no model \"%s\"", model_id));
  }
  return entry;
}

namespace {
// The rows Predict's cross kernels run against: N training rows, or the m
// centers of a Nystrom model (docs/model-contract.md "6. Nystrom models").
int64_t KernelRows(const FittedModelInfo& info) {
  return info.spec.nystrom() ? info.spec.approximation.num_centers : info.num_train;
}
}  // namespace

Where NtkServiceImpl::PredictPlace(const v1::PredictRequest& request) const {
  std::shared_ptr<const ModelEntry> entry = registry_->Get(request.model_id());
  if (entry == nullptr) return Where::kInline;  // answered at once (NOT_FOUND, ...)
  const FittedModelInfo info = entry->model->Info();
  const double work = static_cast<double>(request.features().rows()) * KernelRows(info) *
                      (static_cast<double>(request.features().cols()) + info.num_classes);
  return work <= options_.inline_predict_max_work ? Where::kInline : Where::kCompute;
}

grpc::ServerUnaryReactor* NtkServiceImpl::Fit(grpc::CallbackServerContext* ctx,
                                              const v1::FitRequest* request,
                                              v1::FitResponse* response) {
  return runner_.Unary(
      ctx, CallLog("Fit", request->model_id(), request->features().rows()), Where::kFit,
      [this, request, response](RpcCall& call) -> absl::Status {
        absl::StatusOr<TrainingData> data = TrainingDataFromProto(*request, options_);
        if (!data.ok()) return data.status();
        FitJob job{request->model_id(),     request->replace(),    &request->spec(),
                   &request->selection(),   request->background(), *std::move(data)};
        return RunFit(options_, registry_, runner_.memory_budget(), call, std::move(job),
                      response);
      });
}

grpc::ServerReadReactor<v1::FitRequest>* NtkServiceImpl::FitStream(
    grpc::CallbackServerContext* ctx, v1::FitResponse* response) {
  return NewFitStreamReactor(&runner_, registry_, ctx, response);
}

grpc::ServerUnaryReactor* NtkServiceImpl::Predict(grpc::CallbackServerContext* ctx,
                                                  const v1::PredictRequest* request,
                                                  v1::PredictResponse* response) {
  return runner_.Unary(
      ctx, CallLog("Predict", request->model_id(), request->features().rows()),
      [this, request] { return PredictPlace(*request); },
      [this, request, response](RpcCall&) -> absl::Status {
        absl::StatusOr<std::shared_ptr<const ModelEntry>> entry =
            FindModel(request->model_id());
        if (!entry.ok()) return entry.status();
        absl::StatusOr<Eigen::MatrixXd> x = QueryFeaturesFromProto(request->features(), options_);
        if (!x.ok()) return x.status();
        const FittedModelInfo info = (*entry)->model->Info();
        const int64_t rows = x->rows();
        absl::StatusOr<MemoryBudget::Reservation> reserved = AdmitRequest(
            runner_.memory_budget(), options_, "Predict",
            PredictResponseBytes(rows, info.num_classes),
            PredictCost(rows, KernelRows(info), info.num_features, info.num_classes).bytes);
        if (!reserved.ok()) return reserved.status();
        absl::StatusOr<Prediction> p = (*entry)->model->Predict(*x);
        if (!p.ok()) return p.status();
        PredictionToProto(*p, ResponseEncodingFor(EncodingOf(request->features())), response);
        return CheckResponseFinite("Predict", *response);
      });
}

grpc::ServerUnaryReactor* NtkServiceImpl::PredictDistribution(
    grpc::CallbackServerContext* ctx, const v1::PredictDistributionRequest* request,
    v1::PredictDistributionResponse* response) {
  return runner_.Unary(
      ctx, CallLog("PredictDistribution", request->model_id(), request->features().rows()),
      Where::kCompute, [this, request, response](RpcCall& call) -> absl::Status {
        absl::StatusOr<std::shared_ptr<const ModelEntry>> entry =
            FindModel(request->model_id());
        if (!entry.ok()) return entry.status();
        absl::StatusOr<DistributionOptions> opts = DistributionOptionsFromProto(*request, options_);
        if (!opts.ok()) return opts.status();
        absl::StatusOr<Eigen::MatrixXd> x = QueryFeaturesFromProto(request->features(), options_);
        if (!x.ok()) return x.status();
        const FittedModelInfo info = (*entry)->model->Info();
        const int64_t rows = x->rows();
        absl::StatusOr<MemoryBudget::Reservation> reserved = AdmitRequest(
            runner_.memory_budget(), options_, "PredictDistribution",
            DistributionResponseBytes(rows, info.num_classes),
            DistributionCost(opts->method, info.regime, rows, KernelRows(info), info.num_features,
                             info.num_classes, opts->num_samples)
                .bytes);
        if (!reserved.ok()) return reserved.status();
        opts->progress = call.ContinueWhileWanted();
        opts->cache = (*entry)->CacheScope(registry_->cache());
        absl::StatusOr<DistributionResult> d = (*entry)->model->PredictDistribution(*x, *opts);
        if (registry_->cache() != nullptr) {
          call.log().extra = absl::StrFormat(
              "model_bytes=%d model_cache_bytes=%d cache_bytes=%d", (*entry)->model_bytes,
              registry_->cache()->ModelBytes((*entry)->id), registry_->cache()->stats().bytes);
        }
        if (!d.ok()) return d.status();
        DistributionToProto(*d, response);
        return CheckResponseFinite("PredictDistribution", *response);
      });
}

grpc::ServerUnaryReactor* NtkServiceImpl::GetModel(grpc::CallbackServerContext* ctx,
                                                   const v1::GetModelRequest* request,
                                                   v1::ModelInfo* response) {
  return runner_.Unary(ctx, CallLog("GetModel", request->model_id()), Where::kInline,
                       [this, request, response](RpcCall& call) -> absl::Status {
                         absl::StatusOr<std::shared_ptr<const ModelEntry>> entry =
                             FindModel(request->model_id());
                         if (!entry.ok()) return entry.status();
                         *response = (*entry)->info;
                         call.log().rows = (*entry)->info.num_train();
                         return absl::OkStatus();
                       });
}

grpc::ServerUnaryReactor* NtkServiceImpl::ListModels(grpc::CallbackServerContext* ctx,
                                                     const v1::ListModelsRequest*,
                                                     v1::ListModelsResponse* response) {
  return runner_.Unary(ctx, CallLog("ListModels"), Where::kInline,
                       [this, response](RpcCall& call) -> absl::Status {
                         for (const auto& e : registry_->List()) *response->add_models() = e->info;
                         call.log().rows = response->models_size();
                         return absl::OkStatus();
                       });
}

grpc::ServerUnaryReactor* NtkServiceImpl::DeleteModel(grpc::CallbackServerContext* ctx,
                                                      const v1::DeleteModelRequest* request,
                                                      v1::DeleteModelResponse*) {
  return runner_.Unary(ctx, CallLog("DeleteModel", request->model_id()), Where::kCompute,
                       [this, request](RpcCall&) -> absl::Status {
                         if (absl::Status s = ValidateModelId(request->model_id()); !s.ok()) {
                           return s;
                         }
                         return registry_->Delete(request->model_id());
                       });
}

}  // namespace ntk::server

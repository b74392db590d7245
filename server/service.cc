#include "server/service.h"

#include <map>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_format.h"
#include "server/convert.h"
#include "server/fit.h"
#include "server/finite_response.h"
#include "server/fit_stream.h"
#include "server/watch_model.h"

namespace ntk::server {

NtkServiceImpl::NtkServiceImpl(ModelRegistry* registry, RpcRunner* runner,
                               const Inference* inference)
    : options_(runner->options()), registry_(registry), runner_(*runner), inference_(*inference) {}

grpc::ServerUnaryReactor* NtkServiceImpl::Fit(grpc::CallbackServerContext* ctx,
                                              const v1::FitRequest* request,
                                              v1::FitResponse* response) {
  return runner_.Unary(
      ctx, CallLog("Fit", request->model_id(), request->features().rows()), Where::kFit,
      [this, request, response](RpcCall& call) -> absl::Status {
        // A deadline that passed during the upload: not even the conversion.
        if (call.Stopped()) return absl::CancelledError("Fit: stopped before the work began");
        absl::StatusOr<TrainingData> data = TrainingDataFromProto(*request, options_);
        if (!data.ok()) return data.status();
        FitJob job{request->model_id(),     request->replace(),    &request->spec(),
                   &request->selection(),   request->background(), *std::move(data)};
        return RunFit(&runner_, registry_, call, std::move(job), response);
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
      [this, request] {
        return inference_.PredictPlace(request->model_id(), request->features().rows(),
                                       request->features().cols());
      },
      [this, request, response](RpcCall& call) -> absl::Status {
        absl::StatusOr<std::shared_ptr<const ModelEntry>> entry =
            inference_.FindModel(request->model_id());
        if (!entry.ok()) return entry.status();
        absl::StatusOr<Eigen::MatrixXd> x = QueryFeaturesFromProto(request->features(), options_);
        if (!x.ok()) return x.status();
        absl::StatusOr<Prediction> p = inference_.Predict("Predict", call, **entry, *x);
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
            inference_.FindModel(request->model_id());
        if (!entry.ok()) return entry.status();
        absl::StatusOr<DistributionOptions> opts = DistributionOptionsFromProto(*request, options_);
        if (!opts.ok()) return opts.status();
        absl::StatusOr<Eigen::MatrixXd> x = QueryFeaturesFromProto(request->features(), options_);
        if (!x.ok()) return x.status();
        absl::StatusOr<DistributionResult> d = inference_.PredictDistribution(
            "PredictDistribution", call, **entry, *x, *std::move(opts));
        if (!d.ok()) return d.status();
        DistributionToProto(*d, ResponseEncodingFor(EncodingOf(request->features())),
                            request->columnar(), response);
        return CheckResponseFinite("PredictDistribution", *response);
      });
}

grpc::ServerUnaryReactor* NtkServiceImpl::GetModel(grpc::CallbackServerContext* ctx,
                                                   const v1::GetModelRequest* request,
                                                   v1::ModelInfo* response) {
  return runner_.Unary(
      ctx, CallLog("GetModel", request->model_id()), Where::kInline,
      [this, request, response](RpcCall& call) -> absl::Status {
        const std::string& id = request->model_id();
        absl::StatusOr<std::shared_ptr<const ModelEntry>> entry = inference_.FindModel(id);
        if (entry.ok()) {
          *response = (*entry)->info;
        } else if (std::shared_ptr<FitRecord> fit = registry_->fits().Find(id);
                   entry.status().code() == absl::StatusCode::kFailedPrecondition &&
                   fit != nullptr) {
          *response = fit->Snapshot().info;  // FITTING or FAILED
        } else {
          return entry.status();
        }
        call.log().rows = response->num_train();
        return absl::OkStatus();
      });
}

grpc::ServerUnaryReactor* NtkServiceImpl::ListModels(grpc::CallbackServerContext* ctx,
                                                     const v1::ListModelsRequest*,
                                                     v1::ListModelsResponse* response) {
  return runner_.Unary(
      ctx, CallLog("ListModels"), Where::kInline, [this, response](RpcCall& call) -> absl::Status {
        // Published models, and fits (FITTING or FAILED) of ids without one,
        // ordered by id.
        std::map<std::string, const v1::ModelInfo*> by_id;
        const std::vector<std::shared_ptr<const ModelEntry>> entries = registry_->List();
        for (const auto& e : entries) by_id[e->id] = &e->info;
        std::vector<v1::ModelInfo> fitting;
        const std::vector<std::shared_ptr<FitRecord>> fits = registry_->fits().List();
        fitting.reserve(fits.size());
        for (const auto& f : fits) {
          if (by_id.count(f->id()) > 0) continue;
          fitting.push_back(f->Snapshot().info);
          by_id[f->id()] = &fitting.back();
        }
        for (const auto& [id, info] : by_id) *response->add_models() = *info;
        call.log().rows = response->models_size();
        return absl::OkStatus();
      });
}

grpc::ServerUnaryReactor* NtkServiceImpl::DeleteModel(grpc::CallbackServerContext* ctx,
                                                      const v1::DeleteModelRequest* request,
                                                      v1::DeleteModelResponse*) {
  return runner_.Unary(
      ctx, CallLog("DeleteModel", request->model_id()), Where::kCompute,
      [this, request](RpcCall&) -> absl::Status {
        const std::string& id = request->model_id();
        if (absl::Status s = ValidateModelId(id); !s.ok()) return s;
        // A fit of the id in progress is cancelled and waited for (it stops
        // at core's next progress check and leaves no file); a failed one is
        // forgotten. Then the published model, if any, goes.
        std::shared_ptr<FitRecord> fit = registry_->fits().Find(id);
        if (fit != nullptr) {
          fit->Cancel();
          fit->WaitDone();
          registry_->fits().Forget(id);
        }
        absl::Status s = registry_->Delete(id);
        if (fit != nullptr && absl::IsNotFound(s)) return absl::OkStatus();
        return s;
      });
}

grpc::ServerWriteReactor<v1::ModelInfo>* NtkServiceImpl::WatchModel(
    grpc::CallbackServerContext* ctx, const v1::GetModelRequest* request) {
  return NewWatchModelReactor(&runner_, registry_, ctx, request);
}

}  // namespace ntk::server

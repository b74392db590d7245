#include "server/oip/calls.h"

#include <memory>
#include <utility>

#include "absl/strings/str_format.h"
#include "server/convert.h"
#include "server/oip/infer.h"

namespace ntk::server::oip {
namespace {

bool AsksForDistribution(const inference::ModelInferRequest& request) {
  for (const auto& o : request.outputs()) {
    if (!IsPredictOutput(o.name())) return true;
  }
  return false;
}

}  // namespace

Where InferPlace(const Inference& inference, const inference::ModelInferRequest& request) {
  if (AsksForDistribution(request)) return Where::kCompute;
  int64_t rows = 0, cols = 0;
  FeatureShape(request, &rows, &cols);
  return inference.PredictPlace(request.model_name(), rows, cols);
}

absl::Status ModelInfer(const Inference& inference, RpcCall& call,
                        const inference::ModelInferRequest& request,
                        inference::ModelInferResponse* response) {
  absl::StatusOr<std::shared_ptr<const ModelEntry>> entry =
      inference.FindModel(request.model_name(), "model_name");
  if (!entry.ok()) return entry.status();
  absl::StatusOr<InferPlan> plan = DecodeInferRequest(request, inference.options());
  if (!plan.ok()) return plan.status();
  call.log().rows = plan->x.rows();
  response->set_model_name(request.model_name());
  response->set_model_version(kModelVersion);
  response->set_id(request.id());
  if (plan->distribution) {
    absl::StatusOr<DistributionResult> d = inference.PredictDistribution(
        "ModelInfer", call, **entry, plan->x, plan->options);
    if (!d.ok()) return d.status();
    return EncodeDistribution(*plan, *d, response);
  }
  absl::StatusOr<Prediction> p = inference.Predict("ModelInfer", call, **entry, plan->x);
  if (!p.ok()) return p.status();
  return EncodePrediction(*plan, *p, response);
}

absl::Status ModelMetadata(const Inference& inference, const std::string& name,
                           const std::string& version,
                           inference::ModelMetadataResponse* response) {
  absl::StatusOr<std::shared_ptr<const ModelEntry>> entry = inference.FindModel(name, "name");
  if (!entry.ok()) return entry.status();
  if (absl::Status s = CheckModelVersion(version); !s.ok()) return s;
  ModelMetadataFor(name, (*entry)->model->Info(), response);
  return absl::OkStatus();
}

absl::Status ModelReady(const Inference& inference, const std::string& name,
                        const std::string& version, bool* ready) {
  *ready = false;
  if (absl::Status s = ValidateModelId(name, "name"); !s.ok()) return s;
  *ready = inference.registry()->Get(name) != nullptr && CheckModelVersion(version).ok();
  return absl::OkStatus();
}

}  // namespace ntk::server::oip

// ntk/server/oip/calls.h: the Open Inference Protocol calls that need a
// model, written once for both bindings (gRPC server/oip/service.h, HTTP
// server/http/http_server.h). Each is the body an RpcRunner runs
// (server/handler.h): auth, admission, logging, metrics and status mapping
// are the runner's.
//
// Thread safety: pure functions of their arguments (the registry is
// thread-safe).
#ifndef NTK_SERVER_OIP_CALLS_H_
#define NTK_SERVER_OIP_CALLS_H_

#include <string>

#include "absl/status/status.h"
#include "proto/inference/grpc_predict_v2.pb.h"
#include "server/handler.h"
#include "server/inference.h"

namespace ntk::server::oip {

// Where a ModelInfer runs: the compute pool for PredictDistribution
// outputs, else where a Predict of its shape would (Inference::PredictPlace).
Where InferPlace(const Inference& inference, const inference::ModelInferRequest& request);

// Decode (server/oip/infer.h), look the model up (NOT_FOUND "model_name:
// ..."), Predict or PredictDistribution, encode. Sets the call's log rows.
absl::Status ModelInfer(const Inference& inference, RpcCall& call,
                        const inference::ModelInferRequest& request,
                        inference::ModelInferResponse* response);

// The model's metadata; NOT_FOUND for an unknown model or version.
absl::Status ModelMetadata(const Inference& inference, const std::string& name,
                           const std::string& version,
                           inference::ModelMetadataResponse* response);

// Whether the model is being served: OK with *ready; INVALID_ARGUMENT for a
// malformed name. An unknown model or version is *ready = false.
absl::Status ModelReady(const Inference& inference, const std::string& name,
                        const std::string& version, bool* ready);

}  // namespace ntk::server::oip

#endif  // NTK_SERVER_OIP_CALLS_H_

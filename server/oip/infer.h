// ntk/server/oip/infer.h: the Open Inference Protocol (V2) tensors of
// ntk-serve, decoded and encoded once for both bindings: gRPC
// (server/oip/service.h) passes its inference.ModelInferRequest as is, the
// HTTP/REST binding (server/oip/rest_json.h) first turns its JSON into the
// same message. The contract is docs/api.md "Open Inference Protocol (V2)":
//
//   model_name      the model_id; model_version "" or "1" (one version)
//   inputs          exactly one tensor "features", FP64 or FP32, shape [M, d],
//                   in its typed contents (fp64_contents / fp32_contents) or
//                   in raw_input_contents[0] (little-endian, row-major)
//   outputs         by name, none = probabilities and labels:
//                   Predict ("3. Predict"): probabilities [M, C] FP64,
//                     labels [M] INT64, logits [M, C] FP64;
//                   PredictDistribution ("4. PredictDistribution"):
//                     probability_mean, logit_mean [M, C], probability_covariance,
//                     logit_covariance [M, C, C], predictive_entropy,
//                     expected_entropy, mutual_information [M], all FP64
//   parameters      method ("exact" | "linearized" | "monte_carlo" |
//                   "laplace_posterior"), num_samples, seed: PredictDistribution only
//
// Raw inputs are answered with raw_output_contents (one entry per output,
// in order; typed contents empty), as KServe does.
//
// Errors name the field: INVALID_ARGUMENT "inputs[0].datatype: ...",
// "raw_input_contents[0]: 40 bytes != 2*3*8 = 48 (FP64)", "outputs[1].name:
// unknown output \"x\" (...)", "parameters.foo: unknown parameter (...)";
// RESOURCE_EXHAUSTED for the configured limits (--max_predict_rows,
// --max_num_samples).
//
// Thread safety: pure functions.
#ifndef NTK_SERVER_OIP_INFER_H_
#define NTK_SERVER_OIP_INFER_H_

#include <string>
#include <vector>

#include <Eigen/Dense>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "core/model/model.h"
#include "proto/inference/grpc_predict_v2.pb.h"
#include "server/options.h"

namespace ntk::server::oip {

// The only version each model has.
inline constexpr char kModelVersion[] = "1";

// OK for "" and kModelVersion; NOT_FOUND "model_version: ..." otherwise.
absl::Status CheckModelVersion(const std::string& version);

// What one ModelInfer asks for, decoded.
struct InferPlan {
  Eigen::MatrixXd x;                 // the features, M x d
  bool distribution = false;         // PredictDistribution outputs (else Predict)
  DistributionOptions options;       // method, num_samples, seed (distribution only)
  std::vector<std::string> outputs;  // names, in the order they are answered
  bool raw = false;                  // answer in raw_output_contents
};

// Whether `output` is one of Predict's outputs (probabilities, labels,
// logits); every other name needs PredictDistribution (or is unknown).
bool IsPredictOutput(const std::string& output);

// The request's shape facts only (no model needed): the rows and columns
// of its "features" input, or 0 x 0 when it has none. For choosing where
// the call runs before it is decoded.
void FeatureShape(const inference::ModelInferRequest& request, int64_t* rows, int64_t* cols);

// Everything except model_name (the caller looks the model up): the version,
// the input tensor, the outputs and the parameters, against `limits`.
absl::StatusOr<InferPlan> DecodeInferRequest(const inference::ModelInferRequest& request,
                                             const ServerOptions& limits);

// The answer of `plan` from a Predict / PredictDistribution result: model
// name and version, the request's id, the outputs (raw when plan.raw), and
// for distributions the parameter "method" actually used. INTERNAL when an
// answer holds a non-finite number (server/finite_response.h).
absl::Status EncodePrediction(const InferPlan& plan, const Prediction& p,
                              inference::ModelInferResponse* out);
absl::Status EncodeDistribution(const InferPlan& plan, const DistributionResult& d,
                                inference::ModelInferResponse* out);

// ModelMetadata of a model with d features and C classes (inputs and every
// output with their shapes, -1 for the batch dimension).
void ModelMetadataFor(const std::string& name, const FittedModelInfo& info,
                      inference::ModelMetadataResponse* out);

// ServerMetadata: name "ntk-serve", the project's version, extensions.
void ServerMetadataFor(inference::ServerMetadataResponse* out);

}  // namespace ntk::server::oip

#endif  // NTK_SERVER_OIP_INFER_H_

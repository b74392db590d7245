// ntk/server/oip/rest_json.h: the Open Inference Protocol's HTTP/REST JSON
// (https://github.com/kserve/open-inference-protocol, inference_rest.md),
// translated to and from the gRPC messages, so that both bindings share one
// decoding (server/oip/infer.h). JSON by nlohmann-json.
//
// Request  {"id": "...", "parameters": {...}, "inputs": [{"name", "shape",
//           "datatype", "parameters", "data"}], "outputs": [{"name", "parameters"}]}
//   `data` is a flat or nested array of numbers (row-major), put into
//   fp64_contents (FP64) or fp32_contents (FP32); other datatypes carry no
//   contents, so that DecodeInferRequest names the datatype. The binary
//   data extension is not supported (raw tensors: use gRPC).
// Response {"model_name", "model_version", "id", "parameters", "outputs":
//           [{"name", "datatype", "shape", "data"}]}; numbers printed to
//           round-trip exactly.
// Errors   {"error": "<message>"} with HttpStatusFor(code).
//
// JSON that does not parse, or whose fields have the wrong JSON type, is
// INVALID_ARGUMENT naming the field ("inputs[0].shape[1]: must be an
// integer"). Thread safety: pure functions.
#ifndef NTK_SERVER_OIP_REST_JSON_H_
#define NTK_SERVER_OIP_REST_JSON_H_

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "proto/inference/grpc_predict_v2.pb.h"

namespace ntk::server::oip {

// The body of POST /v2/models/{name}[/versions/{version}]/infer.
absl::StatusOr<inference::ModelInferRequest> InferRequestFromJson(absl::string_view body,
                                                                  const std::string& name,
                                                                  const std::string& version);

std::string InferResponseToJson(const inference::ModelInferResponse& response);
std::string ModelMetadataToJson(const inference::ModelMetadataResponse& response);
std::string ServerMetadataToJson(const inference::ServerMetadataResponse& response);
// The repository extension's index: [{"name", "version", "state": "READY"}].
std::string RepositoryIndexToJson(const std::vector<std::string>& names);
// {"<key>": <value>}, e.g. {"live": true}.
std::string BoolToJson(const char* key, bool value);
// {"error": "<message>"}.
std::string ErrorToJson(absl::string_view message);

// The HTTP status of an absl status code (the mapping of grpc-gateway):
// OK 200, INVALID_ARGUMENT / FAILED_PRECONDITION / OUT_OF_RANGE 400,
// UNAUTHENTICATED 401, PERMISSION_DENIED 403, NOT_FOUND 404, ALREADY_EXISTS /
// ABORTED 409, RESOURCE_EXHAUSTED 429, CANCELLED 499, UNIMPLEMENTED 501,
// UNAVAILABLE 503, DEADLINE_EXCEEDED 504, the rest 500.
int HttpStatusFor(absl::StatusCode code);

}  // namespace ntk::server::oip

#endif  // NTK_SERVER_OIP_REST_JSON_H_

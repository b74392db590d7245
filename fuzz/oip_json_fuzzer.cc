// libFuzzer target: the Open Inference Protocol REST body (server/oip/
// rest_json.h) -> InferRequestFromJson -> DecodeInferRequest
// (server/oip/infer.h), the decoding every HTTP ModelInfer runs before it
// touches a model. Input: the JSON body.
//
// Checks: refusals are INVALID_ARGUMENT, NOT_FOUND (version) or
// RESOURCE_EXHAUSTED (limits) with a message; an accepted request decodes to
// a features matrix of its stated shape and at least one output; the JSON
// of an answer built from it parses back (InferResponseToJson on any
// strings never throws).
#include <cstdint>
#include <cstdlib>
#include <string>

#include "absl/strings/string_view.h"
#include "server/oip/infer.h"
#include "server/oip/rest_json.h"
#include "server/options.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const absl::string_view body(reinterpret_cast<const char*>(data), size);
  ntk::server::ServerOptions limits;
  limits.max_predict_rows = 1000;  // bounds the matrices a tiny input can declare
  absl::StatusOr<inference::ModelInferRequest> request =
      ntk::server::oip::InferRequestFromJson(body, "m", "");
  if (!request.ok()) {
    if (request.status().code() != absl::StatusCode::kInvalidArgument ||
        request.status().message().empty()) {
      std::abort();
    }
    return 0;
  }
  absl::StatusOr<ntk::server::oip::InferPlan> plan =
      ntk::server::oip::DecodeInferRequest(*request, limits);
  if (!plan.ok()) {
    const absl::StatusCode c = plan.status().code();
    if ((c != absl::StatusCode::kInvalidArgument && c != absl::StatusCode::kNotFound &&
         c != absl::StatusCode::kResourceExhausted) ||
        plan.status().message().empty()) {
      std::abort();
    }
    return 0;
  }
  const auto& in = request->inputs(0);
  if (plan->x.rows() != in.shape(0) || plan->x.cols() != in.shape(1) || plan->outputs.empty()) {
    std::abort();
  }
  // The answer's JSON with the request's own (arbitrary) strings in it.
  inference::ModelInferResponse response;
  response.set_model_name(request->model_name());
  response.set_id(request->id());
  (void)ntk::server::oip::InferResponseToJson(response);
  return 0;
}

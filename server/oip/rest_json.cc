#include "server/oip/rest_json.h"

#include <nlohmann/json.hpp>

#include "absl/strings/str_format.h"
#include "server/oip/infer.h"

namespace ntk::server::oip {
namespace {

using Json = nlohmann::json;
using inference::InferParameter;

absl::Status Invalid(const std::string& field, const char* what) {
  return absl::InvalidArgumentError(absl::StrFormat("%s: %s", field, what));
}

// A JSON parameter value: bool, integer, number or string.
absl::Status ParameterFromJson(const Json& v, const std::string& field, InferParameter* out) {
  if (v.is_boolean()) {
    out->set_bool_param(v.get<bool>());
  } else if (v.is_number_unsigned()) {
    out->set_uint64_param(v.get<uint64_t>());
  } else if (v.is_number_integer()) {
    out->set_int64_param(v.get<int64_t>());
  } else if (v.is_number_float()) {
    out->set_double_param(v.get<double>());
  } else if (v.is_string()) {
    out->set_string_param(v.get<std::string>());
  } else {
    return Invalid(field, "must be a boolean, number or string");
  }
  return absl::OkStatus();
}

template <typename Map>
absl::Status ParametersFromJson(const Json& obj, const std::string& field, Map* out) {
  if (!obj.is_object()) return Invalid(field, "must be an object");
  for (const auto& [key, value] : obj.items()) {
    if (absl::Status s = ParameterFromJson(value, field + "." + key, &(*out)[key]); !s.ok()) {
      return s;
    }
  }
  return absl::OkStatus();
}

// Appends the numbers of a flat or nested array, row-major.
template <typename Field>
absl::Status FlattenNumbers(const Json& v, const std::string& field, Field* out, int depth = 0) {
  if (!v.is_array()) return Invalid(field, "must be an array of numbers");
  if (depth > 8) return Invalid(field, "nested more than 8 levels");
  for (size_t i = 0; i < v.size(); ++i) {
    const Json& e = v[i];
    if (e.is_array()) {
      if (absl::Status s = FlattenNumbers(e, absl::StrFormat("%s[%d]", field, i), out, depth + 1);
          !s.ok()) {
        return s;
      }
    } else if (e.is_number()) {
      out->Add(e.get<double>());
    } else {
      return Invalid(absl::StrFormat("%s[%d]", field, i), "must be a number");
    }
  }
  return absl::OkStatus();
}

absl::Status InputFromJson(const Json& in, const std::string& field,
                           inference::ModelInferRequest::InferInputTensor* out) {
  if (!in.is_object()) return Invalid(field, "must be an object");
  for (const auto& [key, value] : in.items()) {
    const std::string f = field + "." + key;
    if (key == "name" || key == "datatype") {
      if (!value.is_string()) return Invalid(f, "must be a string");
      (key == "name" ? *out->mutable_name() : *out->mutable_datatype()) = value.get<std::string>();
    } else if (key == "shape") {
      if (!value.is_array()) return Invalid(f, "must be an array of integers");
      for (size_t i = 0; i < value.size(); ++i) {
        if (!value[i].is_number_integer()) {
          return Invalid(absl::StrFormat("%s[%d]", f, i), "must be an integer");
        }
        out->add_shape(value[i].get<int64_t>());
      }
    } else if (key == "parameters") {
      if (absl::Status s = ParametersFromJson(value, f, out->mutable_parameters()); !s.ok()) {
        return s;
      }
    } else if (key != "data") {
      return Invalid(f, "unknown field (name, shape, datatype, parameters, data)");
    }
  }
  if (!in.contains("data")) return Invalid(field + ".data", "missing");
  const std::string f = field + ".data";
  if (out->datatype() == "FP64") {
    return FlattenNumbers(in["data"], f, out->mutable_contents()->mutable_fp64_contents());
  }
  if (out->datatype() == "FP32") {
    return FlattenNumbers(in["data"], f, out->mutable_contents()->mutable_fp32_contents());
  }
  return absl::OkStatus();  // DecodeInferRequest names the datatype
}

absl::Status RequestFromJson(const Json& j, inference::ModelInferRequest* out) {
  if (!j.is_object()) return Invalid("body", "must be a JSON object");
  for (const auto& [key, value] : j.items()) {
    if (key == "id") {
      if (!value.is_string()) return Invalid("id", "must be a string");
      out->set_id(value.get<std::string>());
    } else if (key == "parameters") {
      if (absl::Status s = ParametersFromJson(value, "parameters", out->mutable_parameters());
          !s.ok()) {
        return s;
      }
    } else if (key == "inputs") {
      if (!value.is_array()) return Invalid("inputs", "must be an array");
      for (size_t i = 0; i < value.size(); ++i) {
        if (absl::Status s = InputFromJson(value[i], absl::StrFormat("inputs[%d]", i),
                                           out->add_inputs());
            !s.ok()) {
          return s;
        }
      }
    } else if (key == "outputs") {
      if (!value.is_array()) return Invalid("outputs", "must be an array");
      for (size_t i = 0; i < value.size(); ++i) {
        const std::string f = absl::StrFormat("outputs[%d]", i);
        const Json& o = value[i];
        if (!o.is_object()) return Invalid(f, "must be an object");
        auto* t = out->add_outputs();
        for (const auto& [k, v] : o.items()) {
          if (k == "name") {
            if (!v.is_string()) return Invalid(f + ".name", "must be a string");
            t->set_name(v.get<std::string>());
          } else if (k == "parameters") {
            if (absl::Status s = ParametersFromJson(v, f + ".parameters", t->mutable_parameters());
                !s.ok()) {
              return s;
            }
          } else {
            return Invalid(f + "." + k, "unknown field (name, parameters)");
          }
        }
      }
    } else {
      return Invalid(key, "unknown field (id, parameters, inputs, outputs)");
    }
  }
  return absl::OkStatus();
}

Json ParameterToJson(const InferParameter& p) {
  switch (p.parameter_choice_case()) {
    case InferParameter::kBoolParam: return p.bool_param();
    case InferParameter::kInt64Param: return p.int64_param();
    case InferParameter::kStringParam: return p.string_param();
    case InferParameter::kDoubleParam: return p.double_param();
    case InferParameter::kUint64Param: return p.uint64_param();
    default: return nullptr;
  }
}

// A repeated field (numbers, strings) as a JSON array.
template <typename Field>
Json List(const Field& f) {
  Json a = Json::array();
  for (const auto& e : f) a.push_back(e);
  return a;
}

template <typename Map>
Json ParametersToJson(const Map& params) {
  Json j = Json::object();
  for (const auto& [k, v] : params) j[k] = ParameterToJson(v);
  return j;
}

template <typename Tensors>
Json TensorMetadataToJson(const Tensors& tensors) {
  Json list = Json::array();
  for (const auto& t : tensors) {
    list.push_back({{"name", t.name()}, {"datatype", t.datatype()}, {"shape", List(t.shape())}});
  }
  return list;
}

std::string Dump(const Json& j) {
  return j.dump(-1, ' ', false, Json::error_handler_t::replace);
}

}  // namespace

absl::StatusOr<inference::ModelInferRequest> InferRequestFromJson(absl::string_view body,
                                                                  const std::string& name,
                                                                  const std::string& version) {
  Json j = Json::parse(body.begin(), body.end(), nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return Invalid("body", "not valid JSON");
  inference::ModelInferRequest request;
  request.set_model_name(name);
  request.set_model_version(version);
  if (absl::Status s = RequestFromJson(j, &request); !s.ok()) return s;
  return request;
}

std::string InferResponseToJson(const inference::ModelInferResponse& r) {
  Json outputs = Json::array();
  for (const auto& t : r.outputs()) {
    const Json data = t.datatype() == "INT64" ? List(t.contents().int64_contents())
                                              : List(t.contents().fp64_contents());
    outputs.push_back({{"name", t.name()},
                       {"datatype", t.datatype()},
                       {"shape", List(t.shape())},
                       {"data", data}});
  }
  Json j = {{"model_name", r.model_name()}, {"model_version", r.model_version()},
            {"outputs", outputs}};
  if (!r.id().empty()) j["id"] = r.id();
  if (!r.parameters().empty()) j["parameters"] = ParametersToJson(r.parameters());
  return Dump(j);
}

std::string ModelMetadataToJson(const inference::ModelMetadataResponse& r) {
  return Dump({{"name", r.name()},
               {"versions", List(r.versions())},
               {"platform", r.platform()},
               {"inputs", TensorMetadataToJson(r.inputs())},
               {"outputs", TensorMetadataToJson(r.outputs())}});
}

std::string ServerMetadataToJson(const inference::ServerMetadataResponse& r) {
  return Dump({{"name", r.name()}, {"version", r.version()}, {"extensions", List(r.extensions())}});
}

std::string RepositoryIndexToJson(const std::vector<std::string>& names) {
  Json list = Json::array();
  for (const std::string& n : names) {
    list.push_back({{"name", n}, {"version", kModelVersion}, {"state", "READY"}});
  }
  return Dump(list);
}

std::string BoolToJson(const char* key, bool value) { return Dump({{key, value}}); }

std::string ErrorToJson(absl::string_view message) {
  return Dump({{"error", std::string(message)}});
}

int HttpStatusFor(absl::StatusCode code) {
  switch (code) {
    case absl::StatusCode::kOk: return 200;
    case absl::StatusCode::kInvalidArgument:
    case absl::StatusCode::kFailedPrecondition:
    case absl::StatusCode::kOutOfRange: return 400;
    case absl::StatusCode::kUnauthenticated: return 401;
    case absl::StatusCode::kPermissionDenied: return 403;
    case absl::StatusCode::kNotFound: return 404;
    case absl::StatusCode::kAlreadyExists:
    case absl::StatusCode::kAborted: return 409;
    case absl::StatusCode::kResourceExhausted: return 429;
    case absl::StatusCode::kCancelled: return 499;
    case absl::StatusCode::kUnimplemented: return 501;
    case absl::StatusCode::kUnavailable: return 503;
    case absl::StatusCode::kDeadlineExceeded: return 504;
    default: return 500;
  }
}

}  // namespace ntk::server::oip

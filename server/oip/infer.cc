#include "server/oip/infer.h"

#include <cstring>
#include <limits>
#include <set>

#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "proto/matrix_convert.h"
#include "server/convert.h"
#include "server/finite_response.h"

static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__,
              "raw_output_contents are little-endian; a big-endian host would need byte swaps");

namespace ntk::server::oip {
namespace {

using inference::InferParameter;
using inference::ModelInferRequest;
using inference::ModelInferResponse;

constexpr char kInputName[] = "features";
const char* const kPredictOutputs[] = {"probabilities", "labels", "logits"};
const char* const kDistributionOutputs[] = {
    "probability_mean", "probability_covariance", "logit_mean",        "logit_covariance",
    "predictive_entropy", "expected_entropy",     "mutual_information"};
const char* const kParameters[] = {"method", "num_samples", "seed"};

struct MethodName {
  const char* name;
  DistributionMethod method;
};
constexpr MethodName kMethods[] = {{"exact", DistributionMethod::kExact},
                                   {"linearized", DistributionMethod::kLinearized},
                                   {"monte_carlo", DistributionMethod::kMonteCarlo},
                                   {"laplace_posterior", DistributionMethod::kLaplacePosterior}};

template <typename List>
bool Contains(const List& list, const std::string& name) {
  for (const char* n : list) {
    if (name == n) return true;
  }
  return false;
}

template <size_t N>
std::string Join(const char* const (&list)[N]) {
  return absl::StrJoin(list, list + N, ", ");
}

bool AnyTypedContents(const inference::InferTensorContents& c) {
  return c.bool_contents_size() || c.int_contents_size() || c.int64_contents_size() ||
         c.uint_contents_size() || c.uint64_contents_size() || c.fp32_contents_size() ||
         c.fp64_contents_size() || c.bytes_contents_size();
}

// A non-negative integer parameter (int64 or uint64 on the wire).
absl::StatusOr<uint64_t> UnsignedParameter(const std::string& name, const InferParameter& p) {
  if (p.has_uint64_param()) return p.uint64_param();
  if (p.has_int64_param() && p.int64_param() >= 0) return static_cast<uint64_t>(p.int64_param());
  return absl::InvalidArgumentError(
      absl::StrFormat("parameters.%s: must be a non-negative integer", name));
}

absl::Status DecodeParameters(const ModelInferRequest& r, const ServerOptions& limits,
                              InferPlan* plan) {
  for (const auto& [name, p] : r.parameters()) {
    if (!Contains(kParameters, name)) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "parameters.%s: unknown parameter (known: %s)", name, Join(kParameters)));
    }
    if (!plan->distribution) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "parameters.%s: applies only to PredictDistribution outputs (%s)", name,
          Join(kDistributionOutputs)));
    }
    if (name == "method") {
      bool known = false;
      for (const MethodName& m : kMethods) {
        if (p.has_string_param() && p.string_param() == m.name) {
          plan->options.method = m.method;
          known = true;
        }
      }
      if (!known) {
        return absl::InvalidArgumentError(
            "parameters.method: must be one of \"exact\", \"linearized\", \"monte_carlo\", "
            "\"laplace_posterior\"");
      }
    } else if (name == "num_samples") {
      absl::StatusOr<uint64_t> n = UnsignedParameter(name, p);
      if (!n.ok()) return n.status();
      if (absl::Status s = CheckLimit("parameters.num_samples", *n, limits.max_num_samples,
                                      "max_num_samples");
          !s.ok()) {
        return s;
      }
      plan->options.num_samples =
          static_cast<int>(std::min<uint64_t>(*n, std::numeric_limits<int>::max()));
    } else {  // seed
      absl::StatusOr<uint64_t> seed = UnsignedParameter(name, p);
      if (!seed.ok()) return seed.status();
      plan->options.seed = *seed;
    }
  }
  return absl::OkStatus();
}

absl::Status DecodeOutputs(const ModelInferRequest& r, InferPlan* plan) {
  std::set<std::string> seen;
  bool predict = false;
  for (int i = 0; i < r.outputs_size(); ++i) {
    const auto& o = r.outputs(i);
    const bool is_predict = Contains(kPredictOutputs, o.name());
    const bool is_distribution = Contains(kDistributionOutputs, o.name());
    if (!is_predict && !is_distribution) {
      return absl::InvalidArgumentError(
          absl::StrFormat("outputs[%d].name: unknown output \"%s\" (known: %s, %s)", i, o.name(),
                          Join(kPredictOutputs), Join(kDistributionOutputs)));
    }
    if (!seen.insert(o.name()).second) {
      return absl::InvalidArgumentError(
          absl::StrFormat("outputs[%d].name: \"%s\" requested twice", i, o.name()));
    }
    if (!o.parameters().empty()) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "outputs[%d].parameters.%s: unknown parameter (outputs take none)", i,
          o.parameters().begin()->first));
    }
    predict |= is_predict;
    plan->distribution |= is_distribution;
    if (predict && plan->distribution) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "outputs[%d].name: \"%s\" mixes Predict outputs (%s) with PredictDistribution "
          "outputs (%s); ask for them in two requests",
          i, o.name(), Join(kPredictOutputs), Join(kDistributionOutputs)));
    }
    plan->outputs.push_back(o.name());
  }
  if (plan->outputs.empty()) plan->outputs = {"probabilities", "labels"};
  return absl::OkStatus();
}

absl::StatusOr<Eigen::MatrixXd> DecodeFeatures(const ModelInferRequest& r,
                                               const ServerOptions& limits, bool* raw) {
  if (r.inputs_size() != 1) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "inputs: expected one tensor \"%s\", got %d", kInputName, r.inputs_size()));
  }
  const auto& in = r.inputs(0);
  if (in.name() != kInputName) {
    return absl::InvalidArgumentError(
        absl::StrFormat("inputs[0].name: \"%s\", expected \"%s\"", in.name(), kInputName));
  }
  if (in.datatype() != "FP64" && in.datatype() != "FP32") {
    return absl::InvalidArgumentError(absl::StrFormat(
        "inputs[0].datatype: \"%s\" is not supported (FP64 or FP32)", in.datatype()));
  }
  const bool fp64 = in.datatype() == "FP64";
  if (!in.parameters().empty()) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "inputs[0].parameters.%s: unknown parameter (inputs take none)",
        in.parameters().begin()->first));
  }
  if (in.shape_size() != 2 || in.shape(0) <= 0 || in.shape(1) <= 0) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "inputs[0].shape: [%s], expected [rows, cols] with both > 0",
        absl::StrJoin(in.shape(), ", ")));
  }
  const int64_t rows = in.shape(0), cols = in.shape(1);
  if (absl::Status s = CheckLimit("inputs[0].shape[0]", static_cast<uint64_t>(rows),
                                  limits.max_predict_rows, "max_predict_rows");
      !s.ok()) {
    return s;
  }
  const uint64_t elem = fp64 ? 8 : 4;
  if (static_cast<uint64_t>(cols) > std::numeric_limits<int64_t>::max() / elem / rows) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "inputs[0].shape: [%d, %d] has more elements than any message can carry", rows, cols));
  }
  const uint64_t count = static_cast<uint64_t>(rows) * static_cast<uint64_t>(cols);
  const bool typed = AnyTypedContents(in.contents());
  *raw = r.raw_input_contents_size() > 0;
  if (*raw && typed) {
    return absl::InvalidArgumentError(
        "inputs[0].contents and raw_input_contents: both set; send the tensor in one of them");
  }
  if (*raw) {
    if (r.raw_input_contents_size() != 1) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "raw_input_contents: %d entries for 1 input", r.raw_input_contents_size()));
    }
    const std::string& bytes = r.raw_input_contents(0);
    if (bytes.size() != count * elem) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "raw_input_contents[0]: %d bytes != %d*%d*%d = %d (%s)", bytes.size(), rows, cols, elem,
          count * elem, in.datatype()));
    }
    return MatrixFromBytes(bytes, fp64 ? MatrixEncoding::kFloat64 : MatrixEncoding::kFloat32,
                           rows, cols);
  }
  const auto& c = in.contents();
  const char* const field = fp64 ? "fp64_contents" : "fp32_contents";
  const uint64_t have = fp64 ? c.fp64_contents_size() : c.fp32_contents_size();
  if (have != static_cast<uint64_t>(c.bool_contents_size() + c.int_contents_size() +
                                    c.int64_contents_size() + c.uint_contents_size() +
                                    c.uint64_contents_size() + c.fp32_contents_size() +
                                    c.fp64_contents_size() + c.bytes_contents_size())) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "inputs[0].contents: a %s tensor carries its elements in %s only", in.datatype(), field));
  }
  if (have != count) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "inputs[0].contents.%s: %d elements != %d*%d = %d", field, have, rows, cols, count));
  }
  if (fp64) {
    return Eigen::MatrixXd(
        Eigen::Map<const RowMajorMatrixXd>(c.fp64_contents().data(), rows, cols));
  }
  using RowMajorMatrixXf = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
  return Eigen::MatrixXd(
      Eigen::Map<const RowMajorMatrixXf>(c.fp32_contents().data(), rows, cols).cast<double>());
}

ModelInferResponse::InferOutputTensor* AddOutput(ModelInferResponse* out, const std::string& name,
                                                 const char* datatype,
                                                 std::initializer_list<int64_t> shape) {
  ModelInferResponse::InferOutputTensor* t = out->add_outputs();
  t->set_name(name);
  t->set_datatype(datatype);
  for (int64_t s : shape) t->add_shape(s);
  return t;
}

// Row-major elements of an M x C matrix.
void AppendRowMajor(const Eigen::MatrixXd& m, google::protobuf::RepeatedField<double>* out) {
  out->Reserve(out->size() + static_cast<int>(m.size()));
  for (Eigen::Index i = 0; i < m.rows(); ++i) {
    for (Eigen::Index j = 0; j < m.cols(); ++j) out->Add(m(i, j));
  }
}

template <typename T>
void MoveToRaw(google::protobuf::RepeatedField<T>* field, std::string* raw) {
  raw->resize(static_cast<size_t>(field->size()) * sizeof(T));
  if (!raw->empty()) std::memcpy(raw->data(), field->data(), raw->size());
  field->Clear();
}

// Header fields, the finite check, then raw_output_contents when asked.
absl::Status Finish(const InferPlan& plan, ModelInferResponse* out) {
  if (absl::Status s = CheckResponseFinite("ModelInfer", *out); !s.ok()) return s;
  if (!plan.raw) return absl::OkStatus();
  for (auto& t : *out->mutable_outputs()) {
    std::string* raw = out->add_raw_output_contents();
    if (t.datatype() == "INT64") {
      MoveToRaw(t.mutable_contents()->mutable_int64_contents(), raw);
    } else {
      MoveToRaw(t.mutable_contents()->mutable_fp64_contents(), raw);
    }
    t.clear_contents();
  }
  return absl::OkStatus();
}

const char* MethodNameOf(DistributionMethod m) {
  for (const MethodName& k : kMethods) {
    if (k.method == m) return k.name;
  }
  return "unspecified";
}

}  // namespace

absl::Status CheckModelVersion(const std::string& version) {
  if (version.empty() || version == kModelVersion) return absl::OkStatus();
  return absl::NotFoundError(absl::StrFormat(
      "model_version: no version \"%s\" (each model has one, \"%s\")", version, kModelVersion));
}

bool IsPredictOutput(const std::string& output) { return Contains(kPredictOutputs, output); }

void FeatureShape(const ModelInferRequest& r, int64_t* rows, int64_t* cols) {
  *rows = *cols = 0;
  if (r.inputs_size() == 1 && r.inputs(0).shape_size() == 2) {
    *rows = r.inputs(0).shape(0);
    *cols = r.inputs(0).shape(1);
  }
}

absl::StatusOr<InferPlan> DecodeInferRequest(const ModelInferRequest& r,
                                             const ServerOptions& limits) {
  if (absl::Status s = CheckModelVersion(r.model_version()); !s.ok()) return s;
  InferPlan plan;
  if (absl::Status s = DecodeOutputs(r, &plan); !s.ok()) return s;
  if (absl::Status s = DecodeParameters(r, limits, &plan); !s.ok()) return s;
  absl::StatusOr<Eigen::MatrixXd> x = DecodeFeatures(r, limits, &plan.raw);
  if (!x.ok()) return x.status();
  plan.x = *std::move(x);
  return plan;
}

absl::Status EncodePrediction(const InferPlan& plan, const Prediction& p,
                              ModelInferResponse* out) {
  const int64_t m = p.probabilities.rows(), c = p.probabilities.cols();
  for (const std::string& name : plan.outputs) {
    if (name == "labels") {
      auto* t = AddOutput(out, name, "INT64", {m});
      for (int label : p.labels) t->mutable_contents()->add_int64_contents(label);
    } else {
      auto* t = AddOutput(out, name, "FP64", {m, c});
      AppendRowMajor(name == "logits" ? p.logits : p.probabilities,
                     t->mutable_contents()->mutable_fp64_contents());
    }
  }
  return Finish(plan, out);
}

absl::Status EncodeDistribution(const InferPlan& plan, const DistributionResult& d,
                                ModelInferResponse* out) {
  const int64_t m = static_cast<int64_t>(d.points.size());
  const int64_t c = m > 0 ? d.points[0].probability_mean.size() : 0;
  (*out->mutable_parameters())["method"].set_string_param(MethodNameOf(d.method));
  for (const std::string& name : plan.outputs) {
    const bool matrix = name == "probability_covariance" || name == "logit_covariance";
    const bool vector = name == "probability_mean" || name == "logit_mean";
    auto* t = matrix   ? AddOutput(out, name, "FP64", {m, c, c})
              : vector ? AddOutput(out, name, "FP64", {m, c})
                       : AddOutput(out, name, "FP64", {m});
    auto* v = t->mutable_contents()->mutable_fp64_contents();
    for (const PointDistribution& p : d.points) {
      if (name == "probability_mean") AppendRowMajor(p.probability_mean.transpose(), v);
      if (name == "logit_mean") AppendRowMajor(p.logit_mean.transpose(), v);
      if (name == "probability_covariance") AppendRowMajor(p.probability_covariance, v);
      if (name == "logit_covariance") AppendRowMajor(p.logit_covariance, v);
      if (name == "predictive_entropy") v->Add(p.predictive_entropy);
      if (name == "expected_entropy") v->Add(p.expected_entropy);
      if (name == "mutual_information") v->Add(p.mutual_information);
    }
  }
  return Finish(plan, out);
}

void ModelMetadataFor(const std::string& name, const FittedModelInfo& info,
                      inference::ModelMetadataResponse* out) {
  out->set_name(name);
  out->add_versions(kModelVersion);
  out->set_platform("ntk-serve");
  auto add = [](auto* list, const char* n, const char* datatype,
                std::initializer_list<int64_t> shape) {
    auto* t = list->Add();
    t->set_name(n);
    t->set_datatype(datatype);
    for (int64_t s : shape) t->add_shape(s);
  };
  const int64_t d = info.num_features, c = info.num_classes;
  add(out->mutable_inputs(), kInputName, "FP64", {-1, d});
  add(out->mutable_outputs(), "probabilities", "FP64", {-1, c});
  add(out->mutable_outputs(), "labels", "INT64", {-1});
  add(out->mutable_outputs(), "logits", "FP64", {-1, c});
  add(out->mutable_outputs(), "probability_mean", "FP64", {-1, c});
  add(out->mutable_outputs(), "probability_covariance", "FP64", {-1, c, c});
  add(out->mutable_outputs(), "logit_mean", "FP64", {-1, c});
  add(out->mutable_outputs(), "logit_covariance", "FP64", {-1, c, c});
  for (const char* n : {"predictive_entropy", "expected_entropy", "mutual_information"}) {
    add(out->mutable_outputs(), n, "FP64", {-1});
  }
}

void ServerMetadataFor(inference::ServerMetadataResponse* out) {
  out->set_name("ntk-serve");
  out->set_version(NTK_VERSION);
  out->add_extensions("model_repository");
}

}  // namespace ntk::server::oip

#include "server/convert.h"

#include <chrono>
#include <cmath>
#include <limits>
#include <random>

#include "absl/strings/escaping.h"
#include "absl/strings/str_format.h"
#include "core/kernels/kernel.h"
#include "server/log.h"

namespace ntk::server {
namespace {

using RowMajor = Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

const char* NonFiniteName(double v) { return std::isnan(v) ? "NaN" : "infinite"; }

bool IdChar(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
         c == '.' || c == '_' || c == '-';
}

}  // namespace

absl::Status ValidateModelId(absl::string_view id, absl::string_view field) {
  if (id.empty()) {
    return absl::InvalidArgumentError(absl::StrFormat("%s: must not be empty", field));
  }
  if (id.size() > 128) {
    return absl::InvalidArgumentError(
        absl::StrFormat("%s: %d characters, at most 128 allowed", field, id.size()));
  }
  if (id[0] == '.') {
    return absl::InvalidArgumentError(
        absl::StrFormat("%s: \"%s\" must not start with '.'", field, absl::CHexEscape(id)));
  }
  for (size_t i = 0; i < id.size(); ++i) {
    if (!IdChar(id[i])) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "%s: \"%s\" has character %d not in [A-Za-z0-9._-]", field, absl::CHexEscape(id), i));
    }
  }
  return absl::OkStatus();
}

std::string GenerateModelId() {
  static thread_local std::mt19937_64 rng{std::random_device{}()};
  return absl::StrFormat("m-%d-%016x", NowUnixMs(), rng());
}

grpc::Status ToGrpcStatus(const absl::Status& status) {
  if (status.ok()) return grpc::Status::OK;
  return grpc::Status(static_cast<grpc::StatusCode>(static_cast<int>(status.code())),
                      std::string(status.message()));
}

MatrixView ViewOf(const v1::Matrix& m) {
  MatrixView v;
  v.rows = m.rows();
  v.cols = m.cols();
  v.values = m.values().data();
  v.size = static_cast<size_t>(m.values_size());
  return v;
}

absl::StatusOr<Eigen::MatrixXd> MatrixFromView(const MatrixView& m, absl::string_view field) {
  const uint64_t want = m.rows * m.cols;  // both < 2^32: no overflow
  if (m.size != want) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "%s.values: size %d != rows*cols = %d (rows %d, cols %d)", field, m.size, want,
        m.rows, m.cols));
  }
  for (size_t k = 0; k < m.size; ++k) {
    if (!std::isfinite(m.values[k])) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "%s: row %d column %d is %s", field, k / m.cols, k % m.cols, NonFiniteName(m.values[k])));
    }
  }
  Eigen::MatrixXd out = Eigen::Map<const RowMajor>(m.values, static_cast<Eigen::Index>(m.rows),
                                                   static_cast<Eigen::Index>(m.cols));
  return out;
}

void MatrixToProto(const Eigen::MatrixXd& m, v1::Matrix* out) {
  out->set_rows(static_cast<uint32_t>(m.rows()));
  out->set_cols(static_cast<uint32_t>(m.cols()));
  auto* values = out->mutable_values();
  values->Resize(static_cast<int>(m.size()), 0.0);
  Eigen::Map<RowMajor>(values->mutable_data(), m.rows(), m.cols()) = m;
}

absl::StatusOr<ModelSpec> ModelSpecFromProto(const v1::ModelSpec& p, const ServerOptions& limits) {
  ModelSpec s;
  const v1::KernelSpec& k = p.kernel();
  switch (k.activation()) {
    case v1::ACTIVATION_UNSPECIFIED:
    case v1::RELU:
      s.kernel.activation = Activation::kRelu;
      break;
    case v1::ERF:
      s.kernel.activation = Activation::kErf;
      break;
    default:
      return absl::InvalidArgumentError(absl::StrFormat(
          "spec.kernel.activation: unknown value %d", static_cast<int>(k.activation())));
  }
  if (k.depth() > static_cast<uint32_t>(kMaxDepth)) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "spec.kernel.depth: %d hidden layers, at most %d allowed", k.depth(), kMaxDepth));
  }
  s.kernel.depth = k.depth() == 0 ? 1 : static_cast<int>(k.depth());
  s.kernel.weight_variance = k.weight_variance() == 0.0 ? 2.0 : k.weight_variance();
  s.kernel.bias_variance = k.bias_variance();

  const v1::TrainingSpec& t = p.training();
  switch (t.loss()) {
    case v1::LOSS_UNSPECIFIED:
    case v1::CROSS_ENTROPY:
      s.training.loss = Loss::kCrossEntropy;
      break;
    case v1::SQUARED:
      s.training.loss = Loss::kSquared;
      break;
    default:
      return absl::InvalidArgumentError(
          absl::StrFormat("spec.training.loss: unknown value %d", static_cast<int>(t.loss())));
  }
  if (t.has_regularization()) s.training.regularization = t.regularization();
  if (t.has_label_smoothing()) s.training.label_smoothing = t.label_smoothing();
  s.preprocessing.standardize = p.preprocessing().standardize();
  s.preprocessing.normalize_rows = p.preprocessing().normalize_rows();

  if (limits.max_classes > 0 && p.num_classes() > static_cast<uint32_t>(limits.max_classes)) {
    return absl::ResourceExhaustedError(absl::StrFormat(
        "spec.num_classes: %d exceeds --max_classes = %d", p.num_classes(), limits.max_classes));
  }
  if (limits.max_classes > 0 && p.class_names_size() > limits.max_classes) {
    return absl::ResourceExhaustedError(absl::StrFormat(
        "spec.class_names: %d names exceed --max_classes = %d", p.class_names_size(),
        limits.max_classes));
  }
  s.num_classes = static_cast<int>(p.num_classes());
  s.class_names.assign(p.class_names().begin(), p.class_names().end());
  if (absl::Status st = ValidateKernelSpec(s.kernel); !st.ok()) return st;
  return s;
}

absl::Status CheckTrainingShape(uint64_t rows, uint64_t cols, const ServerOptions& limits) {
  if (limits.max_train_rows > 0 && rows > static_cast<uint64_t>(limits.max_train_rows)) {
    return absl::ResourceExhaustedError(absl::StrFormat(
        "features.rows: %d exceeds --max_train_rows = %d", rows, limits.max_train_rows));
  }
  if (limits.max_features > 0 && cols > static_cast<uint64_t>(limits.max_features)) {
    return absl::ResourceExhaustedError(absl::StrFormat(
        "features.cols: %d exceeds --max_features = %d", cols, limits.max_features));
  }
  return absl::OkStatus();
}

absl::StatusOr<TrainingData> TrainingDataFromViews(const MatrixView& features,
                                                   const int32_t* labels, size_t num_labels,
                                                   const MatrixView& targets,
                                                   const ModelSpec& spec,
                                                   const ServerOptions& limits) {
  if (absl::Status s = CheckTrainingShape(features.rows, features.cols, limits); !s.ok()) {
    return s;
  }
  if (features.rows == 0) {
    return absl::InvalidArgumentError("features.rows: must be > 0 (no training rows)");
  }
  if (features.cols == 0) {
    return absl::InvalidArgumentError("features.cols: must be > 0");
  }
  TrainingData data;
  absl::StatusOr<Eigen::MatrixXd> x = MatrixFromView(features, "features");
  if (!x.ok()) return x.status();
  data.features = *std::move(x);

  const bool has_targets = !targets.empty();
  if (num_labels > 0 && has_targets) {
    return absl::InvalidArgumentError("targets: give either labels or targets, not both");
  }
  if (num_labels == 0 && !has_targets) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "labels: missing; give %d labels or a %d x C targets matrix", features.rows,
        features.rows));
  }
  if (num_labels > 0) {
    if (num_labels != features.rows) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "labels: size %d != features.rows = %d", num_labels, features.rows));
    }
    data.labels.resize(num_labels);
    for (size_t i = 0; i < num_labels; ++i) {
      const int32_t y = labels[i];
      if (y < 0) {
        return absl::InvalidArgumentError(
            absl::StrFormat("labels: label[%d] = %d is negative", i, y));
      }
      if (spec.num_classes > 0 && y >= spec.num_classes) {
        return absl::InvalidArgumentError(absl::StrFormat(
            "labels: label[%d] = %d is not in [0, spec.num_classes = %d)", i, y,
            spec.num_classes));
      }
      if (limits.max_classes > 0 && y >= limits.max_classes) {
        return absl::ResourceExhaustedError(absl::StrFormat(
            "labels: label[%d] = %d implies more than --max_classes = %d classes", i, y,
            limits.max_classes));
      }
      data.labels[i] = y;
    }
  } else {
    if (targets.rows != features.rows) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "targets.rows: %d != features.rows = %d", targets.rows, features.rows));
    }
    if (targets.cols == 0) {
      return absl::InvalidArgumentError("targets.cols: must be > 0");
    }
    if (limits.max_classes > 0 && targets.cols > static_cast<uint64_t>(limits.max_classes)) {
      return absl::ResourceExhaustedError(absl::StrFormat(
          "targets.cols: %d classes exceed --max_classes = %d", targets.cols,
          limits.max_classes));
    }
    absl::StatusOr<Eigen::MatrixXd> y = MatrixFromView(targets, "targets");
    if (!y.ok()) return y.status();
    data.targets = *std::move(y);
  }
  return data;
}

absl::StatusOr<Eigen::MatrixXd> QueryFeaturesFromProto(const v1::Matrix& features,
                                                       const FittedModel& model,
                                                       const ServerOptions& limits) {
  if (limits.max_predict_rows > 0 &&
      features.rows() > static_cast<uint32_t>(limits.max_predict_rows)) {
    return absl::ResourceExhaustedError(absl::StrFormat(
        "features.rows: %d exceeds --max_predict_rows = %d", features.rows(),
        limits.max_predict_rows));
  }
  if (features.rows() == 0) {
    return absl::InvalidArgumentError("features.rows: must be > 0 (no query rows)");
  }
  if (features.cols() != static_cast<uint32_t>(model.Info().num_features)) {
    return absl::InvalidArgumentError(
        absl::StrFormat("features.cols: %d != the model's %d features", features.cols(),
                        model.Info().num_features));
  }
  return MatrixFromView(ViewOf(features), "features");
}

absl::StatusOr<DistributionOptions> DistributionOptionsFromProto(
    const v1::PredictDistributionRequest& r, const ServerOptions& limits) {
  if (!v1::DistributionMethod_IsValid(r.method())) {
    return absl::InvalidArgumentError(
        absl::StrFormat("method: unknown value %d", static_cast<int>(r.method())));
  }
  if (limits.max_num_samples > 0 &&
      r.num_samples() > static_cast<uint32_t>(limits.max_num_samples)) {
    return absl::ResourceExhaustedError(absl::StrFormat(
        "num_samples: %d exceeds --max_num_samples = %d", r.num_samples(),
        limits.max_num_samples));
  }
  if (r.num_samples() > static_cast<uint32_t>(std::numeric_limits<int>::max())) {
    return absl::InvalidArgumentError(
        absl::StrFormat("num_samples: %d is too large", r.num_samples()));
  }
  DistributionOptions o;
  o.method = static_cast<DistributionMethod>(static_cast<int>(r.method()));
  o.num_samples = static_cast<int>(r.num_samples());
  o.seed = r.seed();
  return o;
}

void ResolvedSpecToProto(const FittedModelInfo& r, v1::ModelSpec* out) {
  const ModelSpec& s = r.spec;
  v1::KernelSpec* k = out->mutable_kernel();
  k->set_activation(s.kernel.activation == Activation::kErf ? v1::ERF : v1::RELU);
  k->set_depth(static_cast<uint32_t>(s.kernel.depth));
  k->set_weight_variance(s.kernel.weight_variance);
  k->set_bias_variance(s.kernel.bias_variance);
  v1::TrainingSpec* t = out->mutable_training();
  t->set_loss(s.training.loss == Loss::kSquared ? v1::SQUARED : v1::CROSS_ENTROPY);
  t->set_regularization(r.lambda);
  t->set_label_smoothing(r.label_smoothing);
  out->mutable_preprocessing()->set_standardize(s.preprocessing.standardize);
  out->mutable_preprocessing()->set_normalize_rows(s.preprocessing.normalize_rows);
  out->set_num_classes(static_cast<uint32_t>(r.num_classes));
  out->mutable_class_names()->Clear();
  for (const std::string& n : s.class_names) out->add_class_names(n);
}

void ModelInfoToProto(const std::string& id, int64_t created_unix_ms, const FittedModel& model,
                      v1::ModelInfo* out) {
  out->Clear();
  out->set_model_id(id);
  const FittedModelInfo info = model.Info();
  ResolvedSpecToProto(info, out->mutable_spec());
  out->set_num_train(static_cast<uint32_t>(info.num_train));
  out->set_num_features(static_cast<uint32_t>(info.num_features));
  const FitStats& st = info.stats;
  v1::FitStats* ps = out->mutable_stats();
  ps->set_fit_seconds(st.fit_seconds);
  ps->set_solver_iterations(static_cast<uint32_t>(st.solver_iterations));
  ps->set_fixed_point_residual(st.fixed_point_residual);
  ps->set_train_accuracy(st.train_accuracy);
  ps->set_train_nll(st.train_nll);
  ps->set_jitter(st.jitter);
  ps->set_condition_estimate(st.condition_estimate);
  ps->set_regime(RegimeName(info.regime));
  out->set_created_unix_ms(created_unix_ms);
}

void PredictionToProto(const Prediction& p, v1::PredictResponse* out) {
  MatrixToProto(p.probabilities, out->mutable_probabilities());
  MatrixToProto(p.logits, out->mutable_logits());
  auto* labels = out->mutable_labels();
  labels->Resize(static_cast<int>(p.labels.size()), 0);
  for (size_t i = 0; i < p.labels.size(); ++i) labels->Set(static_cast<int>(i), p.labels[i]);
}

namespace {
void VectorTo(const Eigen::VectorXd& v, google::protobuf::RepeatedField<double>* out) {
  out->Resize(static_cast<int>(v.size()), 0.0);
  for (Eigen::Index i = 0; i < v.size(); ++i) out->Set(static_cast<int>(i), v(i));
}
void MatrixRowMajorTo(const Eigen::MatrixXd& m, google::protobuf::RepeatedField<double>* out) {
  out->Resize(static_cast<int>(m.size()), 0.0);
  Eigen::Map<RowMajor>(out->mutable_data(), m.rows(), m.cols()) = m;
}
}  // namespace

void DistributionToProto(const DistributionResult& d, v1::PredictDistributionResponse* out) {
  out->set_method(static_cast<v1::DistributionMethod>(static_cast<int>(d.method)));
  out->mutable_points()->Reserve(static_cast<int>(d.points.size()));
  for (const PointDistribution& p : d.points) {
    v1::PointDistribution* q = out->add_points();
    VectorTo(p.logit_mean, q->mutable_logit_mean());
    MatrixRowMajorTo(p.logit_covariance, q->mutable_logit_covariance());
    VectorTo(p.probability_mean, q->mutable_probability_mean());
    MatrixRowMajorTo(p.probability_covariance, q->mutable_probability_covariance());
    q->set_predictive_entropy(p.predictive_entropy);
    q->set_expected_entropy(p.expected_entropy);
    q->set_mutual_information(p.mutual_information);
    q->set_label(p.label);
  }
}

}  // namespace ntk::server

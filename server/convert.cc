#include "server/convert.h"

#include <algorithm>
#include <cstddef>
#include <limits>
#include <random>
#include <utility>

#include "absl/strings/escaping.h"
#include "absl/strings/str_format.h"
#include "server/log.h"

namespace ntk::server {
namespace {

// Wire enum -> core enum; UNSPECIFIED (0) takes the default (RELU, CROSS_ENTROPY).
constexpr std::pair<int, Activation> kActivationFromProto[] = {
    {v1::ACTIVATION_UNSPECIFIED, Activation::kRelu},
    {v1::RELU, Activation::kRelu},
    {v1::ERF, Activation::kErf}};
constexpr std::pair<int, Loss> kLossFromProto[] = {{v1::LOSS_UNSPECIFIED, Loss::kCrossEntropy},
                                                   {v1::CROSS_ENTROPY, Loss::kCrossEntropy},
                                                   {v1::SQUARED, Loss::kSquared}};

// The core enum value paired with the wire value `wire` in `table`; any other
// value is INVALID_ARGUMENT "<field>: unknown value <wire>".
template <typename Core, size_t N>
absl::StatusOr<Core> EnumFromProto(const char* field, int wire,
                                   const std::pair<int, Core> (&table)[N]) {
  for (const auto& [w, core] : table) {
    if (w == wire) return core;
  }
  return absl::InvalidArgumentError(absl::StrFormat("%s: unknown value %d", field, wire));
}

bool IdChar(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
         c == '.' || c == '_' || c == '-';
}

// RESOURCE_EXHAUSTED "<field>: <value> exceeds --<flag> = <limit>" when a
// limit (> 0) is exceeded.

// A matrix the request must carry: rows > 0 (a wire fact: the field is required).
absl::Status RequirePresent(const v1::Matrix& m, absl::string_view field) {
  if (m.rows() == 0) {
    return absl::InvalidArgumentError(
        absl::StrFormat("%s.rows: must be > 0 (%s is required)", field, field));
  }
  return absl::OkStatus();
}

// --max_train_rows for exact models, --max_nystrom_train_rows for Nystrom
// ones (docs/model-contract.md "6. Nystrom models"); an exact fit over its
// limit is told about NYSTROM.
absl::Status CheckTrainRows(absl::string_view field, uint64_t rows, const v1::ModelSpec& spec,
                            const ServerOptions& limits) {
  if (spec.approximation().kind() == v1::Approximation::NYSTROM) {
    return CheckLimit(field, rows, limits.max_nystrom_train_rows, "max_nystrom_train_rows");
  }
  absl::Status s = CheckLimit(field, rows, limits.max_train_rows, "max_train_rows");
  if (s.ok()) return s;
  return absl::ResourceExhaustedError(absl::StrFormat(
      "%s (the exact kernel's limit: for more rows set spec.approximation.kind = NYSTROM, "
      "up to --max_nystrom_train_rows = %d)",
      s.message(), limits.max_nystrom_train_rows));
}

bool IsEmptyMatrix(const v1::Matrix& m) {
  return m.rows() == 0 && m.cols() == 0 && m.values_size() == 0 && m.data().empty();
}

}  // namespace

absl::Status CheckLimit(absl::string_view field, uint64_t value, int limit,
                        absl::string_view flag) {
  if (limit > 0 && value > static_cast<uint64_t>(limit)) {
    return absl::ResourceExhaustedError(
        absl::StrFormat("%s: %d exceeds --%s = %d", field, value, flag, limit));
  }
  return absl::OkStatus();
}

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

absl::StatusOr<ModelSpec> ModelSpecFromProto(const v1::ModelSpec& p, const ServerOptions& limits) {
  ModelSpec s;
  const v1::KernelSpec& k = p.kernel();
  absl::StatusOr<Activation> activation =
      EnumFromProto("spec.kernel.activation", k.activation(), kActivationFromProto);
  if (!activation.ok()) return activation.status();
  s.kernel.activation = *activation;
  // uint32 -> int without wrapping; core bounds the depth itself.
  s.kernel.depth = k.depth() == 0 ? 1
                                  : static_cast<int>(std::min<uint32_t>(
                                        k.depth(), std::numeric_limits<int>::max()));
  s.kernel.weight_variance = k.weight_variance() == 0.0 ? 2.0 : k.weight_variance();
  s.kernel.bias_variance = k.bias_variance();

  const v1::TrainingSpec& t = p.training();
  absl::StatusOr<Loss> loss = EnumFromProto("spec.training.loss", t.loss(), kLossFromProto);
  if (!loss.ok()) return loss.status();
  s.training.loss = *loss;
  if (t.has_regularization()) s.training.regularization = t.regularization();
  if (t.has_label_smoothing()) s.training.label_smoothing = t.label_smoothing();
  s.preprocessing.standardize = p.preprocessing().standardize();
  s.preprocessing.normalize_rows = p.preprocessing().normalize_rows();

  if (absl::Status st = CheckLimit("spec.num_classes", p.num_classes(), limits.max_classes,
                                   "max_classes");
      !st.ok()) {
    return st;
  }
  if (absl::Status st = CheckLimit("spec.class_names", p.class_names_size(),
                                   limits.max_classes, "max_classes");
      !st.ok()) {
    return st;
  }
  s.num_classes = static_cast<int>(p.num_classes());
  s.class_names.assign(p.class_names().begin(), p.class_names().end());
  const v1::Approximation& a = p.approximation();
  if (!v1::Approximation::Kind_IsValid(a.kind())) {
    return absl::InvalidArgumentError(
        absl::StrFormat("spec.approximation.kind: unknown value %d", static_cast<int>(a.kind())));
  }
  if (a.kind() == v1::Approximation::NYSTROM) {
    s.approximation.kind = ApproximationKind::kNystrom;
    // uint32 -> int without wrapping; core clips m to N.
    s.approximation.num_centers = static_cast<int>(
        std::min<uint32_t>(a.num_centers(), std::numeric_limits<int>::max()));
    s.approximation.seed = a.seed();
  }
  return s;
}

absl::Status CheckTrainingShape(uint64_t rows, uint64_t cols, const v1::ModelSpec& spec,
                                const ServerOptions& limits) {
  if (absl::Status s = CheckTrainRows("features.rows", rows, spec, limits); !s.ok()) {
    return s;
  }
  return CheckLimit("features.cols", cols, limits.max_features, "max_features");
}

absl::Status CheckTargetsShape(uint64_t rows, uint64_t cols, const v1::ModelSpec& spec,
                               const ServerOptions& limits) {
  if (absl::Status s = CheckTrainRows("targets.rows", rows, spec, limits); !s.ok()) {
    return s;
  }
  return CheckLimit("targets.cols", cols, limits.max_classes, "max_classes");
}

absl::Status CheckLabelLimits(absl::Span<const int32_t> labels, size_t labels_before,
                              const v1::ModelSpec& spec, const ServerOptions& limits) {
  if (absl::Status s = CheckTrainRows("labels", labels_before + labels.size(), spec, limits);
      !s.ok()) {
    return s;
  }
  if (limits.max_classes <= 0) return absl::OkStatus();
  for (size_t i = 0; i < labels.size(); ++i) {
    if (labels[i] >= limits.max_classes) {
      return absl::ResourceExhaustedError(absl::StrFormat(
          "labels: label[%d] = %d implies more than --max_classes = %d classes",
          labels_before + i, labels[i], limits.max_classes));
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<TrainingData> TrainingDataFromProto(const v1::FitRequest& request,
                                                   const ServerOptions& limits) {
  const v1::Matrix& f = request.features();
  const v1::Matrix& t = request.targets();
  const v1::ModelSpec& spec = request.spec();
  if (absl::Status s = CheckTrainingShape(f.rows(), f.cols(), spec, limits); !s.ok()) return s;
  if (absl::Status s = CheckTargetsShape(t.rows(), t.cols(), spec, limits); !s.ok()) return s;
  if (absl::Status s = CheckLabelLimits(request.labels(), 0, spec, limits); !s.ok()) return s;
  if (absl::Status s = RequirePresent(f, "features"); !s.ok()) return s;
  TrainingData data;
  absl::StatusOr<Eigen::MatrixXd> x = MatrixFromProto(f, "features");
  if (!x.ok()) return x.status();
  data.features = *std::move(x);
  data.labels.assign(request.labels().begin(), request.labels().end());
  if (!IsEmptyMatrix(t)) {
    absl::StatusOr<Eigen::MatrixXd> y = MatrixFromProto(t, "targets");
    if (!y.ok()) return y.status();
    data.targets = *std::move(y);
  }
  return data;
}

absl::StatusOr<Eigen::MatrixXd> QueryFeaturesFromProto(const v1::Matrix& features,
                                                       const ServerOptions& limits) {
  if (absl::Status s = CheckLimit("features.rows", features.rows(), limits.max_predict_rows,
                                  "max_predict_rows");
      !s.ok()) {
    return s;
  }
  if (absl::Status s = RequirePresent(features, "features"); !s.ok()) return s;
  return MatrixFromProto(features, "features");
}

absl::StatusOr<DistributionOptions> DistributionOptionsFromProto(
    const v1::PredictDistributionRequest& r, const ServerOptions& limits) {
  if (!v1::DistributionMethod_IsValid(r.method())) {
    return absl::InvalidArgumentError(
        absl::StrFormat("method: unknown value %d", static_cast<int>(r.method())));
  }
  if (absl::Status s =
          CheckLimit("num_samples", r.num_samples(), limits.max_num_samples, "max_num_samples");
      !s.ok()) {
    return s;
  }
  DistributionOptions o;
  o.method = static_cast<DistributionMethod>(static_cast<int>(r.method()));
  // uint32 -> int without wrapping; core bounds num_samples itself.
  o.num_samples = static_cast<int>(
      std::min<uint32_t>(r.num_samples(), std::numeric_limits<int>::max()));
  o.seed = r.seed();
  return o;
}

namespace {

void KernelSpecToProto(const KernelSpec& k, v1::KernelSpec* out) {
  out->set_activation(k.activation == Activation::kErf ? v1::ERF : v1::RELU);
  out->set_depth(static_cast<uint32_t>(k.depth));
  out->set_weight_variance(k.weight_variance);
  out->set_bias_variance(k.bias_variance);
}

// Resolved values: lambda and eps always set.
void TrainingToProto(Loss loss, double lambda, double eps, v1::TrainingSpec* out) {
  out->set_loss(loss == Loss::kSquared ? v1::SQUARED : v1::CROSS_ENTROPY);
  out->set_regularization(lambda);
  out->set_label_smoothing(eps);
}

}  // namespace

SelectionOptions SelectionOptionsFromProto(const v1::ModelSelection& p) {
  SelectionOptions o;
  o.folds = static_cast<int>(std::min<uint32_t>(p.folds(), std::numeric_limits<int>::max()));
  for (const uint32_t depth : p.depths()) {
    o.depths.push_back(
        static_cast<int>(std::min<uint32_t>(depth, std::numeric_limits<int>::max())));
  }
  o.regularizations.assign(p.regularizations().begin(), p.regularizations().end());
  o.label_smoothings.assign(p.label_smoothings().begin(), p.label_smoothings().end());
  o.bias_variances.assign(p.bias_variances().begin(), p.bias_variances().end());
  o.seed = p.seed();
  // An unknown value stays unknown: ValidateSelection refuses it by name.
  o.criterion = static_cast<SelectionCriterion>(p.criterion());
  return o;
}

void SelectionReportToProto(const SelectionReport& r, v1::SelectionReport* out) {
  out->Clear();
  for (const SelectionRow& row : r.rows) {
    v1::SelectionRow* w = out->add_rows();
    KernelSpecToProto(row.kernel, w->mutable_kernel());
    TrainingToProto(row.training.loss, row.training.regularization.value_or(0),
                    row.training.label_smoothing.value_or(0), w->mutable_training());
    // Not computed (core's NaN): CV columns left 0 when no folds ran,
    // log_evidence unset unless the criterion computed it.
    if (r.folds >= 2) {
      w->set_mean_nll(row.mean_nll);
      w->set_std_nll(row.std_nll);
      w->set_mean_accuracy(row.mean_accuracy);
      w->set_mean_ece(row.mean_ece);
    }
    if (r.criterion == SelectionCriterion::kLaplaceEvidence) {
      w->set_log_evidence(row.log_evidence);
    }
  }
  out->set_chosen(static_cast<uint32_t>(r.chosen));
  out->set_folds(static_cast<uint32_t>(r.folds));
  out->set_seconds(r.seconds);
  out->set_criterion(r.criterion == SelectionCriterion::kLaplaceEvidence ? v1::LAPLACE_EVIDENCE
                                                                          : v1::CROSS_VALIDATION);
}

void ResolvedSpecToProto(const FittedModelInfo& r, v1::ModelSpec* out) {
  const ModelSpec& s = r.spec;
  KernelSpecToProto(s.kernel, out->mutable_kernel());
  TrainingToProto(s.training.loss, r.lambda, r.label_smoothing, out->mutable_training());
  out->mutable_preprocessing()->set_standardize(s.preprocessing.standardize);
  out->mutable_preprocessing()->set_normalize_rows(s.preprocessing.normalize_rows);
  out->set_num_classes(static_cast<uint32_t>(r.num_classes));
  out->mutable_class_names()->Clear();
  for (const std::string& n : s.class_names) out->add_class_names(n);
  if (s.nystrom()) {
    // The resolved m (the default, or N when more were asked for).
    v1::Approximation* a = out->mutable_approximation();
    a->set_kind(v1::Approximation::NYSTROM);
    a->set_num_centers(static_cast<uint32_t>(s.approximation.num_centers));
    a->set_seed(s.approximation.seed);
  }
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
  if (info.selection) SelectionReportToProto(*info.selection, out->mutable_selection());
  out->set_state(v1::READY);
}

void PredictionToProto(const Prediction& p, MatrixEncoding encoding, v1::PredictResponse* out) {
  MatrixToProto(p.probabilities, encoding, out->mutable_probabilities());
  MatrixToProto(p.logits, encoding, out->mutable_logits());
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
  Eigen::Map<RowMajorMatrixXd>(out->mutable_data(), m.rows(), m.cols()) = m;
}
}  // namespace

void DistributionToProto(const DistributionResult& d, MatrixEncoding encoding, bool columnar,
                         v1::PredictDistributionResponse* out) {
  out->set_method(static_cast<v1::DistributionMethod>(static_cast<int>(d.method)));
  if (columnar) {
    DistributionBatchToProto(d, encoding, out->mutable_batch());
    return;
  }
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

void DistributionBatchToProto(const DistributionResult& d, MatrixEncoding encoding,
                              v1::DistributionBatch* out) {
  const Eigen::Index m = static_cast<Eigen::Index>(d.points.size());
  const Eigen::Index c = m > 0 ? d.points[0].logit_mean.size() : 0;
  // Row i of each matrix is point i; a C x C covariance goes row-major into
  // C*C columns (docs/api.md "Columnar answers").
  RowMajorMatrixXd logit_mean(m, c), prob_mean(m, c), logit_cov(m, c * c), prob_cov(m, c * c),
      entropies(m, 3);
  for (Eigen::Index i = 0; i < m; ++i) {
    const PointDistribution& p = d.points[static_cast<size_t>(i)];
    logit_mean.row(i) = p.logit_mean.transpose();
    prob_mean.row(i) = p.probability_mean.transpose();
    Eigen::Map<RowMajorMatrixXd>(logit_cov.row(i).data(), c, c) = p.logit_covariance;
    Eigen::Map<RowMajorMatrixXd>(prob_cov.row(i).data(), c, c) = p.probability_covariance;
    entropies(i, 0) = p.predictive_entropy;
    entropies(i, 1) = p.expected_entropy;
    entropies(i, 2) = p.mutual_information;
    out->add_labels(p.label);
  }
  MatrixToProto(logit_mean, encoding, out->mutable_logit_mean());
  MatrixToProto(logit_cov, encoding, out->mutable_logit_covariance());
  MatrixToProto(prob_mean, encoding, out->mutable_probability_mean());
  MatrixToProto(prob_cov, encoding, out->mutable_probability_covariance());
  MatrixToProto(entropies, encoding, out->mutable_entropies());
}

}  // namespace ntk::server

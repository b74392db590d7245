// tools/evaluate/evaluation.h: NTK evaluation through the real server and
// client: cross-validation of the settings on training data, and a fit +
// Predict + PredictDistribution on a test set with the metrics of metrics.h.
//
//   ntk::eval::NtkConfig c = ...;
//   absl::StatusOr<CvScore> s = CrossValidate(client, train_subset, c, 3, 10, "cv-1");
//   absl::StatusOr<Evaluation> e = Evaluate(client, "fmnist-1000", c, train, test, 10, {});
//
// Everything goes over the wire through ntk::Client; nothing here links
// core/. Header-only so that tests/evaluate_test.cc runs the very code the
// tool runs. Thread safety: functions of their arguments; the Client may be
// shared (it is thread-safe), but the functions are sequential.
#ifndef NTK_TOOLS_EVALUATE_EVALUATION_H_
#define NTK_TOOLS_EVALUATE_EVALUATION_H_

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include <Eigen/Dense>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "client/client.h"
#include "tools/evaluate/datasets.h"
#include "core/numerics/metrics.h"

namespace ntk::eval {

// One point of the NTK settings grid.
struct NtkConfig {
  v1::Activation activation = v1::RELU;
  int depth = 1;
  double weight_variance = 2.0;  // sw^2
  double bias_variance = 0.0;    // sb^2
  double lambda = 0.0;           // regularization; 0 -> regime 2b
  double label_smoothing = 0.1;  // eps (with lambda = 0 it must be > 0)

  std::string Name() const {
    return absl::StrFormat("%s L=%d sw2=%g sb2=%g lambda=%g eps=%g",
                           activation == v1::ERF ? "erf" : "relu", depth, weight_variance,
                           bias_variance, lambda, label_smoothing);
  }
  // The spec sent to Fit: both training fields set explicitly, and the
  // model's own preprocessing (z-score, then rows to norm sqrt(d)).
  v1::ModelSpec Spec(int num_classes) const {
    v1::ModelSpec s;
    s.mutable_kernel()->set_activation(activation);
    s.mutable_kernel()->set_depth(depth);
    s.mutable_kernel()->set_weight_variance(weight_variance);
    s.mutable_kernel()->set_bias_variance(bias_variance);
    s.mutable_training()->set_loss(v1::CROSS_ENTROPY);
    s.mutable_training()->set_regularization(lambda);
    s.mutable_training()->set_label_smoothing(label_smoothing);
    s.mutable_preprocessing()->set_standardize(true);
    s.mutable_preprocessing()->set_normalize_rows(true);
    s.set_num_classes(num_classes);
    return s;
  }
  // The config of a spec (the inverse of Spec, e.g. for the candidate a
  // Fit with selection chose: ModelInfo.spec).
  static NtkConfig FromSpec(const v1::ModelSpec& s) {
    NtkConfig c;
    c.activation = s.kernel().activation() == v1::ERF ? v1::ERF : v1::RELU;
    c.depth = static_cast<int>(s.kernel().depth());
    c.weight_variance = s.kernel().weight_variance();
    c.bias_variance = s.kernel().bias_variance();
    c.lambda = s.training().regularization();
    c.label_smoothing = s.training().label_smoothing();
    return c;
  }
};

// "relu,2,2,0,0,0.1" (act,depth,sw2,sb2,lambda,eps) -> config; the
// --*_config and --grid flags of ntk_evaluate.
inline absl::StatusOr<NtkConfig> ParseConfig(const std::string& text) {
  std::vector<std::string> f = absl::StrSplit(text, ',');
  NtkConfig c;
  if (f.size() != 6 || (f[0] != "relu" && f[0] != "erf") || !absl::SimpleAtoi(f[1], &c.depth) ||
      !absl::SimpleAtod(f[2], &c.weight_variance) || !absl::SimpleAtod(f[3], &c.bias_variance) ||
      !absl::SimpleAtod(f[4], &c.lambda) || !absl::SimpleAtod(f[5], &c.label_smoothing)) {
    return absl::InvalidArgumentError(
        absl::StrCat("config: want act,depth,sw2,sb2,lambda,eps, got ", text));
  }
  c.activation = f[0] == "erf" ? v1::ERF : v1::RELU;
  return c;
}

// Stage 1 of the search: depth 1-3 x {relu, erf} x (eps in {0.01, 0.05,
// 0.1, 0.2} with lambda = 0, or lambda in {0.01, 0.1, 1} with eps = 0), at
// sw^2 = 2, sb^2 = 0.
inline std::vector<NtkConfig> Stage1Grid() {
  std::vector<NtkConfig> grid;
  for (v1::Activation act : {v1::RELU, v1::ERF}) {
    for (int depth : {1, 2, 3}) {
      for (double eps : {0.01, 0.05, 0.1, 0.2}) {
        NtkConfig c;
        c.activation = act;
        c.depth = depth;
        c.lambda = 0;
        c.label_smoothing = eps;
        grid.push_back(c);
      }
      for (double lambda : {0.01, 0.1, 1.0}) {
        NtkConfig c;
        c.activation = act;
        c.depth = depth;
        c.lambda = lambda;
        c.label_smoothing = 0;
        grid.push_back(c);
      }
    }
  }
  return grid;
}

// Stage 2: the variances (sw^2, sb^2) around the stage-1 winner. The
// winner's own (2, 0) is first so that a tie keeps it.
inline std::vector<NtkConfig> Stage2Grid(const NtkConfig& best) {
  std::vector<NtkConfig> grid;
  for (auto [sw2, sb2] : std::vector<std::pair<double, double>>{
           {2.0, 0.0}, {1.0, 0.0}, {4.0, 0.0}, {2.0, 0.1}, {2.0, 1.0}}) {
    NtkConfig c = best;
    c.weight_variance = sw2;
    c.bias_variance = sb2;
    grid.push_back(c);
  }
  return grid;
}

struct CallOptions {
  int chunk_rows = 2000;     // rows per Predict / PredictDistribution call
  uint32_t num_samples = 0;  // PredictDistribution probability samples; 0: server default
  uint64_t seed = 1;
  bool distribution = true;  // also call PredictDistribution
  // PredictDistribution only on the first distribution_rows test rows (0:
  // all). Its cost grows like N^2 per point (13 C N^2 flops for LINEARIZED),
  // so the full test set is not affordable at every N.
  int distribution_rows = 0;
  v1::DistributionMethod method = v1::METHOD_UNSPECIFIED;
  // folds >= 2: Fit selects the settings itself (FitRequest.selection,
  // docs/api.md "Model selection"), starting from the config given;
  // Evaluation::config is then the chosen candidate.
  v1::ModelSelection selection;
};

inline double SecondsSince(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

// Predict over `x` in chunks of options.chunk_rows rows.
inline absl::StatusOr<Client::PredictResult> PredictChunked(Client& client,
                                                            const std::string& id,
                                                            const Eigen::MatrixXd& x,
                                                            int chunk_rows) {
  Client::PredictResult all;
  for (Eigen::Index start = 0; start < x.rows(); start += chunk_rows) {
    const Eigen::Index rows = std::min<Eigen::Index>(chunk_rows, x.rows() - start);
    absl::StatusOr<Client::PredictResult> r =
        client.Predict(id, x.middleRows(start, rows));
    if (!r.ok()) return r.status();
    if (start == 0) {
      all.probabilities.resize(x.rows(), r->probabilities.cols());
      all.logits.resize(x.rows(), r->logits.cols());
    }
    all.probabilities.middleRows(start, rows) = r->probabilities;
    all.logits.middleRows(start, rows) = r->logits;
    all.labels.insert(all.labels.end(), r->labels.begin(), r->labels.end());
  }
  return all;
}

// Per-point results of PredictDistribution, flattened.
struct DistributionSummary {
  Eigen::MatrixXd probability_mean;  // M x C
  Eigen::VectorXd predictive_entropy, expected_entropy, mutual_information;
  v1::DistributionMethod method = v1::METHOD_UNSPECIFIED;
};

inline absl::StatusOr<DistributionSummary> PredictDistributionChunked(
    Client& client, const std::string& id, const Eigen::MatrixXd& x,
    const CallOptions& o) {
  DistributionSummary s;
  s.predictive_entropy.resize(x.rows());
  s.expected_entropy.resize(x.rows());
  s.mutual_information.resize(x.rows());
  for (Eigen::Index start = 0; start < x.rows(); start += o.chunk_rows) {
    const Eigen::Index rows = std::min<Eigen::Index>(o.chunk_rows, x.rows() - start);
    // The same seed for every chunk: each point's samples depend only on the
    // request's seed and the point (seeded per point by the server).
    absl::StatusOr<v1::PredictDistributionResponse> r = client.PredictDistribution(
        id, x.middleRows(start, rows), o.method, o.num_samples, o.seed);
    if (!r.ok()) return r.status();
    if (r->points_size() != rows) {
      return absl::InternalError(absl::StrCat("PredictDistribution returned ", r->points_size(),
                                              " points for ", rows, " rows"));
    }
    s.method = r->method();
    for (Eigen::Index i = 0; i < rows; ++i) {
      const v1::PointDistribution& p = r->points(static_cast<int>(i));
      if (start == 0 && i == 0) s.probability_mean.resize(x.rows(), p.probability_mean_size());
      if (p.probability_mean_size() != s.probability_mean.cols()) {
        return absl::InternalError("PredictDistribution: ragged probability_mean");
      }
      for (int c = 0; c < p.probability_mean_size(); ++c) {
        s.probability_mean(start + i, c) = p.probability_mean(c);
      }
      s.predictive_entropy(start + i) = p.predictive_entropy();
      s.expected_entropy(start + i) = p.expected_entropy();
      s.mutual_information(start + i) = p.mutual_information();
    }
  }
  return s;
}

// Validation score of one config: the mean over folds of the validation
// NLL (and accuracy) of Predict.
struct CvScore {
  NtkConfig config;
  double val_nll = 0;
  double val_accuracy = 0;
  double seconds = 0;
  std::string error;  // non-empty: the config failed (e.g. a solver error)
};

inline CvScore CrossValidate(Client& client, const Dataset& data, const NtkConfig& config,
                             int folds, int num_classes, const std::string& id_prefix) {
  CvScore score;
  score.config = config;
  const auto t0 = std::chrono::steady_clock::now();
  for (int k = 0; k < folds; ++k) {
    TrainTest f = Fold(data, folds, k);
    const std::string id = absl::StrCat(id_prefix, "-f", k);
    absl::StatusOr<v1::ModelInfo> info =
        client.Fit(id, config.Spec(num_classes), f.train.x, f.train.y, {}, /*replace=*/true);
    if (!info.ok()) {
      score.error = std::string(info.status().message());
      break;
    }
    absl::StatusOr<Client::PredictResult> p = PredictChunked(client, id, f.test.x, 2000);
    (void)client.DeleteModel(id);
    if (!p.ok()) {
      score.error = std::string(p.status().message());
      break;
    }
    ClassificationMetrics m = Classify(p->probabilities, f.test.y);
    score.val_nll += m.nll / folds;
    score.val_accuracy += m.accuracy / folds;
  }
  score.seconds = SecondsSince(t0);
  return score;
}

// The result of fitting one config on a training set and evaluating it on a
// test set. With an OOD mask, the classification metrics are over the
// in-distribution test points (the model knows only those classes) and the
// OOD scores are over all test points.
struct Evaluation {
  NtkConfig config;
  std::string model_id;
  int n_train = 0, n_test = 0, num_classes = 0;
  double fit_wall_seconds = 0;     // client-side Fit call, data transfer included
  double fit_server_seconds = 0;   // FitStats.fit_seconds
  double predict_wall_seconds = 0; // all Predict chunks over the test set
  double distribution_wall_seconds = 0;
  std::string regime;
  v1::SelectionReport selection;   // when CallOptions::selection selected (else empty)
  double jitter = 0, condition_estimate = 0, train_accuracy = 0, train_nll = 0;
  double fixed_point_residual = 0;
  ClassificationMetrics predict;   // from Predict
  bool has_distribution = false;
  std::string distribution_error;  // why PredictDistribution failed, if it did
  std::string distribution_method; // the method the server used
  ClassificationMetrics distribution;  // from probability_mean
  int distribution_rows = 0;           // test rows PredictDistribution saw
  ClassificationMetrics predict_on_distribution_rows;  // Predict on those rows
  // OOD (only with a mask): per test point scores, and their AUROCs.
  std::vector<bool> is_out;
  struct OodScore {
    std::string name;
    std::vector<double> values;
    double auroc = 0;
  };
  std::vector<OodScore> ood;
};

inline std::string MethodName(v1::DistributionMethod m) {
  return v1::DistributionMethod_Name(m);
}

// Fits `config` on `train` as model `id` (replacing any; with
// o.selection, the candidate Fit's cross-validation chooses), evaluates it on
// `test`, then deletes the model. `is_out` (empty, or one entry per test
// row) marks out-of-distribution test points.
inline absl::StatusOr<Evaluation> Evaluate(Client& client, const std::string& id,
                                           const NtkConfig& config, const Dataset& train,
                                           const Dataset& test, int num_classes,
                                           const CallOptions& o,
                                           const std::vector<bool>& is_out = {}) {
  Evaluation e;
  e.config = config;
  e.model_id = id;
  e.n_train = static_cast<int>(train.y.size());
  e.num_classes = num_classes;
  auto t0 = std::chrono::steady_clock::now();  // the request's encoding included
  v1::FitRequest request;
  request.set_model_id(id);
  *request.mutable_spec() = config.Spec(num_classes);
  *request.mutable_features() = Client::ToProto(train.x);
  request.mutable_labels()->Add(train.y.begin(), train.y.end());
  request.set_replace(true);
  if (o.selection.folds() >= 2) *request.mutable_selection() = o.selection;
  absl::StatusOr<v1::ModelInfo> info = client.Fit(request);
  if (!info.ok()) return info.status();
  e.fit_wall_seconds = SecondsSince(t0);
  if (info->has_selection()) {
    e.selection = info->selection();
    e.config = NtkConfig::FromSpec(info->spec());
  }
  e.fit_server_seconds = info->stats().fit_seconds();
  e.regime = info->stats().regime();
  e.jitter = info->stats().jitter();
  e.condition_estimate = info->stats().condition_estimate();
  e.train_accuracy = info->stats().train_accuracy();
  e.train_nll = info->stats().train_nll();
  e.fixed_point_residual = info->stats().fixed_point_residual();

  t0 = std::chrono::steady_clock::now();
  absl::StatusOr<Client::PredictResult> p = PredictChunked(client, id, test.x, o.chunk_rows);
  if (!p.ok()) return p.status();
  e.predict_wall_seconds = SecondsSince(t0);

  std::vector<int> inside;  // rows whose labels the model knows
  for (int i = 0; i < static_cast<int>(test.y.size()); ++i) {
    if (is_out.empty() || !is_out[i]) inside.push_back(i);
  }
  auto rows = [&inside](const Eigen::MatrixXd& m) {
    Eigen::MatrixXd out(static_cast<Eigen::Index>(inside.size()), m.cols());
    for (size_t i = 0; i < inside.size(); ++i) out.row(i) = m.row(inside[i]);
    return out;
  };
  std::vector<int> inside_labels;
  for (int i : inside) inside_labels.push_back(test.y[i]);
  e.n_test = static_cast<int>(inside.size());
  e.predict = Classify(rows(p->probabilities), inside_labels);

  DistributionSummary d;
  const Eigen::Index dist_rows =
      o.distribution_rows > 0 ? std::min<Eigen::Index>(o.distribution_rows, test.x.rows())
                              : test.x.rows();
  if (o.distribution) {
    t0 = std::chrono::steady_clock::now();
    absl::StatusOr<DistributionSummary> ds =
        PredictDistributionChunked(client, id, test.x.topRows(dist_rows), o);
    if (ds.ok()) {
      e.distribution_wall_seconds = SecondsSince(t0);
      d = std::move(*ds);
      e.has_distribution = true;
      e.distribution_method = MethodName(d.method);
      e.distribution_rows = static_cast<int>(dist_rows);
      // Metrics over the in-distribution rows among the first dist_rows.
      std::vector<int> sub;
      std::vector<int> sub_labels;
      for (size_t k = 0; k < inside.size() && inside[k] < dist_rows; ++k) {
        sub.push_back(inside[k]);
        sub_labels.push_back(test.y[inside[k]]);
      }
      auto pick = [&sub](const Eigen::MatrixXd& m) {
        Eigen::MatrixXd out(static_cast<Eigen::Index>(sub.size()), m.cols());
        for (size_t i = 0; i < sub.size(); ++i) out.row(i) = m.row(sub[i]);
        return out;
      };
      e.distribution = Classify(pick(d.probability_mean), sub_labels);
      e.predict_on_distribution_rows = Classify(pick(p->probabilities), sub_labels);
    } else {
      e.distribution_error = ds.status().ToString();
    }
  }
  (void)client.DeleteModel(id);

  if (!is_out.empty()) {
    e.is_out = is_out;
    auto add = [&e](const std::string& name, const Eigen::VectorXd& v) {
      Evaluation::OodScore s;
      s.name = name;
      s.values.assign(v.data(), v.data() + v.size());
      s.auroc = Auroc(s.values, e.is_out);
      e.ood.push_back(std::move(s));
    };
    const Eigen::VectorXd max_p = p->probabilities.rowwise().maxCoeff();
    add("predict_entropy", RowEntropy(p->probabilities));
    add("predict_one_minus_max_p", (1.0 - max_p.array()).matrix());
    if (e.has_distribution && dist_rows == test.x.rows()) {
      add("predictive_entropy", d.predictive_entropy);
      add("mutual_information", d.mutual_information);
      add("expected_entropy", d.expected_entropy);
      const Eigen::VectorXd max_pm = d.probability_mean.rowwise().maxCoeff();
      add("one_minus_max_p", (1.0 - max_pm.array()).matrix());
    }
  }
  return e;
}

}  // namespace ntk::eval

#endif  // NTK_TOOLS_EVALUATE_EVALUATION_H_

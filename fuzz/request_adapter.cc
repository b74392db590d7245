// Thin adapter over server/convert.h (see request_adapter.h).
#include "fuzz/request_adapter.h"

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "core/training/problem.h"
#include "proto/matrix_convert.h"
#include "server/convert.h"
#include "server/options.h"

namespace ntk::fuzz {
namespace {

// The server's defaults (server/options.h), as the fuzzed server would run.
const server::ServerOptions& Limits() {
  static const server::ServerOptions limits;
  return limits;
}

bool WithinValues(const v1::Matrix& m, const FuzzBudget& b) {
  return static_cast<uint64_t>(m.rows()) * m.cols() <= b.max_values;
}

// An OK status from core must come with a result of the promised shape.
void Require(bool condition) {
  if (!condition) std::abort();
}

}  // namespace

void RequireOkOrInputError(const absl::Status& s) {
  if (s.ok()) return;
  const absl::StatusCode c = s.code();
  if ((c == absl::StatusCode::kInvalidArgument || c == absl::StatusCode::kResourceExhausted ||
       c == absl::StatusCode::kFailedPrecondition) &&
      !s.message().empty()) {
    return;
  }
  std::fprintf(stderr, "fuzz: unexpected status %s\n", s.ToString().c_str());
  std::abort();
}

absl::Status ConvertModelId(const std::string& model_id) {
  return server::ValidateModelId(model_id);
}

absl::Status ConvertFit(const v1::FitRequest& r, const FuzzBudget& budget, bool run_fit) {
  if (!r.model_id().empty()) {
    if (absl::Status s = server::ValidateModelId(r.model_id()); !s.ok()) return s;
  }
  absl::StatusOr<ModelSpec> spec = server::ModelSpecFromProto(r.spec(), Limits());
  if (!spec.ok()) return spec.status();
  if (!WithinValues(r.features(), budget) || !WithinValues(r.targets(), budget)) {
    return absl::OkStatus();  // would be converted the same way, only bigger
  }
  absl::StatusOr<TrainingData> data = server::TrainingDataFromProto(r, Limits());
  if (!data.ok()) return data.status();
  absl::StatusOr<TrainingProblem> resolved = DecideTrainingProblem(*spec, *data);
  if (!resolved.ok()) return resolved.status();

  const uint64_t n = static_cast<uint64_t>(data->features.rows());
  if (!run_fit || n > budget.max_train_rows || resolved->num_classes > budget.max_classes) {
    return absl::OkStatus();
  }
  FitOptions options;
  options.max_iterations = budget.max_newton_iterations;
  std::atomic<int64_t> reports{0};  // progress may run on OpenMP threads
  options.progress = [&reports, &budget](double, const char*) {
    return reports.fetch_add(1, std::memory_order_relaxed) < budget.max_progress_calls;
  };
  absl::StatusOr<std::unique_ptr<FittedModel>> model = FittedModel::Fit(*spec, *data, options);
  if (!model.ok()) {
    // Only the adapter's own bound may cancel; any other CANCELLED is a
    // finding (RequireOkOrInputError).
    if (absl::IsCancelled(model.status()) && reports.load() > budget.max_progress_calls) {
      return absl::OkStatus();
    }
    return model.status();
  }
  absl::StatusOr<Prediction> p = (*model)->Predict(data->features);
  if (!p.ok()) return p.status();
  Require(p->probabilities.rows() == data->features.rows() &&
          p->probabilities.cols() == resolved->num_classes);
  absl::StatusOr<std::unique_ptr<FittedModel>> back =
      FittedModel::Deserialize((*model)->Serialize());
  Require(back.ok());
  return absl::OkStatus();
}

absl::Status ConvertPredict(const v1::PredictRequest& r, const FittedModel& model,
                            const FuzzBudget& budget) {
  if (absl::Status s = server::ValidateModelId(r.model_id()); !s.ok()) return s;
  if (!WithinValues(r.features(), budget)) return absl::OkStatus();
  absl::StatusOr<Eigen::MatrixXd> x =
      server::QueryFeaturesFromProto(r.features(), Limits());
  if (!x.ok()) return x.status();
  if (static_cast<uint64_t>(x->rows()) > budget.max_query_rows) return absl::OkStatus();
  absl::StatusOr<Prediction> p = model.Predict(*x);
  if (!p.ok()) return p.status();
  Require(p->labels.size() == static_cast<size_t>(x->rows()));
  v1::PredictResponse response;
  server::PredictionToProto(*p, MatrixEncoding::kValues, &response);
  return absl::OkStatus();
}

absl::Status ConvertPredictDistribution(const v1::PredictDistributionRequest& r,
                                        const FittedModel& model, const FuzzBudget& budget) {
  if (absl::Status s = server::ValidateModelId(r.model_id()); !s.ok()) return s;
  absl::StatusOr<DistributionOptions> options =
      server::DistributionOptionsFromProto(r, Limits());
  if (!options.ok()) return options.status();
  if (!WithinValues(r.features(), budget)) return absl::OkStatus();
  absl::StatusOr<Eigen::MatrixXd> x =
      server::QueryFeaturesFromProto(r.features(), Limits());
  if (!x.ok()) return x.status();
  // num_samples 0 means the default: for MONTE_CARLO up to
  // kDefaultMonteCarloSamples retrainings (2a), the cost that matters here.
  const uint32_t samples =
      r.num_samples() == 0 && options->method == DistributionMethod::kMonteCarlo
          ? static_cast<uint32_t>(kDefaultMonteCarloSamples)
          : r.num_samples();
  if (static_cast<uint64_t>(x->rows()) > budget.max_query_rows ||
      samples > budget.max_num_samples) {
    return absl::OkStatus();
  }
  absl::StatusOr<DistributionResult> d = model.PredictDistribution(*x, *options);
  if (!d.ok()) {
    // The one documented UNIMPLEMENTED (docs/model-contract.md "6. Nystrom
    // models"): MONTE_CARLO on a 2a Nystrom model, which keeps no training
    // rows to retrain on. Any other UNIMPLEMENTED stays a finding.
    const FittedModelInfo info = model.Info();
    if (d.status().code() == absl::StatusCode::kUnimplemented && info.spec.nystrom() &&
        info.regime == Regime::kRegularizedCE &&
        options->method == DistributionMethod::kMonteCarlo) {
      return absl::OkStatus();
    }
    return d.status();
  }
  Require(d->points.size() == static_cast<size_t>(x->rows()));
  v1::PredictDistributionResponse response;
  server::DistributionToProto(*d, ResponseEncodingFor(EncodingOf(r.features())), r.columnar(),
                              &response);
  return absl::OkStatus();
}

}  // namespace ntk::fuzz

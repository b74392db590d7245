// ntk/core/model/model.cc: FittedModel::Fit / Predict / PredictLogits /
// PredictDistribution (docs/model-contract.md sections 2-4 ("Training objective" to "PredictDistribution")). Serialization lives in
// core/model/serialize.cc, the solvers in core/training/ (solve.h).
#include "core/model/model.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <memory>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "core/distribution/distribution.h"
#include "core/kernels/kernel.h"
#include "core/model/direct_solver_hook.h"
#include "core/model/model_state.h"
#include "core/numerics/values.h"
#include "core/numerics/work_steps.h"
#include "core/training/solve.h"
#include "core/training/solvers.h"

namespace ntk {

using Eigen::Index;
using Eigen::MatrixXd;

FittedModel::FittedModel(std::unique_ptr<State> state) : state_(std::move(state)) {}
FittedModel::~FittedModel() = default;

namespace {

// The doubles of the expansion points' KernelRows (model_state.h), which
// the first Predict derives and the model keeps: f1, f2 (depth each) and
// the diagonal K, Theta, per point.
int64_t ExpansionRowsDoubles(const FittedModel::State& s) {
  const int64_t n = s.expansion_points().rows();
  if (s.expansion_sq_norms().size() != n) return 0;  // not kept (TrainingCrossKernels)
  return (2 * int64_t{s.problem.spec.kernel.depth} + 2) * n;
}

}  // namespace

int64_t FittedModel::MemoryBytes() const {
  const State& s = *state_;
  const int64_t doubles = s.x_train.size() + s.x_train_sq_norms.size() +
                          s.problem.targets.size() + s.initial_train_outputs.size() +
                          s.train_logits.size() + s.dual.size() +
                          s.preprocessor.mean.size() + s.preprocessor.scale.size() +
                          s.nystrom.centers.size() + s.nystrom.centers_sq_norms.size() +
                          s.nystrom.beta.size() + s.nystrom.gram.size() +
                          s.nystrom.nngp_theta.size() + s.nystrom.mean_rhs.size() +
                          s.nystrom.newton_hessian.size() + s.nystrom.newton_cross.size() +
                          ExpansionRowsDoubles(s);
  return static_cast<int64_t>(sizeof(FittedModel) + sizeof(State)) + 8 * doubles;
}

FittedModelInfo FittedModel::Info() const {
  const State& s = *state_;
  FittedModelInfo info;
  info.spec = s.problem.spec;
  info.regime = s.problem.regime;
  info.regime_reason = s.problem.regime_reason;
  info.lambda = s.problem.lambda;
  info.label_smoothing = s.problem.label_smoothing;
  info.stats = s.stats;
  info.num_train = static_cast<int>(s.is_nystrom() ? s.nystrom.num_train : s.x_train.rows());
  info.num_features = static_cast<int>(s.num_features());
  info.num_classes = s.problem.num_classes;
  info.created_unix_ms = s.created_unix_ms;
  info.memory_bytes = MemoryBytes();
  info.selection = s.selection;
  return info;
}

namespace {

// Query features: the training column count, values safe for the kernels
// (core/numerics/values.h).
absl::Status CheckQueries(const MatrixXd& features, Index d) {
  if (features.cols() != d && !(features.rows() == 0 && features.cols() == 0)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "features: expected ", d, " columns, got ", features.cols()));
  }
  return CheckInputValues(features, "features");
}

// The first row of `values` with a non-finite entry, or -1.
Index FirstNonFiniteRow(const MatrixXd& values) {
  if (values.allFinite()) return -1;
  for (Index i = 0; i < values.rows(); ++i) {
    if (!values.row(i).allFinite()) return i;
  }
  return -1;
}

// Every number of one PointDistribution is finite.
bool PointIsFinite(const PointDistribution& p) {
  return p.logit_mean.allFinite() && p.logit_covariance.allFinite() &&
         p.probability_mean.allFinite() && p.probability_covariance.allFinite() &&
         std::isfinite(p.predictive_entropy) && std::isfinite(p.expected_entropy) &&
         std::isfinite(p.mutual_information);
}

// Argmax per row (first maximum on ties).
std::vector<int> RowArgmax(const MatrixXd& m) {
  std::vector<int> out(m.rows());
  for (Index i = 0; i < m.rows(); ++i) {
    Index k = 0;
    m.row(i).maxCoeff(&k);
    out[i] = static_cast<int>(k);
  }
  return out;
}

// Rows of queries per cross-kernel block, so that the M x N cross kernels
// (NNGP and NTK) stay under about 2 x 256 MiB at any M, and one block is at
// most ~kFlopsPerStep of work (N KernelPairFlops per query row,
// core/numerics/work_steps.h): the cancellation check runs between blocks,
// so a stopped call ends within one block.
Index QueryBlockRows(Index n_train, Index d, int depth) {
  const Index budget = Index{32} << 20;  // doubles per kernel block
  const double per_row =
      static_cast<double>(std::max<Index>(1, n_train)) * KernelPairFlops(d, depth);
  const Index by_flops = static_cast<Index>(kFlopsPerStep / per_row);
  return std::max<Index>(1, std::min(budget / std::max<Index>(1, n_train), by_flops));
}

// Theta(x, P) * coef for preprocessed x, blockwise over query rows, with
// (P, coef) = (X_train, dual), or (Z, beta) for a Nystrom model.
// The cross kernels are computed as Theta(X_train, x) (N x rows), the same
// orientation as PredictDistribution's, so both compute identical kernel
// values, and the recursion is vectorized along the N training points
// rather than along the (often single) query rows.
// CANCELLED when `progress` says stop before a block.
absl::StatusOr<MatrixXd> ThetaQueryTimesDual(const FittedModel::State& s, const MatrixXd& x,
                                             const ProgressFn& progress) {
  const Index m = x.rows();
  const MatrixXd& points = s.expansion_points();
  const MatrixXd& coef = s.expansion_coefficients();
  MatrixXd out(m, coef.cols());
  const Index block = QueryBlockRows(points.rows(), points.cols(), s.problem.spec.kernel.depth);
  for (Index r0 = 0; r0 < m; r0 += block) {
    if (!ReportProgress(progress, static_cast<double>(r0) / m, "predict")) {
      return absl::CancelledError("predict cancelled");
    }
    const Index rows = std::min(block, m - r0);
    const MatrixXd xb = x.middleRows(r0, rows);
    const KernelMatrices k = TrainingCrossKernels(s, xb);
    out.middleRows(r0, rows).noalias() = k.ntk.transpose() * coef;
  }
  return out;
}

// docs/model-contract.md "6. Nystrom models", "PredictDistribution of a
// Nystrom model": 2b/2c from the fit's m x m summaries; 2a LINEARIZED and
// LAPLACE_POSTERIOR from its Newton summaries when the fit kept them
// (EXACT is refused for 2a as for exact models, by ComputeDistribution);
// 2a MONTE_CARLO is not built.
absl::Status NystromDistributionAvailable(const FittedModel::State& s,
                                          DistributionMethod method) {
  using SummaryState = FittedModel::State::Nystrom::SummaryState;
  const FittedModel::State::Nystrom& ny = s.nystrom;
  if (s.problem.regime != Regime::kRegularizedCE) {
    if (ny.gram.size() != 0) return absl::OkStatus();
    return absl::FailedPreconditionError(absl::StrCat(
        "method: ", DistributionMethodName(method),
        " needs the PredictDistribution summaries of a Nystrom model, which model files "
        "of format version 2 lack: refit the model"));
  }
  if (method == DistributionMethod::kMonteCarlo) {
    return absl::UnimplementedError(
        "method: MONTE_CARLO is not implemented for Nystrom models (spec.approximation.kind "
        "= NYSTROM) in regime 2a (cross-entropy, lambda > 0): each sample is a 2a Newton "
        "solve over the training rows and targets, which a Nystrom model does not keep; use "
        "LINEARIZED or LAPLACE_POSTERIOR");
  }
  if (method != DistributionMethod::kLinearized &&
      method != DistributionMethod::kLaplacePosterior) {
    return absl::OkStatus();
  }
  const int64_t m = ny.centers.rows(), c = s.problem.num_classes;
  switch (ny.summary_state) {
    case SummaryState::kKept:
      return absl::OkStatus();
    case SummaryState::kOldFormat:
      return absl::FailedPreconditionError(absl::StrCat(
          "method: ", DistributionMethodName(method),
          " needs the 2a Newton summaries of a Nystrom model, which model files of format "
          "version < 5 lack: refit the model"));
    case SummaryState::kInitialOutputs:
      return absl::FailedPreconditionError(absl::StrCat(
          "method: ", DistributionMethodName(method),
          " needs the 2a Newton summaries at the F0 = 0 solution, which a fit with "
          "initial_train_outputs does not keep: refit without initial outputs"));
    case SummaryState::kOverCap: {
      const int64_t cap = ny.summary_cap_bytes;
      const int64_t max_m = static_cast<int64_t>(
          std::floor(std::sqrt(static_cast<double>(std::max<int64_t>(cap, 0)) / 16.0) /
                     static_cast<double>(c)));
      return absl::FailedPreconditionError(absl::StrCat(
          "method: ", DistributionMethodName(method), " needs the 2a Newton summaries of this Nystrom "
          "model, 2 (m C)^2 doubles = ", NystromSummaryBytes(m, c),
          " bytes for spec.approximation.num_centers = ", m, " and ", c,
          " classes, over the cap of ", cap, " bytes under which a fit keeps them: refit "
          "with spec.approximation.num_centers <= ", max_m));
    }
  }
  return absl::OkStatus();
}

}  // namespace

const char* DistributionMethodName(DistributionMethod m) {
  switch (m) {
    case DistributionMethod::kExact:
      return "EXACT";
    case DistributionMethod::kLinearized:
      return "LINEARIZED";
    case DistributionMethod::kMonteCarlo:
      return "MONTE_CARLO";
    case DistributionMethod::kLaplacePosterior:
      return "LAPLACE_POSTERIOR";
    default:
      return "UNSPECIFIED";
  }
}

KernelMatrices TrainingCrossKernels(const FittedModel::State& s, const MatrixXd& x) {
  // Every State built by Fit or Deserialize has the norms; without them
  // (a hand-built State) the kernels compute them.
  const MatrixXd& p = s.expansion_points();
  if (s.expansion_sq_norms().size() != p.rows()) return CrossKernels(s.problem.spec.kernel, p, x);
  std::shared_ptr<const KernelRows> rows = std::atomic_load(&s.expansion_rows);
  if (rows == nullptr) {
    rows = std::make_shared<const KernelRows>(
        KernelRows::Compute(s.problem.spec.kernel, p, s.expansion_sq_norms()));
    std::atomic_store(&s.expansion_rows, rows);
  }
  return CrossKernels(s.problem.spec.kernel, p, x, *rows);
}

void FitOutputs::PutInto(const DistributionCache::Scope& scope) const {
  if (scope.cache == nullptr) return;
  for (const auto& [part, entry] : distribution_factors) {
    scope.cache->Put({scope.model_id, scope.generation, part}, entry);
  }
}

absl::StatusOr<std::unique_ptr<FittedModel>> FittedModel::Fit(
    const ModelSpec& spec, const TrainingData& data, const FitOptions& options,
    FitOutputs* outputs) {
  const auto start = std::chrono::steady_clock::now();
  if (outputs != nullptr) outputs->distribution_factors.clear();
  absl::StatusOr<TrainingProblem> problem = DecideTrainingProblem(spec, data);
  if (!problem.ok()) return problem.status();
  const Index n = data.features.rows();
  const int c = problem->num_classes;
  const MatrixXd& f0 = options.initial_train_outputs;
  if (f0.size() != 0) {
    if (f0.rows() != n || f0.cols() != c) {
      return absl::InvalidArgumentError(absl::StrCat(
          "initial_train_outputs: expected ", n, " x ", c, ", got ", f0.rows(),
          " x ", f0.cols()));
    }
    if (absl::Status s = CheckFiniteValues(f0, "initial_train_outputs"); !s.ok()) return s;
  }
  auto report = [&](double fraction, const char* phase) {
    return !options.progress || options.progress(fraction, phase);
  };
  // Progress: kernel 0 - 0.2, solve 0.2 - 1.
  ProgressFn solve_progress;
  if (options.progress) {
    solve_progress = [&options](double fraction, const char* phase) {
      return options.progress(0.2 + 0.8 * fraction, phase);
    };
  }
  if (!report(0.0, "kernel")) return absl::CancelledError("fit cancelled");

  auto state = std::make_unique<State>();
  state->problem = *std::move(problem);
  const TrainingProblem& p = state->problem;
  state->preprocessor = Preprocessor::FitTo(spec.preprocessing, data.features);
  state->x_train = state->preprocessor.Apply(data.features);
  state->x_train_sq_norms = state->x_train.rowwise().squaredNorm();
  state->initial_train_outputs = f0;

  // Only the NTK is needed to fit and predict; the NNGP is dropped right
  // away unless the EXACT factors are kept (FitOptions::keep_distribution_factors):
  // then the peak is Theta + K + the solve's factor, 3 N^2 doubles.
  const bool keep_exact = options.keep_distribution_factors && outputs != nullptr &&
                          p.regime != Regime::kRegularizedCE && !p.spec.nystrom();
  MatrixXd theta, nngp, train_logits;
  SolverInfo info;
  if (p.spec.nystrom()) {
    ProgressFn kernel_progress;
    if (options.progress) {
      kernel_progress = [&options](double fraction, const char* phase) {
        return options.progress(0.2 * fraction, phase);
      };
    }
    if (absl::Status st = FitNystrom(state.get(), options, kernel_progress, solve_progress,
                                     &train_logits, &info);
        !st.ok()) {
      return st;
    }
  } else if (GetExactDirectSolver() && p.regime != Regime::kRegularizedCE) {
    // docs/distributed.md: the ranks compute Theta's tiles and solve; no
    // N x N matrix here, and no EXACT factors kept (built on first use).
    if (!report(0.2, "solve")) return absl::CancelledError("fit cancelled");
    absl::StatusOr<SolverSolution> sol = GetExactDirectSolver()(p, state->x_train, f0);
    if (!sol.ok()) return sol.status();
    train_logits = std::move(sol->logits);
    state->dual = std::move(sol->dual);
    info = sol->info;
  } else {
    {
      KernelMatrices k;
      if (!TrainKernels(p.spec.kernel, state->x_train,
                        [&report] { return report(0.0, "kernel"); }, &k)) {
        return absl::CancelledError("fit cancelled");
      }
      theta = std::move(k.ntk);
      if (keep_exact) nngp = std::move(k.nngp);
    }
    if (!theta.allFinite()) {
      return absl::InvalidArgumentError(
          "features: the training NTK has non-finite entries (features too "
          "large in magnitude for the kernel?)");
    }
    if (!report(0.2, "solve")) return absl::CancelledError("fit cancelled");

    SolveOptions solve;
    solve.initial_outputs = &f0;
    solve.tolerance = options.tolerance;
    solve.max_newton_iterations = options.max_iterations;
    solve.progress = solve_progress;
    solve.keep_factor = keep_exact;
    absl::StatusOr<SolverSolution> sol = Solve(p, theta, solve);
    if (!sol.ok()) return sol.status();
    theta.resize(0, 0);
    train_logits = std::move(sol->logits);
    state->dual = std::move(sol->dual);
    info = sol->info;
    if (keep_exact) {
      outputs->distribution_factors.push_back(
          ExactFactorsFromFit(*state, std::move(nngp), std::move(sol->cholesky_factor)));
    }
  }

  FitStats& st = state->stats;
  st.solver_iterations = info.newton_iterations;
  st.cg_iterations = info.cg_iterations;
  st.fixed_point_residual = info.fixed_point_residual;
  st.jitter = info.jitter;
  st.condition_estimate = info.condition_estimate;
  const std::vector<int> pred = RowArgmax(train_logits);
  const std::vector<int> truth = RowArgmax(p.targets);
  int correct = 0;
  for (Index i = 0; i < n; ++i) correct += pred[i] == truth[i];
  st.train_accuracy = static_cast<double>(correct) / static_cast<double>(n);
  st.train_nll = SumCrossEntropy(p.targets, train_logits) / static_cast<double>(n);
  if (p.spec.nystrom()) {
    // A Nystrom model keeps no training set (model_state.h).
    state->x_train.resize(0, 0);
    state->x_train_sq_norms.resize(0);
    state->initial_train_outputs.resize(0, 0);
    state->problem.targets.resize(0, 0);
  } else {
    state->train_logits = std::move(train_logits);
  }
  state->selection = options.selection;
  state->created_unix_ms = absl::ToUnixMillis(absl::Now());
  st.fit_seconds = std::chrono::duration<double>(
                       std::chrono::steady_clock::now() - start)
                       .count();
  report(1.0, "done");
  return ModelInternals::Make(std::move(state));
}

absl::StatusOr<Prediction> FittedModel::Predict(const Eigen::MatrixXd& features,
                                                const ProgressFn& progress) const {
  absl::StatusOr<MatrixXd> logits = PredictLogits(features, {}, progress);
  if (!logits.ok()) return logits.status();
  Prediction p;
  p.logits = std::move(*logits);
  p.logits.colwise() -= p.logits.rowwise().mean();
  p.probabilities = RowSoftmax(p.logits);
  p.labels = RowArgmax(p.probabilities);
  return p;
}

absl::StatusOr<Eigen::MatrixXd> FittedModel::PredictLogits(
    const Eigen::MatrixXd& features, const Eigen::MatrixXd& initial_query_outputs,
    const ProgressFn& progress) const {
  const State& s = *state_;
  if (absl::Status st = CheckQueries(features, s.num_features()); !st.ok()) return st;
  const Index m = features.rows();
  const int c = s.problem.num_classes;
  if (initial_query_outputs.size() != 0) {
    if (initial_query_outputs.rows() != m || initial_query_outputs.cols() != c) {
      return absl::InvalidArgumentError(absl::StrCat(
          "initial_query_outputs: expected ", m, " x ", c, ", got ",
          initial_query_outputs.rows(), " x ", initial_query_outputs.cols()));
    }
    if (absl::Status st = CheckFiniteValues(initial_query_outputs, "initial_query_outputs");
        !st.ok()) {
      return st;
    }
  }
  if (m == 0) return MatrixXd(0, c);
  absl::StatusOr<MatrixXd> product =
      ThetaQueryTimesDual(s, s.preprocessor.Apply(features), progress);
  if (!product.ok()) return product.status();
  MatrixXd logits = std::move(*product);
  if (const Index bad = FirstNonFiniteRow(logits); bad >= 0) {
    return NonFiniteKernelRowError(bad, "features");
  }
  if (initial_query_outputs.size() != 0) logits += initial_query_outputs;
  return logits;
}

absl::StatusOr<DistributionResult> FittedModel::PredictDistribution(
    const Eigen::MatrixXd& features, const DistributionOptions& options) const {
  const State& s = *state_;
  if (absl::Status st = CheckQueries(features, s.num_features()); !st.ok()) return st;
  if (s.is_nystrom()) {
    const DistributionMethod method = ResolvedMethod(options.method, s.problem.regime);
    if (absl::Status st = NystromDistributionAvailable(s, method); !st.ok()) return st;
  }
  const MatrixXd x = features.rows() == 0
                         ? MatrixXd(0, s.num_features())
                         : s.preprocessor.Apply(features);
  absl::StatusOr<DistributionResult> result = ComputeDistribution(s, x, options);
  if (!result.ok()) return result;
  for (size_t i = 0; i < result->points.size(); ++i) {
    if (!PointIsFinite(result->points[i])) {
      return NonFiniteKernelRowError(static_cast<Index>(i), "features");
    }
  }
  return result;
}

}  // namespace ntk

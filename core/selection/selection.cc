// ntk/core/selection/selection.cc: the checks, the grid, the report and
// FitWithSelection (selection.h, docs/model-contract.md "7. Model
// selection"); the cross-validation loop is cross_validation.cc.
#include "core/selection/selection.h"

#include <algorithm>
#include <chrono>
#include <limits>
#include <cmath>
#include <map>
#include <optional>
#include <set>
#include <tuple>
#include <type_traits>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "core/selection/folds.h"
#include "core/selection/selection_internal.h"
#include "core/training/problem.h"

namespace ntk {
namespace {

using selection_internal::FoldScores;

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

// LAPLACE_EVIDENCE needs the categorical likelihood of a 2a model
// (evidence.h): every candidate 2a on hard labels with eps = 0.
absl::Status CheckEvidenceCandidates(const std::vector<TrainingProblem>& problems,
                                     const TrainingData& data) {
  if (data.targets.size() != 0) {
    return absl::InvalidArgumentError(
        "selection.criterion: LAPLACE_EVIDENCE needs hard labels (the categorical "
        "likelihood), got soft targets");
  }
  for (size_t i = 0; i < problems.size(); ++i) {
    const TrainingProblem& p = problems[i];
    if (p.regime != Regime::kRegularizedCE || p.label_smoothing != 0) {
      return absl::InvalidArgumentError(absl::StrCat(
          "selection.criterion: LAPLACE_EVIDENCE needs every candidate in regime 2a "
          "(cross-entropy, lambda > 0) with label_smoothing 0; ",
          selection_internal::DescribeCandidate(static_cast<int>(i), p), " is regime ",
          RegimeName(p.regime)));
    }
  }
  return absl::OkStatus();
}

// "selection.<list>[i]: must be <what>, got v" unless ok(v).
template <typename T, typename Ok>
absl::Status CheckList(const char* list, const std::vector<T>& values, const char* what, Ok ok) {
  for (size_t i = 0; i < values.size(); ++i) {
    if (!ok(values[i])) {
      return absl::InvalidArgumentError(
          absl::StrCat("selection.", list, "[", i, "]: must be ", what, ", got ", values[i]));
    }
  }
  return absl::OkStatus();
}

absl::Status CheckFolds(const TrainingData& data, int folds) {
  if (folds == 1 || folds < 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "selection.folds: must be 0 (no selection) or at least 2, got ", folds));
  }
  std::map<int, int> counts;  // class -> rows (classes with rows only)
  for (const int s : StratificationLabels(data)) ++counts[s];
  int smallest_class = 0, smallest = 0;
  for (const auto& [c, count] : counts) {
    if (smallest == 0 || count < smallest) {
      smallest = count;
      smallest_class = c;
    }
  }
  if (folds > smallest) {
    return absl::InvalidArgumentError(absl::StrCat(
        "selection.folds: ", folds, " folds exceed the smallest class count ", smallest,
        " (class ", smallest_class, data.labels.empty() ? ", by the targets' argmax" : "",
        "); every fold needs a row of every class"));
  }
  return absl::OkStatus();
}

// Each candidate's training problem on all rows (its resolved values).
absl::StatusOr<std::vector<TrainingProblem>> ResolveCandidates(
    const std::vector<ModelSpec>& candidates, const TrainingData& data) {
  std::vector<TrainingProblem> out;
  out.reserve(candidates.size());
  for (size_t i = 0; i < candidates.size(); ++i) {
    absl::StatusOr<TrainingProblem> p = DecideTrainingProblem(candidates[i], data);
    if (!p.ok()) {
      const KernelSpec& k = candidates[i].kernel;
      const TrainingSpec& t = candidates[i].training;
      return absl::InvalidArgumentError(absl::StrFormat(
          "selection: candidate %d (depth %d, bias_variance %g, regularization %s, "
          "label_smoothing %s) cannot be fitted: %s",
          i, k.depth, k.bias_variance,
          t.regularization ? absl::StrCat(*t.regularization) : "default",
          t.label_smoothing ? absl::StrCat(*t.label_smoothing) : "default", p.status().message()));
    }
    p->targets.resize(0, 0);  // only the resolved values are kept
    out.push_back(*std::move(p));
  }
  return out;
}

}  // namespace

const char* SelectionCriterionName(SelectionCriterion c) {
  return c == SelectionCriterion::kLaplaceEvidence ? "laplace_evidence" : "cross_validation";
}

bool SelectionRequested(const SelectionOptions& o) {
  return o.folds != 0 || o.criterion != SelectionCriterion::kCrossValidation;
}

std::vector<ModelSpec> SelectionCandidates(const ModelSpec& base, const TrainingData& data,
                                           const SelectionOptions& o) {
  // lambda = 0 and eps = 0, both from the lists, under cross-entropy on
  // hard labels: no minimizer (docs/model-contract.md "2b. Unregularized").
  const bool hard_ce = base.training.loss == Loss::kCrossEntropy && data.targets.size() == 0;
  auto unfittable = [hard_ce](const std::optional<double>& lambda,
                              const std::optional<double>& eps) {
    return hard_ce && lambda && eps && *lambda == 0 && *eps == 0;
  };
  // An empty list: the base spec's value only (std::nullopt = leave it).
  auto or_base = [](const auto& list) {
    using T = typename std::decay_t<decltype(list)>::value_type;
    std::vector<std::optional<T>> out(list.begin(), list.end());
    if (out.empty()) out.push_back(std::nullopt);
    return out;
  };
  std::vector<ModelSpec> out;
  for (const auto& depth : or_base(o.depths)) {
    for (const auto& bias : or_base(o.bias_variances)) {
      for (const auto& lambda : or_base(o.regularizations)) {
        for (const auto& eps : or_base(o.label_smoothings)) {
          if (unfittable(lambda, eps)) continue;
          ModelSpec s = base;
          if (depth) s.kernel.depth = *depth;
          if (bias) s.kernel.bias_variance = *bias;
          if (lambda) s.training.regularization = *lambda;
          if (eps) s.training.label_smoothing = *eps;
          out.push_back(std::move(s));
        }
      }
    }
  }
  return out;
}

absl::Status ValidateSelection(const ModelSpec& base, const TrainingData& data,
                               const SelectionOptions& o) {
  if (absl::StatusOr<TrainingProblem> p = DecideTrainingProblem(base, data); !p.ok()) {
    return p.status();
  }
  if (base.nystrom()) {
    return absl::UnimplementedError(
        "selection: model selection is not implemented for Nystrom models "
        "(spec.approximation.kind = NYSTROM)");
  }
  if (o.criterion != SelectionCriterion::kCrossValidation &&
      o.criterion != SelectionCriterion::kLaplaceEvidence) {
    return absl::InvalidArgumentError(absl::StrCat(
        "selection.criterion: unknown value ", static_cast<int>(o.criterion),
        " (CROSS_VALIDATION = 0, LAPLACE_EVIDENCE = 1)"));
  }
  if (absl::Status s = CheckFolds(data, o.folds); !s.ok()) return s;
  const auto finite_nonneg = [](double v) { return std::isfinite(v) && v >= 0; };
  const std::string depth_range = absl::StrCat("in [1, ", kMaxDepth, "]");
  // Each list with its range: the first failure, in this order, is reported.
  for (const absl::Status& s :
       {CheckList("depths", o.depths, depth_range.c_str(),
                  [](int v) { return v >= 1 && v <= kMaxDepth; }),
        CheckList("regularizations", o.regularizations, "a finite number >= 0", finite_nonneg),
        CheckList("label_smoothings", o.label_smoothings, "in [0, 1)",
                  [](double v) { return v >= 0 && v < 1; }),
        CheckList("bias_variances", o.bias_variances, "a finite number >= 0", finite_nonneg)}) {
    if (!s.ok()) return s;
  }
  const std::vector<ModelSpec> candidates = SelectionCandidates(base, data, o);
  if (candidates.empty()) {
    return absl::InvalidArgumentError(
        "selection: every combination of selection.regularizations and "
        "selection.label_smoothings is left out: lambda = 0 with eps = 0 has no minimizer on "
        "hard labels; add a lambda > 0 or an eps > 0");
  }
  absl::StatusOr<std::vector<TrainingProblem>> problems = ResolveCandidates(candidates, data);
  if (!problems.ok()) return problems.status();
  if (o.criterion == SelectionCriterion::kLaplaceEvidence) {
    return CheckEvidenceCandidates(*problems, data);
  }
  return absl::OkStatus();
}

SelectionShape SelectionShapeOf(const ModelSpec& base, const TrainingData& data,
                                const SelectionOptions& o) {
  const std::vector<ModelSpec> candidates = SelectionCandidates(base, data, o);
  const absl::StatusOr<std::vector<TrainingProblem>> problems =
      ResolveCandidates(candidates, data);
  SelectionShape shape;
  shape.folds = o.folds;
  shape.evidence = o.criterion == SelectionCriterion::kLaplaceEvidence;
  std::set<double> biases;
  std::set<std::pair<int, double>> kernels;
  std::set<std::tuple<int, double, double>> factors;  // (depth, bias, shift)
  for (size_t i = 0; i < candidates.size(); ++i) {
    const KernelSpec& k = candidates[i].kernel;
    shape.max_depth = std::max<int64_t>(shape.max_depth, k.depth);
    biases.insert(k.bias_variance);
    kernels.insert({k.depth, k.bias_variance});
    const TrainingProblem* p = problems.ok() ? &(*problems)[i] : nullptr;
    if (p == nullptr || p->regime == Regime::kRegularizedCE) {
      ++shape.newton_candidates;
    } else {
      ++shape.direct_candidates;
      factors.insert({k.depth, k.bias_variance, p->regime == Regime::kSquared ? p->lambda : 0.0});
    }
  }
  shape.bias_variances = static_cast<int64_t>(biases.size());
  shape.kernels = static_cast<int64_t>(kernels.size());
  shape.factorizations = static_cast<int64_t>(factors.size());
  return shape;
}

absl::StatusOr<SelectionReport> SelectModel(const ModelSpec& base, const TrainingData& data,
                                            const SelectionOptions& o) {
  const auto start = std::chrono::steady_clock::now();
  if (absl::Status s = ValidateSelection(base, data, o); !s.ok()) return s;
  const bool evidence = o.criterion == SelectionCriterion::kLaplaceEvidence;
  if (o.folds == 0 && !evidence) {
    return absl::InvalidArgumentError(
        "selection.folds: must be at least 2 to select by cross-validation, got 0");
  }
  const std::vector<ModelSpec> candidates = SelectionCandidates(base, data, o);
  absl::StatusOr<std::vector<TrainingProblem>> problems = ResolveCandidates(candidates, data);
  if (!problems.ok()) return problems.status();
  const int64_t c = (*problems)[0].num_classes;
  const Cost cost = SelectionCost(data.features.rows(), data.features.cols(), c,
                                  SelectionShapeOf(base, data, o));
  if (o.max_bytes > 0 && cost.bytes > o.max_bytes) {
    return absl::ResourceExhaustedError(absl::StrFormat(
        "selection: needs an estimated %d bytes (%.0f MiB; %.3g flops) for %d candidates x %d "
        "folds%s, over the limit of %d bytes",
        cost.bytes, cost.bytes / 1048576.0, cost.flops, candidates.size(), o.folds,
        evidence ? " and the Laplace evidence on all rows" : "", o.max_bytes));
  }
  // Preprocessing statistics of all rows (unsupervised; the final fit uses
  // the same), so that one kernel per (depth, bias variance) serves every fold.
  const Eigen::MatrixXd x =
      Preprocessor::FitTo(base.preprocessing, data.features).Apply(data.features);
  const std::vector<int> strata = StratificationLabels(data);
  const std::vector<int> fold =
      o.folds >= 2 ? StratifiedFolds(strata, o.folds, o.seed) : std::vector<int>();
  absl::StatusOr<selection_internal::Evaluation> evaluation =
      selection_internal::EvaluateCandidates(candidates, data, x, strata, fold, o);
  if (!evaluation.ok()) return evaluation.status();
  const std::vector<std::vector<FoldScores>>& scores = evaluation->scores;

  SelectionReport report;
  report.folds = o.folds;
  report.criterion = o.criterion;
  for (size_t i = 0; i < candidates.size(); ++i) {
    const TrainingProblem& p = (*problems)[i];
    SelectionRow row;
    row.kernel = candidates[i].kernel;
    row.training.loss = p.loss();
    row.training.regularization = p.lambda;
    row.training.label_smoothing = p.label_smoothing;
    if (o.folds >= 2) {
      double sum = 0, sum_sq = 0;
      for (const FoldScores& s : scores[i]) {
        sum += s.nll;
        row.mean_accuracy += s.accuracy / o.folds;
        row.mean_ece += s.ece / o.folds;
      }
      row.mean_nll = sum / o.folds;
      for (const FoldScores& s : scores[i]) {
        sum_sq += (s.nll - row.mean_nll) * (s.nll - row.mean_nll);
      }
      row.std_nll = std::sqrt(sum_sq / o.folds);
    } else {
      row.mean_nll = row.std_nll = row.mean_accuracy = row.mean_ece = kNaN;
    }
    if (evidence) row.log_evidence = evaluation->log_evidence[i];
    report.rows.push_back(row);
  }
  for (size_t i = 1; i < report.rows.size(); ++i) {
    const SelectionRow& r = report.rows[i];
    const SelectionRow& best = report.rows[static_cast<size_t>(report.chosen)];
    if (evidence ? r.log_evidence > best.log_evidence : r.mean_nll < best.mean_nll) {
      report.chosen = static_cast<int>(i);
    }
  }
  report.seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return report;
}

absl::StatusOr<std::unique_ptr<FittedModel>> FitWithSelection(const ModelSpec& base,
                                                              const TrainingData& data,
                                                              const SelectionOptions& o,
                                                              const FitOptions& fit_options,
                                                              FitOutputs* outputs) {
  if (!SelectionRequested(o)) return FittedModel::Fit(base, data, fit_options, outputs);
  const bool evidence = o.criterion == SelectionCriterion::kLaplaceEvidence;
  const std::vector<ModelSpec> candidates = SelectionCandidates(base, data, o);
  // Progress units: one per (candidate, fold) solve and per evidence.
  const double units = static_cast<double>(candidates.size()) * (o.folds + (evidence ? 1 : 0));
  const double share = units / (units + 1);
  SelectionOptions sel = o;
  const ProgressFn& progress = fit_options.progress;
  if (progress) {
    sel.progress = [&progress, share](double f, const char* phase) {
      return progress(share * f, phase);
    };
  }
  absl::StatusOr<SelectionReport> report = SelectModel(base, data, sel);
  if (!report.ok()) return report.status();
  FitOptions fit = fit_options;
  if (progress) {
    fit.progress = [&progress, share](double f, const char* phase) {
      return progress(share + (1 - share) * f, phase);
    };
  }
  const int chosen = report->chosen;
  fit.selection = *std::move(report);
  return FittedModel::Fit(candidates[static_cast<size_t>(chosen)], data, fit, outputs);
}

}  // namespace ntk

// bench/selection_criteria.cc: the two selection criteria of
// docs/model-contract.md "7. Model selection" compared on Fashion-MNIST
// (docs/evaluation.md "Selection criterion: CV against the Laplace
// evidence"; bench/run.sh BUILD --only=criteria).
//
//   selection_criteria --n=2000 [--folds=3] [--test=2000] [--seed=0] [--oracle=1]
//
// On the first n training images (pixels / 255, standardized;
// bench/bench_support.h TrainingSet), over the 2a grid of issue 14
// (depths 1-4 x bias variances {0, 0.1} x lambda {1e-3, 1e-2, 1e-1, 1},
// eps 0, hard labels: the grid where the Laplace evidence is defined):
//   (1) SelectModel with criterion CROSS_VALIDATION (--folds folds), timed;
//   (2) SelectModel with criterion LAPLACE_EVIDENCE (no folds), timed;
//   (3) each criterion's chosen spec fitted on all n rows and scored on
//       --test held-out test images (accuracy, NLL, ECE: core/numerics/metrics.h);
//   (4) with --oracle=1, every candidate fitted and scored the same way:
//       the best test NLL any candidate reaches (a choice in hindsight),
//       and the rank correlation of each criterion with the test NLL.
// Wall time is only meaningful on an idle machine.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <numeric>
#include <string>
#include <vector>

#include "bench/bench_support.h"
#include "core/model/model.h"
#include "core/numerics/metrics.h"
#include "core/selection/selection.h"

namespace ntk {
namespace {

double WallSeconds(const std::chrono::steady_clock::time_point& t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

SelectionOptions Grid(int folds, uint64_t seed, SelectionCriterion criterion) {
  SelectionOptions o;
  o.folds = folds;
  o.seed = seed;
  o.criterion = criterion;
  o.depths = {1, 2, 3, 4};
  o.bias_variances = {0.0, 0.1};
  o.regularizations = {1e-3, 1e-2, 1e-1, 1.0};
  o.label_smoothings = {0.0};
  return o;
}

// Test metrics of `spec` fitted on all of `data`.
bool Score(const ModelSpec& spec, const TrainingData& data, const bench::Dataset& test,
           eval::ClassificationMetrics* out) {
  absl::StatusOr<std::unique_ptr<FittedModel>> m = FittedModel::Fit(spec, data);
  if (!m.ok()) {
    std::fprintf(stderr, "fit failed: %s\n", m.status().ToString().c_str());
    return false;
  }
  absl::StatusOr<Prediction> p = (*m)->Predict(test.features);
  if (!p.ok()) {
    std::fprintf(stderr, "predict failed: %s\n", p.status().ToString().c_str());
    return false;
  }
  *out = eval::Classify(p->probabilities, test.labels);
  return true;
}

// Spearman's rank correlation (no ties expected among these doubles).
double Spearman(const std::vector<double>& a, const std::vector<double>& b) {
  const auto ranks = [](const std::vector<double>& v) {
    std::vector<size_t> idx(v.size());
    std::iota(idx.begin(), idx.end(), 0);
    std::sort(idx.begin(), idx.end(), [&v](size_t i, size_t j) { return v[i] < v[j]; });
    std::vector<double> r(v.size());
    for (size_t k = 0; k < idx.size(); ++k) r[idx[k]] = static_cast<double>(k);
    return r;
  };
  const std::vector<double> ra = ranks(a), rb = ranks(b);
  const double n = static_cast<double>(a.size());
  double d2 = 0;
  for (size_t i = 0; i < a.size(); ++i) d2 += (ra[i] - rb[i]) * (ra[i] - rb[i]);
  return 1 - 6 * d2 / (n * (n * n - 1));
}

void PrintChoice(const char* name, const SelectionRow& row, const eval::ClassificationMetrics& m) {
  std::printf("%-9s chooses depth %d bias %g lambda %g: test accuracy %.4f, NLL %.4f, ECE %.4f\n",
              name, row.kernel.depth, row.kernel.bias_variance, *row.training.regularization,
              m.accuracy, m.nll, m.ece);
}

int Main(int argc, char** argv) {
  const int n = static_cast<int>(bench::TakeIntFlag(&argc, argv, "n", 2000));
  const int folds = static_cast<int>(bench::TakeIntFlag(&argc, argv, "folds", 3));
  const int n_test = static_cast<int>(bench::TakeIntFlag(&argc, argv, "test", 2000));
  const uint64_t seed = static_cast<uint64_t>(bench::TakeIntFlag(&argc, argv, "seed", 0));
  const bool oracle = bench::TakeIntFlag(&argc, argv, "oracle", 1) != 0;
  const bench::Dataset ds = bench::TrainingSet(n);
  const bench::Dataset test = bench::QuerySet(n_test);
  TrainingData data;
  data.features = ds.features;
  data.labels = ds.labels;
  ModelSpec base;
  base.preprocessing.standardize = true;
  std::printf("selection_criteria: n=%d d=%d C=%d (%s), %d folds, %d test rows\n", n,
              static_cast<int>(ds.features.cols()), ds.classes, ds.source.c_str(), folds, n_test);

  SelectionReport reports[2];
  const SelectionCriterion criteria[2] = {SelectionCriterion::kCrossValidation,
                                          SelectionCriterion::kLaplaceEvidence};
  for (int k = 0; k < 2; ++k) {
    const auto t0 = std::chrono::steady_clock::now();
    absl::StatusOr<SelectionReport> r =
        SelectModel(base, data, Grid(k == 0 ? folds : 0, seed, criteria[k]));
    if (!r.ok()) {
      std::fprintf(stderr, "selection failed: %s\n", r.status().ToString().c_str());
      return 1;
    }
    reports[k] = *std::move(r);
    std::printf("%s: %zu candidates, wall %.1f s\n", SelectionCriterionName(criteria[k]),
                reports[k].rows.size(), WallSeconds(t0));
  }
  const std::vector<ModelSpec> candidates =
      SelectionCandidates(base, data, Grid(folds, seed, criteria[0]));
  const char* names[2] = {"CV", "evidence"};
  for (int k = 0; k < 2; ++k) {
    eval::ClassificationMetrics m;
    if (!Score(candidates[static_cast<size_t>(reports[k].chosen)], data, test, &m)) return 1;
    PrintChoice(names[k], reports[k].rows[static_cast<size_t>(reports[k].chosen)], m);
  }
  std::printf("\n%5s %8s %8s %12s %14s", "depth", "bias", "lambda", "cv_nll", "log_evidence");
  std::printf(oracle ? " %9s %9s %7s\n" : "\n", "test_nll", "test_acc", "ece");
  std::vector<double> cv, ev, test_nll;
  size_t best = 0;
  for (size_t i = 0; i < candidates.size(); ++i) {
    const SelectionRow& a = reports[0].rows[i];
    const SelectionRow& b = reports[1].rows[i];
    cv.push_back(a.mean_nll);
    ev.push_back(-b.log_evidence);  // both "smaller is better"
    std::printf("%5d %8g %8g %12.5f %14.2f", a.kernel.depth, a.kernel.bias_variance,
                *a.training.regularization, a.mean_nll, b.log_evidence);
    if (oracle) {
      eval::ClassificationMetrics m;
      if (!Score(candidates[i], data, test, &m)) return 1;
      test_nll.push_back(m.nll);
      if (m.nll < test_nll[best]) best = i;
      std::printf(" %9.4f %9.4f %7.4f", m.nll, m.accuracy, m.ece);
    }
    std::printf("%s%s\n", static_cast<int>(i) == reports[0].chosen ? "  <- CV" : "",
                static_cast<int>(i) == reports[1].chosen ? "  <- evidence" : "");
  }
  if (oracle) {
    std::printf("\nbest test NLL of any candidate: %.4f (depth %d bias %g lambda %g)\n",
                test_nll[best], candidates[best].kernel.depth,
                candidates[best].kernel.bias_variance, *candidates[best].training.regularization);
    std::printf("Spearman rank correlation with the test NLL: CV %.3f, evidence %.3f\n",
                Spearman(cv, test_nll), Spearman(ev, test_nll));
  }
  return 0;
}

}  // namespace
}  // namespace ntk

int main(int argc, char** argv) { return ntk::Main(argc, argv); }

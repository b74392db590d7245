// bench/selection_timing.cc: issue 14's selection targets on Fashion-MNIST
// (bench/run.sh BUILD --only=selection; docs/model-contract.md
// "7. Model selection").
//
//   selection_timing --n=5000 [--folds=5] [--brute=1] [--seed=0] [--parts=2b,2a]
//
// Times, in one run on the first n training images (pixels / 255,
// standardized; bench/bench_support.h TrainingSet):
//   (1) SelectModel over the grid: depths 1-4 x bias variances
//       {0, 0.1} x ({lambda 0} x eps {0.01, 0.05, 0.1}   -- 2b part
//                   + {lambda 1e-3, 1e-2, 1e-1, 1} x eps 0 -- 2a part),
//       run as two selections (the grid is a union, not a product);
//   (2) the brute-force loop over the same folds: a plain FittedModel::Fit
//       per (candidate, fold) on the fold's training rows and Predict on
//       its held-out rows (skipped with --brute=0);
//   (3) one 2b Fit on all rows at the largest depth (eps 0.1).
// and prints wall and CPU seconds, the ratios (targets: (1) <= 0.1 x (2);
// the 2b part <= 10 x (3)) and the largest relative difference between the
// NLLs of (1) and (2). --parts=2b runs only the 2b part of (1) and (3)
// (the brute force needs both parts). Wall time is only meaningful on an
// idle machine.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <string>
#include <vector>

#include "bench/bench_support.h"
#include "core/model/model.h"
#include "core/numerics/metrics.h"
#include "core/selection/folds.h"
#include "core/selection/selection.h"

namespace ntk {
namespace {

struct Seconds {
  double wall = 0, cpu = 0;
};

template <typename F>
Seconds Timed(F&& f) {
  const auto t0 = std::chrono::steady_clock::now();
  const double c0 = bench::ProcessCpuSeconds();
  f();
  return {std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(),
          bench::ProcessCpuSeconds() - c0};
}

SelectionOptions Grid(int folds, uint64_t seed, bool part_2b) {
  SelectionOptions o;
  o.folds = folds;
  o.seed = seed;
  o.depths = {1, 2, 3, 4};
  o.bias_variances = {0.0, 0.1};
  if (part_2b) {
    o.regularizations = {0.0};
    o.label_smoothings = {0.01, 0.05, 0.1};
  } else {
    o.regularizations = {1e-3, 1e-2, 1e-1, 1.0};
    o.label_smoothings = {0.0};
  }
  return o;
}

// Mean held-out NLL per candidate by plain Fits (the brute force).
std::vector<double> BruteForce(const ModelSpec& base, const TrainingData& data,
                               const SelectionOptions& o) {
  const Eigen::MatrixXd x =
      Preprocessor::FitTo(base.preprocessing, data.features).Apply(data.features);
  const std::vector<int> fold = StratifiedFolds(StratificationLabels(data), o.folds, o.seed);
  std::vector<double> out;
  for (ModelSpec spec : SelectionCandidates(base, data, o)) {
    spec.preprocessing = PreprocessingSpec();
    double nll = 0;
    for (int f = 0; f < o.folds; ++f) {
      std::vector<int> train, test, test_labels;
      for (size_t i = 0; i < fold.size(); ++i) {
        (fold[i] == f ? test : train).push_back(static_cast<int>(i));
      }
      TrainingData tr;
      tr.features = x(train, Eigen::all);
      for (int i : train) tr.labels.push_back(data.labels[static_cast<size_t>(i)]);
      for (int i : test) test_labels.push_back(data.labels[static_cast<size_t>(i)]);
      auto model = FittedModel::Fit(spec, tr);
      if (!model.ok()) {
        std::fprintf(stderr, "brute force: %s\n", model.status().ToString().c_str());
        return {};
      }
      nll += eval::Classify((*model)->Predict(x(test, Eigen::all))->probabilities, test_labels)
                 .nll /
             o.folds;
    }
    out.push_back(nll);
  }
  return out;
}

int Main(int argc, char** argv) {
  const int n = static_cast<int>(bench::TakeIntFlag(&argc, argv, "n", 5000));
  const int folds = static_cast<int>(bench::TakeIntFlag(&argc, argv, "folds", 5));
  const bool brute = bench::TakeIntFlag(&argc, argv, "brute", 1) != 0;
  const uint64_t seed = static_cast<uint64_t>(bench::TakeIntFlag(&argc, argv, "seed", 0));
  const std::string parts = bench::TakeStringFlag(&argc, argv, "parts", "2b,2a");
  const bool only_2b = parts == "2b";
  if (parts != "2b" && parts != "2b,2a") {
    std::fprintf(stderr, "--parts: expected 2b or 2b,2a, got %s\n", parts.c_str());
    return 2;
  }
  const bench::Dataset ds = bench::TrainingSet(n);
  TrainingData data;
  data.features = ds.features;
  data.labels = ds.labels;
  ModelSpec base;
  base.preprocessing.standardize = true;
  std::printf("selection_timing: n=%d d=%d C=%d (%s), %d folds\n", n,
              static_cast<int>(ds.features.cols()), ds.classes, ds.source.c_str(), folds);

  std::vector<double> nll;
  Seconds sel_2b, sel_2a;
  for (const bool part_2b : {true, false}) {
    if (only_2b && !part_2b) continue;
    absl::StatusOr<SelectionReport> r;
    const Seconds s = Timed([&] { r = SelectModel(base, data, Grid(folds, seed, part_2b)); });
    if (!r.ok()) {
      std::fprintf(stderr, "selection failed: %s\n", r.status().ToString().c_str());
      return 1;
    }
    (part_2b ? sel_2b : sel_2a) = s;
    for (const SelectionRow& row : r->rows) nll.push_back(row.mean_nll);
    const SelectionRow& best = r->rows[static_cast<size_t>(r->chosen)];
    std::printf("selection %s part: %zu candidates, wall %.2f s, cpu %.2f s; best depth %d "
                "bias %g lambda %g eps %g: nll %.4f +- %.4f, acc %.4f, ece %.4f\n",
                part_2b ? "2b" : "2a", r->rows.size(), s.wall, s.cpu, best.kernel.depth,
                best.kernel.bias_variance, *best.training.regularization,
                *best.training.label_smoothing, best.mean_nll, best.std_nll, best.mean_accuracy,
                best.mean_ece);
  }
  const double sel_wall = sel_2b.wall + sel_2a.wall, sel_cpu = sel_2b.cpu + sel_2a.cpu;

  ModelSpec one = base;
  one.kernel.depth = 4;
  one.training.regularization = 0.0;
  one.training.label_smoothing = 0.1;
  const Seconds fit = Timed([&] {
    if (!FittedModel::Fit(one, data).ok()) std::fprintf(stderr, "the 2b fit failed\n");
  });
  std::printf("one 2b fit (depth 4, all %d rows): wall %.2f s, cpu %.2f s\n", n, fit.wall,
              fit.cpu);
  std::printf("ratio 2b part of the selection / one 2b fit: wall %.2f, cpu %.2f (target <= 10)\n",
              sel_2b.wall / fit.wall, sel_2b.cpu / fit.cpu);
  if (brute && !only_2b) {
    std::vector<double> ref;
    const Seconds b = Timed([&] {
      for (const bool part_2b : {true, false}) {
        const std::vector<double> part = BruteForce(base, data, Grid(folds, seed, part_2b));
        ref.insert(ref.end(), part.begin(), part.end());
      }
    });
    double worst = 0;
    for (size_t i = 0; i < std::min(ref.size(), nll.size()); ++i) {
      worst = std::max(worst, std::abs(nll[i] - ref[i]) / std::abs(ref[i]));
    }
    std::printf("brute force (plain Fits over the same folds): wall %.2f s, cpu %.2f s\n", b.wall,
                b.cpu);
    std::printf("ratio selection / brute force: wall %.3f, cpu %.3f (target <= 0.1)\n",
                sel_wall / b.wall, sel_cpu / b.cpu);
    std::printf("largest relative NLL difference selection vs brute force: %.2e (%zu of %zu)\n",
                worst, ref.size(), nll.size());
  }
  return 0;
}

}  // namespace
}  // namespace ntk

int main(int argc, char** argv) { return ntk::Main(argc, argv); }

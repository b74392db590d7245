// tests/selection_test.cc: model selection inside Fit
// (core/selection/selection.h, docs/model-contract.md "7. Model selection").
//
// The reference is a brute-force loop written here: for every candidate and
// every fold (the same folds, StratifiedFolds), a plain FittedModel::Fit on
// the fold's training rows and Predict on its held-out rows, scored with
// core/numerics/metrics.h. Tolerance 1e-8 relative on the NLLs: the two
// paths solve the same problems with the same routines and differ only in
// where the kernels come from (blocks of the all-rows matrices against the
// fold's own TrainKernels / CrossKernels: rounding of the Gram products,
// ~1e-16 relative, amplified by the condition number of the fold's
// Theta_XX + jitter, at most ~1e6 on these 60-row, 4-feature problems, and
// by the 2a solves' stopping tolerance 1e-12 relative). Measured: at most
// 7e-14 absolute (2e-13 relative) on these grids.
#include <algorithm>
#include <cfloat>
#include <cmath>
#include <limits>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "core/kernels/kernel.h"
#include "core/model/model.h"
#include "core/numerics/metrics.h"
#include "core/selection/folds.h"
#include "core/selection/selection.h"
#include "tests/testing/server_fixture.h"
#include "tests/testing/test_data.h"

namespace ntk {
namespace {

using ::testing::HasSubstr;

constexpr double kNllRelTol = 1e-8;  // see the file comment


// Rows on the simplex with argmax mostly the blob label: softmax of 2 e_y
// plus N(0, 1) logits.
TrainingData SoftBlobs(int n, int d, int classes, uint64_t seed) {
  TrainingData data = testing::BlobsData(n, d, classes, seed);
  Eigen::MatrixXd logits = testing::StdNormalMatrix(n, classes, seed + 1);
  for (int i = 0; i < n; ++i) logits(i, data.labels[static_cast<size_t>(i)]) += 2.0;
  const Eigen::VectorXd top = logits.rowwise().maxCoeff();
  data.targets = (logits.array().colwise() - top.array()).exp().matrix();
  const Eigen::VectorXd sums = data.targets.rowwise().sum();
  data.targets.array().colwise() /= sums.array();
  data.labels.clear();
  return data;
}

ModelSpec BaseSpec() {
  ModelSpec s;
  s.kernel.depth = 1;
  s.preprocessing.standardize = true;
  return s;
}

struct BruteForce {
  std::vector<double> mean_nll, std_nll, mean_accuracy, mean_ece;
};

// Plain Fits over the same folds. Preprocessing as documented: statistics
// of all rows, applied once; the per-fold Fits then use none.
BruteForce BruteForceCv(const ModelSpec& base, const TrainingData& data,
                        const SelectionOptions& o) {
  const Eigen::MatrixXd x =
      Preprocessor::FitTo(base.preprocessing, data.features).Apply(data.features);
  const std::vector<int> strata = StratificationLabels(data);
  const std::vector<int> fold = StratifiedFolds(strata, o.folds, o.seed);
  BruteForce out;
  for (ModelSpec spec : SelectionCandidates(base, data, o)) {
    spec.preprocessing = PreprocessingSpec();
    std::vector<double> nll;
    double acc = 0, ece = 0;
    for (int f = 0; f < o.folds; ++f) {
      std::vector<int> train, test;
      for (size_t i = 0; i < fold.size(); ++i) (fold[i] == f ? test : train).push_back(int(i));
      TrainingData tr;
      tr.features = x(train, Eigen::all);
      std::vector<int> test_labels;
      for (int i : test) test_labels.push_back(strata[static_cast<size_t>(i)]);
      if (!data.labels.empty()) {
        for (int i : train) tr.labels.push_back(data.labels[static_cast<size_t>(i)]);
      } else {
        tr.targets = data.targets(train, Eigen::all);
      }
      auto model = FittedModel::Fit(spec, tr);
      EXPECT_TRUE(model.ok()) << model.status();
      if (!model.ok()) return out;
      auto pred = (*model)->Predict(x(test, Eigen::all));
      EXPECT_TRUE(pred.ok()) << pred.status();
      if (!pred.ok()) return out;
      const Eigen::MatrixXd& p = pred->probabilities;
      const eval::ClassificationMetrics m = eval::Classify(p, test_labels);
      double fold_nll = m.nll;
      if (data.labels.empty()) {  // soft targets: cross-entropy against them
        fold_nll = 0;
        for (Eigen::Index i = 0; i < p.rows(); ++i) {
          for (Eigen::Index c = 0; c < p.cols(); ++c) {
            fold_nll -= data.targets(test[size_t(i)], c) * std::log(std::max(p(i, c), DBL_MIN));
          }
        }
        fold_nll /= static_cast<double>(p.rows());
      }
      nll.push_back(fold_nll);
      acc += m.accuracy / o.folds;
      ece += m.ece / o.folds;
    }
    double mean = 0, var = 0;
    for (double v : nll) mean += v / o.folds;
    for (double v : nll) var += (v - mean) * (v - mean) / o.folds;
    out.mean_nll.push_back(mean);
    out.std_nll.push_back(std::sqrt(var));
    out.mean_accuracy.push_back(acc);
    out.mean_ece.push_back(ece);
  }
  return out;
}

void ExpectMatchesBruteForce(const ModelSpec& base, const TrainingData& data,
                             const SelectionOptions& o) {
  absl::StatusOr<SelectionReport> report = SelectModel(base, data, o);
  ASSERT_TRUE(report.ok()) << report.status();
  const BruteForce bf = BruteForceCv(base, data, o);
  ASSERT_EQ(report->rows.size(), bf.mean_nll.size());
  EXPECT_EQ(report->folds, o.folds);
  size_t argmin = 0;
  for (size_t i = 0; i < bf.mean_nll.size(); ++i) {
    const SelectionRow& row = report->rows[i];
    EXPECT_NEAR(row.mean_nll, bf.mean_nll[i], kNllRelTol * bf.mean_nll[i]) << "candidate " << i;
    // The std of fold NLLs inherits their absolute error (kNllRelTol * NLL).
    EXPECT_NEAR(row.std_nll, bf.std_nll[i], 2 * kNllRelTol * bf.mean_nll[i]) << i;
    // Accuracy and ECE: the same probabilities to ~1e-8; no argmax or bin
    // edge lies that close on these data (a flip would show as 1/20).
    EXPECT_NEAR(row.mean_accuracy, bf.mean_accuracy[i], 1e-12) << i;
    EXPECT_NEAR(row.mean_ece, bf.mean_ece[i], 1e-7) << i;
    if (bf.mean_nll[i] < bf.mean_nll[argmin]) argmin = i;
  }
  EXPECT_EQ(report->chosen, static_cast<int>(argmin));
  // The grid really spread the NLLs (a choice was made, not a tie).
  const auto [lo, hi] = std::minmax_element(bf.mean_nll.begin(), bf.mean_nll.end());
  EXPECT_GT(*hi - *lo, 1e-3);
}

TEST(SelectionTest, ExtendTrainKernelsEqualsTrainKernelsBitForBit) {
  const Eigen::MatrixXd x = testing::StdNormalMatrix(150, 5, 3);  // > one 128 tile
  for (Activation a : {Activation::kRelu, Activation::kErf}) {
    KernelSpec spec = testing::Spec(a, 1, 1.5, 0.2);
    KernelMatrices k = TrainKernels(spec, x);
    for (int depth = 2; depth <= 4; ++depth) {
      spec.depth = depth;
      ASSERT_TRUE(ExtendTrainKernels(spec, depth - 1, x, {}, &k));
      const KernelMatrices direct = TrainKernels(spec, x);
      EXPECT_TRUE(k.ntk == direct.ntk) << "depth " << depth;
      EXPECT_TRUE(k.nngp == direct.nngp) << "depth " << depth;
    }
  }
}

TEST(SelectionTest, FoldsAreStratifiedBalancedAndSeeded) {
  std::vector<int> strata;
  for (int i = 0; i < 47; ++i) strata.push_back(i % 7 == 0 ? 2 : i % 3 == 0 ? 1 : 0);
  const std::vector<int> fold = StratifiedFolds(strata, 4, 11);
  std::map<int, std::vector<int>> per_class;  // class -> rows per fold
  std::vector<int> sizes(4, 0);
  for (size_t i = 0; i < fold.size(); ++i) {
    ASSERT_GE(fold[i], 0);
    ASSERT_LT(fold[i], 4);
    ++sizes[static_cast<size_t>(fold[i])];
    per_class[strata[i]].resize(4, 0);
    ++per_class[strata[i]][static_cast<size_t>(fold[i])];
  }
  EXPECT_LE(*std::max_element(sizes.begin(), sizes.end()) -
                *std::min_element(sizes.begin(), sizes.end()), 1);
  for (const auto& [c, counts] : per_class) {
    EXPECT_LE(*std::max_element(counts.begin(), counts.end()) -
                  *std::min_element(counts.begin(), counts.end()), 1) << "class " << c;
  }
  EXPECT_EQ(StratifiedFolds(strata, 4, 11), fold);
  EXPECT_NE(StratifiedFolds(strata, 4, 12), fold);
}

TEST(SelectionTest, CrossEntropyGridMatchesBruteForceFits) {
  const TrainingData data = testing::BlobsData(90, 4, 3, 5);
  SelectionOptions o;
  o.folds = 3;
  o.seed = 7;
  o.depths = {2, 1, 3};  // unsorted on purpose: report order is grid order
  o.bias_variances = {0.0, 0.3};
  o.regularizations = {0.0, 0.1, 1.0};  // 2b (lambda 0) and 2a
  o.label_smoothings = {0.05, 0.3};
  ExpectMatchesBruteForce(BaseSpec(), data, o);
}

// One grid for both regimes on hard labels: lambda {0, 0.1} x eps {0,
// 0.05} leaves out only (0, 0), which has no minimizer, and the other three
// candidates (2b with eps 0.05; 2a with eps 0 and 0.05) are scored as plain
// Fits would score them.
TEST(SelectionTest, UnionGridLeavesOutOnlyTheUnfittableCombination) {
  const TrainingData data = testing::BlobsData(90, 4, 3, 5);
  SelectionOptions o;
  o.folds = 3;
  o.seed = 3;
  o.depths = {1, 2};
  o.regularizations = {0.0, 0.1};
  o.label_smoothings = {0.0, 0.05};
  const std::vector<ModelSpec> c = SelectionCandidates(BaseSpec(), data, o);
  ASSERT_EQ(c.size(), 6u);  // 2 depths x 3 (lambda, eps) pairs
  const std::vector<std::pair<double, double>> want = {{0.0, 0.05}, {0.1, 0.0}, {0.1, 0.05}};
  for (size_t i = 0; i < c.size(); ++i) {
    EXPECT_EQ(c[i].kernel.depth, i < 3 ? 1 : 2) << i;
    EXPECT_EQ(*c[i].training.regularization, want[i % 3].first) << i;
    EXPECT_EQ(*c[i].training.label_smoothing, want[i % 3].second) << i;
  }
  ExpectMatchesBruteForce(BaseSpec(), data, o);
  // Soft targets have a 2b minimizer at eps = 0: nothing is left out.
  const TrainingData soft = SoftBlobs(72, 4, 3, 21);
  EXPECT_EQ(SelectionCandidates(BaseSpec(), soft, o).size(), 8u);
}

TEST(SelectionTest, SquaredLossGridMatchesBruteForceFits) {
  const TrainingData data = testing::BlobsData(60, 3, 2, 9);
  ModelSpec base = BaseSpec();
  base.training.loss = Loss::kSquared;
  SelectionOptions o;
  o.folds = 4;
  o.seed = 1;
  o.depths = {1, 2};
  o.regularizations = {0.0, 0.01, 1.0};
  o.label_smoothings = {0.0, 0.2};
  ExpectMatchesBruteForce(base, data, o);
}

TEST(SelectionTest, SoftTargetsStratifyByArgmaxAndScoreAgainstTargets) {
  const TrainingData data = SoftBlobs(72, 4, 3, 21);
  SelectionOptions o;
  o.folds = 3;
  o.depths = {1, 2};
  o.regularizations = {0.0, 0.5};
  ExpectMatchesBruteForce(BaseSpec(), data, o);
}

TEST(SelectionTest, SameSeedSameReportAndChosenSpecFitted) {
  const TrainingData data = testing::BlobsData(60, 4, 3, 2);
  SelectionOptions o;
  o.folds = 3;
  o.seed = 99;
  o.depths = {1, 2};
  o.regularizations = {0.01, 1.0};
  auto a = FitWithSelection(BaseSpec(), data, o);
  auto b = FitWithSelection(BaseSpec(), data, o);
  ASSERT_TRUE(a.ok()) << a.status();
  ASSERT_TRUE(b.ok()) << b.status();
  const SelectionReport ra = *(*a)->Info().selection, rb = *(*b)->Info().selection;
  ASSERT_EQ(ra.rows.size(), 4u);
  EXPECT_EQ(ra.chosen, rb.chosen);
  for (size_t i = 0; i < ra.rows.size(); ++i) {
    EXPECT_EQ(ra.rows[i].mean_nll, rb.rows[i].mean_nll) << i;  // bit for bit
    EXPECT_EQ(ra.rows[i].mean_ece, rb.rows[i].mean_ece) << i;
  }
  // The model is the plain Fit of the chosen candidate on all rows.
  const ModelSpec chosen =
      SelectionCandidates(BaseSpec(), data, o)[static_cast<size_t>(ra.chosen)];
  auto plain = FittedModel::Fit(chosen, data);
  ASSERT_TRUE(plain.ok());
  const Eigen::MatrixXd q = testing::StdNormalMatrix(5, 4, 8);
  EXPECT_TRUE((*a)->Predict(q)->probabilities == (*plain)->Predict(q)->probabilities);
  EXPECT_EQ((*a)->Info().spec.kernel.depth, chosen.kernel.depth);
  // Persisted with the model (format version 4) and read back.
  auto loaded = FittedModel::Deserialize((*a)->Serialize());
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  ASSERT_TRUE((*loaded)->Info().selection.has_value());
  const SelectionReport rl = *(*loaded)->Info().selection;
  EXPECT_EQ(rl.chosen, ra.chosen);
  EXPECT_EQ(rl.folds, ra.folds);
  ASSERT_EQ(rl.rows.size(), ra.rows.size());
  for (size_t i = 0; i < rl.rows.size(); ++i) {
    EXPECT_EQ(rl.rows[i].mean_nll, ra.rows[i].mean_nll);
    EXPECT_EQ(rl.rows[i].kernel.depth, ra.rows[i].kernel.depth);
    EXPECT_EQ(rl.rows[i].training.regularization, ra.rows[i].training.regularization);
  }
  EXPECT_TRUE((*loaded)->Predict(q)->probabilities == (*a)->Predict(q)->probabilities);
  // A model without selection keeps no report.
  EXPECT_FALSE((*plain)->Info().selection.has_value());
  EXPECT_FALSE((*FittedModel::Deserialize((*plain)->Serialize()))->Info().selection.has_value());
}

TEST(SelectionTest, ProgressCoversTheSearchAndCancels) {
  const TrainingData data = testing::BlobsData(60, 4, 3, 2);
  SelectionOptions o;
  o.folds = 3;
  o.regularizations = {0.1, 1.0};
  std::vector<double> seen;
  bool selection_phase = false;
  FitOptions fit;
  fit.progress = [&](double f, const char* phase) {
    seen.push_back(f);
    selection_phase |= std::string(phase) == "selection";
    return true;
  };
  ASSERT_TRUE(FitWithSelection(BaseSpec(), data, o, fit).ok());
  EXPECT_TRUE(selection_phase);
  EXPECT_TRUE(std::is_sorted(seen.begin(), seen.end()));
  EXPECT_EQ(seen.back(), 1.0);
  int calls = 0;
  fit.progress = [&](double, const char*) { return ++calls < 3; };
  auto cancelled = FitWithSelection(BaseSpec(), data, o, fit);
  EXPECT_EQ(cancelled.status().code(), absl::StatusCode::kCancelled) << cancelled.status();
}

// The status of SelectModel with options changed by `edit`.
absl::Status Refusal(const TrainingData& data, void (*edit)(SelectionOptions*),
                     ModelSpec base = BaseSpec()) {
  SelectionOptions o;
  o.folds = 3;
  edit(&o);
  return SelectModel(base, data, o).status();
}

TEST(SelectionTest, BadInputNamesTheField) {
  TrainingData data = testing::BlobsData(60, 4, 3, 2);
  for (int i = 0; i < 58; ++i) data.labels[static_cast<size_t>(i)] %= 2;  // class 2: 2 rows
  data.labels[58] = data.labels[59] = 2;
  absl::Status s = Refusal(data, [](SelectionOptions* o) { o->folds = 1; });
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(), HasSubstr("selection.folds"));
  s = Refusal(data, [](SelectionOptions*) {});  // 3 folds, smallest class 2 rows
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(), HasSubstr("selection.folds: 3 folds exceed the smallest class count 2"));
  data = testing::BlobsData(60, 4, 3, 2);
  s = Refusal(data, [](SelectionOptions* o) { o->depths = {1, 0}; });
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(), HasSubstr("selection.depths[1]"));
  s = Refusal(data, [](SelectionOptions* o) { o->regularizations = {0.1, 1, -1}; });
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(), HasSubstr("selection.regularizations[2]"));
  s = Refusal(data, [](SelectionOptions* o) { o->label_smoothings = {1.0}; });
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(), HasSubstr("selection.label_smoothings[0]"));
  s = Refusal(data, [](SelectionOptions* o) {
    o->bias_variances = {0, std::numeric_limits<double>::quiet_NaN()};
  });
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(), HasSubstr("selection.bias_variances[1]"));
  // lambda = 0 with eps = 0 and hard labels: 2b has no solution. From
  // the lists, the combination is left out, and a grid of nothing else is
  // refused; with the base spec's explicit eps = 0 the candidate is named.
  s = Refusal(data, [](SelectionOptions* o) {
    o->regularizations = {0};
    o->label_smoothings = {0};
  });
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(), HasSubstr("every combination of selection.regularizations"));
  ModelSpec eps0 = BaseSpec();
  eps0.training.label_smoothing = 0.0;
  s = Refusal(data, [](SelectionOptions* o) { o->regularizations = {1, 0}; }, eps0);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(), HasSubstr("selection: candidate 1"));
  // Over the byte limit: refused up front with the estimate.
  s = Refusal(data, [](SelectionOptions* o) { o->max_bytes = 1000; });
  EXPECT_EQ(s.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(s.message(), HasSubstr("needs an estimated"));
  ModelSpec nystrom = BaseSpec();
  nystrom.approximation.kind = ApproximationKind::kNystrom;
  s = Refusal(data, [](SelectionOptions*) {}, nystrom);
  EXPECT_EQ(s.code(), absl::StatusCode::kUnimplemented);
  EXPECT_THAT(s.message(), HasSubstr("selection"));
}

// Over gRPC with both criteria; the reports survive a restart.
TEST(SelectionE2eTest, FitWithSelectionOverGrpcReportsAndPersists) {
  testing::TempDir dir;
  const testing::Blobs blobs = testing::MakeBlobs(60, 4, 3, 4);
  v1::FitRequest req;
  req.set_model_id("sel");
  *req.mutable_spec() = testing::SmallSpec();
  *req.mutable_features() = Client::ToProto(blobs.x);
  for (int y : blobs.y) req.add_labels(y);
  v1::ModelSelection* sel = req.mutable_selection();
  sel->set_folds(3);
  sel->add_depths(1);
  sel->add_depths(2);
  sel->add_regularizations(0.1);
  sel->add_regularizations(1.0);
  sel->set_seed(5);
  v1::ModelInfo fitted, fitted_ev;
  {
    auto s = testing::InProcessServer::Start(testing::TestServerOptions(dir.path()));
    ASSERT_NE(s, nullptr);
    auto c = s->Connect();
    auto info = c->Fit(req);
    ASSERT_TRUE(info.ok()) << info.status();
    const v1::SelectionReport& r = info->selection();
    ASSERT_EQ(r.rows_size(), 4);
    EXPECT_EQ(r.folds(), 3u);
    int argmin = 0;
    for (int i = 0; i < r.rows_size(); ++i) {
      if (r.rows(i).mean_nll() < r.rows(argmin).mean_nll()) argmin = i;
    }
    EXPECT_EQ(r.chosen(), static_cast<uint32_t>(argmin));
    EXPECT_EQ(info->spec().kernel().depth(), r.rows(argmin).kernel().depth());
    EXPECT_EQ(info->spec().training().regularization(),
              r.rows(argmin).training().regularization());
    fitted = *info;
    // Bad grid: INVALID_ARGUMENT naming the field, nothing fitted.
    v1::FitRequest bad = req;
    bad.set_model_id("bad");
    bad.mutable_selection()->set_folds(1);
    auto refused = c->Fit(bad);
    EXPECT_EQ(refused.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(refused.status().message(), HasSubstr("selection.folds"));

    // The Laplace evidence (tests/evidence_test.cc checks its values): no
    // folds, so the CV columns are 0 (not computed) and log_evidence set;
    // the greatest is chosen. An unknown criterion is refused by value.
    v1::FitRequest ev = req;
    ev.set_model_id("ev");
    ev.mutable_selection()->set_folds(0);
    ev.mutable_selection()->set_criterion(v1::LAPLACE_EVIDENCE);
    auto ev_info = c->Fit(ev);
    ASSERT_TRUE(ev_info.ok()) << ev_info.status();
    const v1::SelectionReport& re = ev_info->selection();
    ASSERT_EQ(re.rows_size(), 4);
    EXPECT_EQ(re.criterion(), v1::LAPLACE_EVIDENCE);
    EXPECT_EQ(re.folds(), 0u);
    int argmax = 0;
    for (int i = 0; i < re.rows_size(); ++i) {
      ASSERT_TRUE(re.rows(i).has_log_evidence()) << i;
      EXPECT_TRUE(std::isfinite(re.rows(i).log_evidence())) << i;
      EXPECT_EQ(re.rows(i).mean_nll(), 0.0) << i;
      EXPECT_FALSE(r.rows(i).has_log_evidence()) << i;  // the CV report has none
      if (re.rows(i).log_evidence() > re.rows(argmax).log_evidence()) argmax = i;
    }
    EXPECT_EQ(re.chosen(), static_cast<uint32_t>(argmax));
    EXPECT_EQ(ev_info->spec().kernel().depth(), re.rows(argmax).kernel().depth());
    EXPECT_EQ(ev_info->spec().training().regularization(),
              re.rows(argmax).training().regularization());
    fitted_ev = *ev_info;
    bad = ev;
    bad.set_model_id("bad");
    bad.mutable_selection()->set_criterion(static_cast<v1::SelectionCriterion>(5));
    refused = c->Fit(bad);
    EXPECT_EQ(refused.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(refused.status().message(), HasSubstr("selection.criterion: unknown value 5"));
  }
  auto s = testing::InProcessServer::Start(testing::TestServerOptions(dir.path()));
  ASSERT_NE(s, nullptr);
  auto again = s->Connect()->GetModel("sel");
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(again->selection().SerializeAsString(), fitted.selection().SerializeAsString());
  auto again_ev = s->Connect()->GetModel("ev");
  ASSERT_TRUE(again_ev.ok()) << again_ev.status();
  EXPECT_EQ(again_ev->selection().SerializeAsString(),
            fitted_ev.selection().SerializeAsString());
}

}  // namespace
}  // namespace ntk

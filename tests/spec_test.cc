// Tests of core/training/problem.h: every validation error of DecideTrainingProblem (code and the
// field named at the start of the message), the documented defaults, and
// the targets Y.
#include "core/training/problem.h"

#include <cmath>
#include <functional>
#include <limits>
#include <string>
#include <vector>

#include <gtest/gtest.h>

namespace ntk {
namespace {

using Eigen::MatrixXd;

TrainingData HardData(int n = 6, int d = 3, int c = 3) {
  TrainingData t;
  t.features = MatrixXd::Random(n, d);
  for (int i = 0; i < n; ++i) t.labels.push_back(i % c);
  return t;
}

TrainingData SoftData(int n = 6, int d = 3, int c = 3) {
  TrainingData t;
  t.features = MatrixXd::Random(n, d);
  t.targets = MatrixXd::Constant(n, c, 1.0 / c);
  return t;
}

struct BadCase {
  std::string name;
  std::function<void(ModelSpec&, TrainingData&)> mutate;
  std::string prefix;  // the message must start with this (field name)
  std::string contains = "";
};

TEST(DecideTrainingProblem, EveryErrorNamesItsField) {
  const double nan = std::numeric_limits<double>::quiet_NaN();
  const double inf = std::numeric_limits<double>::infinity();
  const std::vector<BadCase> cases = {
      {"nan feature", [&](ModelSpec&, TrainingData& t) { t.features(2, 1) = nan; },
       "features: row 2 column 1 is NaN"},
      {"inf feature", [&](ModelSpec&, TrainingData& t) { t.features(4, 0) = -inf; },
       "features: row 4 column 0 is -Inf"},
      {"zero rows",
       [](ModelSpec&, TrainingData& t) {
         t.features = MatrixXd(0, 3);
         t.labels.clear();
       },
       "features:", "no rows"},
      {"zero cols", [](ModelSpec&, TrainingData& t) { t.features = MatrixXd(6, 0); },
       "features:", "no columns"},
      {"label count", [](ModelSpec&, TrainingData& t) { t.labels.pop_back(); },
       "labels:", "expected 6 labels"},
      {"negative label", [](ModelSpec&, TrainingData& t) { t.labels[3] = -1; },
       "labels: row 3"},
      {"label out of range",
       [](ModelSpec& s, TrainingData& t) {
         s.num_classes = 3;
         t.labels[5] = 3;
       },
       "labels: row 5", "out of range"},
      {"both labels and targets",
       [](ModelSpec&, TrainingData& t) { t.targets = MatrixXd::Constant(6, 3, 1.0 / 3); },
       "labels:", "not both"},
      {"neither", [](ModelSpec&, TrainingData& t) { t.labels.clear(); }, "labels:",
       "neither"},
      {"targets rows",
       [](ModelSpec&, TrainingData& t) {
         t.labels.clear();
         t.targets = MatrixXd::Constant(5, 3, 1.0 / 3);
       },
       "targets:", "expected 6 rows"},
      {"targets cols vs num_classes",
       [](ModelSpec& s, TrainingData& t) {
         t.labels.clear();
         t.targets = MatrixXd::Constant(6, 3, 1.0 / 3);
         s.num_classes = 4;
       },
       "targets:", "expected 4 columns"},
      {"targets one column",
       [](ModelSpec&, TrainingData& t) {
         t.labels.clear();
         t.targets = MatrixXd::Constant(6, 1, 1.0);
       },
       "targets:", "at least 2"},
      {"targets negative",
       [](ModelSpec&, TrainingData& t) {
         t.labels.clear();
         t.targets = MatrixXd::Constant(6, 2, 0.5);
         t.targets(1, 0) = -0.5;
         t.targets(1, 1) = 1.5;
       },
       "targets: row 1 column 0", "negative"},
      {"targets nan",
       [&](ModelSpec&, TrainingData& t) {
         t.labels.clear();
         t.targets = MatrixXd::Constant(6, 2, 0.5);
         t.targets(2, 1) = nan;
       },
       "targets: row 2 column 1 is NaN"},
      {"targets sum",
       [](ModelSpec&, TrainingData& t) {
         t.labels.clear();
         t.targets = MatrixXd::Constant(6, 2, 0.5);
         t.targets(4, 1) = 0.6;
       },
       "targets: row 4 sums to"},
      {"lambda negative",
       [](ModelSpec& s, TrainingData&) { s.training.regularization = -1; },
       "spec.training.regularization:", "got -1"},
      {"lambda nan",
       [&](ModelSpec& s, TrainingData&) { s.training.regularization = nan; },
       "spec.training.regularization:"},
      {"lambda inf",
       [&](ModelSpec& s, TrainingData&) { s.training.regularization = inf; },
       "spec.training.regularization:"},
      {"eps one", [](ModelSpec& s, TrainingData&) { s.training.label_smoothing = 1.0; },
       "spec.training.label_smoothing:", "[0, 1)"},
      {"eps negative",
       [](ModelSpec& s, TrainingData&) { s.training.label_smoothing = -0.1; },
       "spec.training.label_smoothing:"},
      {"num_classes negative", [](ModelSpec& s, TrainingData&) { s.num_classes = -2; },
       "spec.num_classes:"},
      {"num_classes one inferred",
       [](ModelSpec&, TrainingData& t) {
         for (int& k : t.labels) k = 0;
       },
       "spec.num_classes:", "at least 2"},
      {"num_classes too small",
       [](ModelSpec& s, TrainingData&) { s.num_classes = 2; },  // labels go to 2
       "labels: row 2", "out of range"},
      {"num_classes one explicit",
       [](ModelSpec& s, TrainingData& t) {
         s.num_classes = 1;
         for (int& k : t.labels) k = 0;
       },
       "spec.num_classes:", "at least 2"},
      {"class names",
       [](ModelSpec& s, TrainingData&) { s.class_names = {"a", "b"}; },
       "spec.class_names:", "expected 3"},
      {"lambda 0 hard labels no smoothing",
       [](ModelSpec& s, TrainingData&) {
         s.training.regularization = 0.0;
         s.training.label_smoothing = 0.0;
       },
       "spec.training.regularization:", "label_smoothing > 0"},
      {"lambda 0 soft targets with zeros",
       [](ModelSpec& s, TrainingData& t) {
         t.labels.clear();
         t.targets = MatrixXd::Constant(6, 2, 0.5);
         t.targets(0, 0) = 0;
         t.targets(0, 1) = 1;
         s.training.regularization = 0.0;
       },
       "spec.training.regularization:", "regularization > 0"},
      {"kernel depth", [](ModelSpec& s, TrainingData&) { s.kernel.depth = 0; },
       "spec.kernel.depth"},
      {"kernel weight variance",
       [](ModelSpec& s, TrainingData&) { s.kernel.weight_variance = -1; },
       "spec.kernel.weight_variance"},
      {"kernel bias variance",
       [](ModelSpec& s, TrainingData&) { s.kernel.bias_variance = -1; },
       "spec.kernel.bias_variance"},
      {"loss", [](ModelSpec& s, TrainingData&) { s.training.loss = static_cast<Loss>(7); },
       "spec.training.loss:"},
  };
  for (const BadCase& bc : cases) {
    ModelSpec spec;
    TrainingData data = HardData();
    bc.mutate(spec, data);
    absl::StatusOr<TrainingProblem> r = DecideTrainingProblem(spec, data);
    ASSERT_FALSE(r.ok()) << bc.name;
    EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument) << bc.name;
    const std::string msg(r.status().message());
    EXPECT_EQ(msg.rfind(bc.prefix, 0), 0u) << bc.name << ": " << msg;
    EXPECT_NE(msg.find(bc.contains), std::string::npos) << bc.name << ": " << msg;
  }
}

TEST(DecideTrainingProblem, DefaultsForHardLabels) {
  // Unset lambda and eps, CE, hard labels: eps = 0.1, then targets > 0 so lambda = 0 (2b).
  absl::StatusOr<TrainingProblem> r = DecideTrainingProblem(ModelSpec{}, HardData());
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->label_smoothing, kDefaultLabelSmoothing);
  EXPECT_EQ(r->lambda, 0.0);
  EXPECT_EQ(r->regime, Regime::kUnregularizedCE);
  EXPECT_EQ(r->num_classes, 3);
  EXPECT_EQ(*r->spec.training.regularization, 0.0);
  EXPECT_EQ(*r->spec.training.label_smoothing, kDefaultLabelSmoothing);
  EXPECT_EQ(r->spec.num_classes, 3);
  EXPECT_STREQ(RegimeName(r->regime), "2b");

  // Explicit eps = 0, lambda unset: degenerate targets -> lambda = 1 (2a).
  ModelSpec s;
  s.training.label_smoothing = 0.0;
  r = DecideTrainingProblem(s, HardData());
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->lambda, kDefaultRegularization);
  EXPECT_EQ(r->regime, Regime::kRegularizedCE);
  EXPECT_STREQ(RegimeName(r->regime), "2a");

  // Explicit lambda = 0, eps unset: eps = 0.1.
  s = ModelSpec{};
  s.training.regularization = 0.0;
  r = DecideTrainingProblem(s, HardData());
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->label_smoothing, kDefaultLabelSmoothing);
  EXPECT_EQ(r->regime, Regime::kUnregularizedCE);

  // Explicit lambda > 0, eps unset: eps = 0.
  s = ModelSpec{};
  s.training.regularization = 0.5;
  r = DecideTrainingProblem(s, HardData());
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->label_smoothing, 0.0);
  EXPECT_EQ(r->lambda, 0.5);
  EXPECT_EQ(r->regime, Regime::kRegularizedCE);

  // Squared loss: eps = 0, lambda = 0 (2c).
  s = ModelSpec{};
  s.training.loss = Loss::kSquared;
  r = DecideTrainingProblem(s, HardData());
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->label_smoothing, 0.0);
  EXPECT_EQ(r->lambda, 0.0);
  EXPECT_EQ(r->regime, Regime::kSquared);
  EXPECT_STREQ(RegimeName(r->regime), "2c");

  // num_classes larger than the labels need is kept.
  s = ModelSpec{};
  s.num_classes = 5;
  s.class_names = {"a", "b", "c", "d", "e"};
  r = DecideTrainingProblem(s, HardData());
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->num_classes, 5);
}

TEST(DecideTrainingProblem, DefaultsForSoftTargets) {
  // Strictly positive soft targets, nothing set: eps = 0, lambda = 0 (2b).
  absl::StatusOr<TrainingProblem> r = DecideTrainingProblem(ModelSpec{}, SoftData());
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->label_smoothing, 0.0);
  EXPECT_EQ(r->lambda, 0.0);
  EXPECT_EQ(r->regime, Regime::kUnregularizedCE);
  // Soft targets with zeros, nothing set: lambda = 1 (2a), eps = 0.
  TrainingData t = SoftData(4, 2, 2);
  t.targets << 1, 0, 0.5, 0.5, 0.3, 0.7, 0, 1;
  r = DecideTrainingProblem(ModelSpec{}, t);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->lambda, kDefaultRegularization);
  EXPECT_EQ(r->label_smoothing, 0.0);
  // ... or with smoothing, lambda = 0 is allowed.
  ModelSpec s;
  s.training.regularization = 0.0;
  s.training.label_smoothing = 0.2;
  r = DecideTrainingProblem(s, t);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->regime, Regime::kUnregularizedCE);
  // Row sums within 1e-6 are accepted.
  t.targets(1, 0) += 5e-7;
  EXPECT_TRUE(DecideTrainingProblem(ModelSpec{}, t).ok());
}

TEST(DecideTrainingProblemTargets, OneHotSmoothingAndSoft) {
  TrainingData t = HardData(4, 2, 3);
  ModelSpec s;
  s.training.label_smoothing = 0.3;
  s.training.regularization = 1.0;
  absl::StatusOr<TrainingProblem> r = DecideTrainingProblem(s, t);
  ASSERT_TRUE(r.ok());
  const MatrixXd y = r->targets;
  ASSERT_EQ(y.rows(), 4);
  ASSERT_EQ(y.cols(), 3);
  for (int i = 0; i < 4; ++i) {
    for (int c = 0; c < 3; ++c) {
      const double expected = (c == t.labels[i] ? 0.7 : 0.0) + 0.1;
      EXPECT_NEAR(y(i, c), expected, 1e-15);
    }
    EXPECT_NEAR(y.row(i).sum(), 1.0, 1e-15);
  }
  // Soft targets get the same smoothing.
  TrainingData soft = SoftData(2, 2, 2);
  soft.targets << 1, 0, 0.25, 0.75;
  s.training.label_smoothing = 0.2;
  r = DecideTrainingProblem(s, soft);
  ASSERT_TRUE(r.ok());
  const MatrixXd ys = r->targets;
  EXPECT_NEAR(ys(0, 0), 0.8 + 0.1, 1e-15);
  EXPECT_NEAR(ys(0, 1), 0.1, 1e-15);
  EXPECT_NEAR(ys(1, 1), 0.8 * 0.75 + 0.1, 1e-15);
  // No smoothing: returned unchanged.
  s.training.label_smoothing = 0.0;
  r = DecideTrainingProblem(s, soft);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->targets, soft.targets);
}

}  // namespace
}  // namespace ntk

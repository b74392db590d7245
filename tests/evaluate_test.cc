// Tests of the evaluation tool (tools/evaluate): the metric code against
// hand-computed values, the data readers on hand-made bytes, and a tiny
// end-to-end evaluation on digits through a subprocess ntk_server.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "tests/testing/server_fixture.h"
#include "tools/evaluate/datasets.h"
#include "tools/evaluate/evaluation.h"
#include "core/numerics/metrics.h"

namespace ntk::eval {
namespace {

// Metric values below are worked out by hand (in the comments) to 8+
// digits; the tolerance 1e-8 covers that rounding of the hand values, while
// the code's own rounding error is ~1e-16.
constexpr double kHandTol = 1e-8;

// Five points, three classes; confidences 0.7, 0.62, 0.42, 0.5, 0.72 avoid
// the bin edges k/15, so the 15-bin ECE does not hinge on rounding.
Eigen::MatrixXd FivePoints() {
  Eigen::MatrixXd p(5, 3);
  p << 0.7, 0.2, 0.1,    // y = 0: correct, conf 0.70 -> bin 10 (ceil(10.5) - 1)
      0.1, 0.62, 0.28,   // y = 2: wrong,   conf 0.62 -> bin 9  (ceil(9.3) - 1)
      0.3, 0.28, 0.42,   // y = 2: correct, conf 0.42 -> bin 6  (ceil(6.3) - 1)
      0.5, 0.4, 0.1,     // y = 1: wrong,   conf 0.50 -> bin 7  (ceil(7.5) - 1)
      0.1, 0.18, 0.72;   // y = 1: wrong,   conf 0.72 -> bin 10 (ceil(10.8) - 1)
  return p;
}
const std::vector<int> kFiveLabels = {0, 2, 2, 1, 1};

TEST(MetricsTest, AccuracyNllBrierMatchHandValues) {
  ClassificationMetrics m = Classify(FivePoints(), kFiveLabels);
  EXPECT_EQ(m.n, 5);
  // 2 of 5 argmaxes are right.
  EXPECT_DOUBLE_EQ(m.accuracy, 0.4);
  // -(ln .7 + ln .28 + ln .42 + ln .4 + ln .18) / 5
  //  = (0.35667494 + 1.27296568 + 0.86750057 + 0.91629073 + 1.71479843) / 5
  EXPECT_NEAR(m.nll, 1.02564607, kHandTol);
  // Per point sum_c (p_c - onehot_c)^2: 0.14, 0.9128, 0.5048, 0.62, 1.2008
  // (e.g. point 2: 0.01 + 0.62^2 + 0.72^2), mean 3.3784 / 5.
  EXPECT_NEAR(m.brier, 0.67568, kHandTol);
}

TEST(MetricsTest, EceWith15BinsMatchesHandValue) {
  ClassificationMetrics m = Classify(FivePoints(), kFiveLabels);
  ASSERT_EQ(m.reliability.size(), 15u);
  // Bin 10 holds confidences 0.70 (right) and 0.72 (wrong).
  EXPECT_EQ(m.reliability[10].count, 2);
  EXPECT_NEAR(m.reliability[10].mean_confidence, 0.71, kHandTol);
  EXPECT_NEAR(m.reliability[10].accuracy, 0.5, kHandTol);
  EXPECT_EQ(m.reliability[9].count, 1);
  EXPECT_EQ(m.reliability[6].count, 1);
  EXPECT_EQ(m.reliability[7].count, 1);
  EXPECT_EQ(m.reliability[0].count, 0);
  // (2 |0.5 - 0.71| + |0 - 0.62| + |1 - 0.42| + |0 - 0.5|) / 5 = 2.12 / 5.
  EXPECT_NEAR(m.ece, 0.424, kHandTol);
}

TEST(MetricsTest, EcePerfectlyCalibratedIsZeroAndOneHotWrongIsOne) {
  // Four points at confidence 0.75 (bin 11), three right and one wrong ...
  Eigen::MatrixXd p(4, 2);
  p << 0.75, 0.25, 0.75, 0.25, 0.25, 0.75, 0.25, 0.75;
  // ... accuracy 3/4 in that bin = its confidence: ECE 0.
  EXPECT_NEAR(Classify(p, {0, 0, 1, 0}).ece, 0.0, 1e-15);
  // Confident (p = 1) and always wrong: ECE 1, NLL = -log(DBL_MIN) = 708.396...
  Eigen::MatrixXd q(2, 2);
  q << 1.0, 0.0, 0.0, 1.0;
  ClassificationMetrics m = Classify(q, {1, 0});
  EXPECT_DOUBLE_EQ(m.ece, 1.0);
  EXPECT_NEAR(m.nll, 708.39641853226408, 1e-9);
  EXPECT_DOUBLE_EQ(m.brier, 2.0);
  EXPECT_DOUBLE_EQ(m.accuracy, 0.0);
}

TEST(MetricsTest, AurocCountsTiesAsHalf) {
  // Positives score 0.4 and 0.8; negatives 0.1, 0.35, 0.4. Of the 6 pairs,
  // 5 are ordered right and one (0.4 vs 0.4) is a tie: (5 + 0.5) / 6.
  EXPECT_NEAR(Auroc({0.1, 0.4, 0.35, 0.8, 0.4}, {false, true, false, true, false}),
              5.5 / 6, 1e-15);
  // Perfect separation and its reverse.
  EXPECT_DOUBLE_EQ(Auroc({1, 2, 3, 4}, {false, false, true, true}), 1.0);
  EXPECT_DOUBLE_EQ(Auroc({4, 3, 2, 1}, {false, false, true, true}), 0.0);
  // All tied: 1/2.
  EXPECT_DOUBLE_EQ(Auroc({7, 7, 7}, {true, false, false}), 0.5);
  // Undefined without one of the classes.
  EXPECT_TRUE(std::isnan(Auroc({1, 2}, {true, true})));
}

TEST(MetricsTest, EntropyInNatsWithZeroLogZero) {
  Eigen::MatrixXd p(3, 3);
  p << 0.5, 0.5, 0.0, 1.0, 0.0, 0.0, 1.0 / 3, 1.0 / 3, 1.0 / 3;
  Eigen::VectorXd h = RowEntropy(p);
  EXPECT_NEAR(h(0), std::log(2.0), 1e-15);
  EXPECT_EQ(h(1), 0.0);
  EXPECT_NEAR(h(2), std::log(3.0), 1e-15);
}

TEST(DatasetsTest, ParsesIdxAndDigitsCsv) {
  // IDX: magic 0x00000803 (unsigned bytes, 3 dims), dims 2 x 1 x 2, 4 bytes.
  std::string idx("\x00\x00\x08\x03\x00\x00\x00\x02\x00\x00\x00\x01\x00\x00\x00\x02"
                  "\x00\xff\x80\x01",
                  20);
  absl::StatusOr<Idx> parsed = ParseIdx(idx, "t");
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_EQ(parsed->dims, (std::vector<uint32_t>{2, 1, 2}));
  EXPECT_EQ(static_cast<unsigned char>(parsed->data[1]), 255);
  EXPECT_FALSE(ParseIdx(idx.substr(0, 19), "t").ok());  // truncated data
  EXPECT_FALSE(ParseIdx(std::string("\x00\x00\x0d\x01", 4), "t").ok());  // floats, not bytes

  std::string line1, line2;
  for (int j = 0; j < 64; ++j) {
    line1 += std::to_string(j % 17) + ",";
    line2 += "16.0,";
  }
  absl::StatusOr<Dataset> d = ParseDigitsCsv(line1 + "3\n" + line2 + "9.0\n");
  ASSERT_TRUE(d.ok()) << d.status();
  ASSERT_EQ(d->x.rows(), 2);
  EXPECT_EQ(d->y, (std::vector<int>{3, 9}));
  EXPECT_DOUBLE_EQ(d->x(0, 5), 5.0 / 16);  // features are divided by 16
  EXPECT_DOUBLE_EQ(d->x(1, 63), 1.0);
  EXPECT_FALSE(ParseDigitsCsv(line1 + "12\n").ok());  // label out of 0..9
  EXPECT_FALSE(ParseDigitsCsv("1,2,3\n").ok());       // 3 fields

  // Folds partition the rows: i % 3 == k is validation.
  Dataset six;
  six.x = Eigen::MatrixXd::Zero(6, 1);
  for (int i = 0; i < 6; ++i) six.x(i, 0) = i, six.y.push_back(i);
  TrainTest f = Fold(six, 3, 1);
  EXPECT_EQ(f.test.y, (std::vector<int>{1, 4}));
  EXPECT_EQ(f.train.y, (std::vector<int>{0, 2, 3, 5}));
}

// A tiny evaluation on digits through a real ntk_server subprocess:
// 400 training rows, the 449-row digits test set.
class EvaluateEndToEndTest : public ::testing::Test {
 protected:
  void SetUp() override {
    absl::StatusOr<TrainTest> d = LoadDigits(kDigitsPath);
    // python3-sklearn (which ships the digits data) is installed by
    // ./ntk.sh: missing data is a failure, not a reason to skip.
    ASSERT_TRUE(d.ok()) << "digits data (Debian python3-sklearn) missing: " << d.status();
    digits_ = std::move(*d);
    auto s = testing::SubprocessServer::Start({"--model_dir=" + dir_.path(), "--log_rpcs=false"});
    ASSERT_TRUE(s.ok()) << s.status();
    server_ = std::move(*s);
    client_ = server_->Connect();
    ASSERT_NE(client_, nullptr);
  }

  testing::TempDir dir_;
  TrainTest digits_;
  std::unique_ptr<testing::SubprocessServer> server_;
  std::unique_ptr<Client> client_;
};

TEST_F(EvaluateEndToEndTest, DigitsMetricsAreConsistentAndSensible) {
  Dataset train = Head(digits_.train, 400);
  NtkConfig c;  // relu, depth 1, lambda 0, eps 0.1: regime 2b
  CallOptions o;
  o.chunk_rows = 200;  // several chunks, so that chunking is exercised
  o.num_samples = 200;
  absl::StatusOr<Evaluation> e = Evaluate(*client_, "t-digits", c, train, digits_.test, 10, o);
  ASSERT_TRUE(e.ok()) << e.status();
  EXPECT_EQ(e->n_train, 400);
  EXPECT_EQ(e->n_test, 449);
  EXPECT_EQ(e->regime, "2b");
  // Kernel classifiers reach ~0.95 on digits with 400 points; 0.85 is a
  // floor far above what a wiring error gives (~0.1: rows/labels mixed up).
  EXPECT_GT(e->predict.accuracy, 0.85);
  EXPECT_LT(e->predict.nll, 1.0);  // uniform guessing: ln 10 = 2.30
  // lambda = 0: the server picks EXACT, and its probability mean predicts
  // as well as Predict does (same mean logits, some spread).
  ASSERT_TRUE(e->has_distribution) << e->distribution_error;
  EXPECT_EQ(e->distribution_method, "EXACT");
  EXPECT_GT(e->distribution.accuracy, 0.85);

  // The metrics come from Predict's probabilities, independent of chunking:
  // one call with all rows gives the same numbers. Tolerance: the server may
  // tile a different batch differently (GEMM rounding, ~1e-15 relative).
  absl::StatusOr<Client::PredictResult> p = client_->Predict("t-digits", digits_.test.x);
  EXPECT_EQ(p.status().code(), absl::StatusCode::kNotFound);  // Evaluate deleted it
  ASSERT_TRUE(client_->Fit("t-digits", c.Spec(10), train.x, train.y).ok());
  p = client_->Predict("t-digits", digits_.test.x);
  ASSERT_TRUE(p.ok()) << p.status();
  ClassificationMetrics direct = Classify(p->probabilities, digits_.test.y);
  EXPECT_NEAR(direct.accuracy, e->predict.accuracy, 1e-12);
  EXPECT_NEAR(direct.nll, e->predict.nll, 1e-10);
  EXPECT_NEAR(direct.ece, e->predict.ece, 1e-10);
}

TEST_F(EvaluateEndToEndTest, OodScoresSeparateUnseenDigits) {
  // Train on digits 0-7 (first 400 such training rows), score all test rows.
  Dataset train = HeadWithLabelsBelow(digits_.train, 400, 8);
  std::vector<bool> is_out;
  for (int y : digits_.test.y) is_out.push_back(y >= 8);
  CallOptions o;
  o.num_samples = 200;
  absl::StatusOr<Evaluation> e =
      Evaluate(*client_, "t-ood", NtkConfig{}, train, digits_.test, 8, o, is_out);
  ASSERT_TRUE(e.ok()) << e.status();
  EXPECT_EQ(e->n_test, static_cast<int>(std::count(is_out.begin(), is_out.end(), false)));
  ASSERT_EQ(e->ood.size(), 6u);
  for (const Evaluation::OodScore& s : e->ood) {
    ASSERT_EQ(s.values.size(), is_out.size());
    // Unseen digits 8 and 9 are less certain than seen ones for every
    // score; 0.6 is well below the ~0.8-0.9 these scores reach here and
    // well above chance (0.5 +- ~0.03 for ~90 positives vs ~360 negatives).
    EXPECT_GT(s.auroc, 0.6) << s.name;
  }
}

TEST_F(EvaluateEndToEndTest, CrossValidationScoresAndReportsFailures) {
  Dataset small = Head(digits_.train, 300);
  NtkConfig good;
  CvScore s = CrossValidate(*client_, small, good, 3, 10, "t-cv");
  EXPECT_TRUE(s.error.empty()) << s.error;
  EXPECT_GT(s.val_accuracy, 0.8);
  EXPECT_GT(s.val_nll, 0.0);
  EXPECT_LT(s.val_nll, 1.5);
  // lambda = 0 with hard labels is refused by the server (docs/model-contract.md "2b. Unregularized"): the
  // config is reported as failed, not scored.
  NtkConfig bad;
  bad.label_smoothing = 0;
  CvScore f = CrossValidate(*client_, small, bad, 3, 10, "t-cv-bad");
  EXPECT_FALSE(f.error.empty());
  EXPECT_NE(f.error.find("regularization"), std::string::npos) << f.error;
}

}  // namespace
}  // namespace ntk::eval

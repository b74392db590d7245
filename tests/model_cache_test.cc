// FittedModel + DistributionCache together (issue 9's "done means"):
//  - no lock is held across a solve: while one model's first MONTE_CARLO
//    call is stopped in the middle of computing its sample set, Predict and
//    PredictDistribution on the same model answer;
//  - the cache budget holds: with a budget that fits one method's factors,
//    a second method evicts them and the first method recomputes them with
//    bit-identical answers.
// Synchronization is by notifications and counts, never by time.
#include <cstring>
#include <thread>

#include <gtest/gtest.h>

#include "absl/synchronization/notification.h"
#include "core/distribution/cache.h"
#include "core/model/model.h"
#include "tests/testing/distribution_fixtures.h"

namespace ntk {
namespace {

using Eigen::MatrixXd;

std::unique_ptr<FittedModel> FitModel(double lambda, double eps) {
  const MatrixXd x = testing::RandomFeatures(150, 6, 21);
  TrainingData data;
  data.features = x;
  data.labels.resize(x.rows());
  for (Eigen::Index i = 0; i < x.rows(); ++i) {
    data.labels[i] = x(i, 0) > 0.5 ? 2 : (x(i, 1) > 0 ? 1 : 0);
  }
  ModelSpec spec;
  spec.kernel = testing::Relu2();
  spec.training.regularization = lambda;
  spec.training.label_smoothing = eps;
  absl::StatusOr<std::unique_ptr<FittedModel>> m = FittedModel::Fit(spec, data);
  EXPECT_TRUE(m.ok()) << m.status();
  return m.ok() ? *std::move(m) : nullptr;
}

// Bitwise equality of two results (same method, same queries).
void ExpectSameBits(const DistributionResult& a, const DistributionResult& b) {
  ASSERT_EQ(a.points.size(), b.points.size());
  for (size_t j = 0; j < a.points.size(); ++j) {
    const PointDistribution& p = a.points[j];
    const PointDistribution& q = b.points[j];
    ASSERT_EQ(p.logit_covariance.size(), q.logit_covariance.size());
    EXPECT_EQ(0, std::memcmp(p.logit_mean.data(), q.logit_mean.data(),
                             sizeof(double) * p.logit_mean.size()));
    EXPECT_EQ(0, std::memcmp(p.logit_covariance.data(), q.logit_covariance.data(),
                             sizeof(double) * p.logit_covariance.size()));
    EXPECT_EQ(0, std::memcmp(p.probability_covariance.data(), q.probability_covariance.data(),
                             sizeof(double) * p.probability_covariance.size()));
    EXPECT_EQ(p.mutual_information, q.mutual_information);
  }
}

TEST(ModelCache, NoLockIsHeldWhileAFirstMonteCarloCallComputes) {
  std::unique_ptr<FittedModel> model = FitModel(/*lambda=*/1.0, /*eps=*/0.0);
  ASSERT_NE(model, nullptr);
  DistributionCache cache(DistributionCache::Options{int64_t{1} << 30});
  const MatrixXd xq = testing::RandomFeatures(5, 6, 22);

  // The long call stops inside its sample-set computation (its own cache
  // key in flight; the shared prior and Theta entries already cached).
  absl::Notification entered, release;
  DistributionOptions slow;
  slow.method = DistributionMethod::kMonteCarlo;
  slow.num_samples = 16;
  slow.seed = 5;
  slow.cache = {&cache, "m", 1};
  slow.progress = [&](double, const char* phase) {
    if (std::strstr(phase, "samples") != nullptr && !entered.HasBeenNotified()) {
      entered.Notify();
      release.WaitForNotification();
    }
    return true;
  };
  absl::StatusOr<DistributionResult> slow_result;
  std::thread t([&] { slow_result = model->PredictDistribution(xq, slow); });
  entered.WaitForNotification();
  ASSERT_EQ(cache.stats().in_flight, 1);

  // Predict, LINEARIZED and a MONTE_CARLO call with another seed on the same
  // model all answer while that computation is stopped.
  absl::StatusOr<Prediction> p = model->Predict(xq);
  EXPECT_TRUE(p.ok()) << p.status();
  DistributionOptions other;
  other.cache = {&cache, "m", 1};
  other.method = DistributionMethod::kLinearized;
  absl::StatusOr<DistributionResult> lin = model->PredictDistribution(xq, other);
  EXPECT_TRUE(lin.ok()) << lin.status();
  other.method = DistributionMethod::kMonteCarlo;
  other.num_samples = 16;
  other.seed = 6;
  absl::StatusOr<DistributionResult> mc6 = model->PredictDistribution(xq, other);
  EXPECT_TRUE(mc6.ok()) << mc6.status();
  EXPECT_EQ(cache.stats().in_flight, 1);  // the first call is still stopped

  release.Notify();
  t.join();
  ASSERT_TRUE(slow_result.ok()) << slow_result.status();
  EXPECT_EQ(cache.stats().in_flight, 0);
  // The stopped call's answer is the answer of an uninterrupted one.
  DistributionCache fresh(DistributionCache::Options{int64_t{1} << 30});
  slow.progress = nullptr;
  slow.cache = {&fresh, "m", 1};
  absl::StatusOr<DistributionResult> again = model->PredictDistribution(xq, slow);
  ASSERT_TRUE(again.ok()) << again.status();
  ExpectSameBits(*slow_result, *again);
}

TEST(ModelCache, BudgetEvictsAndRecomputationGivesIdenticalAnswers) {
  std::unique_ptr<FittedModel> model = FitModel(/*lambda=*/0.0, /*eps=*/0.1);  // 2b
  ASSERT_NE(model, nullptr);
  const MatrixXd xq = testing::RandomFeatures(5, 6, 23);
  DistributionOptions exact;
  exact.method = DistributionMethod::kExact;
  DistributionOptions mc;
  mc.method = DistributionMethod::kMonteCarlo;
  mc.num_samples = 200;
  mc.seed = 3;

  // Measure what EXACT alone keeps.
  DistributionCache big(DistributionCache::Options{int64_t{1} << 30});
  exact.cache = {&big, "m", 1};
  ASSERT_TRUE(model->PredictDistribution(xq, exact).ok());
  const int64_t exact_bytes = big.stats().bytes;
  ASSERT_GT(exact_bytes, 0);

  // A budget that holds EXACT's factors but not those plus MONTE_CARLO's.
  DistributionCache cache(DistributionCache::Options{exact_bytes + exact_bytes / 4});
  exact.cache = mc.cache = {&cache, "m", 1};
  absl::StatusOr<DistributionResult> first = model->PredictDistribution(xq, exact);
  ASSERT_TRUE(first.ok()) << first.status();
  const int64_t misses_after_first = cache.stats().misses;
  ASSERT_NE(cache.Lookup({"m", 1, "exact"}), nullptr);

  ASSERT_TRUE(model->PredictDistribution(xq, mc).ok());
  DistributionCache::Stats s = cache.stats();
  EXPECT_GT(s.evictions, 0);
  EXPECT_LE(s.bytes, s.budget_bytes);

  absl::StatusOr<DistributionResult> second = model->PredictDistribution(xq, exact);
  ASSERT_TRUE(second.ok()) << second.status();
  EXPECT_GT(cache.stats().misses, misses_after_first);  // recomputed, not served
  EXPECT_LE(cache.stats().bytes, cache.stats().budget_bytes);
  ExpectSameBits(*first, *second);
}

}  // namespace
}  // namespace ntk

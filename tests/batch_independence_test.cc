// A query point's answer must not depend on which other rows share its
// request: PredictDistribution seeds each point's Monte Carlo draws by the
// bits of its preprocessed row, so preprocessing must give the same bits for
// a row alone and inside a batch. (Found through ntkctl: row 1500 of digits
// got a different probability mean alone than with one neighbour.)
#include <random>

#include "core/model/model.h"
#include "gtest/gtest.h"

namespace ntk {
namespace {

Eigen::MatrixXd RandomRows(int n, int d, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<double> u(-3.0, 5.0);
  Eigen::MatrixXd x(n, d);
  for (int i = 0; i < n; ++i)
    for (int j = 0; j < d; ++j) x(i, j) = u(rng);
  return x;
}

TEST(BatchIndependence, PreprocessedRowBitsDoNotDependOnTheBatch) {
  const Eigen::MatrixXd train = RandomRows(40, 37, 1);
  const Preprocessor p = Preprocessor::FitTo({true, true}, train);
  const Eigen::MatrixXd batch = RandomRows(9, 37, 2);
  const Eigen::MatrixXd all = p.Apply(batch);
  for (int i = 0; i < batch.rows(); ++i) {
    const Eigen::MatrixXd one = p.Apply(batch.row(i));
    for (int j = 0; j < batch.cols(); ++j) ASSERT_EQ(one(0, j), all(i, j)) << i << "," << j;
  }
}

TEST(BatchIndependence, DistributionOfARowIsTheSameAloneAndInABatch) {
  TrainingData data;
  data.features = RandomRows(60, 12, 3);
  for (int i = 0; i < 60; ++i) data.labels.push_back(i % 3);
  ModelSpec spec;
  spec.preprocessing = {true, true};
  auto model = FittedModel::Fit(spec, data);
  ASSERT_TRUE(model.ok()) << model.status();
  const Eigen::MatrixXd queries = RandomRows(7, 12, 4);
  DistributionOptions o;
  o.seed = 42;
  o.num_samples = 200;
  auto all = (*model)->PredictDistribution(queries, o);
  ASSERT_TRUE(all.ok()) << all.status();
  for (int i = 0; i < queries.rows(); ++i) {
    auto one = (*model)->PredictDistribution(queries.row(i), o);
    ASSERT_TRUE(one.ok()) << one.status();
    const PointDistribution& a = one->points[0];
    const PointDistribution& b = all->points[i];
    // The logit moments come from GEMMs whose rounding may depend on the
    // batch shape (~1e-15 relative); the sampled probability moments use the
    // same draws, so they differ only by that rounding -- not by Monte Carlo
    // noise (~1e-2 at 200 samples), which is what a seed change would give.
    EXPECT_NEAR((a.logit_mean - b.logit_mean).cwiseAbs().maxCoeff(), 0, 1e-12);
    EXPECT_NEAR((a.probability_mean - b.probability_mean).cwiseAbs().maxCoeff(), 0, 1e-10) << i;
    EXPECT_NEAR(a.mutual_information, b.mutual_information, 1e-10) << i;
  }
}

}  // namespace
}  // namespace ntk

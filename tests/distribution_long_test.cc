// Longer PredictDistribution checks (label "long"): larger problems,
// C = 10, ReLU depth 2. Timing lives in bench/distribution_bench.
#include <gtest/gtest.h>

#include "core/distribution/distribution.h"
#include "core/kernels/kernel.h"
#include "tests/testing/distribution_fixtures.h"

namespace ntk {
namespace {

using Eigen::MatrixXd;
using testing::MakeState;
using testing::RandomFeatures;
using testing::RandomTargets;
using testing::Relu2;

// MONTE_CARLO (S draws) within k SE of a Gaussian reference, every point.
void ExpectWithinSE(const DistributionResult& est, const DistributionResult& ref, int S,
                    double k) {
  ASSERT_EQ(est.points.size(), ref.points.size());
  for (size_t j = 0; j < ref.points.size(); ++j) {
    SCOPED_TRACE(::testing::Message() << "point " << j);
    testing::ExpectWithinSE(est.points[j].logit_mean, est.points[j].logit_covariance,
                            ref.points[j].logit_mean, ref.points[j].logit_covariance, S, k,
                            1e-9);
  }
}

// N = 300, C = 10, lambda = 1000 (linearization bias ~Theta/lambda times
// an O(1) factor, below the MC error; see distribution_test.cc for why
// lambda = 50 is not enough): MONTE_CARLO with S = 400 2a solves within
// 5 SE of LINEARIZED for every entry.
TEST(DistributionLinearizedVsMonteCarlo, LargeLambdaTenClasses) {
  const int N = 300, d = 20, C = 10, M = 4, S = 400;
  const MatrixXd x = RandomFeatures(N, d, 1);
  const MatrixXd y = RandomTargets(x, C, 0.0, 2);
  const MatrixXd xq = RandomFeatures(M, d, 3);
  auto st = MakeState(Relu2(), Regime::kRegularizedCE, 1000.0, x, y);
  ASSERT_NE(st, nullptr);
  DistributionOptions o;
  o.method = DistributionMethod::kLinearized;
  auto lin = ComputeDistribution(*st, xq, o);
  o.method = DistributionMethod::kMonteCarlo;
  o.num_samples = S;
  o.seed = 9;
  auto mc = ComputeDistribution(*st, xq, o);
  ASSERT_TRUE(lin.ok() && mc.ok()) << mc.status();
  ExpectWithinSE(*mc, *lin, S, 5.0);
}

// MONTE_CARLO for 2b at N = 300, C = 10 (a linear map): within 5 SE of EXACT.
TEST(DistributionExactVsMonteCarlo, UnregularizedTenClasses) {
  const int N = 300, d = 20, C = 10, M = 4, S = 4000;
  const MatrixXd x = RandomFeatures(N, d, 4);
  const MatrixXd y = RandomTargets(x, C, 0.1, 5);
  const MatrixXd xq = RandomFeatures(M, d, 6);
  auto st = MakeState(Relu2(), Regime::kUnregularizedCE, 0.0, x, y);
  ASSERT_NE(st, nullptr);
  DistributionOptions o;
  auto ex = ComputeDistribution(*st, xq, o);
  o.method = DistributionMethod::kMonteCarlo;
  o.num_samples = S;
  auto mc = ComputeDistribution(*st, xq, o);
  ASSERT_TRUE(ex.ok() && mc.ok()) << mc.status();
  ExpectWithinSE(*mc, *ex, S, 5.0);
}

}  // namespace
}  // namespace ntk

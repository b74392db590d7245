// Longer PredictDistribution checks (label "long"): larger problems and a
// timing printout of every method (printed, never asserted).
//
//   NTK_DIST_N=1000 ./distribution_long_test --gtest_filter=DistributionTiming.*
//
// Environment: NTK_DIST_N (training points, default 1000), NTK_DIST_M
// (query points, default 64), NTK_DIST_CASES (run only the cases whose
// name contains this string, e.g. "EXACT"). C = 10, d = 784, ReLU depth 2.
#include <sys/resource.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>

#include <gtest/gtest.h>

#include "core/distribution/distribution.h"
#include "core/kernels/kernel.h"
#include "tests/testing/distribution_fixtures.h"

namespace ntk {
namespace {

using Eigen::MatrixXd;
using Eigen::VectorXd;
using testing::MakeState;
using testing::RandomFeatures;
using testing::RandomTargets;

KernelSpec Relu2() {
  KernelSpec k;
  k.depth = 2;
  k.weight_variance = 2.0;
  k.bias_variance = 0.1;
  return k;
}

int EnvInt(const char* name, int def) {
  const char* v = std::getenv(name);
  return v ? std::atoi(v) : def;
}

// Process CPU seconds (user + system, all threads): a measure of work that
// is less sensitive than wall time to other load on a shared machine.
double CpuSeconds() {
  rusage u;
  getrusage(RUSAGE_SELF, &u);
  return u.ru_utime.tv_sec + u.ru_stime.tv_sec +
         1e-6 * (u.ru_utime.tv_usec + u.ru_stime.tv_usec);
}

double Seconds(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

// Same k-SE comparison as distribution_test.cc (Gaussian fourth moments).
void ExpectWithinSE(const PointDistribution& est, const PointDistribution& ref, int S,
                    double k) {
  const Eigen::Index C = ref.logit_mean.size();
  const MatrixXd& sg = ref.logit_covariance;
  for (Eigen::Index a = 0; a < C; ++a) {
    EXPECT_NEAR(est.logit_mean[a], ref.logit_mean[a], k * std::sqrt(sg(a, a) / S) + 1e-9);
    for (Eigen::Index b = 0; b < C; ++b) {
      const double se = std::sqrt((sg(a, a) * sg(b, b) + sg(a, b) * sg(a, b)) / S);
      EXPECT_NEAR(est.logit_covariance(a, b), sg(a, b), k * se + 1e-9);
    }
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
  for (int j = 0; j < M; ++j) ExpectWithinSE(mc->points[j], lin->points[j], S, 5.0);
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
  for (int j = 0; j < M; ++j) ExpectWithinSE(mc->points[j], ex->points[j], S, 5.0);
}

// Prints, per method: the first call (cache build + points) and the
// per-point cost of a second call on fresh queries (cache warm).
TEST(DistributionTiming, PerPointCost) {
  const int N = EnvInt("NTK_DIST_N", 1000), M = EnvInt("NTK_DIST_M", 64);
  const int d = 784, C = 10;
  const MatrixXd x = RandomFeatures(N, d, 11);
  const MatrixXd y = RandomTargets(x, C, 0.1, 12);
  const MatrixXd xq1 = RandomFeatures(M, d, 13), xq2 = RandomFeatures(M, d, 14);
  struct Case {
    const char* name;
    Regime regime;
    double lambda;
    DistributionMethod method;
    int samples;
  };
  const Case cases[] = {
      {"2b EXACT (S=1000 prob. samples)", Regime::kUnregularizedCE, 0.0, DistributionMethod::kExact, 0},
      {"2b MONTE_CARLO S=1000", Regime::kUnregularizedCE, 0.0, DistributionMethod::kMonteCarlo, 0},
      {"2a LINEARIZED", Regime::kRegularizedCE, 1.0, DistributionMethod::kLinearized, 0},
      {"2a LAPLACE_POSTERIOR", Regime::kRegularizedCE, 1.0, DistributionMethod::kLaplacePosterior, 0},
      {"2a MONTE_CARLO S=64", Regime::kRegularizedCE, 1.0, DistributionMethod::kMonteCarlo, 0},
  };
  std::unique_ptr<FittedModel::State> st2a, st2b;
  const char* only = std::getenv("NTK_DIST_CASES");
  for (const Case& c : cases) {
    if (only && std::string(c.name).find(only) == std::string::npos) continue;
    auto& st = c.regime == Regime::kRegularizedCE ? st2a : st2b;
    if (!st) {
      auto t0 = std::chrono::steady_clock::now();
      st = MakeState(Relu2(), c.regime, c.lambda, x, y);
      ASSERT_NE(st, nullptr);
      std::printf("N=%d fit %s: %.2f s\n", N, RegimeName(c.regime), Seconds(t0));
    }
    // Each method builds its own factors from scratch.
    DistributionCache cache(DistributionCache::Options{int64_t{1} << 40});
    DistributionOptions o;
    o.cache = {&cache, "m", 1};
    o.method = c.method;
    o.num_samples = c.samples;
    auto t0 = std::chrono::steady_clock::now();
    double c0 = CpuSeconds();
    auto r1 = ComputeDistribution(*st, xq1, o);
    const double first = Seconds(t0), first_cpu = CpuSeconds() - c0;
    ASSERT_TRUE(r1.ok()) << r1.status();
    t0 = std::chrono::steady_clock::now();
    c0 = CpuSeconds();
    auto r2 = ComputeDistribution(*st, xq2, o);
    const double second = Seconds(t0), second_cpu = CpuSeconds() - c0;
    ASSERT_TRUE(r2.ok()) << r2.status();
    const int64_t bytes = cache.stats().bytes;
    std::printf(
        "N=%d C=%d d=%d M=%d %-34s first call %.2f s (cpu %.2f s), warm %.4f s/point "
        "(cpu %.4f s/point), model cache %.1f MB\n",
        N, C, d, M, c.name, first, first_cpu, second / M, second_cpu / M, bytes / 1e6);
    std::fflush(stdout);
  }
}

}  // namespace
}  // namespace ntk

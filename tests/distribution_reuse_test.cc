// Tests of what Fit hands to PredictDistribution and of cancelling the long
// first calls of docs/model-contract.md "4. PredictDistribution":
//   - FitOptions::keep_distribution_factors (core/model/model.h): the EXACT
//     factors a 2b/2c Fit hands over are bit-identical to those computed on
//     demand, and with them in the cache the first EXACT call computes
//     nothing (the cache's miss counter stays 0);
//   - a progress callback that says stop after k calls ends a first call
//     with CANCELLED, leaves no entry for that factor in the cache, and the
//     next call computes it and succeeds;
//   - LINEARIZED keeps the per-class factors L_c when the cache budget holds
//     them and streams otherwise, with the same answers.
// Every comparison here is exact (EXPECT_EQ on doubles): the claims are
// bit-identity, not closeness.
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "core/distribution/cache.h"
#include "core/distribution/factors.h"
#include "core/distribution/linearized_solver.h"
#include "core/model/model.h"
#include "tests/testing/distribution_fixtures.h"

namespace ntk {
namespace {

using Eigen::MatrixXd;
using testing::RandomFeatures;

struct Data {
  TrainingData train;
  MatrixXd queries;
};

// N = 700 > kCholeskyBlock (512): the factorization takes two blocks, so a
// cancellation can land between them.
Data MakeData(int n, uint64_t seed) {
  Data d;
  d.train.features = RandomFeatures(n, 6, seed);
  d.train.labels.resize(n);
  for (int i = 0; i < n; ++i) {
    d.train.labels[i] = d.train.features(i, 0) + d.train.features(i, 1) > 0 ? 1 : (i % 3 == 0 ? 2 : 0);
  }
  d.queries = RandomFeatures(9, 6, seed + 1);
  return d;
}

ModelSpec Spec(Loss loss, std::optional<double> lambda) {
  ModelSpec spec;
  spec.kernel.depth = 2;
  spec.kernel.bias_variance = 0.1;
  spec.training.loss = loss;
  spec.training.regularization = lambda;
  return spec;
}

void ExpectSamePoints(const DistributionResult& a, const DistributionResult& b) {
  ASSERT_EQ(a.points.size(), b.points.size());
  for (size_t j = 0; j < a.points.size(); ++j) {
    EXPECT_EQ(a.points[j].logit_mean, b.points[j].logit_mean) << j;
    EXPECT_EQ(a.points[j].logit_covariance, b.points[j].logit_covariance) << j;
    EXPECT_EQ(a.points[j].probability_mean, b.points[j].probability_mean) << j;
    EXPECT_EQ(a.points[j].probability_covariance, b.points[j].probability_covariance) << j;
    EXPECT_EQ(a.points[j].mutual_information, b.points[j].mutual_information) << j;
  }
}

struct HandOverCase {
  const char* name;
  Loss loss;
  std::optional<double> lambda;  // 2b: 0 with smoothing; 2c: squared loss
  bool with_f0;                  // Fit with initial_train_outputs
};

TEST(FitHandsOverExactFactors, BitIdenticalAndNoComputationOnFirstCall) {
  const Data d = MakeData(700, 3);
  for (const HandOverCase& c : {HandOverCase{"2b", Loss::kCrossEntropy, 0.0, false},
                                HandOverCase{"2c", Loss::kSquared, 0.05, false},
                                HandOverCase{"2c lambda=0, F0", Loss::kSquared, 0.0, true}}) {
    SCOPED_TRACE(c.name);
    FitOptions fo;
    fo.keep_distribution_factors = true;
    if (c.with_f0) fo.initial_train_outputs = 0.3 * RandomFeatures(700, 3, 9);
    FitOutputs out;
    auto model = FittedModel::Fit(Spec(c.loss, c.lambda), d.train, fo, &out);
    ASSERT_TRUE(model.ok()) << model.status();
    ASSERT_EQ(out.distribution_factors.size(), 1u);
    EXPECT_EQ(out.distribution_factors[0].first, kExactPart);

    // With the handed-over factor: no computation at all.
    DistributionCache handed(DistributionCache::Options{});
    out.PutInto({&handed, "m", 1});
    DistributionOptions o;
    o.method = DistributionMethod::kExact;
    o.seed = 5;
    o.cache = {&handed, "m", 1};
    auto a = (*model)->PredictDistribution(d.queries, o);
    ASSERT_TRUE(a.ok()) << a.status();
    EXPECT_EQ(handed.stats().misses, 0);
    EXPECT_GE(handed.stats().hits, 1);

    // On demand, in a fresh cache: one computation, the same bits.
    DistributionCache fresh(DistributionCache::Options{});
    o.cache = {&fresh, "m", 1};
    auto b = (*model)->PredictDistribution(d.queries, o);
    ASSERT_TRUE(b.ok()) << b.status();
    EXPECT_EQ(fresh.stats().misses, 1);
    ExpectSamePoints(*a, *b);
    const auto* mine = dynamic_cast<const ExactFactors*>(out.distribution_factors[0].second.get());
    const auto* theirs = dynamic_cast<const ExactFactors*>(fresh.Lookup({"m", 1, kExactPart}).get());
    ASSERT_TRUE(mine != nullptr && theirs != nullptr);
    EXPECT_EQ(mine->chol_a, theirs->chol_a);
    EXPECT_EQ(mine->nngp_train, theirs->nngp_train);
    EXPECT_EQ(mine->mean_dual, theirs->mean_dual);
  }
}

TEST(FitHandsOverExactFactors, NothingFor2aOrWithoutTheOption) {
  const Data d = MakeData(60, 4);
  FitOutputs out;
  FitOptions fo;
  fo.keep_distribution_factors = true;
  ASSERT_TRUE(FittedModel::Fit(Spec(Loss::kCrossEntropy, 1.0), d.train, fo, &out).ok());
  EXPECT_TRUE(out.distribution_factors.empty());  // 2a has no EXACT
  fo.keep_distribution_factors = false;
  ASSERT_TRUE(FittedModel::Fit(Spec(Loss::kSquared, 0.1), d.train, fo, &out).ok());
  EXPECT_TRUE(out.distribution_factors.empty());
}

// Cancels the first call at the (k+1)-th progress report of `phase` (the
// number of reports of the other phases, e.g. one per kernel tile of the
// calling thread, depends on thread scheduling; those of one phase of the
// factor build do not), checks that the work stopped there and the cache
// kept nothing under `part`, then lets a second call finish.
void CancelThenRetry(const FittedModel& model, const MatrixXd& queries, DistributionMethod method,
                     int num_samples, const std::string& part, const std::string& phase, int k) {
  DistributionCache cache(DistributionCache::Options{});
  DistributionOptions o;
  o.method = method;
  o.num_samples = num_samples;
  o.seed = 11;
  o.cache = {&cache, "m", 1};
  int calls = 0, after_stop = 0;
  o.progress = [&](double, const char* p) {
    if (calls > k) ++after_stop;
    if (p == phase) ++calls;
    return calls <= k;
  };
  auto r = model.PredictDistribution(queries, o);
  ASSERT_EQ(r.status().code(), absl::StatusCode::kCancelled) << r.status();
  EXPECT_EQ(calls, k + 1);
  EXPECT_EQ(after_stop, 0);  // the work stopped at the first "no"
  EXPECT_EQ(cache.Lookup({"m", 1, part}), nullptr);
  EXPECT_EQ(cache.stats().in_flight, 0);
  o.progress = nullptr;
  auto again = model.PredictDistribution(queries, o);
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_NE(cache.Lookup({"m", 1, part}), nullptr);
}

// Reports of `phase` in an uncancelled call.
int CountReports(const FittedModel& model, const MatrixXd& queries, DistributionMethod method,
                 int num_samples, const std::string& phase) {
  DistributionOptions o;
  o.method = method;
  o.num_samples = num_samples;
  o.seed = 11;
  int n = 0;
  o.progress = [&](double, const char* p) {
    n += p == phase;
    return true;
  };
  EXPECT_TRUE(model.PredictDistribution(queries, o).ok());
  return n;
}

TEST(DistributionCancellation, ExactFactorBuildStopsAndCacheStaysConsistent) {
  const Data d = MakeData(700, 5);
  auto model = FittedModel::Fit(Spec(Loss::kSquared, 0.1), d.train);
  ASSERT_TRUE(model.ok()) << model.status();
  // The kernel pass reports before its work (k = 0) and between tiles; the
  // Cholesky of N = 700 reports before each of its 2 blocks (k = 1: between
  // them).
  const std::string kernels = "distribution: kernels", factor = "distribution: factor";
  ASSERT_EQ(CountReports(**model, d.queries, DistributionMethod::kExact, 100, factor), 2);
  CancelThenRetry(**model, d.queries, DistributionMethod::kExact, 100, kExactPart, kernels, 0);
  CancelThenRetry(**model, d.queries, DistributionMethod::kExact, 100, kExactPart, factor, 0);
  CancelThenRetry(**model, d.queries, DistributionMethod::kExact, 100, kExactPart, factor, 1);
}

TEST(DistributionCancellation, MonteCarloSampleSolvesStopAndCacheStaysConsistent) {
  const Data d = MakeData(300, 6);
  auto model = FittedModel::Fit(Spec(Loss::kCrossEntropy, 0.5), d.train);
  ASSERT_TRUE(model.ok()) << model.status();
  // Every Newton and CG iteration of every sample solve reports (a
  // deterministic count): cancel at the first and half way through.
  const std::string solves = "distribution: 2a solves";
  const int n = CountReports(**model, d.queries, DistributionMethod::kMonteCarlo, 8, solves);
  ASSERT_GE(n, 8);
  for (int k : {0, n / 2, n - 1}) {
    SCOPED_TRACE(k);
    CancelThenRetry(**model, d.queries, DistributionMethod::kMonteCarlo, 8, "mc/seed=11/S=8",
                    solves, k);
  }
}

TEST(DistributionCancellation, LinearizedFactorBuildStopsAndCacheStaysConsistent) {
  const Data d = MakeData(300, 7);
  auto model = FittedModel::Fit(Spec(Loss::kCrossEntropy, 0.5), d.train);
  ASSERT_TRUE(model.ok()) << model.status();
  // The factor build reports before each Cholesky / inverse block of each
  // class (a deterministic count): cancel at the first, half way and last.
  const std::string factor = "linearized: factor";
  const int n = CountReports(**model, d.queries, DistributionMethod::kLinearized, 100, factor);
  ASSERT_GE(n, 3 * 3);  // >= 3 blocks (Cholesky, L^-1, S^-1) x 3 classes
  for (int k : {0, n / 2, n - 1}) {
    SCOPED_TRACE(k);
    CancelThenRetry(**model, d.queries, DistributionMethod::kLinearized, 100, "linearized",
                    factor, k);
  }
}

// A call cancelled while it applies a cached factor (the streamed mode
// refactors each class) returns CANCELLED, keeps the factor, and the next
// call gives the bits of an uncancelled call.
// A cache whose budget makes LINEARIZED keep its per-class factors (room
// for the kept factor and the F0 = 0 dual, N x C) or stream them (one byte
// short of the kept factor), for N training points and C = 3; and the
// options of a LINEARIZED call through it.
DistributionCache::Options LinearizedBudget(int n, bool keep) {
  DistributionCache::Options co;
  co.budget_bytes = keep ? LinearizedFactorBytes(n, 3, true) + 8 * n * 3
                         : LinearizedFactorBytes(n, 3, true) - 1;
  return co;
}
DistributionOptions LinearizedCall(DistributionCache* cache, uint64_t seed) {
  DistributionOptions o;
  o.method = DistributionMethod::kLinearized;
  o.seed = seed;
  o.cache = {cache, "m", 1};
  return o;
}

TEST(DistributionCancellation, LinearizedApplyStopsAndLeavesTheFactor) {
  const Data d = MakeData(300, 8);
  auto model = FittedModel::Fit(Spec(Loss::kCrossEntropy, 0.5), d.train);
  ASSERT_TRUE(model.ok()) << model.status();
  for (bool keep : {false, true}) {
    SCOPED_TRACE(keep);
    DistributionCache cache(LinearizedBudget(300, keep));
    DistributionOptions o = LinearizedCall(&cache, 3);
    auto first = (*model)->PredictDistribution(d.queries, o);
    ASSERT_TRUE(first.ok()) << first.status();
    int calls = 0;
    o.progress = [&](double, const char* p) {
      calls += std::string(p) == "linearized: apply";
      return calls < 2;
    };
    auto cancelled = (*model)->PredictDistribution(d.queries, o);
    ASSERT_EQ(cancelled.status().code(), absl::StatusCode::kCancelled) << cancelled.status();
    EXPECT_EQ(calls, 2);
    EXPECT_EQ(cache.stats().in_flight, 0);
    const auto* f =
        dynamic_cast<const LinearizedFactor*>(cache.Lookup({"m", 1, "linearized"}).get());
    ASSERT_NE(f, nullptr);
    EXPECT_EQ(f->keeps_class_factors(), keep);
    o.progress = nullptr;
    auto again = (*model)->PredictDistribution(d.queries, o);
    ASSERT_TRUE(again.ok()) << again.status();
    ExpectSamePoints(*first, *again);
  }
}

// The two storage modes give the same answer: the same S_c factored by the
// same routine (linearized_solver.h). Tolerance 1e-12 relative on the logit
// covariances: rounding only (measured 0: the same BLAS calls).
TEST(LinearizedStorage, KeptAndStreamedFactorsAgree) {
  const Data d = MakeData(200, 9);
  auto model = FittedModel::Fit(Spec(Loss::kCrossEntropy, 0.1), d.train);
  ASSERT_TRUE(model.ok()) << model.status();
  std::vector<DistributionResult> results;
  for (bool keep : {false, true}) {
    DistributionCache cache(LinearizedBudget(200, keep));
    auto r = (*model)->PredictDistribution(d.queries, LinearizedCall(&cache, 4));
    ASSERT_TRUE(r.ok()) << r.status();
    const auto* f =
        dynamic_cast<const LinearizedFactor*>(cache.Lookup({"m", 1, "linearized"}).get());
    ASSERT_NE(f, nullptr);
    EXPECT_EQ(f->keeps_class_factors(), keep);
    EXPECT_EQ(f->Bytes(), LinearizedFactorBytes(200, 3, keep));
    results.push_back(*std::move(r));
  }
  for (size_t j = 0; j < results[0].points.size(); ++j) {
    const Eigen::MatrixXd& a = results[0].points[j].logit_covariance;
    const Eigen::MatrixXd& b = results[1].points[j].logit_covariance;
    EXPECT_LE((a - b).norm(), 1e-12 * a.norm()) << j;
  }
}

}  // namespace
}  // namespace ntk

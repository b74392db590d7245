// ntk/bench/distribution_bench.cc: PredictDistribution's cost per query point
// for each method (docs/model-contract.md "4. PredictDistribution"), on two models fitted once per
// process to the first N = 5000 Fashion-MNIST rows (d = 784, C = 10):
//   a 2b model (defaults: lambda = 0, smoothing 0.1) for EXACT, and
//   a 2a model (lambda = 1) for LINEARIZED, MONTE_CARLO, LAPLACE_POSTERIOR.
//
//   BM_First/<method>/P : the first call on a model -- builds the method's
//                         cached factors (O(N^3)) -- on P query points. Each
//                         iteration restores a fresh model with Deserialize
//                         (the cache is never serialized), outside the timing.
//   BM_Warm/<method>/P  : later calls (cache built, same seed), P points.
//   BM_NewSeed/MONTE_CARLO/P: a warm model asked with a new seed: MONTE_CARLO
//                         caches its S training solves per seed, so this
//                         redoes them (the cost a client pays per new seed).
//   BM_Predict/<model>/P: Predict on the same P points: the reference.
//
// Per-point cost = time / P (run.sh divides). num_samples: the defaults
// (1000 logit samples for probability moments; --mc_samples 2a solves for
// MONTE_CARLO, default 64 = kDefaultMonteCarloSamples).
//
//   ./distribution_bench --n=5000 --points=16 --benchmark_format=json
#include <cstdint>
#include <cstdio>
#include <memory>
#include <string>

#include <Eigen/Dense>
#include <benchmark/benchmark.h>

#include "bench/bench_support.h"
#include "core/model/model.h"
#include "core/training/spec.h"

namespace {

struct Models {
  std::unique_ptr<ntk::FittedModel> m2b, m2a;
  std::string bytes_2b, bytes_2a;
};
Models* g_models = nullptr;
Eigen::MatrixXd* g_queries = nullptr;
int g_mc_samples = 0;

bool Uses2b(ntk::DistributionMethod m) { return m == ntk::DistributionMethod::kExact; }

ntk::DistributionOptions Options(ntk::DistributionMethod m) {
  ntk::DistributionOptions o;
  o.method = m;
  o.seed = 7;
  if (m == ntk::DistributionMethod::kMonteCarlo) o.num_samples = g_mc_samples;
  return o;
}

void BM_First(benchmark::State& state, ntk::DistributionMethod method) {
  const Eigen::MatrixXd q = g_queries->topRows(state.range(0));
  const std::string& bytes = Uses2b(method) ? g_models->bytes_2b : g_models->bytes_2a;
  for (auto _ : state) {
    state.PauseTiming();
    absl::StatusOr<std::unique_ptr<ntk::FittedModel>> m = ntk::FittedModel::Deserialize(bytes);
    if (!m.ok()) {
      state.SkipWithError(m.status().ToString().c_str());
      break;
    }
    state.ResumeTiming();
    absl::StatusOr<ntk::DistributionResult> r = (*m)->PredictDistribution(q, Options(method));
    if (!r.ok()) {
      state.SkipWithError(r.status().ToString().c_str());
      break;
    }
    benchmark::DoNotOptimize(r->points.data());
    state.PauseTiming();
    m->reset();  // freeing the cache is not part of the call
    state.ResumeTiming();
  }
  state.SetLabel(ntk::DistributionMethodName(method));
}

void BM_Warm(benchmark::State& state, ntk::DistributionMethod method) {
  const Eigen::MatrixXd q = g_queries->topRows(state.range(0));
  const ntk::FittedModel& m = Uses2b(method) ? *g_models->m2b : *g_models->m2a;
  {  // build the cache outside the timing
    absl::StatusOr<ntk::DistributionResult> r = m.PredictDistribution(q.topRows(1), Options(method));
    if (!r.ok()) {
      state.SkipWithError(r.status().ToString().c_str());
      for (auto _ : state) {
      }
      return;
    }
  }
  for (auto _ : state) {
    absl::StatusOr<ntk::DistributionResult> r = m.PredictDistribution(q, Options(method));
    if (!r.ok()) {
      state.SkipWithError(r.status().ToString().c_str());
      break;
    }
    benchmark::DoNotOptimize(r->points.data());
  }
  state.SetLabel(ntk::DistributionMethodName(method));
}

// MONTE_CARLO caches its S training solves per (seed, S): a call with a
// seed not seen before redoes them (the prior factor stays cached).
void BM_NewSeed(benchmark::State& state, ntk::DistributionMethod method) {
  const Eigen::MatrixXd q = g_queries->topRows(state.range(0));
  const ntk::FittedModel& m = Uses2b(method) ? *g_models->m2b : *g_models->m2a;
  uint64_t seed = 1000;
  for (auto _ : state) {
    ntk::DistributionOptions o = Options(method);
    o.seed = ++seed;
    absl::StatusOr<ntk::DistributionResult> r = m.PredictDistribution(q, o);
    if (!r.ok()) {
      state.SkipWithError(r.status().ToString().c_str());
      break;
    }
    benchmark::DoNotOptimize(r->points.data());
  }
  state.SetLabel(ntk::DistributionMethodName(method));
}

void BM_Predict(benchmark::State& state, bool model_2b) {
  const Eigen::MatrixXd q = g_queries->topRows(state.range(0));
  const ntk::FittedModel& m = model_2b ? *g_models->m2b : *g_models->m2a;
  for (auto _ : state) {
    absl::StatusOr<ntk::Prediction> p = m.Predict(q);
    if (!p.ok()) {
      state.SkipWithError(p.status().ToString().c_str());
      break;
    }
    benchmark::DoNotOptimize(p->probabilities.data());
  }
}

absl::StatusOr<std::unique_ptr<ntk::FittedModel>> FitModel(
    const ntk::bench::Dataset& train, bool regularized) {
  ntk::ModelSpec spec;
  spec.preprocessing.standardize = true;
  spec.preprocessing.normalize_rows = true;
  if (regularized) spec.training.regularization = 1.0;
  ntk::TrainingData data;
  data.features = train.features;
  data.labels = train.labels;
  return ntk::FittedModel::Fit(spec, data);
}

}  // namespace

int main(int argc, char** argv) {
  const int n = static_cast<int>(ntk::bench::TakeIntFlag(&argc, argv, "n", 5000));
  const int points = static_cast<int>(ntk::bench::TakeIntFlag(&argc, argv, "points", 16));
  g_mc_samples = static_cast<int>(ntk::bench::TakeIntFlag(
      &argc, argv, "mc_samples", ntk::kDefaultMonteCarloSamples));
  const std::string methods = ntk::bench::TakeStringFlag(
      &argc, argv, "methods", "EXACT,LINEARIZED,MONTE_CARLO,LAPLACE_POSTERIOR");

  ntk::bench::Dataset train = ntk::bench::TrainingSet(n);
  ntk::bench::Dataset queries = ntk::bench::QuerySet(points);
  g_queries = &queries.features;

  Models models;
  for (bool regularized : {false, true}) {
    absl::StatusOr<std::unique_ptr<ntk::FittedModel>> m = FitModel(train, regularized);
    if (!m.ok()) {
      fprintf(stderr, "Fit (%s) failed: %s\n", regularized ? "2a" : "2b",
              m.status().ToString().c_str());
      return 1;
    }
    (regularized ? models.m2a : models.m2b) = std::move(*m);
  }
  models.bytes_2b = models.m2b->Serialize();
  models.bytes_2a = models.m2a->Serialize();
  g_models = &models;

  benchmark::AddCustomContext("data", train.source);
  benchmark::AddCustomContext("n_train", std::to_string(n));
  benchmark::AddCustomContext("points", std::to_string(points));
  benchmark::AddCustomContext("mc_samples", std::to_string(g_mc_samples));
  benchmark::AddCustomContext("fit_seconds_2b", std::to_string(models.m2b->Info().stats.fit_seconds));
  benchmark::AddCustomContext("fit_seconds_2a", std::to_string(models.m2a->Info().stats.fit_seconds));

  benchmark::RegisterBenchmark("BM_Predict/2b", BM_Predict, true)
      ->Arg(points)->Unit(benchmark::kMillisecond)->UseRealTime()->MinTime(0.5);
  benchmark::RegisterBenchmark("BM_Predict/2a", BM_Predict, false)
      ->Arg(points)->Unit(benchmark::kMillisecond)->UseRealTime()->MinTime(0.5);
  for (ntk::DistributionMethod m :
       {ntk::DistributionMethod::kExact, ntk::DistributionMethod::kLinearized,
        ntk::DistributionMethod::kMonteCarlo, ntk::DistributionMethod::kLaplacePosterior}) {
    const std::string name = ntk::DistributionMethodName(m);
    if (methods.find(name) == std::string::npos) continue;
    benchmark::RegisterBenchmark(("BM_First/" + name).c_str(), BM_First, m)
        ->Arg(points)->Iterations(1)->Unit(benchmark::kMillisecond)->UseRealTime();
    benchmark::RegisterBenchmark(("BM_Warm/" + name).c_str(), BM_Warm, m)
        ->Arg(points)->Unit(benchmark::kMillisecond)->UseRealTime()->MinTime(0.5);
    if (m == ntk::DistributionMethod::kMonteCarlo) {
      benchmark::RegisterBenchmark(("BM_NewSeed/" + name).c_str(), BM_NewSeed, m)
          ->Arg(points)->Iterations(1)->Unit(benchmark::kMillisecond)->UseRealTime();
    }
  }
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}

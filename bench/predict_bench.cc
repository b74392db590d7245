// ntk/bench/predict_bench.cc: Predict throughput (rows/s) on a fitted model
// (N = 10000 Fashion-MNIST rows, d = 784, C = 10, regime 2b; fitted once per
// process, before the timed part) for batches of 1, 64 and 1024 query rows.
//
//   BM_Predict/B       : FittedModel::Predict on B raw rows (validation,
//                        preprocessing, cross kernels, Theta_xX * dual,
//                        softmax).
//   BM_CrossKernels/B  : only CrossKernels(spec, x, X_train) on the same rows,
//                        preprocessed beforehand: the reference, so
//                        Predict / CrossKernels is Predict's overhead.
//
//   ./predict_bench --n=10000 --benchmark_format=json
#include <cstdint>
#include <cstdio>
#include <memory>
#include <string>

#include <Eigen/Dense>
#include <benchmark/benchmark.h>

#include "bench/bench_support.h"
#include "core/kernels/kernel.h"
#include "core/model/model.h"
#include "core/training/spec.h"

namespace {

std::unique_ptr<ntk::FittedModel> g_model;
ntk::bench::Dataset* g_queries = nullptr;
Eigen::MatrixXd* g_x_train = nullptr;  // preprocessed training rows
ntk::Preprocessor* g_pre = nullptr;    // fitted to the training rows, as the model's

void BM_Predict(benchmark::State& state) {
  const int rows = static_cast<int>(state.range(0));
  const Eigen::MatrixXd q = g_queries->features.topRows(rows);
  for (auto _ : state) {
    absl::StatusOr<ntk::Prediction> p = g_model->Predict(q);
    if (!p.ok()) {
      state.SkipWithError(p.status().ToString().c_str());
      break;
    }
    benchmark::DoNotOptimize(p->probabilities.data());
  }
  state.counters["rows_per_second"] = benchmark::Counter(
      static_cast<double>(rows) * state.iterations(), benchmark::Counter::kIsRate);
}

void BM_CrossKernels(benchmark::State& state) {
  const int rows = static_cast<int>(state.range(0));
  const ntk::FittedModelInfo r = g_model->Info();
  const Eigen::MatrixXd q = g_pre->Apply(g_queries->features.topRows(rows));
  for (auto _ : state) {
    ntk::KernelMatrices km = ntk::CrossKernels(r.spec.kernel, q, *g_x_train);
    benchmark::DoNotOptimize(km.ntk.data());
  }
  state.counters["rows_per_second"] = benchmark::Counter(
      static_cast<double>(rows) * state.iterations(), benchmark::Counter::kIsRate);
}

}  // namespace

int main(int argc, char** argv) {
  const int n = static_cast<int>(ntk::bench::TakeIntFlag(&argc, argv, "n", 10000));

  ntk::bench::Dataset train = ntk::bench::TrainingSet(n);
  ntk::bench::Dataset queries = ntk::bench::QuerySet(1024);
  g_queries = &queries;

  ntk::ModelSpec spec;
  spec.preprocessing.standardize = true;
  spec.preprocessing.normalize_rows = true;
  ntk::TrainingData data;
  data.features = train.features;
  data.labels = train.labels;
  absl::StatusOr<std::unique_ptr<ntk::FittedModel>> m = ntk::FittedModel::Fit(spec, data);
  if (!m.ok()) {
    fprintf(stderr, "Fit failed: %s\n", m.status().ToString().c_str());
    return 1;
  }
  g_model = std::move(*m);
  // The preprocessing of the training rows, as the model applied it; the
  // reference applies it to the queries outside the timed loop (O(B d),
  // negligible next to the B x N x d kernel).
  ntk::Preprocessor pre = ntk::Preprocessor::FitTo(spec.preprocessing, train.features);
  Eigen::MatrixXd x_train = pre.Apply(train.features);
  g_pre = &pre;
  g_x_train = &x_train;

  benchmark::AddCustomContext("data", train.source);
  benchmark::AddCustomContext("n_train", std::to_string(n));
  benchmark::AddCustomContext("fit_seconds", std::to_string(g_model->Info().stats.fit_seconds));
  for (int rows : {1, 64, 1024}) {
    benchmark::RegisterBenchmark("BM_Predict", BM_Predict)
        ->Arg(rows)->Unit(benchmark::kMillisecond)->UseRealTime()->MinTime(1.0);
    benchmark::RegisterBenchmark("BM_CrossKernels", BM_CrossKernels)
        ->Arg(rows)->Unit(benchmark::kMillisecond)->UseRealTime()->MinTime(1.0);
  }
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}

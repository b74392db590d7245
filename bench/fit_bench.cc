// ntk/bench/fit_bench.cc: the cost of FittedModel::Fit against what it cannot
// avoid, measured in the same process.
//
//   BM_Reference/N : TrainKernels(spec, X) (K and Theta, N x N each) + one
//                    in-place Cholesky of Theta -- the floor for regime 2b.
//   BM_Fit2b/N     : Fit with hard labels and the defaults (lambda = 0,
//                    label smoothing 0.1: docs/model-contract.md "2b. Unregularized").   Target: <= 1.3x
//                    BM_Reference at the same N.
//   BM_Fit2a/N     : Fit with lambda = 1 (docs/model-contract.md "2a. Regularized", Newton solver).
//                    Target: <= 3x BM_Fit2b at the same N.
//
// Data: the first N Fashion-MNIST training images (pixels / 255, d = 784,
// C = 10; synthetic class means + noise when the files are missing), with
// the recommended preprocessing (standardize + normalize_rows), ReLU, depth 1,
// sw^2 = 2, sb^2 = 0. Every benchmark runs one Fit per iteration; run.sh asks
// for repetitions with random interleaving so that machine noise hits
// reference and Fit alike.
//
//   ./fit_bench --n=10000 --n_2a=5000 --benchmark_repetitions=2
//       --benchmark_enable_random_interleaving=true   (one command line)
#include <cstdint>
#include <memory>
#include <string>

#include <Eigen/Dense>
#include <benchmark/benchmark.h>

#include "bench/bench_spec.h"
#include "bench/bench_support.h"
#include "core/kernels/kernel.h"
#include "core/model/model.h"
#include "core/training/spec.h"

namespace {

ntk::bench::Dataset* g_data = nullptr;  // the largest N; benchmarks take top rows

ntk::ModelSpec Spec(bool regularized) { return ntk::bench::FitBenchSpec(regularized ? 1.0 : 0); }

ntk::TrainingData Data(int n) {
  ntk::TrainingData data;
  data.features = g_data->features.topRows(n);
  data.labels.assign(g_data->labels.begin(), g_data->labels.begin() + n);
  return data;
}

void BM_Reference(benchmark::State& state) {
  const int n = static_cast<int>(state.range(0));
  const ntk::ModelSpec spec = Spec(false);
  const ntk::TrainingData data = Data(n);
  const Eigen::MatrixXd x =
      ntk::Preprocessor::FitTo(spec.preprocessing, data.features).Apply(data.features);
  double cpu = 0;
  for (auto _ : state) {
    const double cpu0 = ntk::bench::ProcessCpuSeconds();
    ntk::KernelMatrices km = ntk::TrainKernels(spec.kernel, x);
    Eigen::LLT<Eigen::Ref<Eigen::MatrixXd>> llt(km.ntk);
    if (llt.info() != Eigen::Success) {
      state.SkipWithError("LLT of Theta failed");
      break;
    }
    benchmark::DoNotOptimize(km.ntk.data());
    benchmark::DoNotOptimize(km.nngp.data());
    cpu += ntk::bench::ProcessCpuSeconds() - cpu0;
  }
  state.counters["cpu_s_per_iter"] = cpu / static_cast<double>(state.iterations());
}

void RunFit(benchmark::State& state, bool regularized) {
  const int n = static_cast<int>(state.range(0));
  const ntk::ModelSpec spec = Spec(regularized);
  const ntk::TrainingData data = Data(n);
  double cpu = 0;
  for (auto _ : state) {
    const double cpu0 = ntk::bench::ProcessCpuSeconds();
    absl::StatusOr<std::unique_ptr<ntk::FittedModel>> m =
        ntk::FittedModel::Fit(spec, data);
    cpu += ntk::bench::ProcessCpuSeconds() - cpu0;
    if (!m.ok()) {
      state.SkipWithError(m.status().ToString().c_str());
      break;
    }
    const ntk::FitStats s = (*m)->Info().stats;
    state.counters["train_accuracy"] = s.train_accuracy;
    state.counters["solver_iterations"] = s.solver_iterations;
    state.counters["cg_iterations"] = s.cg_iterations;
    state.counters["residual"] = s.fixed_point_residual;
    state.counters["condition"] = s.condition_estimate;
    state.counters["fit_seconds_reported"] = s.fit_seconds;
    state.SetLabel(ntk::RegimeName((*m)->Info().regime));
  }
  state.counters["cpu_s_per_iter"] = cpu / static_cast<double>(state.iterations());
}

void BM_Fit2b(benchmark::State& state) { RunFit(state, false); }
void BM_Fit2a(benchmark::State& state) { RunFit(state, true); }

}  // namespace

int main(int argc, char** argv) {
  const int n = static_cast<int>(ntk::bench::TakeIntFlag(&argc, argv, "n", 10000));
  const int n_2a = static_cast<int>(ntk::bench::TakeIntFlag(&argc, argv, "n_2a", 5000));
  const bool with_2a = n_2a > 0;

  ntk::bench::Dataset data = ntk::bench::TrainingSet(std::max(n, n_2a));
  g_data = &data;
  benchmark::AddCustomContext("data", data.source);
  benchmark::AddCustomContext("d", std::to_string(data.features.cols()));
  benchmark::AddCustomContext("classes", std::to_string(data.classes));

  auto reg = [](const char* name, void (*fn)(benchmark::State&), int size) {
    benchmark::RegisterBenchmark(name, fn)
        ->Arg(size)->Iterations(1)->Unit(benchmark::kMillisecond)->UseRealTime();
  };
  reg("BM_Reference", BM_Reference, n);
  reg("BM_Fit2b", BM_Fit2b, n);
  if (with_2a) {
    if (n_2a != n) reg("BM_Fit2b", BM_Fit2b, n_2a);
    reg("BM_Fit2a", BM_Fit2a, n_2a);
  }
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}

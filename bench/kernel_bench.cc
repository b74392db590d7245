// kernel_bench: speed of core/kernels/kernel.h against the plain GEMM of the inputs.
//
//   BM_Gemm/N            : G = X X^T (N x 784), Eigen -> OpenBLAS dgemm. The
//                          baseline the kernels are measured against.
//   BM_Syrk/N            : the upper triangle of X X^T by a rank-k update
//                          (dsyrk); what TrainKernels uses.
//   BM_TrainKernels/N/a  : TrainKernels, depth 3, a = 1 ReLU / 2 erf.
//   BM_TrainOverGemm/N/a : in every iteration, time the GEMM and then
//                          TrainKernels on the same inputs; counter
//                          `ratio` = total TrainKernels time / total GEMM
//                          time (the target is <= 1.5), so both are measured
//                          under the same machine load; `cpu_ratio` the same
//                          with process CPU time (all threads).
//   BM_CrossKernels/N/a  : CrossKernels of N/4 queries against N points.
//   BM_AcosArray, BM_StdAcos : per-element cost of the vectorized arccos
//                          against glibc's.
//
// Run (Release build):
//   /work/build-kernels/bench/kernel_bench --benchmark_filter=TrainOverGemm
#include <benchmark/benchmark.h>

#include <chrono>
#include <cmath>
#include <cstdint>
#include <ctime>
#include <random>
#include <vector>

#include "core/kernels/kernel.h"
#include "core/kernels/kernel_internal.h"

namespace {

constexpr int kDim = 784;

double ProcessCpuSeconds() {
  timespec ts;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + 1e-9 * static_cast<double>(ts.tv_nsec);
}

Eigen::MatrixXd Inputs(int n) {
  std::mt19937_64 gen(42);
  std::normal_distribution<double> normal;
  Eigen::MatrixXd x(n, kDim);
  for (int j = 0; j < kDim; ++j)
    for (int i = 0; i < n; ++i) x(i, j) = normal(gen);
  return x;
}

ntk::KernelSpec Spec(int activation) {
  ntk::KernelSpec s;
  s.activation = activation == 1 ? ntk::Activation::kRelu : ntk::Activation::kErf;
  s.depth = 3;
  s.weight_variance = 2.0;
  s.bias_variance = 0.1;
  return s;
}

void BM_Gemm(benchmark::State& state) {
  const Eigen::MatrixXd x = Inputs(static_cast<int>(state.range(0)));
  Eigen::MatrixXd g(x.rows(), x.rows());
  for (auto _ : state) {
    g.noalias() = x * x.transpose();
    benchmark::DoNotOptimize(g.data());
  }
}

void BM_Syrk(benchmark::State& state) {
  const Eigen::MatrixXd x = Inputs(static_cast<int>(state.range(0)));
  Eigen::MatrixXd g(x.rows(), x.rows());
  for (auto _ : state) {
    g.setZero();
    g.selfadjointView<Eigen::Upper>().rankUpdate(x);
    benchmark::DoNotOptimize(g.data());
  }
}

void BM_TrainKernels(benchmark::State& state) {
  const Eigen::MatrixXd x = Inputs(static_cast<int>(state.range(0)));
  const ntk::KernelSpec spec = Spec(static_cast<int>(state.range(1)));
  for (auto _ : state) {
    ntk::KernelMatrices k = ntk::TrainKernels(spec, x);
    benchmark::DoNotOptimize(k.ntk.data());
  }
}

void BM_TrainOverGemm(benchmark::State& state) {
  const Eigen::MatrixXd x = Inputs(static_cast<int>(state.range(0)));
  const ntk::KernelSpec spec = Spec(static_cast<int>(state.range(1)));
  Eigen::MatrixXd g(x.rows(), x.rows());
  double gemm_s = 0, train_s = 0, gemm_cpu = 0, train_cpu = 0;
  using Clock = std::chrono::steady_clock;
  for (auto _ : state) {
    const double c0 = ProcessCpuSeconds();
    const auto t0 = Clock::now();
    g.noalias() = x * x.transpose();
    benchmark::DoNotOptimize(g.data());
    const auto t1 = Clock::now();
    const double c1 = ProcessCpuSeconds();
    ntk::KernelMatrices k = ntk::TrainKernels(spec, x);
    benchmark::DoNotOptimize(k.ntk.data());
    const auto t2 = Clock::now();
    const double c2 = ProcessCpuSeconds();
    gemm_s += std::chrono::duration<double>(t1 - t0).count();
    train_s += std::chrono::duration<double>(t2 - t1).count();
    gemm_cpu += c1 - c0;
    train_cpu += c2 - c1;
  }
  const double iters = static_cast<double>(state.iterations());
  state.counters["gemm_s"] = gemm_s / iters;
  state.counters["train_s"] = train_s / iters;
  state.counters["ratio"] = train_s / gemm_s;
  // CPU seconds of all threads: less sensitive than wall time to other
  // processes on a shared machine (but counts BLAS/OpenMP spin-waiting).
  state.counters["cpu_ratio"] = train_cpu / gemm_cpu;
}

void BM_CrossKernels(benchmark::State& state) {
  const int n = static_cast<int>(state.range(0));
  const Eigen::MatrixXd x = Inputs(n);
  const Eigen::MatrixXd q = x.topRows(n / 4);
  const ntk::KernelSpec spec = Spec(static_cast<int>(state.range(1)));
  for (auto _ : state) {
    ntk::KernelMatrices k = ntk::CrossKernels(spec, q, x);
    benchmark::DoNotOptimize(k.ntk.data());
  }
}

std::vector<double> Cosines(int n) {
  std::vector<double> v(n);
  for (int i = 0; i < n; ++i) v[i] = -1.0 + 2.0 * (i + 0.5) / n;
  return v;
}

void BM_AcosArray(benchmark::State& state) {
  const std::vector<double> x = Cosines(4096);
  std::vector<double> y(x.size());
  for (auto _ : state) {
    ntk::internal::AcosArray(x.data(), y.data(), static_cast<std::ptrdiff_t>(x.size()));
    benchmark::DoNotOptimize(y.data());
  }
  state.SetItemsProcessed(state.iterations() * static_cast<int64_t>(x.size()));
}

void BM_StdAcos(benchmark::State& state) {
  const std::vector<double> x = Cosines(4096);
  std::vector<double> y(x.size());
  for (auto _ : state) {
    for (size_t i = 0; i < x.size(); ++i) y[i] = std::acos(x[i]);
    benchmark::DoNotOptimize(y.data());
  }
  state.SetItemsProcessed(state.iterations() * static_cast<int64_t>(x.size()));
}

BENCHMARK(BM_Gemm)->Arg(2000)->Arg(5000)->Unit(benchmark::kMillisecond)->Iterations(3);
BENCHMARK(BM_Syrk)->Arg(2000)->Arg(5000)->Unit(benchmark::kMillisecond)->Iterations(3);
BENCHMARK(BM_TrainKernels)
    ->Args({2000, 1})->Args({2000, 2})->Args({5000, 1})->Args({5000, 2})
    ->Unit(benchmark::kMillisecond)->Iterations(3);
BENCHMARK(BM_TrainOverGemm)
    ->Args({2000, 1})->Args({2000, 2})->Args({5000, 1})->Args({5000, 2})
    ->Unit(benchmark::kMillisecond)->Iterations(3);
BENCHMARK(BM_CrossKernels)
    ->Args({5000, 1})->Args({5000, 2})->Unit(benchmark::kMillisecond)->Iterations(3);
BENCHMARK(BM_AcosArray);
BENCHMARK(BM_StdAcos);

}  // namespace

BENCHMARK_MAIN();

// ntk/bench/linalg_bench.cc: dense N x N GEMM and Cholesky (LLT), the two
// O(N^3) operations Fit is made of, in two builds of this one file:
//
//   linalg_openblas_bench: -DEIGEN_USE_BLAS -DEIGEN_USE_LAPACKE, so Eigen
//                          routes C = A B to dgemm and LLT to dpotrf
//                          (OpenBLAS, pthreads);
//   linalg_eigen_bench:    Eigen's own kernels, parallelized with OpenMP.
//
// bench/run.sh compares the two; this decides NTK_USE_OPENBLAS (see
// docs/performance.md). Both use every core unless OMP_NUM_THREADS /
// OPENBLAS_NUM_THREADS say otherwise. Sizes: --max_n=8000 (default; 10000
// for the big run), always starting at 2000 and doubling.
//
//   ./linalg_openblas_bench --max_n=10000 --benchmark_format=json
#include <algorithm>
#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include <Eigen/Dense>
#include <benchmark/benchmark.h>

#include "bench/bench_support.h"

#ifndef NTK_LINALG_VARIANT
#error "define NTK_LINALG_VARIANT (\"openblas\" or \"eigen\")"
#endif

namespace {

Eigen::MatrixXd Uniform(int n, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<double> u(-1.0, 1.0);
  Eigen::MatrixXd a(n, n);
  for (Eigen::Index j = 0; j < a.cols(); ++j)
    for (Eigen::Index i = 0; i < a.rows(); ++i) a(i, j) = u(rng);
  return a;
}

// Symmetric and strictly diagonally dominant, hence positive definite.
// Cholesky does no pivoting, so its cost does not depend on the values; this
// avoids an O(N^3) A A^T in the setup.
Eigen::MatrixXd Spd(int n, uint64_t seed) {
  Eigen::MatrixXd a = Uniform(n, seed);
  Eigen::MatrixXd s = (a + a.transpose()) * 0.5;
  s.diagonal().array() += static_cast<double>(n);
  return s;
}

void BM_Gemm(benchmark::State& state) {
  const int n = static_cast<int>(state.range(0));
  const Eigen::MatrixXd a = Uniform(n, 1), b = Uniform(n, 2);
  Eigen::MatrixXd c(n, n);
  double cpu = 0;
  for (auto _ : state) {
    const double cpu0 = ntk::bench::ProcessCpuSeconds();
    c.noalias() = a * b;
    benchmark::DoNotOptimize(c.data());
    benchmark::ClobberMemory();
    cpu += ntk::bench::ProcessCpuSeconds() - cpu0;
  }
  state.counters["cpu_s_per_iter"] = cpu / static_cast<double>(state.iterations());
  const double flops = 2.0 * n * static_cast<double>(n) * n;
  state.counters["flops_per_iter"] = flops;
  state.counters["GFLOPS"] = benchmark::Counter(
      flops * 1e-9 * static_cast<double>(state.iterations()),
      benchmark::Counter::kIsRate);
}

void BM_Llt(benchmark::State& state) {
  const int n = static_cast<int>(state.range(0));
  const Eigen::MatrixXd spd = Spd(n, 3);
  Eigen::MatrixXd work(n, n);
  double cpu = 0;
  for (auto _ : state) {
    state.PauseTiming();
    work = spd;  // the factorization below is in place
    state.ResumeTiming();
    const double cpu0 = ntk::bench::ProcessCpuSeconds();
    Eigen::LLT<Eigen::Ref<Eigen::MatrixXd>> llt(work);
    cpu += ntk::bench::ProcessCpuSeconds() - cpu0;
    if (llt.info() != Eigen::Success) {
      state.SkipWithError("LLT failed");
      break;
    }
    benchmark::DoNotOptimize(work.data());
    benchmark::ClobberMemory();
  }
  state.counters["cpu_s_per_iter"] = cpu / static_cast<double>(state.iterations());
  const double flops = n * static_cast<double>(n) * n / 3.0;
  state.counters["flops_per_iter"] = flops;
  state.counters["GFLOPS"] = benchmark::Counter(
      flops * 1e-9 * static_cast<double>(state.iterations()),
      benchmark::Counter::kIsRate);
}

}  // namespace

int main(int argc, char** argv) {
  const int64_t max_n = ntk::bench::TakeIntFlag(&argc, argv, "max_n", 8000);
  std::vector<int64_t> sizes;
  for (int64_t n = 2000; n <= max_n; n *= 2) sizes.push_back(n);
  if (max_n > sizes.back()) sizes.push_back(max_n);  // e.g. 10000

  benchmark::AddCustomContext("linalg_variant", NTK_LINALG_VARIANT);
  benchmark::AddCustomContext("eigen_threads", std::to_string(Eigen::nbThreads()));
  for (int64_t n : sizes) {
    benchmark::RegisterBenchmark("BM_Gemm", BM_Gemm)
        ->Arg(n)->Unit(benchmark::kMillisecond)->UseRealTime()
        ->MinTime(n <= 2000 ? 1.0 : 0.1);
    benchmark::RegisterBenchmark("BM_Llt", BM_Llt)
        ->Arg(n)->Unit(benchmark::kMillisecond)->UseRealTime()
        ->MinTime(n <= 4000 ? 1.0 : 0.1);
  }
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}

// ntk/bench/cholesky_threads_bench.cc: CholeskyLowerInPlace
// (core/numerics/cholesky.h) with its blocks on 1 or more OpenMP threads and
// OpenBLAS on 1 or more threads: the figures behind `--blas_threads = 1`
// (docs/performance.md "Threads, huge pages and Predict batching").
//
//   build/bench/cholesky_threads_bench N BLAS_THREADS OMP_THREADS
//
// Factors A = B B^T / N + I (B uniform in [-1, 1]) twice and prints the wall
// time of each run (the second is the one to read: the first also pays for
// the first touch of the pages and the thread pools' start).
#include <omp.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>

#include <Eigen/Dense>

#include "core/numerics/cholesky.h"

extern "C" void openblas_set_num_threads(int);

int main(int argc, char** argv) {
  if (argc != 4) {
    std::fprintf(stderr, "usage: %s N BLAS_THREADS OMP_THREADS\n", argv[0]);
    return 2;
  }
  const int n = std::atoi(argv[1]), blas = std::atoi(argv[2]), omp = std::atoi(argv[3]);
  if (n < 1 || blas < 1 || omp < 1) {
    std::fprintf(stderr, "N, BLAS_THREADS and OMP_THREADS must be >= 1\n");
    return 2;
  }
  openblas_set_num_threads(blas);
  omp_set_num_threads(omp);
  const Eigen::MatrixXd b = Eigen::MatrixXd::Random(n, n);
  const Eigen::MatrixXd a = b * b.transpose() / n + Eigen::MatrixXd::Identity(n, n);
  for (int run = 1; run <= 2; ++run) {
    Eigen::MatrixXd l = a;
    const auto t0 = std::chrono::steady_clock::now();
    const absl::Status st = ntk::CholeskyLowerInPlace(&l);
    const double s =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    std::printf("N=%d blas_threads=%d omp_threads=%d run=%d %.3f s %s\n", n, blas, omp, run, s,
                st.ok() ? "ok" : st.ToString().c_str());
  }
  return 0;
}

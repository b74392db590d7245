// linearized_bench: the streamed exact LINEARIZED covariance
// (core/distribution/linearized_solver.h) against one 2a fit on the same
// data, plus peak RSS. A plain main (one timed run each: these are minutes
// long at large N), not a Google Benchmark loop.
//
//   build/bench/linearized_bench --n=5000 [--queries=100] [--lambda=0.01] [--keep=0|1]
//
// --keep=1 keeps the per-class factors L_c in the factor ((C + 2) N^2
// doubles) instead of streaming them (2 N^2; the default here).
//
// Data: bench_support's TrainingSet (Fashion-MNIST when installed), z-scored
// and rows scaled to norm sqrt(d) (the model's preprocessing); ReLU depth 3,
// sw^2 = 2, sb^2 = 0; smoothed one-hot targets (eps = 0.1). Prints one line
// per phase and a summary line with the ratio (prepare + apply) / fit.
#include <chrono>
#include <cstdio>

#include <Eigen/Dense>

#include "bench/bench_support.h"
#include "core/distribution/linearized_solver.h"
#include "core/kernels/kernel.h"
#include "core/training/solvers.h"

namespace {

using Eigen::MatrixXd;

double Seconds(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

// z-score with the training statistics, then rows to norm sqrt(d).
void Preprocess(const MatrixXd& train, MatrixXd* x) {
  const Eigen::RowVectorXd mean = train.colwise().mean();
  Eigen::RowVectorXd sd =
      ((train.rowwise() - mean).array().square().colwise().mean()).sqrt();
  for (Eigen::Index j = 0; j < sd.size(); ++j) sd(j) = sd(j) > 0 ? 1.0 / sd(j) : 1.0;
  *x = ((x->rowwise() - mean).array().rowwise() * sd.array()).matrix();
  const double root_d = std::sqrt(static_cast<double>(x->cols()));
  for (Eigen::Index i = 0; i < x->rows(); ++i) {
    const double norm = x->row(i).norm();
    if (norm > 0) x->row(i) *= root_d / norm;
  }
}

double GiB(int64_t bytes) { return static_cast<double>(bytes) / (1 << 30); }

}  // namespace

int main(int argc, char** argv) {
  const int n = static_cast<int>(ntk::bench::TakeIntFlag(&argc, argv, "n", 2000));
  const int queries = static_cast<int>(ntk::bench::TakeIntFlag(&argc, argv, "queries", 100));
  const double lambda =
      std::stod(ntk::bench::TakeStringFlag(&argc, argv, "lambda", "0.01"));
  const bool keep = ntk::bench::TakeIntFlag(&argc, argv, "keep", 0) != 0;

  ntk::bench::Dataset train = ntk::bench::TrainingSet(n);
  ntk::bench::Dataset query = ntk::bench::QuerySet(queries);
  const MatrixXd raw_train = train.features;
  Preprocess(raw_train, &train.features);
  Preprocess(raw_train, &query.features);
  const int c = train.classes;
  MatrixXd y = MatrixXd::Constant(n, c, 0.1 / c);
  for (int i = 0; i < n; ++i) y(i, train.labels[i]) += 0.9;

  ntk::KernelSpec spec;
  spec.activation = ntk::Activation::kRelu;
  spec.depth = 3;
  spec.weight_variance = 2.0;
  spec.bias_variance = 0.0;

  auto t0 = std::chrono::steady_clock::now();
  ntk::KernelMatrices km = ntk::TrainKernels(spec, train.features);
  const double kernel_s = Seconds(t0);

  t0 = std::chrono::steady_clock::now();
  absl::StatusOr<ntk::SolverSolution> fit =
      ntk::SolveRegularizedCE(km.ntk, y, MatrixXd(), lambda);
  const double fit_s = Seconds(t0);
  if (!fit.ok()) {
    fprintf(stderr, "fit failed: %s\n", fit.status().ToString().c_str());
    return 1;
  }
  const MatrixXd p = ntk::RowSoftmax(fit->logits);

  t0 = std::chrono::steady_clock::now();
  ntk::KernelMatrices kq = ntk::CrossKernels(spec, train.features, query.features);
  ntk::KernelDiagonal kd = ntk::DiagonalKernels(spec, query.features);
  const double query_kernel_s = Seconds(t0);

  t0 = std::chrono::steady_clock::now();
  auto factor = ntk::PrepareLinearized(std::move(km.ntk), std::move(km.nngp), p, lambda, keep);
  const double prepare_s = Seconds(t0);
  if (!factor.ok()) {
    fprintf(stderr, "prepare failed: %s\n", factor.status().ToString().c_str());
    return 1;
  }
  t0 = std::chrono::steady_clock::now();
  auto cov = ntk::ApplyLinearized(**factor, kq.ntk, kq.nngp, kd.nngp);
  const double apply_s = Seconds(t0);
  if (!cov.ok()) {
    fprintf(stderr, "apply failed: %s\n", cov.status().ToString().c_str());
    return 1;
  }
  double trace = 0;
  for (const MatrixXd& s : *cov) trace += s.trace();

  printf("data=%s N=%d C=%d queries=%d lambda=%g\n", train.source.c_str(), n, c,
         queries, lambda);
  printf("train kernels   %8.2f s\n", kernel_s);
  printf("2a fit          %8.2f s  (newton %d, cg %d)\n", fit_s,
         fit->info.newton_iterations, fit->info.cg_iterations);
  printf("query kernels   %8.2f s\n", query_kernel_s);
  printf("prepare         %8.2f s\n", prepare_s);
  printf("apply           %8.2f s\n", apply_s);
  printf("factor bytes    %8.2f GiB\n", GiB((*factor)->Bytes()));
  printf("peak RSS        %8.2f GiB\n", GiB(ntk::bench::PeakRssBytes()));
  printf("SUMMARY N=%d first_call_s=%.2f fit_s=%.2f ratio=%.2f peak_rss_gib=%.2f "
         "mean_trace=%.6g\n",
         n, prepare_s + apply_s, fit_s, (prepare_s + apply_s) / fit_s,
         GiB(ntk::bench::PeakRssBytes()), trace / queries);
  return 0;
}

// ntk/bench/nystrom2a_bench.cc: what the 2a Nystrom PredictDistribution
// summaries cost (docs/model-contract.md "6. Nystrom models",
// "PredictDistribution of a Nystrom model", 2a): one Fit with the summaries
// (the default cap), one without (cap 0), and the first and second
// LINEARIZED and LAPLACE_POSTERIOR calls on `queries` test rows, and how
// fast a first LINEARIZED call stops when told to. A plain
// program (one run of each, wall and CPU seconds), not a Google Benchmark.
//
//   ./nystrom2a_bench --n=5000 --m=500 --queries=100
//
// Data: the first N Fashion-MNIST training images (bench_support.h; d = 784,
// C = 10), the spec of fit_bench (bench_spec.h) with lambda = 1.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <memory>
#include <string>

#include "bench/bench_spec.h"
#include "bench/bench_support.h"
#include "core/distribution/cache.h"
#include "core/model/model.h"

namespace {

// "<wall> s wall, <cpu> s CPU" since (t0, cpu0): on a shared machine the
// CPU seconds (all threads) say what the work cost when wall time does not.
std::string Since(std::chrono::steady_clock::time_point t0, double cpu0) {
  const double wall =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  char buf[64];
  std::snprintf(buf, sizeof(buf), "%.2f s wall, %.2f s CPU", wall,
                ntk::bench::ProcessCpuSeconds() - cpu0);
  return buf;
}

}  // namespace

int main(int argc, char** argv) {
  const int n = static_cast<int>(ntk::bench::TakeIntFlag(&argc, argv, "n", 5000));
  const int m = static_cast<int>(ntk::bench::TakeIntFlag(&argc, argv, "m", 500));
  const int queries = static_cast<int>(ntk::bench::TakeIntFlag(&argc, argv, "queries", 100));
  const ntk::bench::Dataset train = ntk::bench::TrainingSet(n);
  const ntk::bench::Dataset test = ntk::bench::QuerySet(queries);
  ntk::ModelSpec spec = ntk::bench::FitBenchSpec(1.0);
  spec.approximation.kind = ntk::ApproximationKind::kNystrom;
  spec.approximation.num_centers = m;
  ntk::TrainingData data;
  data.features = train.features;
  data.labels = train.labels;
  std::printf("data %s N = %d d = %d C = %d m = %d queries = %d\n", train.source.c_str(), n,
              static_cast<int>(train.features.cols()), train.classes, m, queries);
  std::unique_ptr<ntk::FittedModel> model;
  for (const int64_t cap : {int64_t{0}, ntk::kDefaultNystromSummaryBytes}) {
    ntk::FitOptions options;
    options.max_nystrom_summary_bytes = cap;
    const auto t0 = std::chrono::steady_clock::now();
    const double cpu0 = ntk::bench::ProcessCpuSeconds();
    absl::StatusOr<std::unique_ptr<ntk::FittedModel>> fitted =
        ntk::FittedModel::Fit(spec, data, options);
    if (!fitted.ok()) {
      std::printf("fit failed: %s\n", fitted.status().ToString().c_str());
      return 1;
    }
    std::printf("fit %s summaries: %s (model %.1f MB)\n", cap == 0 ? "without" : "with",
                Since(t0, cpu0).c_str(), (*fitted)->Info().memory_bytes / 1e6);
    model = *std::move(fitted);
  }
  ntk::DistributionCache::Options cache_options;
  cache_options.budget_bytes = int64_t{8} << 30;
  ntk::DistributionCache cache(cache_options);
  for (const ntk::DistributionMethod method :
       {ntk::DistributionMethod::kLinearized, ntk::DistributionMethod::kLaplacePosterior}) {
    for (const char* which : {"first", "second"}) {
      ntk::DistributionOptions o;
      o.method = method;
      o.cache = {&cache, "model", 1};
      const auto t0 = std::chrono::steady_clock::now();
      const double cpu0 = ntk::bench::ProcessCpuSeconds();
      absl::StatusOr<ntk::DistributionResult> d = model->PredictDistribution(test.features, o);
      if (!d.ok()) {
        std::printf("PredictDistribution failed: %s\n", d.status().ToString().c_str());
        return 1;
      }
      std::printf("%s %s call: %s\n",
                  method == ntk::DistributionMethod::kLinearized ? "LINEARIZED" : "LAPLACE",
                  which, Since(t0, cpu0).c_str());
    }
  }
  // Stop latency: the longest gap between two progress calls of a first
  // LINEARIZED call (no cache; a "stop" is seen at the next call), and a
  // call told to stop after 2 s: how long from that "stop" to the return
  // (docs/model-contract.md: within ~0.5 s).
  for (const double stop_after : {1e9, 2.0}) {
    ntk::DistributionOptions o;
    o.method = ntk::DistributionMethod::kLinearized;
    auto last = std::chrono::steady_clock::now();
    const auto start = last;
    double max_gap = 0;
    std::chrono::steady_clock::time_point stopped{};
    o.progress = [&](double, const char*) {
      const auto now = std::chrono::steady_clock::now();
      max_gap = std::max(max_gap, std::chrono::duration<double>(now - last).count());
      last = now;
      if (std::chrono::duration<double>(now - start).count() < stop_after) return true;
      if (stopped == std::chrono::steady_clock::time_point{}) stopped = now;
      return false;
    };
    const absl::Status s = model->PredictDistribution(test.features, o).status();
    if (stop_after > 1e8) {
      std::printf("first LINEARIZED call without cache: %s, longest gap between progress "
                  "calls %.3f s\n", absl::StatusCodeToString(s.code()).c_str(), max_gap);
    } else {
      std::printf("stopped after 2 s: %s, %.3f s from the stop to the return\n",
                  absl::StatusCodeToString(s.code()).c_str(),
                  std::chrono::duration<double>(std::chrono::steady_clock::now() - stopped)
                      .count());
    }
  }
  return 0;
}

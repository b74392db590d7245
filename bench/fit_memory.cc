// ntk/bench/fit_memory.cc: peak resident memory of one Fit.
//
// Loads the first N Fashion-MNIST rows (d = 784, C = 10; synthetic when the
// files are missing), fits one model (default regime 2b: hard labels and the
// defaults; --lambda=1 for 2a) and prints one JSON line with the process's
// peak RSS (getrusage ru_maxrss, which includes the loaded data) and the RSS
// before Fit, both also as multiples of one N x N double matrix (N^2 * 8
// bytes). Budget: peak <= 4 such matrices.
//
//   ./fit_memory --n=20000            # {"n":20000,...,"peak_over_matrix":...}
#include <cstdint>
#include <cstdio>
#include <fstream>
#include <memory>
#include <string>

#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "bench/bench_support.h"
#include "core/model/model.h"
#include "core/training/spec.h"

namespace {

// Current resident set size (VmRSS of /proc/self/status), bytes.
int64_t CurrentRssBytes() {
  std::ifstream f("/proc/self/status");
  std::string line;
  while (std::getline(f, line)) {
    if (line.rfind("VmRSS:", 0) == 0) return std::stoll(line.substr(6)) * 1024;
  }
  return -1;
}

}  // namespace

int main(int argc, char** argv) {
  const int n = static_cast<int>(ntk::bench::TakeIntFlag(&argc, argv, "n", 20000));
  const int64_t lambda = ntk::bench::TakeIntFlag(&argc, argv, "lambda", 0);
  if (argc > 1) {
    fprintf(stderr, "usage: fit_memory [--n=20000] [--lambda=0]\n");
    return 2;
  }
  ntk::bench::Dataset train = ntk::bench::TrainingSet(n);
  ntk::ModelSpec spec;
  spec.preprocessing.standardize = true;
  spec.preprocessing.normalize_rows = true;
  if (lambda > 0) spec.training.regularization = static_cast<double>(lambda);
  ntk::TrainingData data;
  data.features = std::move(train.features);
  data.labels = std::move(train.labels);

  const int64_t rss_before = CurrentRssBytes();
  const int64_t peak_before = ntk::bench::PeakRssBytes();
  const absl::Time start = absl::Now();
  absl::StatusOr<std::unique_ptr<ntk::FittedModel>> m = ntk::FittedModel::Fit(spec, data);
  const double seconds = absl::ToDoubleSeconds(absl::Now() - start);
  if (!m.ok()) {
    fprintf(stderr, "Fit failed: %s\n", m.status().ToString().c_str());
    return 1;
  }
  const int64_t peak = ntk::bench::PeakRssBytes();
  const int64_t rss_after = CurrentRssBytes();
  const double matrix = 8.0 * n * static_cast<double>(n);
  printf("{\"n\":%d,\"d\":%d,\"classes\":%d,\"data\":\"%s\",\"regime\":\"%s\","
         "\"fit_seconds\":%.3f,\"rss_before_fit_bytes\":%lld,"
         "\"peak_before_fit_bytes\":%lld,\"peak_rss_bytes\":%lld,"
         "\"rss_after_fit_bytes\":%lld,\"matrix_bytes\":%.0f,"
         "\"peak_over_matrix\":%.4f,\"fit_increase_over_matrix\":%.4f,"
         "\"train_accuracy\":%.4f}\n",
         n, static_cast<int>(data.features.cols()), (*m)->Info().num_classes,
         train.source.c_str(), ntk::RegimeName((*m)->Info().regime), seconds,
         static_cast<long long>(rss_before), static_cast<long long>(peak_before),
         static_cast<long long>(peak), static_cast<long long>(rss_after), matrix,
         peak / matrix, (peak - rss_before) / matrix, (*m)->Info().stats.train_accuracy);
  return 0;
}

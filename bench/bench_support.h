// ntk/bench/bench_support.h: shared helpers of the benchmarks in bench/:
// training data (Fashion-MNIST when installed, else a structured synthetic
// set), a tiny flag parser that runs before Google Benchmark sees argv, and
// process statistics (peak RSS).
//
// Thread safety: all functions are safe to call concurrently (no shared
// state); the returned data is owned by the caller.
#ifndef NTK_BENCH_BENCH_SUPPORT_H_
#define NTK_BENCH_BENCH_SUPPORT_H_

#include <cstdint>
#include <string>
#include <vector>

#include <Eigen/Dense>

namespace ntk::bench {

// A labelled data set: features (n x d) and hard labels in [0, classes).
struct Dataset {
  Eigen::MatrixXd features;
  std::vector<int> labels;
  int classes = 0;
  std::string source;  // "fashion-mnist" or "synthetic"
};

// Where Fashion-MNIST's IDX files live (train-images-idx3-ubyte.gz, ...).
inline constexpr char kFashionMnistDir[] = "/usr/share/datasets/fashion-mnist";

// The first `n` training images of Fashion-MNIST (pixels / 255, d = 784,
// C = 10) when the files exist and hold >= n rows; otherwise (or with
// NTK_BENCH_SYNTHETIC=1 in the environment) SyntheticClasses(n, 784, 10).
// The rows used are the file's first n, so every run sees the same data.
Dataset TrainingSet(int n);

// The `n` rows after the first `offset` rows of Fashion-MNIST's *test* set
// (or synthetic rows from a different seed), d = 784: query points that the
// model was not fitted on.
Dataset QuerySet(int n, int offset = 0);

// Structured synthetic classes: C class means drawn N(0, 1) per feature,
// each row = its class mean + N(0, noise^2) noise, labels round-robin.
// Deterministic for a given seed (std::mt19937_64).
Dataset SyntheticClasses(int n, int d, int classes, uint64_t seed,
                         double noise = 1.0);

// Reads an IDX file (gzip or plain). Images: rows = count, cols = h * w,
// values / 255. Labels: a column of ints. Empty result on any error; the
// reason goes to *error.
Eigen::MatrixXd ReadIdxImages(const std::string& path, int max_rows,
                              std::string* error);
std::vector<int> ReadIdxLabels(const std::string& path, int max_rows,
                               std::string* error);

// Removes "--name=value" arguments from argv (before benchmark::Initialize,
// which rejects unknown flags) and returns the value of `name`, or
// `fallback` when absent.
int64_t TakeIntFlag(int* argc, char** argv, const std::string& name,
                    int64_t fallback);
std::string TakeStringFlag(int* argc, char** argv, const std::string& name,
                           const std::string& fallback);

// Peak resident set size of this process so far, in bytes (getrusage).
int64_t PeakRssBytes();

// CPU time of this process, all threads, in seconds (CLOCK_PROCESS_CPUTIME_ID).
// Less sensitive than wall time to other load on a shared machine (but it
// counts the spinning of idle OpenMP/OpenBLAS threads).
double ProcessCpuSeconds();

}  // namespace ntk::bench

#endif  // NTK_BENCH_BENCH_SUPPORT_H_

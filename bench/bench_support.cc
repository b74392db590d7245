// ntk/bench/bench_support.cc: see bench_support.h.
#include "bench/bench_support.h"

#include <sys/resource.h>
#include <time.h>
#include <zlib.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <random>

namespace ntk::bench {
namespace {

// gzread also reads plain (uncompressed) files.
class GzFile {
 public:
  explicit GzFile(const std::string& path) : f_(gzopen(path.c_str(), "rb")) {}
  ~GzFile() {
    if (f_ != nullptr) gzclose(f_);
  }
  bool ok() const { return f_ != nullptr; }
  bool Read(void* buf, size_t n) {
    auto* p = static_cast<unsigned char*>(buf);
    while (n > 0) {
      const unsigned chunk = n > (1u << 30) ? (1u << 30) : static_cast<unsigned>(n);
      const int got = gzread(f_, p, chunk);
      if (got <= 0) return false;
      p += got;
      n -= static_cast<size_t>(got);
    }
    return true;
  }
  bool ReadBigEndian32(uint32_t* v) {
    unsigned char b[4];
    if (!Read(b, 4)) return false;
    *v = (uint32_t{b[0]} << 24) | (uint32_t{b[1]} << 16) | (uint32_t{b[2]} << 8) | b[3];
    return true;
  }

 private:
  gzFile f_;
};

bool EnvSet(const char* name) {
  const char* v = std::getenv(name);
  return v != nullptr && v[0] != '\0' && std::strcmp(v, "0") != 0;
}

Dataset FashionOrSynthetic(const std::string& images, const std::string& labels,
                           int n, int offset, uint64_t synthetic_seed) {
  if (!EnvSet("NTK_BENCH_SYNTHETIC")) {
    std::string error;
    Eigen::MatrixXd x = ReadIdxImages(images, offset + n, &error);
    std::vector<int> y;
    if (error.empty()) y = ReadIdxLabels(labels, offset + n, &error);
    if (error.empty() && x.rows() == offset + n &&
        static_cast<int>(y.size()) == offset + n) {
      Dataset d;
      d.features = x.bottomRows(n);
      d.labels.assign(y.begin() + offset, y.end());
      d.classes = 10;
      d.source = "fashion-mnist";
      return d;
    }
  }
  // Different seeds for training and query sets; offset shifts the stream.
  Dataset all = SyntheticClasses(offset + n, 784, 10, synthetic_seed);
  Dataset d;
  d.features = all.features.bottomRows(n);
  d.labels.assign(all.labels.begin() + offset, all.labels.end());
  d.classes = 10;
  d.source = "synthetic";
  return d;
}

}  // namespace

Eigen::MatrixXd ReadIdxImages(const std::string& path, int max_rows,
                              std::string* error) {
  error->clear();
  GzFile f(path);
  if (!f.ok()) {
    *error = "cannot open " + path;
    return {};
  }
  uint32_t magic = 0, count = 0, h = 0, w = 0;
  if (!f.ReadBigEndian32(&magic) || magic != 0x00000803 ||
      !f.ReadBigEndian32(&count) || !f.ReadBigEndian32(&h) ||
      !f.ReadBigEndian32(&w)) {
    *error = path + ": not an IDX3 ubyte image file";
    return {};
  }
  const int rows = static_cast<int>(std::min<uint64_t>(count, max_rows));
  const int cols = static_cast<int>(h * w);
  std::vector<unsigned char> raw(static_cast<size_t>(rows) * cols);
  if (!f.Read(raw.data(), raw.size())) {
    *error = path + ": truncated";
    return {};
  }
  Eigen::MatrixXd x(rows, cols);
  for (int i = 0; i < rows; ++i)
    for (int j = 0; j < cols; ++j)
      x(i, j) = raw[static_cast<size_t>(i) * cols + j] / 255.0;
  return x;
}

std::vector<int> ReadIdxLabels(const std::string& path, int max_rows,
                               std::string* error) {
  error->clear();
  GzFile f(path);
  if (!f.ok()) {
    *error = "cannot open " + path;
    return {};
  }
  uint32_t magic = 0, count = 0;
  if (!f.ReadBigEndian32(&magic) || magic != 0x00000801 ||
      !f.ReadBigEndian32(&count)) {
    *error = path + ": not an IDX1 ubyte label file";
    return {};
  }
  const int rows = static_cast<int>(std::min<uint64_t>(count, max_rows));
  std::vector<unsigned char> raw(rows);
  if (!f.Read(raw.data(), raw.size())) {
    *error = path + ": truncated";
    return {};
  }
  return std::vector<int>(raw.begin(), raw.end());
}

Dataset TrainingSet(int n) {
  const std::string dir = kFashionMnistDir;
  return FashionOrSynthetic(dir + "/train-images-idx3-ubyte.gz",
                            dir + "/train-labels-idx1-ubyte.gz", n, 0, 1);
}

Dataset QuerySet(int n, int offset) {
  const std::string dir = kFashionMnistDir;
  return FashionOrSynthetic(dir + "/t10k-images-idx3-ubyte.gz",
                            dir + "/t10k-labels-idx1-ubyte.gz", n, offset, 2);
}

Dataset SyntheticClasses(int n, int d, int classes, uint64_t seed,
                         double noise) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<double> normal(0.0, 1.0);
  Eigen::MatrixXd means(classes, d);
  for (int c = 0; c < classes; ++c)
    for (int j = 0; j < d; ++j) means(c, j) = normal(rng);
  Dataset out;
  out.features.resize(n, d);
  out.labels.resize(n);
  out.classes = classes;
  out.source = "synthetic";
  for (int i = 0; i < n; ++i) {
    const int c = i % classes;
    out.labels[i] = c;
    for (int j = 0; j < d; ++j)
      out.features(i, j) = means(c, j) + noise * normal(rng);
  }
  return out;
}

namespace {
// Finds "--name=value" in argv, removes it, returns true and the value.
bool TakeFlag(int* argc, char** argv, const std::string& name,
              std::string* value) {
  const std::string prefix = "--" + name + "=";
  for (int i = 1; i < *argc; ++i) {
    if (std::strncmp(argv[i], prefix.c_str(), prefix.size()) == 0) {
      *value = argv[i] + prefix.size();
      for (int j = i; j + 1 < *argc; ++j) argv[j] = argv[j + 1];
      --*argc;
      return true;
    }
  }
  return false;
}
}  // namespace

int64_t TakeIntFlag(int* argc, char** argv, const std::string& name,
                    int64_t fallback) {
  std::string v;
  if (!TakeFlag(argc, argv, name, &v)) return fallback;
  return std::strtoll(v.c_str(), nullptr, 10);
}

std::string TakeStringFlag(int* argc, char** argv, const std::string& name,
                           const std::string& fallback) {
  std::string v;
  if (!TakeFlag(argc, argv, name, &v)) return fallback;
  return v;
}

int64_t PeakRssBytes() {
  struct rusage ru {};
  getrusage(RUSAGE_SELF, &ru);
  return static_cast<int64_t>(ru.ru_maxrss) * 1024;  // Linux: kilobytes
}

double ProcessCpuSeconds() {
  timespec ts{};
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + 1e-9 * static_cast<double>(ts.tv_nsec);
}

}  // namespace ntk::bench

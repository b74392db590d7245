// tools/evaluate/datasets.h: the evaluation data sets and their splits.
//
//   absl::StatusOr<ntk::eval::Dataset> d = ntk::eval::LoadDigits(kDigitsPath);
//   absl::StatusOr<ntk::eval::FashionMnist> f = ntk::eval::LoadFashionMnist(dir);
//
// Rules (shared with scripts/baselines.py; keep them in sync):
//   digits:  scikit-learn's digits.csv.gz: 64 features (0..16) then the
//            label per line; features / 16. Test = rows with index % 4 == 3
//            (449 rows), train = the rest (1348).
//   fmnist:  the Fashion-MNIST IDX files (gzip), pixels / 255. A training
//            subset of size n is the first n training images (the file is
//            already shuffled); the test set is all 10000 test images.
//   ood:     train on the first n training images with label < 8; test on
//            the first 3000 test images, out-of-distribution = labels 8 and 9.
//   cv:      fold k of a subset = positions i with i % folds == k.
//
// .gz files are read through `gzip -dc` (a popen), which keeps the tool and
// the test free of a zlib link dependency. Header-only, like metrics.h.
// Thread safety: plain functions and values.
#ifndef NTK_TOOLS_EVALUATE_DATASETS_H_
#define NTK_TOOLS_EVALUATE_DATASETS_H_

#include <cstdint>
#include <cstdio>
#include <sstream>
#include <string>
#include <vector>

#include <Eigen/Dense>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace ntk::eval {

inline constexpr char kDigitsPath[] =
    "/usr/lib/python3/dist-packages/sklearn/datasets/data/digits.csv.gz";
inline constexpr char kFashionMnistDir[] = "/usr/share/datasets/fashion-mnist";

struct Dataset {
  Eigen::MatrixXd x;    // n x d, already scaled to [0, 1]
  std::vector<int> y;   // n labels
};

// Rows `idx` of d.
inline Dataset Subset(const Dataset& d, const std::vector<int>& idx) {
  Dataset out;
  out.x.resize(static_cast<Eigen::Index>(idx.size()), d.x.cols());
  out.y.resize(idx.size());
  for (size_t i = 0; i < idx.size(); ++i) {
    out.x.row(static_cast<Eigen::Index>(i)) = d.x.row(idx[i]);
    out.y[i] = d.y[idx[i]];
  }
  return out;
}

// The first n rows of d (all when n >= rows).
inline Dataset Head(const Dataset& d, int n) {
  std::vector<int> idx;
  for (int i = 0; i < n && i < static_cast<int>(d.y.size()); ++i) idx.push_back(i);
  return Subset(d, idx);
}

// The whole decompressed content of a .gz file.
inline absl::StatusOr<std::string> ReadGzip(const std::string& path) {
  if (FILE* probe = std::fopen(path.c_str(), "rb")) {
    std::fclose(probe);
  } else {
    return absl::NotFoundError(absl::StrCat(path, ": cannot open"));
  }
  std::string quoted = "'";
  for (char ch : path) {
    if (ch == '\'') {
      quoted += "'\\''";
    } else {
      quoted += ch;
    }
  }
  quoted += "'";
  FILE* f = popen(("gzip -dc " + quoted).c_str(), "r");
  if (f == nullptr) return absl::InternalError(absl::StrCat(path, ": popen gzip failed"));
  std::string out;
  char buf[1 << 16];
  size_t got;
  while ((got = std::fread(buf, 1, sizeof(buf), f)) > 0) out.append(buf, got);
  const int rc = pclose(f);
  if (rc != 0) {
    return absl::DataLossError(absl::StrCat(path, ": gzip -dc exited with status ", rc));
  }
  return out;
}

// digits.csv.gz: 64 features then the label, comma separated, one row a line.
inline absl::StatusOr<Dataset> ParseDigitsCsv(const std::string& text) {
  std::vector<std::vector<double>> rows;
  std::vector<int> labels;
  int line_no = 0;
  for (absl::string_view line : absl::StrSplit(text, '\n', absl::SkipWhitespace())) {
    ++line_no;
    std::vector<absl::string_view> fields = absl::StrSplit(line, ',');
    if (fields.size() != 65) {
      return absl::DataLossError(absl::StrCat("digits: line ", line_no, " has ",
                                              fields.size(), " fields, want 65"));
    }
    std::vector<double> row(64);
    for (int j = 0; j < 64; ++j) {
      if (!absl::SimpleAtod(absl::StripAsciiWhitespace(fields[j]), &row[j])) {
        return absl::DataLossError(absl::StrCat("digits: line ", line_no, " field ", j + 1));
      }
      row[j] /= 16.0;
    }
    double label;
    if (!absl::SimpleAtod(absl::StripAsciiWhitespace(fields[64]), &label) || label < 0 ||
        label > 9 || label != static_cast<int>(label)) {
      return absl::DataLossError(absl::StrCat("digits: line ", line_no, " bad label"));
    }
    rows.push_back(std::move(row));
    labels.push_back(static_cast<int>(label));
  }
  Dataset d;
  d.x.resize(static_cast<Eigen::Index>(rows.size()), 64);
  for (size_t i = 0; i < rows.size(); ++i) {
    for (int j = 0; j < 64; ++j) d.x(static_cast<Eigen::Index>(i), j) = rows[i][j];
  }
  d.y = std::move(labels);
  return d;
}

struct TrainTest {
  Dataset train, test;
};

// The digits split: test = index % 4 == 3.
inline absl::StatusOr<TrainTest> LoadDigits(const std::string& path = kDigitsPath) {
  absl::StatusOr<std::string> text = ReadGzip(path);
  if (!text.ok()) return text.status();
  absl::StatusOr<Dataset> all = ParseDigitsCsv(*text);
  if (!all.ok()) return all.status();
  std::vector<int> tr, te;
  for (int i = 0; i < static_cast<int>(all->y.size()); ++i) (i % 4 == 3 ? te : tr).push_back(i);
  return TrainTest{Subset(*all, tr), Subset(*all, te)};
}

inline uint32_t BigEndian32(const std::string& s, size_t at) {
  return (static_cast<uint32_t>(static_cast<unsigned char>(s[at])) << 24) |
         (static_cast<uint32_t>(static_cast<unsigned char>(s[at + 1])) << 16) |
         (static_cast<uint32_t>(static_cast<unsigned char>(s[at + 2])) << 8) |
         static_cast<uint32_t>(static_cast<unsigned char>(s[at + 3]));
}

// An IDX file of unsigned bytes (type 0x08): its dimensions and data.
struct Idx {
  std::vector<uint32_t> dims;
  std::string data;  // prod(dims) bytes
};

inline absl::StatusOr<Idx> ParseIdx(const std::string& bytes, const std::string& name) {
  if (bytes.size() < 4 || bytes[0] != 0 || bytes[1] != 0 || bytes[2] != 0x08) {
    return absl::DataLossError(absl::StrCat(name, ": not an unsigned-byte IDX file"));
  }
  const int ndim = static_cast<unsigned char>(bytes[3]);
  if (ndim < 1 || bytes.size() < 4 + 4 * static_cast<size_t>(ndim)) {
    return absl::DataLossError(absl::StrCat(name, ": bad IDX header"));
  }
  Idx idx;
  size_t total = 1;
  for (int k = 0; k < ndim; ++k) {
    idx.dims.push_back(BigEndian32(bytes, 4 + 4 * k));
    total *= idx.dims.back();
  }
  const size_t offset = 4 + 4 * static_cast<size_t>(ndim);
  if (bytes.size() != offset + total) {
    return absl::DataLossError(absl::StrCat(name, ": ", bytes.size() - offset,
                                            " data bytes, header says ", total));
  }
  idx.data = bytes.substr(offset);
  return idx;
}

// images-idx3 + labels-idx1 -> Dataset with pixels / 255.
inline absl::StatusOr<Dataset> LoadIdxPair(const std::string& images_path,
                                           const std::string& labels_path) {
  absl::StatusOr<std::string> ib = ReadGzip(images_path);
  if (!ib.ok()) return ib.status();
  absl::StatusOr<Idx> images = ParseIdx(*ib, images_path);
  if (!images.ok()) return images.status();
  absl::StatusOr<std::string> lb = ReadGzip(labels_path);
  if (!lb.ok()) return lb.status();
  absl::StatusOr<Idx> labels = ParseIdx(*lb, labels_path);
  if (!labels.ok()) return labels.status();
  if (images->dims.size() != 3 || labels->dims.size() != 1 ||
      images->dims[0] != labels->dims[0]) {
    return absl::DataLossError(absl::StrCat(images_path, ": shape does not match ", labels_path));
  }
  const Eigen::Index n = images->dims[0];
  const Eigen::Index d = static_cast<Eigen::Index>(images->dims[1]) * images->dims[2];
  Dataset out;
  out.x.resize(n, d);
  out.y.resize(n);
  for (Eigen::Index i = 0; i < n; ++i) {
    for (Eigen::Index j = 0; j < d; ++j) {
      out.x(i, j) = static_cast<unsigned char>(images->data[i * d + j]) / 255.0;
    }
    out.y[i] = static_cast<unsigned char>(labels->data[i]);
  }
  return out;
}

inline absl::StatusOr<TrainTest> LoadFashionMnist(const std::string& dir = kFashionMnistDir) {
  absl::StatusOr<Dataset> train = LoadIdxPair(dir + "/train-images-idx3-ubyte.gz",
                                              dir + "/train-labels-idx1-ubyte.gz");
  if (!train.ok()) return train.status();
  absl::StatusOr<Dataset> test = LoadIdxPair(dir + "/t10k-images-idx3-ubyte.gz",
                                             dir + "/t10k-labels-idx1-ubyte.gz");
  if (!test.ok()) return test.status();
  return TrainTest{std::move(*train), std::move(*test)};
}

// The first n rows of d whose label is < num_classes.
inline Dataset HeadWithLabelsBelow(const Dataset& d, int n, int num_classes) {
  std::vector<int> idx;
  for (int i = 0; i < static_cast<int>(d.y.size()) && static_cast<int>(idx.size()) < n; ++i) {
    if (d.y[i] < num_classes) idx.push_back(i);
  }
  return Subset(d, idx);
}

// Fold k of `folds` (positions i % folds == k) as validation, the rest train.
inline TrainTest Fold(const Dataset& d, int folds, int k) {
  std::vector<int> tr, va;
  for (int i = 0; i < static_cast<int>(d.y.size()); ++i) (i % folds == k ? va : tr).push_back(i);
  return TrainTest{Subset(d, tr), Subset(d, va)};
}

}  // namespace ntk::eval

#endif  // NTK_TOOLS_EVALUATE_DATASETS_H_

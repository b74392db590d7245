// ntk/tools/ntkctl/idx.h: reading IDX files (the MNIST / Fashion-MNIST
// format), plain or gzip-compressed, with every size checked before use.
//
//   absl::StatusOr<ntkctl::IdxArray> images =
//       ntkctl::ReadIdxFile("/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz");
//   absl::StatusOr<Eigen::MatrixXd> x = ntkctl::IdxToFeatures(*images);  // N x 784
//   // ntkctl's --data/--labels: rows 0..4999, pixels as they are
//   absl::StatusOr<ntkctl::CsvData> d = ntkctl::ReadDataIdx(
//       "train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz", {0, 5000}, -1);
//
// Format (big-endian): u32 magic 0x00000800 | ndims with element type
// 0x08 (unsigned byte) and ndims 1 (labels, magic 0x00000801) or 3 (images,
// 0x00000803); then ndims u32 dimensions; then the product of the
// dimensions in bytes, row-major. Nothing may follow the data.
//
// Errors: NOT_FOUND for a file that cannot be opened; INVALID_ARGUMENT for
// damaged content ("<name>: ..." naming what is wrong: magic, dimension,
// truncation, trailing bytes, bad gzip stream); RESOURCE_EXHAUSTED when the
// (decompressed) data would exceed IdxOptions::max_bytes — checked before
// anything of that size is allocated.
//
// Thread safety: plain functions without shared state.
#ifndef NTK_TOOLS_NTKCTL_IDX_H_
#define NTK_TOOLS_NTKCTL_IDX_H_

#include <cstdint>
#include <string>
#include <vector>

#include <Eigen/Dense>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "tools/ntkctl/csv.h"

namespace ntkctl {

inline constexpr uint32_t kIdxLabelsMagic = 0x00000801;  // u8, 1 dimension
inline constexpr uint32_t kIdxImagesMagic = 0x00000803;  // u8, 3 dimensions

struct IdxOptions {
  // Largest decompressed file accepted (header included). Fashion-MNIST's
  // training images are 47 MB.
  uint64_t max_bytes = uint64_t{256} << 20;
};

struct IdxArray {
  std::vector<uint32_t> dims;  // 1 (N) or 3 (N, rows, cols), each > 0
  std::vector<uint8_t> data;   // product of dims bytes, row-major
};

// Parses decompressed IDX bytes; `name` prefixes error messages.
absl::StatusOr<IdxArray> ParseIdx(absl::string_view bytes, absl::string_view name,
                                  const IdxOptions& options = {});

// Decompresses a gzip stream (concatenated members allowed), refusing
// output beyond `max_bytes` before it is produced.
absl::StatusOr<std::string> Gunzip(absl::string_view bytes, absl::string_view name,
                                   uint64_t max_bytes);

// Reads `path`; gunzips when it starts with the gzip magic 1f 8b.
absl::StatusOr<IdxArray> ReadIdxFile(const std::string& path, const IdxOptions& options = {});

// Images (N x rows x cols) as an N x (rows*cols) matrix of pixel / 255;
// labels (N) as ints. INVALID_ARGUMENT when the array has the other shape.
absl::StatusOr<Eigen::MatrixXd> IdxToFeatures(const IdxArray& images);
absl::StatusOr<std::vector<int>> IdxToLabels(const IdxArray& labels);

// Images [begin, end) as an (end - begin) x (rows*cols) matrix of pixel /
// divisor. INVALID_ARGUMENT when `images` is not 3-dimensional.
// REQUIRES: 0 <= begin < end <= N.
absl::StatusOr<Eigen::MatrixXd> IdxImageRows(const IdxArray& images, int64_t begin,
                                             int64_t end, double divisor);

// True when `path` names an IDX file ("-ubyte" in its name, or ending in
// .idx or .idx.gz) or its content, gunzipped if it is gzip, starts with the
// two zero bytes of the IDX magic (a CSV file cannot: it is text).
// NOT_FOUND when the file cannot be opened.
absl::StatusOr<bool> IsIdxFile(const std::string& path);

// ntkctl's --data / --labels for IDX files: the selected images as rows of
// pixel values as they are (0..255, as a CSV file of the same numbers would
// give; the spec's preprocessing decides any scaling), row_index filled,
// line_number empty; and, when `labels_path` is not empty, the labels of the
// same rows. INVALID_ARGUMENT naming the file when an image file is not
// 3-dimensional or a label file not 1-dimensional, when the two counts
// differ (naming both files and counts), when `rows` does not fit
// (CheckRowRange), or when expected_features >= 0 differs from rows*cols;
// and ReadIdxFile's errors.
absl::StatusOr<CsvData> ReadDataIdx(const std::string& images_path,
                                    const std::string& labels_path, const RowRange& rows,
                                    int expected_features, const IdxOptions& options = {});

}  // namespace ntkctl

#endif  // NTK_TOOLS_NTKCTL_IDX_H_

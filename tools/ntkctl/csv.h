// ntk/tools/ntkctl/csv.h: reading numeric CSV data (plain or gzip) for ntkctl.
//
//   ntkctl::CsvOptions o;
//   o.label_column = ntkctl::LabelColumn::kLast;
//   absl::StatusOr<ntkctl::CsvData> d = ntkctl::ReadDataCsv("digits.csv.gz", o);
//
// A data file has one row per line: numeric features and, optionally, an
// integer class label in the first or last column. Cells are separated by
// commas; surrounding blanks and blank lines are ignored; a first header line
// is skipped when asked. Files ending in anything are read through zlib's
// gzopen, which reads gzip-compressed and plain files alike.
//
// Every error is INVALID_ARGUMENT (NOT_FOUND for a file that cannot be
// opened) and names the file and its 1-based line number, e.g.
// "data.csv:17: expected 65 columns, got 64".
//
// Thread safety: plain functions without shared state.
#ifndef NTK_TOOLS_NTKCTL_CSV_H_
#define NTK_TOOLS_NTKCTL_CSV_H_

#include <cstdint>
#include <string>
#include <vector>

#include <Eigen/Dense>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace ntkctl {

enum class LabelColumn {
  kAuto,   // last column if the file has expected_features + 1 columns, else none
  kLast,
  kFirst,
  kNone,
};

// Parses "last" | "first" | "none" | "auto".
absl::StatusOr<LabelColumn> ParseLabelColumn(absl::string_view s);

// A half-open range [begin, end) of data rows (0-based, header not counted).
// end < 0 means "to the end of the file".
struct RowRange {
  int64_t begin = 0;
  int64_t end = -1;
};

// Parses "A:B", "A:", ":B" or "" (everything). REQUIRES nothing; errors say
// what was wrong with the text (the caller prefixes the flag name).
absl::StatusOr<RowRange> ParseRowRange(absl::string_view s);

// OK when `rows` selects at least one of the `total` data rows of `path` and
// lies within them; else INVALID_ARGUMENT naming the file, e.g.
// "x.csv: --rows ends at row 500 but the file has only 400 data rows".
absl::Status CheckRowRange(const std::string& path, const RowRange& rows,
                           int64_t total);

struct CsvOptions {
  bool header = false;          // skip the first non-blank line
  RowRange rows;
  LabelColumn label_column = LabelColumn::kLast;
  // Number of feature columns the caller expects (e.g. the model's), or -1.
  // With kAuto it decides whether a label column is present; with other
  // settings a mismatch is reported with the file line.
  int expected_features = -1;
};

struct CsvData {
  Eigen::MatrixXd features;         // rows x d
  std::vector<int> labels;          // rows labels, or empty (no label column)
  std::vector<int64_t> row_index;   // data-row index (0-based) of each row
  std::vector<int> line_number;     // 1-based file line of each row (CSV only)
};

// Reads features (and labels) from `path`.
absl::StatusOr<CsvData> ReadDataCsv(const std::string& path,
                                    const CsvOptions& options);

// Reads a numeric matrix (every column a value, no labels), e.g. soft
// targets, selecting `rows` the same way as ReadDataCsv.
absl::StatusOr<Eigen::MatrixXd> ReadMatrixCsv(const std::string& path,
                                              bool header,
                                              const RowRange& rows);

// The same readers over text in memory (plain text, not gzip): the rows,
// values and errors a file holding these bytes gives; `name` stands for the
// path in messages. Used by fuzz/csv_fuzzer.cc, which would otherwise spend
// its time in open(2) and zlib's buffers.
absl::StatusOr<CsvData> ParseDataCsv(const std::string& name,
                                     absl::string_view text,
                                     const CsvOptions& options);
absl::StatusOr<Eigen::MatrixXd> ParseMatrixCsv(const std::string& name,
                                               absl::string_view text,
                                               bool header,
                                               const RowRange& rows);

}  // namespace ntkctl

#endif  // NTK_TOOLS_NTKCTL_CSV_H_

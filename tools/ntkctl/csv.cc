#include "tools/ntkctl/csv.h"

#include <sys/stat.h>
#include <zlib.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <functional>
#include <limits>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/strings/ascii.h"

namespace ntkctl {
namespace {

// Reads lines from a file through zlib (gzip or plain text) or from text in
// memory. Both split the same bytes the same way: at '\n', dropping a
// trailing '\r'; a NUL byte is an error (a binary file, not CSV).
class LineReader {
 public:
  ~LineReader() {
    if (file_ != nullptr) gzclose(file_);
  }

  // Reads `text` itself; `name` only labels messages.
  void OpenText(const std::string& name, absl::string_view text) {
    path_ = name;
    text_ = text;
    at_end_ = true;  // nothing to read beyond `text`
  }

  absl::Status Open(const std::string& path) {
    path_ = path;
    errno = 0;
    file_ = gzopen(path.c_str(), "rb");
    if (file_ == nullptr) {
      const int err = errno;
      return absl::NotFoundError(absl::StrCat(
          path, ": cannot open: ", err != 0 ? std::strerror(err) : "gzopen failed"));
    }
    // A 128 KiB buffer (zlib allocates it three times over) pays off on
    // large files only; small ones keep zlib's 8 KiB default.
    struct stat st;
    if (stat(path.c_str(), &st) == 0 && st.st_size > (1 << 17)) gzbuffer(file_, 1 << 17);
    return absl::OkStatus();
  }

  // Reads the next line (without "\n" or "\r\n") into *line. Returns false at
  // the end of the input or on an error, which is then set in *status.
  bool Next(std::string* line, absl::Status* status) {
    size_t newline;
    while ((newline = text_.find('\n', pos_)) == absl::string_view::npos && !at_end_) {
      if (absl::Status s = Refill(); !s.ok()) {
        *status = s;
        return false;
      }
    }
    if (pos_ >= text_.size()) return false;
    const size_t end = newline == absl::string_view::npos ? text_.size() : newline;
    line->assign(text_.data() + pos_, end - pos_);
    pos_ = newline == absl::string_view::npos ? text_.size() : newline + 1;
    ++line_number_;
    if (line->find('\0') != std::string::npos) {
      *status = absl::InvalidArgumentError(absl::StrCat(
          path_, ":", line_number_, ": contains a NUL byte (not a text file?)"));
      return false;
    }
    if (!line->empty() && line->back() == '\r') line->pop_back();
    return true;
  }

  int line_number() const { return line_number_; }
  const std::string& name() const { return path_; }

 private:
  // Appends the next block of the file to buffer_ (dropping what Next has
  // consumed); sets at_end_ at the end of the file.
  absl::Status Refill() {
    buffer_.erase(0, pos_);
    pos_ = 0;
    const size_t old_size = buffer_.size();
    buffer_.resize(old_size + block_);
    const int got = gzread(file_, &buffer_[old_size], static_cast<unsigned>(block_));
    block_ = std::min<size_t>(2 * block_, 1 << 16);  // small files stay cheap
    int errnum = Z_OK;
    const char* msg = gzerror(file_, &errnum);
    // A truncated gzip stream reads as far as it goes, then Z_BUF_ERROR.
    if (got < 0 || (got == 0 && errnum != Z_OK && errnum != Z_STREAM_END)) {
      return absl::InvalidArgumentError(absl::StrCat(
          path_, ":", line_number_ + 1, ": read error: ", msg));
    }
    buffer_.resize(old_size + static_cast<size_t>(got));
    if (got == 0) at_end_ = true;
    text_ = buffer_;
    return absl::OkStatus();
  }

  std::string path_;
  gzFile file_ = nullptr;
  std::string buffer_;      // file input read so far and not yet consumed
  absl::string_view text_;  // buffer_, or the text of OpenText
  size_t pos_ = 0;          // start of the next line in text_
  size_t block_ = 1 << 12;  // bytes the next Refill reads
  bool at_end_ = false;     // text_ holds the rest of the input
  int line_number_ = 0;
};

std::string Where(const std::string& path, int line) {
  return absl::StrCat(path, ":", line, ": ");
}

// Parses one cell as a finite double.
absl::Status ParseCell(absl::string_view cell, const std::string& path,
                       int line, size_t column, double* out) {
  cell = absl::StripAsciiWhitespace(cell);
  if (cell.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(
        Where(path, line), "column ", column, " is empty"));
  }
  if (!absl::SimpleAtod(cell, out)) {
    return absl::InvalidArgumentError(absl::StrCat(
        Where(path, line), "column ", column, ": cannot parse '", cell,
        "' as a number"));
  }
  if (!std::isfinite(*out)) {
    return absl::InvalidArgumentError(absl::StrCat(
        Where(path, line), "column ", column, ": '", cell,
        "' is not a finite number"));
  }
  return absl::OkStatus();
}

// Calls `row_fn(line, data_row_index, cells)` for every selected data row of
// `path`, after skipping a header line and blank lines.
absl::Status ForEachRow(
    LineReader& reader, bool header, const RowRange& rows,
    const std::function<absl::Status(int, int64_t,
                                     const std::vector<absl::string_view>&)>&
        row_fn) {
  const std::string& path = reader.name();
  std::string line;
  absl::Status read_status;
  bool header_pending = header;
  int64_t data_row = 0;
  while (reader.Next(&line, &read_status)) {
    if (absl::StripAsciiWhitespace(line).empty()) continue;
    if (header_pending) {
      header_pending = false;
      continue;
    }
    const int64_t index = data_row++;
    if (index < rows.begin) continue;
    if (rows.end >= 0 && index >= rows.end) break;
    std::vector<absl::string_view> cells = absl::StrSplit(line, ',');
    if (absl::Status s = row_fn(reader.line_number(), index, cells); !s.ok()) {
      return s;
    }
  }
  if (!read_status.ok()) return read_status;
  return CheckRowRange(path, rows, data_row);
}

}  // namespace

absl::Status CheckRowRange(const std::string& path, const RowRange& rows,
                           int64_t total) {
  if (rows.begin > 0 && total <= rows.begin) {
    return absl::InvalidArgumentError(absl::StrCat(
        path, ": --rows starts at row ", rows.begin, " but the file has only ",
        total, " data rows"));
  }
  if (rows.end >= 0 && total < rows.end) {
    return absl::InvalidArgumentError(absl::StrCat(
        path, ": --rows ends at row ", rows.end, " but the file has only ",
        total, " data rows"));
  }
  if (total == 0) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": no data rows"));
  }
  return absl::OkStatus();
}

absl::StatusOr<LabelColumn> ParseLabelColumn(absl::string_view s) {
  if (s == "last") return LabelColumn::kLast;
  if (s == "first") return LabelColumn::kFirst;
  if (s == "none") return LabelColumn::kNone;
  if (s == "auto") return LabelColumn::kAuto;
  return absl::InvalidArgumentError(absl::StrCat(
      "expected last, first, none or auto, got '", s, "'"));
}

absl::StatusOr<RowRange> ParseRowRange(absl::string_view s) {
  RowRange r;
  s = absl::StripAsciiWhitespace(s);
  if (s.empty()) return r;
  const size_t colon = s.find(':');
  if (colon == absl::string_view::npos) {
    return absl::InvalidArgumentError(absl::StrCat(
        "expected A:B (0-based, B exclusive; A or B may be omitted), got '", s,
        "'"));
  }
  absl::string_view a = absl::StripAsciiWhitespace(s.substr(0, colon));
  absl::string_view b = absl::StripAsciiWhitespace(s.substr(colon + 1));
  if (!a.empty() && (!absl::SimpleAtoi(a, &r.begin) || r.begin < 0)) {
    return absl::InvalidArgumentError(
        absl::StrCat("start '", a, "' is not a non-negative integer"));
  }
  if (!b.empty() && (!absl::SimpleAtoi(b, &r.end) || r.end < 0)) {
    return absl::InvalidArgumentError(
        absl::StrCat("end '", b, "' is not a non-negative integer"));
  }
  if (!b.empty() && r.end <= r.begin) {
    return absl::InvalidArgumentError(absl::StrCat(
        "the range ", r.begin, ":", r.end, " is empty (B must exceed A)"));
  }
  return r;
}

namespace {

absl::StatusOr<CsvData> DataCsv(LineReader& reader, const CsvOptions& options) {
  const std::string& path = reader.name();
  std::vector<double> values;
  std::vector<int> labels;
  CsvData out;
  size_t columns = 0;  // decided by the first selected row
  LabelColumn label_column = options.label_column;
  const int expected = options.expected_features;

  auto row_fn = [&](int line, int64_t index,
                    const std::vector<absl::string_view>& cells)
      -> absl::Status {
    if (columns == 0) {
      columns = cells.size();
      if (label_column == LabelColumn::kAuto) {
        if (expected >= 0 && columns == static_cast<size_t>(expected) + 1) {
          label_column = LabelColumn::kLast;
        } else if (expected >= 0 && columns == static_cast<size_t>(expected)) {
          label_column = LabelColumn::kNone;
        } else if (expected >= 0) {
          return absl::InvalidArgumentError(absl::StrCat(
              Where(path, line), "expected ", expected,
              " columns (the model's features) or ", expected + 1,
              " (features and a label), got ", columns));
        } else {
          label_column = LabelColumn::kLast;
        }
      }
      const size_t want =
          expected < 0 ? columns
                       : static_cast<size_t>(expected) +
                             (label_column == LabelColumn::kNone ? 0 : 1);
      if (columns != want) {
        return absl::InvalidArgumentError(absl::StrCat(
            Where(path, line), "expected ", want, " columns (", expected,
            " features",
            label_column == LabelColumn::kNone ? "" : " and a label",
            "), got ", columns));
      }
      if (label_column != LabelColumn::kNone && columns < 2) {
        return absl::InvalidArgumentError(absl::StrCat(
            Where(path, line),
            "expected at least 2 columns (features and a label), got ",
            columns, "; use --label_column=none for unlabeled data"));
      }
    } else if (cells.size() != columns) {
      return absl::InvalidArgumentError(absl::StrCat(
          Where(path, line), "expected ", columns, " columns, got ",
          cells.size()));
    }
    const size_t label_at = label_column == LabelColumn::kFirst ? 0
                            : label_column == LabelColumn::kLast
                                ? columns - 1
                                : columns;  // none
    for (size_t c = 0; c < columns; ++c) {
      double v = 0;
      if (absl::Status s = ParseCell(cells[c], path, line, c + 1, &v);
          !s.ok()) {
        if (index == 0 && !options.header) {
          return absl::InvalidArgumentError(absl::StrCat(
              s.message(), " (if this is a header line, use --header)"));
        }
        return s;
      }
      if (c == label_at) {
        if (v != std::floor(v) || v < 0 ||
            v > std::numeric_limits<int32_t>::max()) {
          return absl::InvalidArgumentError(absl::StrCat(
              Where(path, line), "column ", c + 1, " (the label): '",
              absl::StripAsciiWhitespace(cells[c]),
              "' is not a class label (an integer >= 0); use "
              "--label_column to say where the label is"));
        }
        labels.push_back(static_cast<int>(v));
      } else {
        values.push_back(v);
      }
    }
    out.row_index.push_back(index);
    out.line_number.push_back(line);
    return absl::OkStatus();
  };
  if (absl::Status s = ForEachRow(reader, options.header, options.rows, row_fn);
      !s.ok()) {
    return s;
  }
  const size_t n = out.row_index.size();
  const size_t d = n == 0 ? 0 : values.size() / n;
  out.features.resize(static_cast<Eigen::Index>(n), static_cast<Eigen::Index>(d));
  for (size_t i = 0; i < n; ++i) {
    for (size_t j = 0; j < d; ++j) {
      out.features(static_cast<Eigen::Index>(i), static_cast<Eigen::Index>(j)) =
          values[i * d + j];
    }
  }
  out.labels = std::move(labels);
  return out;
}

absl::StatusOr<Eigen::MatrixXd> MatrixCsv(LineReader& reader, bool header,
                                          const RowRange& rows) {
  const std::string& path = reader.name();
  std::vector<double> values;
  size_t columns = 0;
  size_t n = 0;
  auto row_fn = [&](int line, int64_t,
                    const std::vector<absl::string_view>& cells)
      -> absl::Status {
    if (columns == 0) columns = cells.size();
    if (cells.size() != columns) {
      return absl::InvalidArgumentError(absl::StrCat(
          Where(path, line), "expected ", columns, " columns, got ",
          cells.size()));
    }
    for (size_t c = 0; c < columns; ++c) {
      double v = 0;
      if (absl::Status s = ParseCell(cells[c], path, line, c + 1, &v);
          !s.ok()) {
        return s;
      }
      values.push_back(v);
    }
    ++n;
    return absl::OkStatus();
  };
  if (absl::Status s = ForEachRow(reader, header, rows, row_fn); !s.ok()) {
    return s;
  }
  Eigen::MatrixXd m(static_cast<Eigen::Index>(n),
                    static_cast<Eigen::Index>(columns));
  for (size_t i = 0; i < n; ++i) {
    for (size_t j = 0; j < columns; ++j) {
      m(static_cast<Eigen::Index>(i), static_cast<Eigen::Index>(j)) =
          values[i * columns + j];
    }
  }
  return m;
}

}  // namespace

absl::StatusOr<CsvData> ReadDataCsv(const std::string& path,
                                    const CsvOptions& options) {
  LineReader reader;
  if (absl::Status s = reader.Open(path); !s.ok()) return s;
  return DataCsv(reader, options);
}

absl::StatusOr<CsvData> ParseDataCsv(const std::string& name,
                                     absl::string_view text,
                                     const CsvOptions& options) {
  LineReader reader;
  reader.OpenText(name, text);
  return DataCsv(reader, options);
}

absl::StatusOr<Eigen::MatrixXd> ReadMatrixCsv(const std::string& path,
                                              bool header,
                                              const RowRange& rows) {
  LineReader reader;
  if (absl::Status s = reader.Open(path); !s.ok()) return s;
  return MatrixCsv(reader, header, rows);
}

absl::StatusOr<Eigen::MatrixXd> ParseMatrixCsv(const std::string& name,
                                               absl::string_view text,
                                               bool header,
                                               const RowRange& rows) {
  LineReader reader;
  reader.OpenText(name, text);
  return MatrixCsv(reader, header, rows);
}

}  // namespace ntkctl

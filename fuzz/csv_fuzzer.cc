// libFuzzer target: ntkctl's CSV reader (tools/ntkctl/csv.h). Input: one
// options byte, then the file contents. The contents are parsed from memory
// (ParseDataCsv / ParseMatrixCsv); for about one input in 16 (the options
// byte's top bit set and a length divisible by 8; files are what made this
// target slow) they are also written to a private temporary file and read
// through zlib as in production, and the two readings must agree. Gzip content always takes
// the file path too. The first line also goes through the flag parsers.
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "tools/ntkctl/csv.h"

namespace {

void Require(bool condition) {
  if (!condition) std::abort();
}

const std::string& TempPath() {
  static const std::string path = [] {
    const char* dir = std::getenv("TMPDIR");
    return std::string(dir != nullptr ? dir : "/tmp") + "/ntk_csv_fuzz." +
           std::to_string(getpid()) + ".csv";
  }();
  return path;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  const uint8_t flags = data[0];
  const std::string contents(reinterpret_cast<const char*>(data + 1), size - 1);

  const std::string first_line = contents.substr(0, contents.find('\n'));
  (void)ntkctl::ParseLabelColumn(first_line);
  absl::StatusOr<ntkctl::RowRange> range = ntkctl::ParseRowRange(first_line);

  ntkctl::CsvOptions o;
  o.header = flags & 1;
  o.label_column = static_cast<ntkctl::LabelColumn>((flags >> 1) & 3);
  o.expected_features = ((flags >> 3) & 7) - 1;  // -1 .. 6
  if ((flags & 0x40) && range.ok()) o.rows = *range;
  const std::string& name = TempPath();
  absl::StatusOr<ntkctl::CsvData> d = ntkctl::ParseDataCsv(name, contents, o);
  absl::StatusOr<Eigen::MatrixXd> m = ntkctl::ParseMatrixCsv(name, contents, o.header, o.rows);

  const bool gzip = contents.size() >= 2 && static_cast<uint8_t>(contents[0]) == 0x1f &&
                    static_cast<uint8_t>(contents[1]) == 0x8b;
  if (((flags & 0x80) && contents.size() % 8 == 0) || gzip) {
    FILE* f = std::fopen(name.c_str(), "wb");
    Require(f != nullptr);
    Require(std::fwrite(contents.data(), 1, contents.size(), f) == contents.size());
    std::fclose(f);
    absl::StatusOr<ntkctl::CsvData> from_file = ntkctl::ReadDataCsv(name, o);
    absl::StatusOr<Eigen::MatrixXd> m_from_file = ntkctl::ReadMatrixCsv(name, o.header, o.rows);
    if (gzip) {
      d = std::move(from_file);
      m = std::move(m_from_file);
    } else {
      // Same bytes, same answer (the same parse: bit-equal values).
      Require(from_file.status() == d.status() && m_from_file.status() == m.status());
      if (d.ok()) {
        Require(from_file->features == d->features && from_file->labels == d->labels &&
                from_file->row_index == d->row_index &&
                from_file->line_number == d->line_number);
      }
      if (m.ok()) Require(*m_from_file == *m);
    }
  }

  if (d.ok()) {
    const size_t n = static_cast<size_t>(d->features.rows());
    Require(d->row_index.size() == n && d->line_number.size() == n);
    Require(d->labels.empty() || d->labels.size() == n);
  } else {
    Require(d.status().code() == absl::StatusCode::kInvalidArgument);
  }
  Require(m.ok() || m.status().code() == absl::StatusCode::kInvalidArgument);
  return 0;
}

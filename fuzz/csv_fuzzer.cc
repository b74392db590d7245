// libFuzzer target: ntkctl's CSV reader (tools/ntkctl/csv.h). Input: one
// options byte, then the file contents (written to a private temporary file,
// since the reader takes a path; gzip content is read through zlib as in
// production). The first line also goes through the flag parsers.
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

  FILE* f = std::fopen(TempPath().c_str(), "wb");
  Require(f != nullptr);
  Require(std::fwrite(contents.data(), 1, contents.size(), f) == contents.size());
  std::fclose(f);

  ntkctl::CsvOptions o;
  o.header = flags & 1;
  o.label_column = static_cast<ntkctl::LabelColumn>((flags >> 1) & 3);
  o.expected_features = ((flags >> 3) & 7) - 1;  // -1 .. 6
  if ((flags & 0x40) && range.ok()) o.rows = *range;
  absl::StatusOr<ntkctl::CsvData> d = ntkctl::ReadDataCsv(TempPath(), o);
  if (d.ok()) {
    const size_t n = static_cast<size_t>(d->features.rows());
    Require(d->row_index.size() == n && d->line_number.size() == n);
    Require(d->labels.empty() || d->labels.size() == n);
  } else {
    Require(d.status().code() == absl::StatusCode::kInvalidArgument);
  }
  absl::StatusOr<Eigen::MatrixXd> m = ntkctl::ReadMatrixCsv(TempPath(), o.header, o.rows);
  Require(m.ok() || m.status().code() == absl::StatusCode::kInvalidArgument);
  return 0;
}

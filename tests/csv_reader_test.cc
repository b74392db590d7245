// ntkctl's CSV reader (tools/ntkctl/csv.h): a plain file, the same bytes
// gzipped and the same bytes in memory (ParseDataCsv, the fuzzer's entry)
// give the same rows or the same error, including lines that straddle the
// reader's 64 KiB blocks; NUL bytes and truncated gzip are refused.
#include <zlib.h>

#include <string>

#include "gtest/gtest.h"
#include "tests/testing/temp_dir.h"
#include "tools/ntkctl/csv.h"

namespace {

using ntk::testing::TempDir;
using ntk::testing::WriteFile;

bool WriteGzip(const std::string& path, const std::string& bytes) {
  gzFile f = gzopen(path.c_str(), "wb");
  if (f == nullptr) return false;
  const bool ok = bytes.empty() ||
                  gzwrite(f, bytes.data(), static_cast<unsigned>(bytes.size())) ==
                      static_cast<int>(bytes.size());
  return gzclose(f) == Z_OK && ok;
}

// Reads `text` three ways and checks they agree; returns the in-memory result.
absl::StatusOr<ntkctl::CsvData> ReadThreeWays(const std::string& text,
                                             const ntkctl::CsvOptions& o) {
  TempDir dir;
  const std::string plain = dir.File("d.csv"), gz = dir.File("d.csv.gz");
  EXPECT_TRUE(WriteFile(plain, text));
  EXPECT_TRUE(WriteGzip(gz, text));
  absl::StatusOr<ntkctl::CsvData> a = ntkctl::ReadDataCsv(plain, o);
  absl::StatusOr<ntkctl::CsvData> b = ntkctl::ReadDataCsv(gz, o);
  absl::StatusOr<ntkctl::CsvData> c = ntkctl::ParseDataCsv(plain, text, o);
  EXPECT_EQ(a.ok(), c.ok());
  EXPECT_EQ(b.ok(), c.ok());
  if (!c.ok()) {
    EXPECT_EQ(a.status(), c.status());
    // The gzip file has another name; compare what follows it.
    if (!b.ok()) {
      EXPECT_EQ(b.status().code(), c.status().code());
      EXPECT_EQ(b.status().message().substr(gz.size()),
                c.status().message().substr(plain.size()));
    }
    return c;
  }
  for (const auto* other : {&a, &b}) {
    if (!other->ok()) continue;
    EXPECT_EQ((*other)->features, c->features);  // same parse: bit-equal
    EXPECT_EQ((*other)->labels, c->labels);
    EXPECT_EQ((*other)->row_index, c->row_index);
    EXPECT_EQ((*other)->line_number, c->line_number);
  }
  return c;
}

TEST(CsvReader, FileGzipAndMemoryAgreeAcrossBlockBoundaries) {
  // ~200 KB: lines straddle the 64 KiB blocks; CRLF, blank lines and a last
  // line without a newline.
  std::string text = "x1,x2,label\r\n";
  for (int i = 0; i < 6000; ++i) {
    text += std::to_string(i * 0.25) + "," + std::to_string(-i / 3.0) + "," +
            std::to_string(i % 7) + (i % 3 == 0 ? "\r\n" : "\n");
    if (i % 1000 == 0) text += "  \n";
  }
  text += "1.5,2.5,3";
  ntkctl::CsvOptions o;
  o.header = true;
  absl::StatusOr<ntkctl::CsvData> d = ReadThreeWays(text, o);
  ASSERT_TRUE(d.ok()) << d.status();
  ASSERT_EQ(d->features.rows(), 6001);
  EXPECT_EQ(d->features(6000, 1), 2.5);
  EXPECT_EQ(d->labels[5999], 5999 % 7);
  EXPECT_EQ(d->line_number[0], 2);

  o.rows = {5990, 5995};
  d = ReadThreeWays(text, o);
  ASSERT_TRUE(d.ok()) << d.status();
  EXPECT_EQ(d->row_index.front(), 5990);
  EXPECT_EQ(d->features.rows(), 5);
}

TEST(CsvReader, ErrorsAreTheSameFromFileAndMemory) {
  ntkctl::CsvOptions o;
  for (const std::string text :
       {"1,2,0\n3,4\n", "1,2,0\n3,x,1\n", "", "\n\n", "1,2,0.5\n", "a,b,c\n1,2,0\n"}) {
    absl::StatusOr<ntkctl::CsvData> d = ReadThreeWays(text, o);
    ASSERT_FALSE(d.ok()) << "'" << text << "' was accepted";
    EXPECT_EQ(d.status().code(), absl::StatusCode::kInvalidArgument) << d.status();
  }
}

TEST(CsvReader, NulByteIsRefusedNamingTheLine) {
  // Before the memory reader, gzgets + strlen cut such a line at the NUL and
  // the rest of it was lost silently.
  const std::string text = std::string("1,2,0\n3,4") + '\0' + ",9\n";
  absl::StatusOr<ntkctl::CsvData> d = ReadThreeWays(text, {});
  ASSERT_FALSE(d.ok());
  EXPECT_EQ(d.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(d.status().message().find(":2: contains a NUL byte"), std::string::npos)
      << d.status();
}

TEST(CsvReader, TruncatedGzipIsAReadError) {
  TempDir dir;
  std::string text;
  for (int i = 0; i < 2000; ++i) text += std::to_string(i) + ",1,0\n";
  ASSERT_TRUE(WriteGzip(dir.File("full.gz"), text));
  const std::string bytes = ntk::testing::ReadFileOrEmpty(dir.File("full.gz"));
  ASSERT_GT(bytes.size(), 100u);
  ASSERT_TRUE(WriteFile(dir.File("cut.gz"), bytes.substr(0, bytes.size() / 2)));
  absl::StatusOr<ntkctl::CsvData> d = ntkctl::ReadDataCsv(dir.File("cut.gz"), {});
  ASSERT_FALSE(d.ok());
  EXPECT_EQ(d.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(d.status().message().find("read error"), std::string::npos) << d.status();
}

}  // namespace

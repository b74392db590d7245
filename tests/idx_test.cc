// Unit tests of the IDX reader (tools/ntkctl/idx.h): hand-built files with
// known contents, each kind of damage, the size limit, gzip, and the real
// Fashion-MNIST test set (package dataset-fashion-mnist) when installed.
#include "tools/ntkctl/idx.h"

#include <zlib.h>

#include <fstream>
#include <numeric>
#include <string>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "tests/testing/temp_dir.h"

namespace ntkctl {
namespace {

using ::testing::HasSubstr;

std::string BigEndian(uint32_t v) {
  return {static_cast<char>(v >> 24), static_cast<char>(v >> 16), static_cast<char>(v >> 8),
          static_cast<char>(v)};
}

// An IDX file with the given dims and bytes 0, 1, 2, ... (mod 256).
std::string MakeIdx(const std::vector<uint32_t>& dims, size_t extra_data = 0) {
  std::string out = BigEndian(0x00000800 | static_cast<uint32_t>(dims.size()));
  uint64_t n = 1;
  for (uint32_t d : dims) {
    out += BigEndian(d);
    n *= d;
  }
  for (uint64_t i = 0; i < n + extra_data; ++i) out.push_back(static_cast<char>(i % 256));
  return out;
}

std::string GzipOf(const std::string& raw) {
  z_stream z{};
  EXPECT_EQ(deflateInit2(&z, 6, Z_DEFLATED, 16 + MAX_WBITS, 8, Z_DEFAULT_STRATEGY), Z_OK);
  std::string out(deflateBound(&z, raw.size()) + 32, '\0');
  z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(raw.data()));
  z.avail_in = static_cast<uInt>(raw.size());
  z.next_out = reinterpret_cast<Bytef*>(out.data());
  z.avail_out = static_cast<uInt>(out.size());
  EXPECT_EQ(deflate(&z, Z_FINISH), Z_STREAM_END);
  out.resize(z.total_out);
  deflateEnd(&z);
  return out;
}

TEST(IdxTest, ParsesImagesRowMajor) {
  absl::StatusOr<IdxArray> a = ParseIdx(MakeIdx({2, 3, 4}), "x");
  ASSERT_TRUE(a.ok()) << a.status();
  EXPECT_EQ(a->dims, (std::vector<uint32_t>{2, 3, 4}));
  ASSERT_EQ(a->data.size(), 24u);
  absl::StatusOr<Eigen::MatrixXd> x = IdxToFeatures(*a);
  ASSERT_TRUE(x.ok()) << x.status();
  ASSERT_EQ(x->rows(), 2);
  ASSERT_EQ(x->cols(), 12);
  // Byte k of the data is k; image 1, pixel (row 2, col 3) is byte 12 + 11.
  EXPECT_EQ((*x)(1, 11), 23 / 255.0);
  EXPECT_FALSE(IdxToLabels(*a).ok());
}

TEST(IdxTest, ParsesLabels) {
  absl::StatusOr<IdxArray> a = ParseIdx(MakeIdx({5}), "y");
  ASSERT_TRUE(a.ok()) << a.status();
  absl::StatusOr<std::vector<int>> y = IdxToLabels(*a);
  ASSERT_TRUE(y.ok());
  EXPECT_EQ(*y, (std::vector<int>{0, 1, 2, 3, 4}));
  EXPECT_FALSE(IdxToFeatures(*a).ok());
}

TEST(IdxTest, RefusesDamage) {
  const std::string good = MakeIdx({2, 2, 2});
  EXPECT_THAT(ParseIdx(good.substr(0, 3), "f").status().message(), HasSubstr("no 4-byte magic"));
  EXPECT_THAT(ParseIdx(good.substr(0, 10), "f").status().message(), HasSubstr("header"));
  EXPECT_THAT(ParseIdx(good.substr(0, good.size() - 1), "f").status().message(),
              HasSubstr("truncated"));
  EXPECT_THAT(ParseIdx(MakeIdx({2, 2, 2}, 1), "f").status().message(),
              HasSubstr("trailing bytes"));
  EXPECT_THAT(ParseIdx(MakeIdx({2, 0, 2}), "f").status().message(), HasSubstr("dimension 1 is 0"));
  std::string bad_magic = good;
  bad_magic[2] = 0x0d;  // element type 0x0d (float) is not supported
  absl::Status s = ParseIdx(bad_magic, "f").status();
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(), HasSubstr("f: magic 0x00000d03"));
  EXPECT_EQ(ParseIdx(MakeIdx({2, 2}), "f").status().code(),  // 2 dimensions
            absl::StatusCode::kInvalidArgument);
}

TEST(IdxTest, SizeLimitCheckedBeforeAllocating) {
  IdxOptions small;
  small.max_bytes = 100;
  EXPECT_TRUE(ParseIdx(MakeIdx({5, 4, 4}), "f", small).ok());  // 16 + 80 bytes
  // Dimensions whose product is 2^96 (would overflow 64 bits) with no data:
  // refused on the dimensions alone.
  std::string huge = BigEndian(kIdxImagesMagic) + BigEndian(0xffffffffu) +
                     BigEndian(0xffffffffu) + BigEndian(0xffffffffu);
  EXPECT_EQ(ParseIdx(huge, "f").status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(ParseIdx(MakeIdx({7, 4, 4}), "f", small).status().code(),
            absl::StatusCode::kResourceExhausted);
  // A gzip bomb is stopped at the limit: 1 MB of zeros compresses to ~1 KB.
  EXPECT_EQ(Gunzip(GzipOf(std::string(1 << 20, '\0')), "z", 1000).status().code(),
            absl::StatusCode::kResourceExhausted);
}

TEST(IdxTest, GunzipRoundTripAndDamage) {
  const std::string raw = MakeIdx({3, 5, 7});
  const std::string gz = GzipOf(raw);
  absl::StatusOr<std::string> back = Gunzip(gz, "z", 1 << 20);
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(*back, raw);
  // Two members concatenated are one stream (as gzip(1) reads them).
  back = Gunzip(gz + gz, "z", 1 << 20);
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(*back, raw + raw);
  EXPECT_THAT(Gunzip(gz.substr(0, gz.size() / 2), "z", 1 << 20).status().message(),
              HasSubstr("truncated"));
  std::string flipped = gz;
  flipped[gz.size() - 6] ^= 0x55;  // inside the CRC-32 trailer
  EXPECT_EQ(Gunzip(flipped, "z", 1 << 20).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(IdxTest, ReadsPlainAndGzipFiles) {
  ntk::testing::TempDir dir;
  const std::string raw = MakeIdx({4});
  for (const auto& [name, bytes] : {std::pair{"plain.idx", raw}, {"packed.idx.gz", GzipOf(raw)}}) {
    const std::string path = dir.path() + "/" + name;
    std::ofstream(path, std::ios::binary) << bytes;
    absl::StatusOr<IdxArray> a = ReadIdxFile(path);
    ASSERT_TRUE(a.ok()) << a.status();
    EXPECT_EQ(a->dims, std::vector<uint32_t>{4});
  }
  EXPECT_EQ(ReadIdxFile(dir.path() + "/missing").status().code(), absl::StatusCode::kNotFound);
}

// Fashion-MNIST's test set: 10000 images of 28 x 28 and 10000 labels, 1000
// of each of the 10 classes (the dataset's documented balance).
TEST(IdxTest, ReadsFashionMnistTestSet) {
  const std::string dir = "/usr/share/datasets/fashion-mnist/";
  if (!std::ifstream(dir + "t10k-labels-idx1-ubyte.gz")) {
    GTEST_SKIP() << "package dataset-fashion-mnist is not installed";
  }
  absl::StatusOr<IdxArray> labels = ReadIdxFile(dir + "t10k-labels-idx1-ubyte.gz");
  ASSERT_TRUE(labels.ok()) << labels.status();
  absl::StatusOr<std::vector<int>> y = IdxToLabels(*labels);
  ASSERT_TRUE(y.ok());
  ASSERT_EQ(y->size(), 10000u);
  std::vector<int> counts(10, 0);
  for (int c : *y) {
    ASSERT_GE(c, 0);
    ASSERT_LT(c, 10);
    ++counts[c];
  }
  EXPECT_EQ(counts, std::vector<int>(10, 1000));
  absl::StatusOr<IdxArray> images = ReadIdxFile(dir + "t10k-images-idx3-ubyte.gz");
  ASSERT_TRUE(images.ok()) << images.status();
  EXPECT_EQ(images->dims, (std::vector<uint32_t>{10000, 28, 28}));
}

}  // namespace
}  // namespace ntkctl

// Unit tests of the Eigen <-> ntk.v1.Matrix conversion shared by client and
// server (proto/matrix_convert.h): the values encoding, raw data as FLOAT64
// and FLOAT32 (aligned and unaligned bytes), and the wire facts refused with
// INVALID_ARGUMENT naming the field. Expected elements are built
// independently of the library: by hand (row-major order) or with memcpy.
#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "proto/matrix_convert.h"

namespace ntk {
namespace {

using ::testing::HasSubstr;

// A 2 x 3 matrix with element (i, j) = 10 i + j + 0.25 (exact in float).
Eigen::MatrixXd Small() {
  Eigen::MatrixXd m(2, 3);
  for (int i = 0; i < 2; ++i) {
    for (int j = 0; j < 3; ++j) m(i, j) = 10 * i + j + 0.25;
  }
  return m;
}

// Little-endian bytes of `v` in row-major order, written element by element.
template <typename T>
std::string RowMajorBytes(const Eigen::MatrixXd& m) {
  std::string out;
  for (Eigen::Index i = 0; i < m.rows(); ++i) {
    for (Eigen::Index j = 0; j < m.cols(); ++j) {
      const T v = static_cast<T>(m(i, j));
      out.append(reinterpret_cast<const char*>(&v), sizeof(T));
    }
  }
  return out;
}

TEST(MatrixConvertTest, ValuesAreRowMajorAndRoundTrip) {
  const Eigen::MatrixXd m = Small();
  v1::Matrix p = MatrixToProto(m);
  EXPECT_EQ(p.rows(), 2u);
  EXPECT_EQ(p.cols(), 3u);
  ASSERT_EQ(p.values_size(), 6);
  EXPECT_EQ(p.values(1), 1.25);   // (0, 1)
  EXPECT_EQ(p.values(3), 10.25);  // (1, 0)
  EXPECT_TRUE(p.data().empty());
  EXPECT_EQ(EncodingOf(p), MatrixEncoding::kValues);
  absl::StatusOr<Eigen::MatrixXd> back = MatrixFromProto(p, "features");
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(*back, m);
}

TEST(MatrixConvertTest, Float64DataIsLittleEndianRowMajorAndRoundTrips) {
  const Eigen::MatrixXd m = Small();
  v1::Matrix p = MatrixToProto(m, MatrixEncoding::kFloat64);
  EXPECT_EQ(p.values_size(), 0);
  EXPECT_EQ(p.dtype(), v1::FLOAT64);
  EXPECT_EQ(p.data(), RowMajorBytes<double>(m));
  EXPECT_EQ(EncodingOf(p), MatrixEncoding::kFloat64);
  absl::StatusOr<Eigen::MatrixXd> back = MatrixFromProto(p, "features");
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(*back, m);
  // dtype unspecified means FLOAT64.
  p.clear_dtype();
  EXPECT_EQ(EncodingOf(p), MatrixEncoding::kFloat64);
  EXPECT_EQ(*MatrixFromProto(p, "features"), m);
}

TEST(MatrixConvertTest, Float32DataRoundsEachElementToFloat) {
  Eigen::MatrixXd m = Small();
  m(0, 0) = 0.1;  // not exact in float: the float rounding must be visible
  v1::Matrix p = MatrixToProto(m, MatrixEncoding::kFloat32);
  EXPECT_EQ(p.dtype(), v1::FLOAT32);
  EXPECT_EQ(p.data(), RowMajorBytes<float>(m));
  absl::StatusOr<Eigen::MatrixXd> back = MatrixFromProto(p, "features");
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ((*back)(0, 0), static_cast<double>(0.1f));
  EXPECT_NE((*back)(0, 0), 0.1);
  EXPECT_EQ((*back)(1, 2), 12.25);
}

TEST(MatrixConvertTest, UnalignedBytesReadTheSameElements) {
  const Eigen::MatrixXd m = Small();
  for (const bool f32 : {false, true}) {
    SCOPED_TRACE(f32 ? "FLOAT32" : "FLOAT64");
    const std::string bytes = f32 ? RowMajorBytes<float>(m) : RowMajorBytes<double>(m);
    // A buffer whose data starts one byte past an aligned address.
    std::vector<char> storage(bytes.size() + 16);
    char* base = storage.data();
    while (reinterpret_cast<uintptr_t>(base) % 8 != 1) ++base;
    std::memcpy(base, bytes.data(), bytes.size());
    const MatrixEncoding e = f32 ? MatrixEncoding::kFloat32 : MatrixEncoding::kFloat64;
    EXPECT_EQ(MatrixFromBytes(absl::string_view(base, bytes.size()), e, 2, 3), m);
    v1::Matrix p;
    p.set_rows(2);
    p.set_cols(3);
    p.set_dtype(f32 ? v1::FLOAT32 : v1::FLOAT64);
    p.set_data(bytes);
    // AppendMatrixRows reads through memcpy regardless of alignment.
    std::vector<double> rows = {-1.0};
    ASSERT_TRUE(AppendMatrixRows(p, "features", &rows).ok());
    ASSERT_EQ(rows.size(), 7u);
    EXPECT_EQ(rows[0], -1.0);
    EXPECT_EQ(rows[2], 1.25);
    EXPECT_EQ(rows[6], 12.25);
  }
}

TEST(MatrixConvertTest, WireFactsAreRefusedNamingTheField) {
  v1::Matrix p = MatrixToProto(Small());
  p.add_values(1);
  absl::Status s = MatrixFromProto(p, "features").status();
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(s.message(), "features.values: size 7 != rows*cols = 6 (rows 2, cols 3)");

  v1::Matrix both = MatrixToProto(Small());
  both.set_data(RowMajorBytes<double>(Small()));
  s = CheckMatrix(both, "features");
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(), HasSubstr("features.data: set values or data, never both"));

  v1::Matrix short_data = MatrixToProto(Small(), MatrixEncoding::kFloat64);
  short_data.mutable_data()->pop_back();
  s = CheckMatrix(short_data, "targets");
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(s.message(), "targets.data: 47 bytes != rows*cols*8 = 6*8 (rows 2, cols 3, FLOAT64)");

  v1::Matrix f32 = MatrixToProto(Small(), MatrixEncoding::kFloat32);
  f32.mutable_data()->append(4, '\0');  // one element too many
  s = CheckMatrix(f32, "features");
  EXPECT_EQ(s.message(), "features.data: 28 bytes != rows*cols*4 = 6*4 (rows 2, cols 3, FLOAT32)");

  v1::Matrix unknown = MatrixToProto(Small(), MatrixEncoding::kFloat64);
  unknown.set_dtype(static_cast<v1::DType>(7));
  s = CheckMatrix(unknown, "features");
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(s.message(), "features.dtype: unknown value 7");

  v1::Matrix values_f32 = MatrixToProto(Small());
  values_f32.set_dtype(v1::FLOAT32);
  s = CheckMatrix(values_f32, "features");
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(), HasSubstr("features.dtype"));

  // No elements in either encoding is a 0 x 0 matrix; 2 x 3 without any is not.
  EXPECT_TRUE(CheckMatrix(v1::Matrix(), "features").ok());
  v1::Matrix empty;
  empty.set_rows(2);
  empty.set_cols(3);
  EXPECT_THAT(CheckMatrix(empty, "features").message(), HasSubstr("features.values: size 0"));
}

TEST(MatrixConvertTest, SliceKeepsTheEncodingAndTheRows) {
  Eigen::MatrixXd m(4, 2);
  m << 1, 2, 3, 4, 5, 6, 7, 8;
  for (MatrixEncoding e :
       {MatrixEncoding::kValues, MatrixEncoding::kFloat64, MatrixEncoding::kFloat32}) {
    v1::Matrix p = MatrixToProto(m, e);
    v1::Matrix s = SliceMatrixRows(p, 1, 3);
    EXPECT_EQ(EncodingOf(s), e);
    absl::StatusOr<Eigen::MatrixXd> back = MatrixFromProto(s, "features");
    ASSERT_TRUE(back.ok()) << back.status();
    EXPECT_EQ(*back, m.middleRows(1, 2));
  }
}

TEST(MatrixConvertTest, ResponsesAnswerDataRequestsInFloat64) {
  EXPECT_EQ(ResponseEncodingFor(MatrixEncoding::kValues), MatrixEncoding::kValues);
  EXPECT_EQ(ResponseEncodingFor(MatrixEncoding::kFloat64), MatrixEncoding::kFloat64);
  EXPECT_EQ(ResponseEncodingFor(MatrixEncoding::kFloat32), MatrixEncoding::kFloat64);
}

}  // namespace
}  // namespace ntk

// ntk/proto/matrix_convert.h: the one Eigen <-> ntk.v1.Matrix conversion,
// used by the server and the client (library ntk_matrix_convert; depends only
// on Eigen, Abseil and the generated protos).
//
// A Matrix carries rows * cols elements, row-major, in one of two encodings
// (proto/ntk/v1/ntk.proto, docs/api.md "Additions (round 2)"):
//   values: `repeated double values`;
//   data:   `bytes data`, little-endian elements of type `dtype`
//           (FLOAT64, the default, or FLOAT32).
// A matrix sets values or data, never both. A response answers in the
// encoding of its request's features (data as FLOAT64 when they came as data).
//
// Errors are INVALID_ARGUMENT naming the field by its wire name, with the
// caller's prefix, e.g. "features.values: size 10 != rows*cols = 12",
// "features.data: 44 bytes != rows*cols*4 = 48 (FLOAT32)". These are wire
// facts only; finiteness and shapes against a model are core's checks.
//
// Copies: reading makes one pass from the wire into the destination (an
// Eigen::Map over values or aligned FLOAT64 bytes; a memcpy of the bytes
// otherwise); writing makes one pass into the message.
//
// Thread safety: pure functions.
#ifndef NTK_PROTO_MATRIX_CONVERT_H_
#define NTK_PROTO_MATRIX_CONVERT_H_

#include <cstdint>
#include <vector>

#include <Eigen/Dense>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "proto/ntk/v1/ntk.pb.h"

namespace ntk {

using RowMajorMatrixXd = Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

// How a Matrix carries its elements on the wire.
enum class MatrixEncoding {
  kValues,   // repeated double values
  kFloat64,  // data, FLOAT64
  kFloat32,  // data, FLOAT32
};

// The encoding `m` uses: data (of its dtype) when data is non-empty or a
// dtype is set, else values. For an inconsistent matrix the answer is
// whatever CheckMatrix reports.
MatrixEncoding EncodingOf(const v1::Matrix& m);
// The encoding a response uses for a request matrix in `request` encoding:
// kFloat64 when the request used data, kValues otherwise.
MatrixEncoding ResponseEncodingFor(MatrixEncoding request);

// Wire facts: dtype a known value; values and data not both; FLOAT32 only
// with data; the element count equals rows * cols. `field` prefixes the
// message ("features" -> "features.data: ...").
absl::Status CheckMatrix(const v1::Matrix& m, absl::string_view field);

// CheckMatrix, then the elements as an Eigen matrix (rows x cols).
absl::StatusOr<Eigen::MatrixXd> MatrixFromProto(const v1::Matrix& m, absl::string_view field);

// rows x cols little-endian row-major elements of a data encoding (kFloat64
// or kFloat32) from `bytes`, wherever they lie in memory (also for other
// raw-tensor protocols). REQUIRES: bytes.size() == rows * cols * element size.
Eigen::MatrixXd MatrixFromBytes(absl::string_view bytes, MatrixEncoding encoding,
                                Eigen::Index rows, Eigen::Index cols);

// CheckMatrix, then appends m's elements (row-major) to `row_major`, e.g. to
// concatenate the chunks of a FitStream.
absl::Status AppendMatrixRows(const v1::Matrix& m, absl::string_view field,
                              std::vector<double>* row_major);

// `m` into `out` (cleared first) in `encoding`. kFloat32 rounds each element
// to float.
void MatrixToProto(const Eigen::Ref<const Eigen::MatrixXd>& m, MatrixEncoding encoding,
                   v1::Matrix* out);
v1::Matrix MatrixToProto(const Eigen::Ref<const Eigen::MatrixXd>& m,
                         MatrixEncoding encoding = MatrixEncoding::kValues);

// Rows [begin, end) of `m` in m's own encoding. REQUIRES: CheckMatrix(m).ok(),
// begin <= end <= m.rows().
v1::Matrix SliceMatrixRows(const v1::Matrix& m, uint64_t begin, uint64_t end);

}  // namespace ntk

#endif  // NTK_PROTO_MATRIX_CONVERT_H_

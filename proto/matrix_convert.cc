#include "proto/matrix_convert.h"

#include <cstring>
#include <string>

#include "absl/strings/str_format.h"

namespace ntk {
namespace {

static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__,
              "Matrix.data is little-endian; a big-endian host would need byte swaps");

size_t ElementBytes(MatrixEncoding e) { return e == MatrixEncoding::kFloat32 ? 4 : 8; }
const char* DTypeName(MatrixEncoding e) {
  return e == MatrixEncoding::kFloat32 ? "FLOAT32" : "FLOAT64";
}

template <typename T>
bool AlignedFor(const void* p) {
  return reinterpret_cast<uintptr_t>(p) % alignof(T) == 0;
}

// Element k (row-major) of little-endian bytes of type T, wherever they lie.
template <typename T>
double LoadAt(const char* bytes, size_t k) {
  T v;
  std::memcpy(&v, bytes + k * sizeof(T), sizeof(T));
  return static_cast<double>(v);
}

// The data bytes of a checked matrix of element type T into `out` (rows x
// cols): a Map when aligned, element-wise memcpy otherwise. One pass.
template <typename T>
void ReadData(absl::string_view data, Eigen::Index rows, Eigen::Index cols,
              Eigen::MatrixXd* out) {
  using RowMajorT = Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
  if (AlignedFor<T>(data.data())) {
    *out = Eigen::Map<const RowMajorT>(reinterpret_cast<const T*>(data.data()), rows, cols)
               .template cast<double>();
    return;
  }
  out->resize(rows, cols);
  for (Eigen::Index i = 0; i < rows; ++i) {
    for (Eigen::Index j = 0; j < cols; ++j) {
      (*out)(i, j) = LoadAt<T>(data.data(), static_cast<size_t>(i * cols + j));
    }
  }
}

// `m` as little-endian T into `bytes` (resized). One pass.
template <typename T>
void WriteData(const Eigen::Ref<const Eigen::MatrixXd>& m, std::string* bytes) {
  using RowMajorT = Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
  bytes->resize(static_cast<size_t>(m.size()) * sizeof(T));
  if (AlignedFor<T>(bytes->data())) {
    Eigen::Map<RowMajorT>(reinterpret_cast<T*>(bytes->data()), m.rows(), m.cols()) =
        m.template cast<T>();
    return;
  }
  for (Eigen::Index i = 0; i < m.rows(); ++i) {
    for (Eigen::Index j = 0; j < m.cols(); ++j) {
      const T v = static_cast<T>(m(i, j));
      std::memcpy(bytes->data() + (i * m.cols() + j) * sizeof(T), &v, sizeof(T));
    }
  }
}

}  // namespace

MatrixEncoding EncodingOf(const v1::Matrix& m) {
  if (m.data().empty() && m.dtype() == v1::DTYPE_UNSPECIFIED) return MatrixEncoding::kValues;
  return m.dtype() == v1::FLOAT32 ? MatrixEncoding::kFloat32 : MatrixEncoding::kFloat64;
}

MatrixEncoding ResponseEncodingFor(MatrixEncoding request) {
  return request == MatrixEncoding::kValues ? MatrixEncoding::kValues : MatrixEncoding::kFloat64;
}

absl::Status CheckMatrix(const v1::Matrix& m, absl::string_view field) {
  if (!v1::DType_IsValid(m.dtype())) {
    return absl::InvalidArgumentError(
        absl::StrFormat("%s.dtype: unknown value %d", field, static_cast<int>(m.dtype())));
  }
  if (m.values_size() > 0 && !m.data().empty()) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "%s.data: set values or data, never both (%d values and %d bytes given)", field,
        m.values_size(), m.data().size()));
  }
  if (m.values_size() > 0 && m.dtype() == v1::FLOAT32) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "%s.dtype: FLOAT32 describes data, but the matrix carries (double) values", field));
  }
  const uint64_t want = static_cast<uint64_t>(m.rows()) * m.cols();  // < 2^64
  const MatrixEncoding e = EncodingOf(m);
  if (e == MatrixEncoding::kValues) {
    if (static_cast<uint64_t>(m.values_size()) != want) {
      return absl::InvalidArgumentError(
          absl::StrFormat("%s.values: size %d != rows*cols = %d (rows %d, cols %d)", field,
                          m.values_size(), want, m.rows(), m.cols()));
    }
    return absl::OkStatus();
  }
  const size_t elem = ElementBytes(e);
  if (m.data().size() % elem != 0 || m.data().size() / elem != want) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "%s.data: %d bytes != rows*cols*%d = %d*%d (rows %d, cols %d, %s)", field,
        m.data().size(), elem, want, elem, m.rows(), m.cols(), DTypeName(e)));
  }
  return absl::OkStatus();
}

Eigen::MatrixXd MatrixFromBytes(absl::string_view bytes, MatrixEncoding encoding,
                                Eigen::Index rows, Eigen::Index cols) {
  Eigen::MatrixXd out;
  if (encoding == MatrixEncoding::kFloat32) {
    ReadData<float>(bytes, rows, cols, &out);
  } else {
    ReadData<double>(bytes, rows, cols, &out);
  }
  return out;
}

absl::StatusOr<Eigen::MatrixXd> MatrixFromProto(const v1::Matrix& m, absl::string_view field) {
  if (absl::Status s = CheckMatrix(m, field); !s.ok()) return s;
  const auto rows = static_cast<Eigen::Index>(m.rows());
  const auto cols = static_cast<Eigen::Index>(m.cols());
  const MatrixEncoding e = EncodingOf(m);
  if (e != MatrixEncoding::kValues) return MatrixFromBytes(m.data(), e, rows, cols);
  Eigen::MatrixXd out = Eigen::Map<const RowMajorMatrixXd>(m.values().data(), rows, cols);
  return out;
}

absl::Status AppendMatrixRows(const v1::Matrix& m, absl::string_view field,
                              std::vector<double>* row_major) {
  if (absl::Status s = CheckMatrix(m, field); !s.ok()) return s;
  const size_t old = row_major->size();
  const size_t n = static_cast<size_t>(m.rows()) * m.cols();
  switch (EncodingOf(m)) {
    case MatrixEncoding::kValues:
      row_major->insert(row_major->end(), m.values().begin(), m.values().end());
      break;
    case MatrixEncoding::kFloat64:
      row_major->resize(old + n);
      if (n > 0) std::memcpy(row_major->data() + old, m.data().data(), n * sizeof(double));
      break;
    case MatrixEncoding::kFloat32:
      row_major->resize(old + n);
      for (size_t k = 0; k < n; ++k) (*row_major)[old + k] = LoadAt<float>(m.data().data(), k);
      break;
  }
  return absl::OkStatus();
}

void MatrixToProto(const Eigen::Ref<const Eigen::MatrixXd>& m, MatrixEncoding encoding,
                   v1::Matrix* out) {
  out->Clear();
  out->set_rows(static_cast<uint32_t>(m.rows()));
  out->set_cols(static_cast<uint32_t>(m.cols()));
  switch (encoding) {
    case MatrixEncoding::kValues: {
      auto* values = out->mutable_values();
      values->Resize(static_cast<int>(m.size()), 0.0);
      Eigen::Map<RowMajorMatrixXd>(values->mutable_data(), m.rows(), m.cols()) = m;
      break;
    }
    case MatrixEncoding::kFloat64:
      out->set_dtype(v1::FLOAT64);
      WriteData<double>(m, out->mutable_data());
      break;
    case MatrixEncoding::kFloat32:
      out->set_dtype(v1::FLOAT32);
      WriteData<float>(m, out->mutable_data());
      break;
  }
}

v1::Matrix MatrixToProto(const Eigen::Ref<const Eigen::MatrixXd>& m, MatrixEncoding encoding) {
  v1::Matrix out;
  MatrixToProto(m, encoding, &out);
  return out;
}

v1::Matrix SliceMatrixRows(const v1::Matrix& m, uint64_t begin, uint64_t end) {
  v1::Matrix out;
  out.set_rows(static_cast<uint32_t>(end - begin));
  out.set_cols(m.cols());
  out.set_dtype(m.dtype());
  const uint64_t cols = m.cols();
  const MatrixEncoding e = EncodingOf(m);
  if (e == MatrixEncoding::kValues) {
    out.mutable_values()->Add(m.values().begin() + begin * cols,
                              m.values().begin() + end * cols);
  } else {
    const size_t elem = ElementBytes(e);
    out.set_data(m.data().substr(begin * cols * elem, (end - begin) * cols * elem));
  }
  return out;
}

}  // namespace ntk

#include "server/finite_response.h"

#include <cmath>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "proto/matrix_convert.h"
#include "proto/ntk/v1/ntk.pb.h"
#include "server/log.h"

namespace ntk::server {
namespace {

using google::protobuf::FieldDescriptor;
using google::protobuf::Message;
using google::protobuf::Reflection;

// Raw data of a Matrix: the first non-finite element's index, or -1.
int64_t FirstNonFiniteData(const v1::Matrix& m) {
  const MatrixEncoding e = EncodingOf(m);
  const uint64_t elements = static_cast<uint64_t>(m.rows()) * m.cols();
  const size_t element_bytes = e == MatrixEncoding::kFloat32 ? 4 : 8;
  if (e == MatrixEncoding::kValues || m.data().size() != elements * element_bytes) return -1;
  const Eigen::MatrixXd values = MatrixFromBytes(m.data(), e, static_cast<Eigen::Index>(m.rows()),
                                                 static_cast<Eigen::Index>(m.cols()));
  if (values.allFinite()) return -1;
  for (Eigen::Index i = 0; i < values.rows(); ++i) {
    for (Eigen::Index j = 0; j < values.cols(); ++j) {
      if (!std::isfinite(values(i, j))) return static_cast<int64_t>(i * values.cols() + j);
    }
  }
  return -1;
}

bool Find(const Message& message, const std::string& prefix, std::string* path);

bool FindInField(const Message& message, const FieldDescriptor* f, const std::string& name,
                 std::string* path) {
  const Reflection* r = message.GetReflection();
  const bool is_double = f->cpp_type() == FieldDescriptor::CPPTYPE_DOUBLE;
  const bool is_float = f->cpp_type() == FieldDescriptor::CPPTYPE_FLOAT;
  if (f->is_repeated()) {
    const int n = r->FieldSize(message, f);
    for (int i = 0; i < n; ++i) {
      const std::string item = absl::StrCat(name, "[", i, "]");
      if ((is_double && !std::isfinite(r->GetRepeatedDouble(message, f, i))) ||
          (is_float && !std::isfinite(r->GetRepeatedFloat(message, f, i)))) {
        *path = item;
        return true;
      }
      if (f->cpp_type() == FieldDescriptor::CPPTYPE_MESSAGE &&
          Find(r->GetRepeatedMessage(message, f, i), item, path)) {
        return true;
      }
    }
    return false;
  }
  if ((is_double && !std::isfinite(r->GetDouble(message, f))) ||
      (is_float && !std::isfinite(r->GetFloat(message, f)))) {
    *path = name;
    return true;
  }
  if (f->cpp_type() == FieldDescriptor::CPPTYPE_MESSAGE && r->HasField(message, f)) {
    return Find(r->GetMessage(message, f), name, path);
  }
  return false;
}

bool Find(const Message& message, const std::string& prefix, std::string* path) {
  if (const auto* m = dynamic_cast<const v1::Matrix*>(&message)) {
    // The bulk of every response: checked without per-element reflection.
    const auto& v = m->values();
    if (!Eigen::Map<const Eigen::VectorXd>(v.data(), v.size()).allFinite()) {
      for (int i = 0; i < v.size(); ++i) {
        if (!std::isfinite(v[i])) {
          *path = absl::StrCat(prefix, ".values[", i, "]");
          return true;
        }
      }
    }
    if (const int64_t i = FirstNonFiniteData(*m); i >= 0) {
      *path = absl::StrCat(prefix, ".data[", i, "]");
      return true;
    }
    return false;
  }
  const auto* d = message.GetDescriptor();
  for (int k = 0; k < d->field_count(); ++k) {
    const FieldDescriptor* f = d->field(k);
    const std::string name = prefix.empty() ? f->name() : absl::StrCat(prefix, ".", f->name());
    if (FindInField(message, f, name, path)) return true;
  }
  return false;
}

}  // namespace

std::string FirstNonFiniteField(const Message& message) {
  std::string path;
  Find(message, "", &path);
  return path;
}

absl::Status CheckResponseFinite(const char* method, const Message& message) {
  const std::string path = FirstNonFiniteField(message);
  if (path.empty()) return absl::OkStatus();
  Logf("edge: rpc=%s non-finite value in response field %s; answered INTERNAL", method, path);
  return absl::InternalError(absl::StrFormat(
      "%s: the computed answer contains a non-finite value (%s); it was not sent", method, path));
}

}  // namespace ntk::server

// libFuzzer target: model file bytes -> FittedModel::Deserialize
// (core/model/serialize.h). Each input is tried twice: as given (the magic,
// length and CRC checks) and "repaired" (payload length and CRC-32C made to
// match), so that mutations reach the payload parser behind the checksum.
// A model that loads must serialize back to bytes that load, and predict.
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>

#include "core/model/model.h"
#include "core/model/serialize.h"

namespace {

void Require(bool condition) {
  if (!condition) std::abort();
}

void Check(const std::string& bytes) {
  absl::StatusOr<std::unique_ptr<ntk::FittedModel>> m = ntk::FittedModel::Deserialize(bytes);
  if (!m.ok()) {
    const absl::StatusCode c = m.status().code();
    Require(c == absl::StatusCode::kDataLoss || c == absl::StatusCode::kUnimplemented);
    return;
  }
  const ntk::FittedModel& model = **m;
  const std::string again = model.Serialize();
  absl::StatusOr<std::unique_ptr<ntk::FittedModel>> back = ntk::FittedModel::Deserialize(again);
  Require(back.ok() && (*back)->Serialize() == again);
  // Bounded work: predict two rows when the model is small.
  const ntk::FittedModelInfo info = model.Info();
  const int64_t work = int64_t{info.num_train} * (info.num_features + info.num_classes);
  if (work > 0 && work <= 1 << 16) {
    Eigen::MatrixXd x = Eigen::MatrixXd::Ones(2, info.num_features);
    absl::StatusOr<ntk::Prediction> p = model.Predict(x);
    Require(!p.ok() || p->probabilities.rows() == 2);
  }
}

void PutLittleEndian(uint64_t v, int bytes, char* out) {
  for (int i = 0; i < bytes; ++i) out[i] = static_cast<char>(v >> (8 * i));
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string bytes(reinterpret_cast<const char*>(data), size);
  Check(bytes);
  constexpr size_t kCrcBytes = 4;
  if (size >= ntk::kModelHeaderBytes + kCrcBytes) {
    std::memcpy(bytes.data(), ntk::kModelMagic, sizeof(ntk::kModelMagic));
    PutLittleEndian(size - ntk::kModelHeaderBytes - kCrcBytes, 8, bytes.data() + 12);
    PutLittleEndian(ntk::Crc32c(bytes.data(), size - kCrcBytes), 4,
                    bytes.data() + size - kCrcBytes);
    Check(bytes);
  }
  return 0;
}

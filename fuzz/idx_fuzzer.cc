// libFuzzer target: ntkctl's IDX reader (tools/ntkctl/idx.h) on in-memory
// bytes, gunzipped first when they start with the gzip magic (as
// ReadIdxFile does). A small size limit keeps allocations bounded and
// exercises the RESOURCE_EXHAUSTED paths.
#include <cstdint>
#include <cstdlib>
#include <string>

#include "tools/ntkctl/idx.h"

namespace {

void Require(bool condition) {
  if (!condition) std::abort();
}

bool Refusal(const absl::Status& s) {
  return s.code() == absl::StatusCode::kInvalidArgument ||
         s.code() == absl::StatusCode::kResourceExhausted;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  ntkctl::IdxOptions options;
  options.max_bytes = 1 << 20;
  std::string bytes(reinterpret_cast<const char*>(data), size);
  if (size >= 2 && data[0] == 0x1f && data[1] == 0x8b) {
    absl::StatusOr<std::string> raw = ntkctl::Gunzip(bytes, "fuzz", options.max_bytes);
    if (!raw.ok()) {
      Require(Refusal(raw.status()));
      return 0;
    }
    Require(raw->size() <= options.max_bytes);
    bytes = *std::move(raw);
  }
  absl::StatusOr<ntkctl::IdxArray> a = ntkctl::ParseIdx(bytes, "fuzz", options);
  if (!a.ok()) {
    Require(Refusal(a.status()));
    return 0;
  }
  uint64_t n = 1;
  for (uint32_t d : a->dims) n *= d;
  Require(n == a->data.size());
  absl::StatusOr<Eigen::MatrixXd> x = ntkctl::IdxToFeatures(*a);
  absl::StatusOr<std::vector<int>> y = ntkctl::IdxToLabels(*a);
  Require(x.ok() != y.ok());
  return 0;
}

// libFuzzer target: a serialized FitRequest -> the server's conversion,
// core's DecideTrainingProblem and, for tiny data (fuzz/request_adapter.h FuzzBudget),
// FittedModel::Fit itself, Predict on the training rows and a
// Serialize/Deserialize round trip. Slower than the other targets: every
// accepted input is a real fit.
#include <cstdint>
#include <cstdlib>

#include "fuzz/request_adapter.h"
#include "google/protobuf/stubs/logging.h"
#include "proto/ntk/v1/ntk.pb.h"

// Invalid UTF-8 in string fields is a parse failure; protobuf's log line
// for each one would only slow the run down.
extern "C" int LLVMFuzzerInitialize(int*, char***) {
  google::protobuf::SetLogHandler(nullptr);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  ntk::v1::FitRequest r;
  if (!r.ParseFromArray(data, static_cast<int>(size))) return 0;
  const absl::Status s = ntk::fuzz::ConvertFit(r, ntk::fuzz::FuzzBudget{}, /*run_fit=*/true);
  ntk::fuzz::RequireOkOrInputError(s);
  return 0;
}

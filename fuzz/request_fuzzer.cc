// libFuzzer target: every RPC's request message -> the server's conversion
// and core's validation (through fuzz/request_adapter.h). Input: one
// selector byte (request type and which small model answers Predict /
// PredictDistribution), then the serialized message. Fit requests are only
// converted here (fit_fuzzer runs them); Predict / PredictDistribution run
// when tiny.
#include <cstdint>
#include <cstdlib>

#include "fuzz/request_adapter.h"
#include "fuzz/small_models.h"
#include "google/protobuf/stubs/logging.h"
#include "proto/ntk/v1/ntk.pb.h"

namespace {

template <typename Message>
bool Parse(const uint8_t* data, size_t size, Message* m) {
  return m->ParseFromArray(data, static_cast<int>(size));
}

}  // namespace

// Invalid UTF-8 in string fields is a parse failure; protobuf's log line
// for each one would only slow the run down.
extern "C" int LLVMFuzzerInitialize(int*, char***) {
  google::protobuf::SetLogHandler(nullptr);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  const uint8_t selector = data[0];
  const ntk::FittedModel& model = ntk::fuzz::SmallModel(selector >> 4);
  ++data;
  --size;
  const ntk::fuzz::FuzzBudget budget;
  absl::Status s;
  switch (selector % 6) {
    case 0: {
      ntk::v1::FitRequest r;
      if (!Parse(data, size, &r)) return 0;
      s = ntk::fuzz::ConvertFit(r, budget, /*run_fit=*/false);
      break;
    }
    case 1: {
      ntk::v1::PredictRequest r;
      if (!Parse(data, size, &r)) return 0;
      s = ntk::fuzz::ConvertPredict(r, model, budget);
      break;
    }
    case 2: {
      ntk::v1::PredictDistributionRequest r;
      if (!Parse(data, size, &r)) return 0;
      s = ntk::fuzz::ConvertPredictDistribution(r, model, budget);
      break;
    }
    case 3: {
      ntk::v1::GetModelRequest r;
      if (!Parse(data, size, &r)) return 0;
      s = ntk::fuzz::ConvertModelId(r.model_id());
      break;
    }
    case 4: {
      ntk::v1::DeleteModelRequest r;
      if (!Parse(data, size, &r)) return 0;
      s = ntk::fuzz::ConvertModelId(r.model_id());
      break;
    }
    default: {
      ntk::v1::ListModelsRequest r;  // no fields: parsing is the conversion
      if (!Parse(data, size, &r)) return 0;
      break;
    }
  }
  ntk::fuzz::RequireOkOrInputError(s);
  return 0;
}

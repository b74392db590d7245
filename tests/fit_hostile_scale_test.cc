// Regression tests for fuzz findings F1 and F2 (docs/testing.md "Findings"):
// tiny 2a Fits whose data or lambda make the fit unrepresentable in float64
// (a row of norm 1e43-1e48, lambda = 4e-5 next to a feature of 5e5).
//
//   F1: the client got INTERNAL "2a Newton solver did not converge" for its
//       own input. Now: OK, or INVALID_ARGUMENT naming
//       spec.training.regularization and what to change.
//   F2: a 6 x 2 Fit ran 2000 CG steps in each of 100 Newton steps (94 s under
//       ASan). Now CG on the 18-dimensional system stops at 10 N C = 180
//       steps; the work is counted by the progress callback, which the 2a
//       solver calls once per Newton step and once per CG step
//       (core/training/newton_cg.cc).
//
// The inputs are the fuzzer's reproducers in fuzz/findings/, converted the
// way the server converts a FitRequest.
#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "core/model/model.h"
#include "proto/ntk/v1/ntk.pb.h"
#include "server/convert.h"
#include "server/options.h"

namespace ntk {
namespace {

struct Outcome {
  absl::Status status;
  int64_t progress_calls = 0;
};

Outcome FitFinding(const std::string& name) {
  std::ifstream in(std::string(NTK_SOURCE_DIR) + "/fuzz/findings/" + name, std::ios::binary);
  std::stringstream bytes;
  bytes << in.rdbuf();
  v1::FitRequest r;
  EXPECT_TRUE(r.ParseFromString(bytes.str())) << name;
  const server::ServerOptions limits;
  absl::StatusOr<ModelSpec> spec = server::ModelSpecFromProto(r.spec(), limits);
  EXPECT_TRUE(spec.ok()) << spec.status();
  absl::StatusOr<TrainingData> data = server::TrainingDataFromProto(r, limits);
  EXPECT_TRUE(data.ok()) << data.status();
  Outcome out;
  if (!spec.ok() || !data.ok()) return out;
  FitOptions options;
  options.progress = [&out](double, const char*) {
    ++out.progress_calls;
    return true;
  };
  out.status = FittedModel::Fit(*spec, *data, options).status();
  std::printf("%s: %lld progress calls, %s\n", name.c_str(),
              static_cast<long long>(out.progress_calls), out.status.ToString().c_str());
  return out;
}

// Newton steps (FitOptions::max_iterations = 100) x (the CG cap 10 N C =
// 180 for N = 6, C = 3, plus the Newton step's own call), plus 100 for the
// other phases' reports (kernels, preconditioner, ...). Without the cap
// F2 made 100 x 2000 calls.
constexpr int64_t kMaxProgressCalls = 101 * (180 + 1) + 100;

void ExpectOkOrPreciseRefusal(const Outcome& o) {
  if (o.status.ok()) return;
  EXPECT_EQ(o.status.code(), absl::StatusCode::kInvalidArgument) << o.status;
  EXPECT_THAT(std::string(o.status.message()),
              ::testing::StartsWith("spec.training.regularization: "));
  EXPECT_THAT(std::string(o.status.message()), ::testing::HasSubstr("rescale the features"));
}

TEST(FitHostileScaleTest, F1SmallLambdaIsAPreciseRefusal) {
  const Outcome o = FitFinding("fit-newton-internal-small-lambda");
  ExpectOkOrPreciseRefusal(o);
  EXPECT_LE(o.progress_calls, kMaxProgressCalls);
}

TEST(FitHostileScaleTest, F1HugeFeatureIsAPreciseRefusal) {
  const Outcome o = FitFinding("fit-newton-internal-1e48");
  ExpectOkOrPreciseRefusal(o);
  EXPECT_LE(o.progress_calls, kMaxProgressCalls);
}

TEST(FitHostileScaleTest, F2HugeFeatureDoesBoundedWork) {
  const Outcome o = FitFinding("fit-slow-4e43-feature");
  ExpectOkOrPreciseRefusal(o);
  EXPECT_LE(o.progress_calls, kMaxProgressCalls);
}

}  // namespace
}  // namespace ntk

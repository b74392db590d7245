// --max_request_seconds (issue 11 item 2): a call without a deadline whose
// work runs past the ceiling is stopped at its next progress check and
// answered RESOURCE_EXHAUSTED naming the flag; a Fit stopped so keeps no
// model. Calls with a deadline are bounded by the deadline instead.
#include <chrono>
#include <memory>
#include <string>

#include <grpcpp/grpcpp.h>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "proto/matrix_convert.h"
#include "tests/testing/server_fixture.h"

namespace ntk {
namespace {

using ::testing::HasSubstr;
using testing::InProcessServer;
using testing::TempDir;

// 1 ms: every call below does far more work than that (the Fit's
// eigendecomposition of a 600 x 600 Theta alone is ~7e7 flops, the
// PredictDistribution 20000 Monte Carlo samples per row), so the ceiling
// stops each of them at its first progress check after the start.
constexpr double kCeilingSeconds = 0.001;

v1::FitRequest FitOf(const std::string& id, const testing::Blobs& b) {
  v1::FitRequest r;
  r.set_model_id(id);
  *r.mutable_spec() = testing::SmallSpec(0.5);
  *r.mutable_features() = MatrixToProto(b.x);
  r.mutable_labels()->Add(b.y.begin(), b.y.end());
  return r;
}

TEST(TimeCeilingTest, CallsWithoutDeadlineStopAtTheCeiling) {
  TempDir dir;
  server::ServerOptions options = testing::TestServerOptions(dir.path());
  options.max_request_seconds = kCeilingSeconds;
  auto server = InProcessServer::Start(options);
  ASSERT_NE(server, nullptr);
  auto stub = server->RawStub();
  const testing::Blobs big = testing::MakeBlobs(600, 10, 3, 5);

  {  // No deadline: stopped, RESOURCE_EXHAUSTED naming the flag, no model.
    grpc::ClientContext ctx;
    v1::FitResponse response;
    grpc::Status s = stub->Fit(&ctx, FitOf("big", big), &response);
    EXPECT_EQ(s.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED) << s.error_message();
    EXPECT_THAT(s.error_message(), HasSubstr("--max_request_seconds = 0.001"));
    grpc::ClientContext get_ctx;
    v1::GetModelRequest get;
    get.set_model_id("big");
    v1::ModelInfo info;
    EXPECT_EQ(stub->GetModel(&get_ctx, get, &info).error_code(), grpc::StatusCode::NOT_FOUND);
  }
  {  // With a deadline the ceiling does not apply: the same Fit succeeds.
    auto ctx = testing::CallContext(std::chrono::seconds(600));
    v1::FitResponse response;
    grpc::Status s = stub->Fit(ctx.get(), FitOf("big", big), &response);
    ASSERT_TRUE(s.ok()) << s.error_message();
  }
  {  // PredictDistribution without a deadline: stopped likewise.
    grpc::ClientContext ctx;
    v1::PredictDistributionRequest r;
    r.set_model_id("big");
    *r.mutable_features() = MatrixToProto(big.x.topRows(50));
    r.set_method(v1::MONTE_CARLO);
    r.set_num_samples(20000);
    v1::PredictDistributionResponse response;
    grpc::Status s = stub->PredictDistribution(&ctx, r, &response);
    EXPECT_EQ(s.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED) << s.error_message();
    EXPECT_THAT(s.error_message(), HasSubstr("--max_request_seconds"));
  }
}

}  // namespace
}  // namespace ntk

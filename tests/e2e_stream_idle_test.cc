// Issue 11 finding 2: an idle FitStream cannot hold a fit slot. The slot is
// taken only once a stream's data is complete, and a stream that sends
// nothing for --stream_idle_seconds is ended with DEADLINE_EXCEEDED.
#include <chrono>
#include <memory>
#include <string>
#include <vector>

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

v1::FitRequest FitMessage(const std::string& id) {
  testing::Blobs b = testing::MakeBlobs(20, 3, 2, 9);
  v1::FitRequest r;
  r.set_model_id(id);
  *r.mutable_spec() = testing::SmallSpec(1.0);
  *r.mutable_features() = MatrixToProto(b.x);
  r.mutable_labels()->Add(b.y.begin(), b.y.end());
  return r;
}

// A client that sends one chunk and then nothing.
struct IdleStream {
  grpc::ClientContext ctx;
  v1::FitResponse response;
  std::unique_ptr<grpc::ClientWriter<v1::FitRequest>> writer;
};

TEST(StreamIdleTest, IdleStreamsHoldNoSlotAndAreEnded) {
  TempDir dir;
  server::ServerOptions o = testing::TestServerOptions(dir.path());
  o.max_concurrent_fits = 1;
  o.stream_idle_seconds = 1;  // configuration, not a timing assertion
  auto server = InProcessServer::Start(o);
  ASSERT_NE(server, nullptr);
  auto stub = server->RawStub();

  std::vector<std::unique_ptr<IdleStream>> idle;
  for (int i = 0; i < 2; ++i) {
    auto s = std::make_unique<IdleStream>();
    // Generous: the server ends the stream long before (1 s idle limit); a
    // client-side expiry would say "Deadline Exceeded" without the flag name.
    s->ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(120));
    s->writer = stub->FitStream(&s->ctx, &s->response);
    ASSERT_TRUE(s->writer->Write(FitMessage("idle" + std::to_string(i))));
    idle.push_back(std::move(s));
  }

  // With both streams open (and the only fit slot free), a Fit runs.
  {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(60));
    v1::FitResponse resp;
    grpc::Status s = stub->Fit(&ctx, FitMessage("unary"), &resp);
    EXPECT_TRUE(s.ok()) << s.error_code() << " " << s.error_message();
  }

  // Each idle stream is ended by the server, naming the flag.
  for (auto& s : idle) {
    grpc::Status st = s->writer->Finish();
    EXPECT_EQ(st.error_code(), grpc::StatusCode::DEADLINE_EXCEEDED) << st.error_message();
    EXPECT_THAT(st.error_message(), HasSubstr("--stream_idle_seconds"));
  }

  // A complete stream still fits afterwards (slots were released).
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(60));
  v1::FitResponse resp;
  auto writer = stub->FitStream(&ctx, &resp);
  ASSERT_TRUE(writer->Write(FitMessage("streamed")));
  writer->WritesDone();
  grpc::Status st = writer->Finish();
  EXPECT_TRUE(st.ok()) << st.error_message();
  EXPECT_EQ(resp.model().model_id(), "streamed");
}

}  // namespace
}  // namespace ntk

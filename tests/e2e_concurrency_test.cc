// Concurrency end to end: readers while a model is replaced and deleted,
// deadlines and cancellation of fits, --max_concurrent_fits, and FitStream
// with more than 4 MiB of data.
#include <atomic>
#include <thread>
#include <vector>

#include <grpcpp/grpcpp.h>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/model_store.h"
#include "tests/testing/server_fixture.h"

namespace ntk {
namespace {

using testing::InProcessServer;
using testing::TempDir;

TEST(ConcurrencyTest, ReadersSeeTheOldOrTheNewModelNeverAMix) {
  TempDir dir;
  auto server = InProcessServer::Start(testing::TestServerOptions(dir.path()));
  ASSERT_NE(server, nullptr);
  auto c = server->Connect();
  const testing::Blobs a = testing::MakeBlobs(120, 6, 3, 21);
  const testing::Blobs b = testing::MakeBlobs(150, 6, 3, 22);
  const Eigen::MatrixXd q = testing::MakeBlobs(5, 6, 3, 23).x;
  ASSERT_TRUE(c->Fit("m", testing::SmallSpec(1.0), a.x, a.y).ok());
  auto answer_a = c->Predict("m", q);
  ASSERT_TRUE(answer_a.ok());

  struct Seen {
    absl::StatusCode code;
    Eigen::MatrixXd logits;
  };
  constexpr int kReaders = 4;
  constexpr int kMaxCallsPerReader = 20000;  // bounded in count ...
  std::atomic<bool> stop{false};
  std::atomic<int> calls{0};
  std::vector<std::vector<Seen>> seen(kReaders);
  std::vector<std::thread> readers;
  for (int r = 0; r < kReaders; ++r) {
    readers.emplace_back([&, r] {
      auto rc = server->Connect();
      for (int k = 0; k < kMaxCallsPerReader && !stop; ++k) {
        auto p = rc->Predict("m", q);
        seen[r].push_back({p.status().code(), p.ok() ? p->logits : Eigen::MatrixXd()});
        ++calls;
      }
    });
  }
  // ... and in time: the writer does a fixed sequence and then stops them.
  auto replaced = c->Fit("m", testing::SmallSpec(1.0), b.x, b.y, {}, /*replace=*/true);
  ASSERT_TRUE(replaced.ok()) << replaced.status();
  EXPECT_EQ(replaced->num_train(), 150u);
  auto answer_b = c->Predict("m", q);
  ASSERT_TRUE(answer_b.ok());
  ASSERT_NE(answer_a->logits, answer_b->logits);
  // Let the readers see each state: wait (by count, not time) until they
  // have made kReaders more calls, or have all finished.
  auto let_readers_run = [&] {
    const int target = calls + kReaders;
    while (calls < target && calls < kReaders * kMaxCallsPerReader) std::this_thread::yield();
  };
  ASSERT_TRUE(c->DeleteModel("m").ok());
  let_readers_run();
  ASSERT_TRUE(c->Fit("m", testing::SmallSpec(1.0), a.x, a.y).ok());
  let_readers_run();
  stop = true;
  for (auto& t : readers) t.join();

  int old_count = 0, new_count = 0, missing = 0;
  for (const auto& per_reader : seen) {
    for (const Seen& s : per_reader) {
      // Absent: deleted (NOT_FOUND), or its re-fit is FITTING
      // (FAILED_PRECONDITION, docs/api.md "Long fits").
      if (s.code == absl::StatusCode::kNotFound ||
          s.code == absl::StatusCode::kFailedPrecondition) {
        ++missing;
        continue;
      }
      ASSERT_EQ(s.code, absl::StatusCode::kOk);
      // Bit-for-bit one of the two models' answers (the refit of `a` after
      // the delete gives `a`'s answer: same data, same code).
      const bool is_a = s.logits == answer_a->logits;
      const bool is_b = s.logits == answer_b->logits;
      ASSERT_TRUE(is_a || is_b) << "a reader saw an answer of neither model";
      old_count += is_a;
      new_count += is_b;
    }
  }
  std::printf("readers saw: %d old, %d new, %d not found\n", old_count, new_count, missing);
  EXPECT_GT(old_count + new_count, 0);
  EXPECT_THAT(dir.List(), ::testing::ElementsAre("m.ntkm"));
}

server::ServerOptions OneFitAtATime(const TempDir& dir) {
  server::ServerOptions o = testing::TestServerOptions(dir.path());
  o.max_concurrent_fits = 1;
  return o;
}

// The first FitStream message for `id`: spec and the first 10 rows.
v1::FitRequest FirstHalf(const std::string& id, const testing::Blobs& data) {
  v1::FitRequest r;
  r.set_model_id(id);
  *r.mutable_spec() = testing::SmallSpec(1.0);
  *r.mutable_features() = Client::ToProto(data.x.topRows(10));
  r.mutable_labels()->Add(data.y.begin(), data.y.begin() + 10);
  return r;
}

// Deadlines, deterministically: (1) a Fit whose deadline has already
// passed; (2) a FitStream whose deadline passes while the server holds its
// fit slot and waits for the rest of the data, which this test never sends
// (so the outcome does not depend on how fast the machine fits). Neither
// leaves a model or a file, and the slot of (2) is released: a small fit
// gets through with --max_concurrent_fits = 1.
TEST(ConcurrencyTest, ExpiredDeadlinesLeaveNoModelAndNoFile) {
  TempDir dir;
  auto server = InProcessServer::Start(OneFitAtATime(dir));
  ASSERT_NE(server, nullptr);
  auto raw = server->RawStub();
  const testing::Blobs data = testing::MakeBlobs(20, 3, 2, 31);
  const v1::FitRequest request = FirstHalf("late", data);

  {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() - std::chrono::seconds(1));
    v1::FitResponse resp;
    EXPECT_EQ(raw->Fit(&ctx, request, &resp).error_code(), grpc::StatusCode::DEADLINE_EXCEEDED);
  }
  {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::milliseconds(300));
    v1::FitResponse resp;
    auto writer = raw->FitStream(&ctx, &resp);
    ASSERT_TRUE(writer->Write(request));
    // No WritesDone: the stream can only end by its deadline.
    EXPECT_EQ(writer->Finish().error_code(), grpc::StatusCode::DEADLINE_EXCEEDED);
  }

  // The server releases the stream's slot when its handler sees the
  // cancellation, a moment after the client did: bounded by count.
  auto c = server->Connect();
  absl::Status small_status;
  for (int attempt = 0; attempt < 2000; ++attempt) {
    small_status = c->Fit("small", testing::SmallSpec(1.0), data.x, data.y).status();
    if (small_status.code() != absl::StatusCode::kResourceExhausted) break;
  }
  EXPECT_TRUE(small_status.ok()) << small_status;
  EXPECT_EQ(c->GetModel("late").status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(dir.List(), ::testing::ElementsAre("small.ntkm"));
}

TEST(ConcurrencyTest, MaxConcurrentFitsIsResourceExhausted) {
  TempDir dir;
  auto server = InProcessServer::Start(OneFitAtATime(dir));
  ASSERT_NE(server, nullptr);
  // An open FitStream holds no fit slot (it takes one once its data is
  // complete; e2e_stream_idle_test), so a large Fit holds the only slot
  // here while it runs, retried should a probe below hold the slot at the
  // moment it arrives.
  auto raw = server->RawStub();
  const testing::Blobs data = testing::MakeBlobs(20, 3, 2, 33);
  grpc::ClientContext stream_ctx;
  v1::FitResponse stream_resp;
  auto writer = raw->FitStream(&stream_ctx, &stream_resp);
  const v1::FitRequest first = FirstHalf("streamed", data);
  ASSERT_TRUE(writer->Write(first));

  auto c = server->Connect();
  const testing::Blobs big = testing::MakeBlobs(3000, 3, 2, 34);
  std::atomic<bool> big_done{false};
  absl::Status big_status;
  std::thread holder([&] {
    do {
      big_status = c->Fit("big", testing::SmallSpec(1.0), big.x, big.y).status();
    } while (big_status.code() == absl::StatusCode::kResourceExhausted);
    big_done = true;
  });
  // Probes: a Fit with no rows takes the slot, if free, only to be refused
  // as INVALID_ARGUMENT at once; while the large fit runs, it is refused.
  // Bounded by the large fit's end.
  auto probe = server->Connect();
  absl::Status refused;
  do {
    refused = probe->Fit("other", testing::SmallSpec(1.0), Eigen::MatrixXd(0, 3), {}).status();
  } while (refused.code() != absl::StatusCode::kResourceExhausted && !big_done);
  holder.join();
  ASSERT_TRUE(big_status.ok()) << big_status;
  EXPECT_EQ(refused.code(), absl::StatusCode::kResourceExhausted) << refused;
  EXPECT_THAT(std::string(refused.message()), ::testing::HasSubstr("--max_concurrent_fits = 1"));

  // Finishing the stream fits the model and frees the slot.
  v1::FitRequest second;
  *second.mutable_features() = Client::ToProto(data.x.bottomRows(10));
  second.mutable_labels()->Add(data.y.begin() + 10, data.y.end());
  ASSERT_TRUE(writer->Write(second));
  writer->WritesDone();
  grpc::Status s = writer->Finish();
  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_EQ(stream_resp.model().num_train(), 20u);
  EXPECT_TRUE(c->Fit("other", testing::SmallSpec(1.0), data.x, data.y).ok());
  // Both halves were used in order: the streamed model equals a one-shot fit.
  auto a = c->Predict("streamed", data.x);
  auto b = c->Predict("other", data.x);
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_EQ(a->logits, b->logits);
}

TEST(ConcurrencyTest, FitStreamOverFourMiB) {
  TempDir dir1, dir2;
  // Server 1 accepts messages of at most 4 MiB: 5.6 MB of features must stream.
  server::ServerOptions o1 = testing::TestServerOptions(dir1.path());
  o1.max_message_mb = 4;
  auto streamed_server = InProcessServer::Start(o1);
  auto unary_server = InProcessServer::Start(testing::TestServerOptions(dir2.path()));
  ASSERT_NE(streamed_server, nullptr);
  ASSERT_NE(unary_server, nullptr);
  ClientOptions small;
  small.max_message_mb = 4;
  auto cs = streamed_server->Connect(small);
  auto cu = unary_server->Connect();
  const testing::Blobs data = testing::MakeBlobs(1000, 700, 2, 41);  // 5.6 MB
  auto a = cs->Fit("big", testing::SmallSpec(1.0), data.x, data.y);
  ASSERT_TRUE(a.ok()) << a.status();
  EXPECT_EQ(a->num_train(), 1000u);
  EXPECT_EQ(a->num_features(), 700u);
  auto b = cu->Fit("big", testing::SmallSpec(1.0), data.x, data.y);
  ASSERT_TRUE(b.ok()) << b.status();
  // Same rows, same order, same code: the same model bit for bit.
  const Eigen::MatrixXd q = data.x.topRows(10);
  auto pa = cs->Predict("big", q);
  auto pb = cu->Predict("big", q);
  ASSERT_TRUE(pa.ok() && pb.ok());
  EXPECT_EQ(pa->logits, pb->logits);
  // And the one-message Fit of that size is refused by server 1.
  auto raw = streamed_server->RawStub();
  v1::FitRequest r;
  r.set_model_id("unary");
  *r.mutable_spec() = testing::SmallSpec(1.0);
  *r.mutable_features() = Client::ToProto(data.x);
  r.mutable_labels()->Add(data.y.begin(), data.y.end());
  grpc::ClientContext ctx;
  v1::FitResponse resp;
  EXPECT_EQ(raw->Fit(&ctx, r, &resp).error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
}

}  // namespace
}  // namespace ntk

// Long fits end to end (docs/api.md "Long fits"): FitRequest.background,
// ModelInfo.state/progress/error, WatchModel, DeleteModel of a FITTING
// model. No sleeps: the tests wait on the server's own streams (WatchModel)
// and on call completion; nothing asserts wall-clock times.
#include <algorithm>
#include <chrono>
#include <filesystem>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <grpcpp/grpcpp.h>

#include "gtest/gtest.h"
#include "proto/matrix_convert.h"
#include "tests/testing/server_fixture.h"

namespace ntk {
namespace {

using testing::InProcessServer;
using testing::TempDir;

std::unique_ptr<grpc::ClientContext> Ctx() { return testing::CallContext(std::chrono::seconds(120)); }

v1::FitRequest FitRequestFor(const std::string& id, const testing::Blobs& b, bool background) {
  v1::FitRequest r;
  r.set_model_id(id);
  *r.mutable_spec() = testing::SmallSpec(1.0);
  *r.mutable_features() = MatrixToProto(b.x, MatrixEncoding::kFloat64);
  r.mutable_labels()->Add(b.y.begin(), b.y.end());
  r.set_background(background);
  return r;
}

// Every ModelInfo WatchModel streams for `id`, and the stream's status.
struct Watched {
  std::vector<v1::ModelInfo> infos;
  grpc::Status status;
};
Watched Watch(v1::NtkService::Stub* stub, const std::string& id) {
  Watched w;
  v1::GetModelRequest req;
  req.set_model_id(id);
  auto ctx = Ctx();
  std::unique_ptr<grpc::ClientReader<v1::ModelInfo>> reader = stub->WatchModel(ctx.get(), req);
  v1::ModelInfo info;
  while (reader->Read(&info)) w.infos.push_back(info);
  w.status = reader->Finish();
  return w;
}

// Files in the model directory (the store writes <id>.ntkm).
std::vector<std::string> ModelFiles(const std::string& dir) {
  std::vector<std::string> out;
  if (!std::filesystem::exists(dir)) return out;
  for (const auto& e : std::filesystem::directory_iterator(dir)) {
    const std::string name = e.path().filename().string();
    if (name != ".lock") out.push_back(name);
  }
  return out;
}

class LongFitTest : public ::testing::Test {
 protected:
  void SetUp() override {
    server_ = InProcessServer::Start(testing::TestServerOptions(dir_.path()));
    ASSERT_NE(server_, nullptr);
    stub_ = server_->RawStub();
  }
  TempDir dir_;
  std::unique_ptr<InProcessServer> server_;
  std::unique_ptr<v1::NtkService::Stub> stub_;
};

TEST_F(LongFitTest, BackgroundFitIsWatchedToReadyAndPredictsLikeASynchronousFit) {
  const testing::Blobs b = testing::MakeBlobs(300, 6, 3, 41);
  v1::FitResponse bg;
  grpc::Status s = stub_->Fit(Ctx().get(), FitRequestFor("bg", b, true), &bg);
  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_EQ(bg.model().model_id(), "bg");
  // The answer comes before the fit ends; it can only say FITTING.
  EXPECT_EQ(bg.model().state(), v1::FITTING);
  EXPECT_EQ(bg.model().num_train(), 300u);

  const Watched w = Watch(stub_.get(), "bg");
  ASSERT_TRUE(w.status.ok()) << w.status.error_message();
  ASSERT_FALSE(w.infos.empty());
  EXPECT_EQ(w.infos.back().state(), v1::READY);
  double last = 0;
  for (size_t i = 0; i + 1 < w.infos.size(); ++i) {
    const v1::ModelInfo& info = w.infos[i];
    EXPECT_EQ(info.state(), v1::FITTING) << i;
    EXPECT_GE(info.progress().fraction(), last) << i;  // never decreasing
    EXPECT_LE(info.progress().fraction(), 1.0) << i;
    EXPECT_GE(info.progress().elapsed_seconds(), 0.0) << i;
    last = info.progress().fraction();
  }
  v1::ModelInfo got;
  v1::GetModelRequest get;
  get.set_model_id("bg");
  ASSERT_TRUE(stub_->GetModel(Ctx().get(), get, &got).ok());
  EXPECT_EQ(got.state(), v1::READY);
  EXPECT_EQ(got.stats().solver_iterations(), w.infos.back().stats().solver_iterations());

  v1::FitResponse sync;
  s = stub_->Fit(Ctx().get(), FitRequestFor("sync", b, false), &sync);
  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_EQ(sync.model().state(), v1::READY);

  // Same data, same spec, same deterministic code: identical predictions.
  const Eigen::MatrixXd q = testing::MakeBlobs(9, 6, 3, 42).x;
  v1::PredictResponse p_bg, p_sync;
  v1::PredictRequest pr;
  *pr.mutable_features() = MatrixToProto(q);
  pr.set_model_id("bg");
  ASSERT_TRUE(stub_->Predict(Ctx().get(), pr, &p_bg).ok());
  pr.set_model_id("sync");
  ASSERT_TRUE(stub_->Predict(Ctx().get(), pr, &p_sync).ok());
  ASSERT_EQ(p_bg.probabilities().values_size(), 27);
  for (int i = 0; i < 27; ++i) {
    EXPECT_EQ(p_bg.probabilities().values(i), p_sync.probabilities().values(i)) << i;
  }
  // A watch of a READY model: one READY message, then OK.
  const Watched again = Watch(stub_.get(), "bg");
  ASSERT_TRUE(again.status.ok());
  ASSERT_EQ(again.infos.size(), 1u);
  EXPECT_EQ(again.infos[0].state(), v1::READY);
}

TEST_F(LongFitTest, WatchOfAnUnknownIdIsNotFound) {
  const Watched w = Watch(stub_.get(), "nothing-here");
  EXPECT_EQ(w.status.error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_TRUE(w.infos.empty());
}

// A fit large enough that it is still running when DeleteModel arrives:
// 4000 rows, cross-entropy with a small lambda (a Newton solve of many CG
// iterations after an N x N kernel). The watch proves it was FITTING when
// deleted: it ends FAILED (cancelled), never READY.
TEST_F(LongFitTest, DeleteOfAFittingModelCancelsItAndLeavesNothing) {
  const testing::Blobs b = testing::MakeBlobs(4000, 20, 10, 43);
  v1::FitRequest req = FitRequestFor("big", b, true);
  req.mutable_spec()->mutable_training()->set_regularization(1e-6);
  v1::FitResponse bg;
  grpc::Status s = stub_->Fit(Ctx().get(), req, &bg);
  ASSERT_TRUE(s.ok()) << s.error_message();
  ASSERT_EQ(bg.model().state(), v1::FITTING);

  // Watch from another thread; delete once the watch saw the fit running.
  v1::GetModelRequest get;
  get.set_model_id("big");
  auto ctx = Ctx();
  std::unique_ptr<grpc::ClientReader<v1::ModelInfo>> reader = stub_->WatchModel(ctx.get(), get);
  v1::ModelInfo first;
  ASSERT_TRUE(reader->Read(&first));
  ASSERT_EQ(first.state(), v1::FITTING);

  // Predict on a FITTING model: FAILED_PRECONDITION naming the state.
  v1::PredictRequest pr;
  pr.set_model_id("big");
  *pr.mutable_features() = MatrixToProto(b.x.topRows(1));
  v1::PredictResponse presp;
  s = stub_->Predict(Ctx().get(), pr, &presp);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_NE(s.error_message().find("FITTING"), std::string::npos) << s.error_message();
  // GetModel and ListModels show it as FITTING.
  v1::ModelInfo info;
  ASSERT_TRUE(stub_->GetModel(Ctx().get(), get, &info).ok());
  EXPECT_EQ(info.state(), v1::FITTING);
  v1::ListModelsResponse list;
  ASSERT_TRUE(stub_->ListModels(Ctx().get(), v1::ListModelsRequest(), &list).ok());
  ASSERT_EQ(list.models_size(), 1);
  EXPECT_EQ(list.models(0).state(), v1::FITTING);

  v1::DeleteModelRequest del;
  del.set_model_id("big");
  v1::DeleteModelResponse dresp;
  s = stub_->DeleteModel(Ctx().get(), del, &dresp);
  ASSERT_TRUE(s.ok()) << s.error_message();

  v1::ModelInfo last = first, m;
  while (reader->Read(&m)) last = m;
  ASSERT_TRUE(reader->Finish().ok());
  EXPECT_EQ(last.state(), v1::FAILED);
  EXPECT_NE(last.error().find("cancelled"), std::string::npos) << last.error();

  // DeleteModel returned after the fit stopped: nothing is left.
  s = stub_->GetModel(Ctx().get(), get, &info);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_TRUE(ModelFiles(dir_.path()).empty());
  EXPECT_EQ(server_->server().registry().size(), 0u);
  EXPECT_EQ(server_->server().registry().fits().Find("big"), nullptr);
  // Its fit slot and reservation are free again: the same id fits at once.
  const testing::Blobs small = testing::MakeBlobs(30, 4, 2, 44);
  v1::FitResponse again;
  s = stub_->Fit(Ctx().get(), FitRequestFor("big", small, false), &again);
  EXPECT_TRUE(s.ok()) << s.error_message();
}

TEST_F(LongFitTest, BackgroundFitThatFailsInCoreIsFailedWithItsMessageAndNoFile) {
  testing::Blobs b = testing::MakeBlobs(50, 4, 2, 45);
  b.x(7, 2) = std::numeric_limits<double>::quiet_NaN();  // core's check, not the server's
  v1::FitResponse bg;
  grpc::Status s = stub_->Fit(Ctx().get(), FitRequestFor("bad", b, true), &bg);
  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_EQ(bg.model().state(), v1::FITTING);

  const Watched w = Watch(stub_.get(), "bad");
  ASSERT_TRUE(w.status.ok()) << w.status.error_message();
  ASSERT_FALSE(w.infos.empty());
  const v1::ModelInfo& last = w.infos.back();
  EXPECT_EQ(last.state(), v1::FAILED);
  EXPECT_NE(last.error().find("features"), std::string::npos) << last.error();

  v1::GetModelRequest get;
  get.set_model_id("bad");
  v1::ModelInfo info;
  ASSERT_TRUE(stub_->GetModel(Ctx().get(), get, &info).ok());
  EXPECT_EQ(info.state(), v1::FAILED);
  EXPECT_EQ(info.error(), last.error());
  v1::PredictRequest pr;
  pr.set_model_id("bad");
  *pr.mutable_features() = MatrixToProto(testing::MakeBlobs(1, 4, 2, 46).x);
  v1::PredictResponse presp;
  s = stub_->Predict(Ctx().get(), pr, &presp);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_NE(s.error_message().find("FAILED"), std::string::npos) << s.error_message();
  EXPECT_TRUE(ModelFiles(dir_.path()).empty());

  v1::DeleteModelRequest del;
  del.set_model_id("bad");
  v1::DeleteModelResponse dresp;
  ASSERT_TRUE(stub_->DeleteModel(Ctx().get(), del, &dresp).ok());
  s = stub_->GetModel(Ctx().get(), get, &info);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::NOT_FOUND);
}

TEST_F(LongFitTest, WatchOfASynchronousFitEndsReadyWithTheFitsModel) {
  const testing::Blobs b = testing::MakeBlobs(1500, 10, 4, 47);
  v1::FitResponse sync;
  grpc::Status fit_status;
  std::thread fit([&] {
    fit_status = stub_->Fit(Ctx().get(), FitRequestFor("s", b, false), &sync);
  });
  // Until the fit has registered its id the watch is NOT_FOUND; each retry
  // is one round trip, bounded by a count, not a clock.
  Watched w;
  for (int i = 0; i < 100000; ++i) {
    w = Watch(stub_.get(), "s");
    if (w.status.error_code() != grpc::StatusCode::NOT_FOUND) break;
  }
  fit.join();
  ASSERT_TRUE(fit_status.ok()) << fit_status.error_message();
  ASSERT_TRUE(w.status.ok()) << w.status.error_message();
  ASSERT_FALSE(w.infos.empty());
  EXPECT_EQ(w.infos.back().state(), v1::READY);
  EXPECT_EQ(w.infos.back().created_unix_ms(), sync.model().created_unix_ms());
}

// The C++ client: a fit too large for one message (FitStream) keeps
// `background` (only the first message carries it), and Client::WatchModel
// reports every update and returns the READY model.
TEST_F(LongFitTest, ClientStreamsABackgroundFitAndWatchesItToReady) {
  ClientOptions options;
  options.max_message_mb = 1;  // 2000 x 80 doubles (1.28 MB) must stream
  std::unique_ptr<Client> client = server_->Connect(options);
  const testing::Blobs b = testing::MakeBlobs(2000, 80, 3, 48);
  v1::FitRequest req;
  req.set_model_id("streamed");
  *req.mutable_spec() = testing::SmallSpec(1.0);
  *req.mutable_features() = MatrixToProto(b.x);
  req.mutable_labels()->Add(b.y.begin(), b.y.end());
  req.set_background(true);
  ASSERT_GT(req.ByteSizeLong(), 1u << 20);  // over the client's 3/4 MiB: FitStream
  absl::StatusOr<v1::ModelInfo> started = client->Fit(req);
  ASSERT_TRUE(started.ok()) << started.status();
  EXPECT_EQ(started->state(), v1::FITTING);
  EXPECT_EQ(started->num_train(), 2000u);

  int updates = 0;
  absl::StatusOr<v1::ModelInfo> done =
      client->WatchModel("streamed", [&updates](const v1::ModelInfo&) {
        ++updates;
        return true;
      });
  ASSERT_TRUE(done.ok()) << done.status();
  EXPECT_EQ(done->state(), v1::READY);
  EXPECT_EQ(done->num_train(), 2000u);
  EXPECT_GE(updates, 1);
}

}  // namespace
}  // namespace ntk

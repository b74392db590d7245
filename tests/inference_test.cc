// ntk/tests/inference_test.cc: server/inference.h's Predict, the one path
// behind ntk.v1 Predict and OIP ModelInfer (gRPC and REST):
// - a call that stopped (client gone, deadline passed) before its work
//   started is answered CANCELLED without computing (a client that leaves
//   with queued requests must not leave seconds of work behind);
// - the place the runner chose (RpcCall::where, decided once) is the one
//   that decides whether the call goes through the model's PredictBatcher.
// Whether the model computed is read from the batcher's request count (a
// call placed on the Predict pool always enters it), never from timing.
#include <atomic>
#include <memory>

#include <gtest/gtest.h>

#include "core/model/model.h"
#include "server/handler.h"
#include "server/inference.h"
#include "server/metrics.h"
#include "server/model_registry.h"
#include "server/worker_pool.h"
#include "tests/testing/server_fixture.h"

namespace ntk::server {
namespace {

class InferenceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const testing::Blobs train = testing::MakeBlobs(60, 3, 3, 7);
    ModelSpec spec;
    spec.kernel.depth = 2;
    spec.training.regularization = 0.1;
    absl::StatusOr<std::unique_ptr<FittedModel>> model =
        FittedModel::Fit(spec, TrainingData{train.x, train.y, {}});
    ASSERT_TRUE(model.ok()) << model.status();
    auto entry = std::make_shared<ModelEntry>();
    entry->id = "m";
    entry->model = std::shared_ptr<const FittedModel>(std::move(*model));
    entry->batcher = std::make_shared<PredictBatcher>(PredictBatcher::Options{256, 2});
    entry_ = entry;
    x_ = testing::MakeBlobs(4, 3, 3, 8).x;
  }

  int64_t BatcherRequests() const { return entry_->batcher->stats().requests; }

  ServerOptions options_;
  TokenAuth auth_{""};
  Metrics metrics_;
  WorkerPool compute_{1}, fit_{1}, predict_{1};
  InflightCalls inflight_;
  RpcRunner runner_{options_, &auth_, &metrics_, &compute_, &fit_, &predict_, &inflight_};
  ModelRegistry registry_{nullptr, 0, nullptr};
  Inference inference_{&registry_, &runner_};
  std::shared_ptr<const ModelEntry> entry_;
  Eigen::MatrixXd x_;
};

TEST_F(InferenceTest, AStoppedCallIsAnsweredCancelledWithoutComputing) {
  std::atomic<bool> stop{true};
  RpcCall call(CallLog("Predict", "m", x_.rows()));
  call.set_where(Where::kPredict);
  call.set_cancel_flag(&stop);
  absl::StatusOr<Prediction> p = inference_.Predict("Predict", call, *entry_, x_);
  EXPECT_EQ(p.status().code(), absl::StatusCode::kCancelled) << p.status();
  EXPECT_NE(p.status().message().find("Predict"), std::string::npos) << p.status();
  EXPECT_EQ(BatcherRequests(), 0);
  // The same call, not stopped, computes (so the count above could move).
  stop = false;
  p = inference_.Predict("Predict", call, *entry_, x_);
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_EQ(BatcherRequests(), 1);
}

TEST_F(InferenceTest, OnlyCallsPlacedOnThePredictPoolGoThroughTheBatcher) {
  absl::StatusOr<Prediction> direct = entry_->model->Predict(x_);
  ASSERT_TRUE(direct.ok()) << direct.status();
  int64_t expected_requests = 0;
  for (Where where : {Where::kInline, Where::kCompute, Where::kPredict}) {
    RpcCall call(CallLog("Predict", "m", x_.rows()));
    call.set_where(where);
    absl::StatusOr<Prediction> p = inference_.Predict("Predict", call, *entry_, x_);
    ASSERT_TRUE(p.ok()) << p.status();
    if (where == Where::kPredict) ++expected_requests;
    EXPECT_EQ(BatcherRequests(), expected_requests) << static_cast<int>(where);
    // Alone in the batcher or not, the same computation: the same bits
    // (server/predict_batcher.h "Numerics").
    EXPECT_EQ(p->logits, direct->logits) << static_cast<int>(where);
    EXPECT_EQ(p->probabilities, direct->probabilities) << static_cast<int>(where);
    EXPECT_EQ(p->labels, direct->labels) << static_cast<int>(where);
  }
}

}  // namespace
}  // namespace ntk::server

// ntk/tests/predict_batcher_test.cc: server/predict_batcher.h.
//
// Batches are forced deterministically, never by timing: the first
// computation blocks on a Notification until the test has seen the other
// requests queue (polled, bounded by count), so they must form batches.
// Each request's answer is checked against its own rows computed alone.
// Tolerance for the real model: a batched row's logits come from the same
// formulas with the BLAS products blocked differently, so they may differ by
// rounding only: relative error ~ (d + N) u ~ 1e-13 for these sizes; we
// require 1e-12.
#include <memory>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "absl/synchronization/notification.h"
#include "core/model/model.h"
#include "server/predict_batcher.h"
#include "tests/testing/server_fixture.h"

namespace ntk::server {
namespace {

using Eigen::MatrixXd;

// A stand-in model: probabilities = 2 x, logits = x + 1, label = row's first
// value rounded. Enough to see that every caller gets its own rows back.
Prediction Fake(const MatrixXd& x) {
  Prediction p;
  p.probabilities = 2 * x;
  p.logits = x.array() + 1;
  for (Eigen::Index i = 0; i < x.rows(); ++i) p.labels.push_back(static_cast<int>(x(i, 0)));
  return p;
}

// Waits (bounded by count) until `n` requests are queued.
bool WaitQueued(const PredictBatcher& b, int n) {
  for (int i = 0; i < 20000; ++i) {
    if (b.queued() == n) return true;
    std::this_thread::sleep_for(std::chrono::microseconds(500));
  }
  return false;
}

// Request i: i + 1 rows, values 100 i + row.
MatrixXd Rows(int i, int cols = 3) {
  MatrixXd x(i + 1, cols);
  for (int r = 0; r <= i; ++r) x.row(r).setConstant(100.0 * i + r);
  return x;
}

// Runs request 0 (which blocks its computation until released) and then
// requests 1..k, which queue in that order; releases; returns the answers
// by request.
std::vector<absl::StatusOr<Prediction>> RunBlockedThenQueued(
    PredictBatcher& batcher, int k, const PredictBatcher::ComputeFn& compute_rest) {
  absl::Notification release, first_started;
  std::vector<absl::StatusOr<Prediction>> answers(k + 1, absl::UnknownError("unset"));
  std::vector<MatrixXd> inputs;
  for (int i = 0; i <= k; ++i) inputs.push_back(Rows(i));
  std::vector<std::thread> threads;
  threads.emplace_back([&] {
    answers[0] = batcher.Predict(inputs[0], [&](const MatrixXd& x) -> absl::StatusOr<Prediction> {
      first_started.Notify();
      release.WaitForNotification();
      return Fake(x);
    });
  });
  first_started.WaitForNotification();
  // One at a time, so that they queue in the order 1..k.
  for (int i = 1; i <= k; ++i) {
    threads.emplace_back([&, i] { answers[i] = batcher.Predict(inputs[i], compute_rest); });
    EXPECT_TRUE(WaitQueued(batcher, i)) << "queued " << batcher.queued() << " of " << i;
  }
  release.Notify();
  for (std::thread& t : threads) t.join();
  return answers;
}

TEST(PredictBatcherTest, AloneComputesAtOnceOnTheCallersRows) {
  PredictBatcher batcher({/*max_rows=*/256, /*max_in_flight=*/1});
  const MatrixXd x = Rows(2);
  const MatrixXd* seen = nullptr;
  absl::StatusOr<Prediction> p = batcher.Predict(x, [&](const MatrixXd& rows) {
    seen = &rows;
    return absl::StatusOr<Prediction>(Fake(rows));
  });
  ASSERT_TRUE(p.ok());
  EXPECT_EQ(seen, &x);  // no copy: the same bits as without a batcher
  EXPECT_EQ(p->probabilities, 2 * x);
  EXPECT_EQ(batcher.stats().computations, 1);
  EXPECT_EQ(batcher.stats().batched, 0);
}

TEST(PredictBatcherTest, QueuedRequestsShareOneComputationAndGetTheirOwnRows) {
  PredictBatcher batcher({256, 1});
  int calls = 0;
  const auto answers = RunBlockedThenQueued(batcher, 5, [&](const MatrixXd& x) {
    ++calls;  // only one leader at a time (max_in_flight 1)
    return absl::StatusOr<Prediction>(Fake(x));
  });
  EXPECT_EQ(calls, 1);  // requests 1..5 in one batch
  for (int i = 0; i <= 5; ++i) {
    ASSERT_TRUE(answers[i].ok()) << i << ": " << answers[i].status();
    const Prediction want = Fake(Rows(i));
    EXPECT_EQ(answers[i]->probabilities, want.probabilities) << i;
    EXPECT_EQ(answers[i]->logits, want.logits) << i;
    EXPECT_EQ(answers[i]->labels, want.labels) << i;
  }
  const PredictBatcher::Stats s = batcher.stats();
  EXPECT_EQ(s.requests, 6);
  EXPECT_EQ(s.computations, 2);
  EXPECT_EQ(s.batched, 5);
}

TEST(PredictBatcherTest, BatchesStayWithinMaxRows) {
  // Requests 1..4 have 2, 3, 4, 5 rows; max 7 rows: {1, 2}, {3}, {4}.
  PredictBatcher batcher({7, 1});
  std::vector<Eigen::Index> batch_rows;
  const auto answers = RunBlockedThenQueued(batcher, 4, [&](const MatrixXd& x) {
    batch_rows.push_back(x.rows());
    return absl::StatusOr<Prediction>(Fake(x));
  });
  EXPECT_EQ(batch_rows, (std::vector<Eigen::Index>{5, 4, 5}));
  for (int i = 0; i <= 4; ++i) {
    ASSERT_TRUE(answers[i].ok());
    EXPECT_EQ(answers[i]->probabilities, Fake(Rows(i)).probabilities);
  }
}

TEST(PredictBatcherTest, AFailedBatchFailsEachOfItsRequests) {
  PredictBatcher batcher({256, 1});
  const auto answers = RunBlockedThenQueued(batcher, 3, [](const MatrixXd&) {
    return absl::StatusOr<Prediction>(absl::ResourceExhaustedError("no memory"));
  });
  EXPECT_TRUE(answers[0].ok());
  for (int i = 1; i <= 3; ++i) {
    EXPECT_EQ(answers[i].status().code(), absl::StatusCode::kResourceExhausted) << i;
  }
}

TEST(PredictBatcherTest, BatchedRowsOfARealModelEqualTheirUnbatchedAnswers) {
  const testing::Blobs train = testing::MakeBlobs(120, 3, 3, 5);
  ModelSpec spec;
  spec.kernel.depth = 2;
  spec.training.regularization = 0.1;
  TrainingData data{train.x, train.y, {}};
  absl::StatusOr<std::unique_ptr<FittedModel>> model = FittedModel::Fit(spec, data);
  ASSERT_TRUE(model.ok()) << model.status();
  PredictBatcher batcher({256, 1});
  const auto answers = RunBlockedThenQueued(batcher, 6, [&](const MatrixXd& x) {
    return (*model)->Predict(x);
  });
  ASSERT_GE(batcher.stats().batched, 2);
  for (int i = 0; i <= 6; ++i) {
    ASSERT_TRUE(answers[i].ok()) << i;
    // The batch stand-in for request 0 is Fake; compare the real ones.
    if (i == 0) continue;
    absl::StatusOr<Prediction> alone = (*model)->Predict(Rows(i));
    ASSERT_TRUE(alone.ok());
    const double scale = alone->logits.norm() + 1e-300;
    EXPECT_LE((answers[i]->logits - alone->logits).norm() / scale, 1e-12) << i;
    EXPECT_LE((answers[i]->probabilities - alone->probabilities).norm(), 1e-12) << i;
    EXPECT_EQ(answers[i]->labels, alone->labels) << i;
  }
}

TEST(PredictBatcherTest, WithoutStackingQueuedRequestsTakeTurnsWithinTheCap) {
  PredictBatcher off({/*max_rows=*/1, /*max_in_flight=*/1});
  std::vector<Eigen::Index> batch_rows;
  const auto answers = RunBlockedThenQueued(off, 3, [&](const MatrixXd& x) {
    batch_rows.push_back(x.rows());
    return absl::StatusOr<Prediction>(Fake(x));
  });
  EXPECT_EQ(batch_rows, (std::vector<Eigen::Index>{2, 3, 4}));  // one request each
  for (int i = 0; i <= 3; ++i) {
    ASSERT_TRUE(answers[i].ok());
    EXPECT_EQ(answers[i]->probabilities, Fake(Rows(i)).probabilities);
  }
  EXPECT_EQ(off.stats().batched, 0);
}

}  // namespace
}  // namespace ntk::server

// ntk/server/predict_batcher.h: opportunistic batching of concurrent
// Predicts on one model (Triton's "dynamic batching" without a delay).
//
// A Predict of a few rows on a large model is memory-bound: the cross
// kernel reads all N training rows (N x d doubles) for every call, and the
// per-call setup is repeated. Rows are independent
// (docs/model-contract.md "3. Predict"), so Predicts that wait for the same
// model can be answered by one computation on their stacked rows, reading
// the training set once.
//
//   PredictBatcher batcher({.max_rows = 256, .max_in_flight = 2});
//   absl::StatusOr<Prediction> p = batcher.Predict(x, [&](const MatrixXd& rows) {
//     return model.Predict(rows);
//   });
//
// Policy: no request ever waits for a timer. While fewer than max_in_flight
// computations run for this model, a request computes at once on its own
// rows (no copy, no added latency: an idle server answers as without a
// batcher). Otherwise it queues; when a computation ends, the oldest queued
// request leads the next one, taking every queued request (oldest first)
// while the rows stay within max_rows, and hands each its rows of the
// answer. So batches form exactly when requests pile up, and grow with the
// load.
//
// Numerics: a row's answer does not depend on the other rows of its batch
// beyond rounding (the same formulas, the products blocked differently by
// BLAS): measured and tested to agree with the unbatched answer to 1e-12
// relative (tests/predict_batcher_test.cc). A request alone gets the same
// bits as without a batcher.
//
// Thread safety: Predict may be called from any number of threads at once.
// A caller blocks until its answer is ready. Not copyable.
#ifndef NTK_SERVER_PREDICT_BATCHER_H_
#define NTK_SERVER_PREDICT_BATCHER_H_

#include <cstdint>
#include <deque>
#include <functional>

#include <Eigen/Dense>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "core/model/model.h"

namespace ntk::server {

class PredictBatcher {
 public:
  struct Options {
    // Rows per batched computation (a request with more rows runs alone);
    // <= 1: no stacking (requests still take turns within max_in_flight).
    int64_t max_rows = 256;
    // Computations at once for this model before requests queue; >= 1.
    int max_in_flight = 2;
  };
  // The model's Predict of the stacked rows. Must answer rows.rows() rows.
  using ComputeFn = std::function<absl::StatusOr<Prediction>(const Eigen::MatrixXd& rows)>;

  explicit PredictBatcher(Options options);
  PredictBatcher(const PredictBatcher&) = delete;
  PredictBatcher& operator=(const PredictBatcher&) = delete;

  // The prediction of `x`'s rows, computed alone or within a batch by
  // `compute` (called on this thread or another caller's). A failed batch
  // gives every request in it the batch's status (std::bad_alloc in
  // `compute` becomes RESOURCE_EXHAUSTED for all of them).
  // REQUIRES: every caller's x has the same number of columns, and compute
  // is the same function for all callers (the model's Predict).
  absl::StatusOr<Prediction> Predict(const Eigen::MatrixXd& x, const ComputeFn& compute);

  // Counters since construction (tests, logs).
  struct Stats {
    int64_t requests = 0;      // Predict calls
    int64_t computations = 0;  // calls of compute
    int64_t batched = 0;       // requests answered by a computation of >= 2 requests
  };
  Stats stats() const;
  // Requests queued now (tests: wait until a batch has formed).
  int queued() const;

 private:
  struct Request;

  // Runs compute on `batch` (stacked when more than one) and fills each
  // request's answer. Called without mu_ held.
  void RunBatch(const std::deque<Request*>& batch, const ComputeFn& compute);

  const Options options_;
  mutable absl::Mutex mu_;
  std::deque<Request*> queue_ ABSL_GUARDED_BY(mu_);
  int in_flight_ ABSL_GUARDED_BY(mu_) = 0;
  Stats stats_ ABSL_GUARDED_BY(mu_);
};

}  // namespace ntk::server

#endif  // NTK_SERVER_PREDICT_BATCHER_H_

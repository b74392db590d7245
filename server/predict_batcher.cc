// ntk/server/predict_batcher.cc: see predict_batcher.h.
#include "server/predict_batcher.h"

#include <algorithm>
#include <new>
#include <utility>

#include "absl/status/status.h"

namespace ntk::server {

struct PredictBatcher::Request {
  const Eigen::MatrixXd* x = nullptr;
  absl::StatusOr<Prediction> answer = absl::UnknownError("not computed");
  bool done = false;  // guarded by the batcher's mu_
};

namespace {

PredictBatcher::Options Normalized(PredictBatcher::Options o) {
  o.max_in_flight = std::max(1, o.max_in_flight);
  return o;
}

// Rows [begin, begin + rows) of a batch's answer.
Prediction Slice(const Prediction& all, Eigen::Index begin, Eigen::Index rows) {
  Prediction p;
  p.probabilities = all.probabilities.middleRows(begin, rows);
  p.logits = all.logits.middleRows(begin, rows);
  p.labels.assign(all.labels.begin() + begin, all.labels.begin() + begin + rows);
  return p;
}

// compute(x) with exceptions turned into a status (the callers of a batch
// are on other threads: nothing may escape to them as an exception).
absl::StatusOr<Prediction> Guarded(const PredictBatcher::ComputeFn& compute,
                                   const Eigen::MatrixXd& x) {
  try {
    return compute(x);
  } catch (const std::bad_alloc&) {
    return absl::ResourceExhaustedError("Predict: out of memory computing a batch");
  }
}

}  // namespace

PredictBatcher::PredictBatcher(Options options) : options_(Normalized(options)) {}

void PredictBatcher::RunBatch(const std::deque<Request*>& batch, const ComputeFn& compute) {
  if (batch.size() == 1) {
    batch.front()->answer = Guarded(compute, *batch.front()->x);
    return;
  }
  Eigen::Index rows = 0;
  for (const Request* r : batch) rows += r->x->rows();
  absl::StatusOr<Prediction> all = absl::UnknownError("not computed");
  Eigen::MatrixXd stacked;
  try {
    stacked.resize(rows, batch.front()->x->cols());
    Eigen::Index at = 0;
    for (const Request* r : batch) {
      stacked.middleRows(at, r->x->rows()) = *r->x;
      at += r->x->rows();
    }
  } catch (const std::bad_alloc&) {
    all = absl::ResourceExhaustedError("Predict: out of memory stacking a batch");
  }
  if (stacked.rows() == rows) all = Guarded(compute, stacked);
  if (all.ok() && all->probabilities.rows() != rows) {
    all = absl::InternalError("Predict: a batch's answer has the wrong number of rows");
  }
  Eigen::Index at = 0;
  for (Request* r : batch) {
    if (all.ok()) {
      r->answer = Slice(*all, at, r->x->rows());
    } else {
      r->answer = all.status();
    }
    at += r->x->rows();
  }
}

absl::StatusOr<Prediction> PredictBatcher::Predict(const Eigen::MatrixXd& x,
                                                   const ComputeFn& compute) {
  Request self;
  self.x = &x;
  std::deque<Request*> batch;
  {
    absl::MutexLock lock(&mu_);
    ++stats_.requests;
    if (in_flight_ < options_.max_in_flight && queue_.empty()) {
      // Alone, at once: nothing is waiting and a computation slot is free.
      ++in_flight_;
      ++stats_.computations;
      batch.push_back(&self);
    } else {
      queue_.push_back(&self);
      // Wait until a batch answered this request, or until it is the oldest
      // queued request and a slot is free: then it leads the next batch.
      auto ready = [this, &self]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
        return self.done ||
               (in_flight_ < options_.max_in_flight && !queue_.empty() && queue_.front() == &self);
      };
      mu_.Await(absl::Condition(&ready));
      if (self.done) return std::move(self.answer);
      int64_t rows = 0;
      while (!queue_.empty() &&
             (batch.empty() || (options_.max_rows > 1 &&
                                rows + queue_.front()->x->rows() <= options_.max_rows))) {
        rows += queue_.front()->x->rows();
        batch.push_back(queue_.front());
        queue_.pop_front();
      }
      ++in_flight_;
      ++stats_.computations;
      if (batch.size() > 1) stats_.batched += static_cast<int64_t>(batch.size());
    }
  }
  RunBatch(batch, compute);
  absl::MutexLock lock(&mu_);
  --in_flight_;
  for (Request* r : batch) r->done = true;
  // The others' answers are in their own Request (on their stacks, alive
  // until they see done); this caller's is in `self`.
  return std::move(self.answer);
}

PredictBatcher::Stats PredictBatcher::stats() const {
  absl::MutexLock lock(&mu_);
  return stats_;
}

int PredictBatcher::queued() const {
  absl::MutexLock lock(&mu_);
  return static_cast<int>(queue_.size());
}

}  // namespace ntk::server

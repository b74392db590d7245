// ntk/server/fit_tracker.h: the fits in progress and the background fits
// that failed, by model id: their state (FITTING / READY / FAILED), progress
// and error as ModelInfo shows them (docs/api.md "Long fits"), the cancel
// flag DeleteModel and shutdown set, and the watchers WatchModel attaches.
//
//   std::shared_ptr<FitRecord> r = tracker->Start(id, spec, rows, cols, background);
//   ... core's ProgressFn calls r->Report(fraction, phase) ...
//   tracker->Finish(r, status, &entry->info);   // READY, or FAILED with the message
//
// A record's fraction never decreases (core's solvers may report a smaller
// fraction when an iteration goes back; the record keeps the largest), and
// eta_seconds = elapsed * (1 - fraction) / fraction (-1 while fraction is 0).
// Every change bumps the record's version and notifies its watchers; a
// watcher reads Snapshot() itself (so watchers coalesce fast changes).
//
// Lifetime: a record is in the tracker from Start until Finish; a
// background fit that failed stays as FAILED until DeleteModel (Forget), a
// new fit of its id (Start), or until more than kMaxFailed failed records
// exist (the oldest is dropped). Nothing here survives a restart: a fit
// that was FITTING when the server stopped is absent afterwards.
//
// Thread safety: every method of both classes is thread-safe. Watchers are
// called without any lock held.
#ifndef NTK_SERVER_FIT_TRACKER_H_
#define NTK_SERVER_FIT_TRACKER_H_

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "proto/ntk/v1/ntk.pb.h"

namespace ntk::server {

// What a watcher reads: the ModelInfo to send, its version (increases with
// every change) and whether it is final (READY or FAILED).
struct FitSnapshot {
  v1::ModelInfo info;
  uint64_t version = 0;
  bool terminal = false;
};

// Called (without locks) after a record changed; see FitRecord::Watch.
class FitWatcher {
 public:
  virtual ~FitWatcher() = default;
  virtual void OnFitChanged() = 0;
};

class FitRecord {
 public:
  FitRecord(std::string id, const v1::ModelSpec& spec, int64_t rows, int64_t cols,
            bool background);

  const std::string& id() const { return id_; }
  bool background() const { return background_; }

  // From core's ProgressFn (docs/model-contract.md "2. Training objective"
  // solvers report it): fraction in [0, 1], phase a short name.
  void Report(double fraction, const char* phase);

  // Asks the fit to stop (DeleteModel, shutdown); the fit sees it through
  // cancel_flag() at core's next progress check.
  void Cancel() { cancel_.store(true); }
  const std::atomic<bool>* cancel_flag() const { return &cancel_; }

  // Blocks until the record is READY or FAILED.
  void WaitDone() const;
  bool done() const;
  FitSnapshot Snapshot() const;

  // `watcher` is notified after every change until it is destroyed (held
  // weakly: a watcher that is gone is skipped and dropped).
  void Watch(std::weak_ptr<FitWatcher> watcher);

 private:
  friend class FitTracker;
  // READY with `ready` (the published model's info), or FAILED with the
  // status message. REQUIRES: called once.
  void Finish(const absl::Status& status, const v1::ModelInfo* ready);
  void Notify();

  const std::string id_;
  const bool background_;
  const std::chrono::steady_clock::time_point start_ = std::chrono::steady_clock::now();
  std::atomic<bool> cancel_{false};
  mutable std::mutex mu_;
  mutable std::condition_variable done_cv_;
  v1::ModelInfo info_;    // guarded by mu_
  uint64_t version_ = 1;  // guarded by mu_
  bool done_ = false;     // guarded by mu_
  std::vector<std::weak_ptr<FitWatcher>> watchers_;  // guarded by mu_
};

class FitTracker {
 public:
  static constexpr size_t kMaxFailed = 100;

  // A FITTING record for `id` (replacing a FAILED one). The registry's
  // Reserve (server/model_registry.h) already made sure that no other fit
  // of `id` runs.
  std::shared_ptr<FitRecord> Start(const std::string& id, const v1::ModelSpec& spec,
                                   int64_t rows, int64_t cols, bool background);
  // Ends `record` (READY with `ready`, the published model's info, when
  // status is OK; else FAILED with the message), wakes WaitDone and the
  // watchers, and removes it unless it is a failed background fit.
  void Finish(const std::shared_ptr<FitRecord>& record, const absl::Status& status,
              const v1::ModelInfo* ready);
  // The record of `id` (FITTING, or FAILED in background), or null.
  std::shared_ptr<FitRecord> Find(const std::string& id) const;
  // All records, ordered by id.
  std::vector<std::shared_ptr<FitRecord>> List() const;
  // Drops a finished record of `id` (DeleteModel of a FAILED fit).
  void Forget(const std::string& id);
  // Cancels every background fit (shutdown: they would not survive it).
  void CancelBackground();

 private:
  mutable std::mutex mu_;
  std::map<std::string, std::shared_ptr<FitRecord>> records_;  // guarded by mu_
  std::deque<std::string> failed_;                             // guarded by mu_, oldest first
};

}  // namespace ntk::server

#endif  // NTK_SERVER_FIT_TRACKER_H_

#include "server/fit_tracker.h"

#include <algorithm>
#include <utility>

#include "server/log.h"

namespace ntk::server {

FitRecord::FitRecord(std::string id, const v1::ModelSpec& spec, int64_t rows, int64_t cols,
                     bool background)
    : id_(std::move(id)), background_(background) {
  info_.set_model_id(id_);
  *info_.mutable_spec() = spec;
  info_.set_num_train(static_cast<uint32_t>(rows));
  info_.set_num_features(static_cast<uint32_t>(cols));
  info_.set_created_unix_ms(NowUnixMs());
  info_.set_state(v1::FITTING);
  v1::FitProgress* p = info_.mutable_progress();
  p->set_phase("start");
  p->set_eta_seconds(-1);
}

void FitRecord::Report(double fraction, const char* phase) {
  const double elapsed =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (done_) return;
    v1::FitProgress* p = info_.mutable_progress();
    const double f = std::max(p->fraction(), std::clamp(fraction, 0.0, 1.0));
    const std::string name = phase != nullptr ? phase : "";
    // A change a watcher should see: another phase, or at least 0.1% more.
    const bool changed = name != p->phase() || f >= p->fraction() + 1e-3;
    p->set_elapsed_seconds(elapsed);
    p->set_eta_seconds(f > 0 ? elapsed * (1 - f) / f : -1);
    if (!changed) return;
    p->set_phase(name);
    p->set_fraction(f);
    ++version_;
  }
  Notify();
}

void FitRecord::Finish(const absl::Status& status, const v1::ModelInfo* ready) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (status.ok() && ready != nullptr) {
      info_ = *ready;
      info_.set_state(v1::READY);
    } else {
      info_.set_state(v1::FAILED);
      info_.set_error(status.ok() ? "fit ended without a model" : std::string(status.message()));
    }
    ++version_;
    done_ = true;
  }
  done_cv_.notify_all();
  Notify();
}

void FitRecord::WaitDone() const {
  std::unique_lock<std::mutex> lock(mu_);
  done_cv_.wait(lock, [this] { return done_; });
}

bool FitRecord::done() const {
  std::lock_guard<std::mutex> lock(mu_);
  return done_;
}

FitSnapshot FitRecord::Snapshot() const {
  std::lock_guard<std::mutex> lock(mu_);
  FitSnapshot s;
  s.info = info_;
  s.version = version_;
  s.terminal = done_;
  if (!done_) {
    // Elapsed time as of now, also between progress reports.
    const double elapsed =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
    v1::FitProgress* p = s.info.mutable_progress();
    p->set_elapsed_seconds(elapsed);
    const double f = p->fraction();
    p->set_eta_seconds(f > 0 ? elapsed * (1 - f) / f : -1);
  }
  return s;
}

void FitRecord::Watch(std::weak_ptr<FitWatcher> watcher) {
  std::lock_guard<std::mutex> lock(mu_);
  watchers_.push_back(std::move(watcher));
}

void FitRecord::Notify() {
  std::vector<std::shared_ptr<FitWatcher>> live;
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto gone = std::remove_if(watchers_.begin(), watchers_.end(),
                               [](const std::weak_ptr<FitWatcher>& w) { return w.expired(); });
    watchers_.erase(gone, watchers_.end());
    for (const auto& w : watchers_) {
      if (auto s = w.lock()) live.push_back(std::move(s));
    }
  }
  for (const auto& w : live) w->OnFitChanged();
}

std::shared_ptr<FitRecord> FitTracker::Start(const std::string& id, const v1::ModelSpec& spec,
                                             int64_t rows, int64_t cols, bool background) {
  auto r = std::make_shared<FitRecord>(id, spec, rows, cols, background);
  std::lock_guard<std::mutex> lock(mu_);
  records_[id] = r;
  failed_.erase(std::remove(failed_.begin(), failed_.end(), id), failed_.end());
  return r;
}

void FitTracker::Finish(const std::shared_ptr<FitRecord>& record, const absl::Status& status,
                        const v1::ModelInfo* ready) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = records_.find(record->id());
    const bool current = it != records_.end() && it->second == record;
    if (current && (status.ok() || !record->background())) {
      records_.erase(it);
    } else if (current) {
      failed_.push_back(record->id());
      if (failed_.size() > kMaxFailed) {
        records_.erase(failed_.front());
        failed_.pop_front();
      }
    }
  }
  record->Finish(status, ready);
}

std::shared_ptr<FitRecord> FitTracker::Find(const std::string& id) const {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = records_.find(id);
  return it == records_.end() ? nullptr : it->second;
}

std::vector<std::shared_ptr<FitRecord>> FitTracker::List() const {
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<std::shared_ptr<FitRecord>> out;
  out.reserve(records_.size());
  for (const auto& [id, r] : records_) out.push_back(r);
  return out;
}

void FitTracker::Forget(const std::string& id) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = records_.find(id);
  if (it == records_.end() || !it->second->done()) return;
  records_.erase(it);
  failed_.erase(std::remove(failed_.begin(), failed_.end(), id), failed_.end());
}

void FitTracker::CancelBackground() {
  std::lock_guard<std::mutex> lock(mu_);
  for (const auto& [id, r] : records_) {
    if (r->background()) r->Cancel();
  }
}

}  // namespace ntk::server

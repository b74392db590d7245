#include "server/stream_idle.h"

#include <algorithm>
#include <utility>

namespace ntk::server {

StreamWatchdog::StreamWatchdog(double idle_seconds) : idle_seconds_(idle_seconds) {
  if (idle_seconds_ > 0) thread_ = std::thread([this] { Run(); });
}

StreamWatchdog::~StreamWatchdog() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  stop_cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void StreamWatchdog::Watch(std::shared_ptr<StreamActivity> activity) {
  if (idle_seconds_ <= 0) return;
  std::lock_guard<std::mutex> lock(mu_);
  streams_.push_back(std::move(activity));
}

void StreamWatchdog::Run() {
  using Clock = std::chrono::steady_clock;
  const auto limit = std::chrono::duration_cast<Clock::duration>(
      std::chrono::duration<double>(idle_seconds_));
  // Checked four times per period (at most every second): a stream ends
  // between 1 and 1.25 limits after its last message.
  const auto period = std::min<Clock::duration>(limit / 4, std::chrono::seconds(1));
  std::unique_lock<std::mutex> lock(mu_);
  while (!stop_cv_.wait_for(lock, period, [this] { return stop_; })) {
    std::vector<std::shared_ptr<StreamActivity>> live;
    std::vector<std::weak_ptr<StreamActivity>> kept;
    for (const auto& weak : streams_) {
      if (std::shared_ptr<StreamActivity> a = weak.lock()) {
        kept.push_back(weak);
        live.push_back(std::move(a));
      }
    }
    streams_.swap(kept);
    lock.unlock();  // on_idle may finish a call; never under mu_
    const Clock::time_point now = Clock::now();
    for (const std::shared_ptr<StreamActivity>& a : live) {
      std::lock_guard<std::mutex> guard(a->mu);
      if (a->phase == StreamActivity::Phase::kReading && now - a->last_message >= limit) {
        a->phase = StreamActivity::Phase::kFinished;
        if (a->on_idle) a->on_idle();
      }
    }
    live.clear();
    lock.lock();
  }
}

}  // namespace ntk::server

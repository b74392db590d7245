// ntk/server/stream_idle.h: ends client streams that send nothing for too
// long (issue 11 finding 2; --stream_idle_seconds).
//
// A streaming reactor owns a shared StreamActivity, registers it with the
// server's StreamWatchdog and, under activity->mu, moves it through its
// phases: kReading (waiting for the client: the watchdog may end it) ->
// kBusy (the data is complete, work runs) or kFinished (someone called
// Finish). The watchdog's thread checks every registered stream a few times
// per idle period; one that is still kReading and has had no message for the
// limit is set to kFinished and its `on_idle` runs, under mu. Whoever moves
// the phase away from kReading is the only one to finish the call, so
// `on_idle` may use the reactor (it is alive: nobody has finished it).
//
// Thread safety: StreamWatchdog is thread-safe; StreamActivity's fields are
// guarded by its mu. Ownership: the watchdog keeps weak references only.
#ifndef NTK_SERVER_STREAM_IDLE_H_
#define NTK_SERVER_STREAM_IDLE_H_

#include <chrono>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

namespace ntk::server {

struct StreamActivity {
  enum class Phase { kReading, kBusy, kFinished };
  std::mutex mu;
  Phase phase = Phase::kReading;
  std::chrono::steady_clock::time_point last_message = std::chrono::steady_clock::now();
  std::function<void()> on_idle;  // run under mu when the watchdog ends the stream
};

class StreamWatchdog {
 public:
  // idle_seconds <= 0: streams are never ended; no thread is started.
  explicit StreamWatchdog(double idle_seconds);
  ~StreamWatchdog();  // stops and joins the thread
  StreamWatchdog(const StreamWatchdog&) = delete;
  StreamWatchdog& operator=(const StreamWatchdog&) = delete;

  void Watch(std::shared_ptr<StreamActivity> activity);
  double idle_seconds() const { return idle_seconds_; }

 private:
  void Run();

  const double idle_seconds_;
  std::mutex mu_;
  std::condition_variable stop_cv_;
  bool stop_ = false;
  std::vector<std::weak_ptr<StreamActivity>> streams_;  // guarded by mu_
  std::thread thread_;
};

}  // namespace ntk::server

#endif  // NTK_SERVER_STREAM_IDLE_H_

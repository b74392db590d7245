// ntk/server/worker_pool.h: a fixed set of threads running queued closures.
//
// The server runs heavy RPC work (Fit, FitStream, PredictDistribution, large
// Predict, Delete) here so that gRPC's callback threads are never blocked for
// long. Thread safety: Schedule may be called from any thread. The destructor
// runs every closure already queued, then joins the threads.
#ifndef NTK_SERVER_WORKER_POOL_H_
#define NTK_SERVER_WORKER_POOL_H_

#include <condition_variable>
#include <deque>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace ntk::server {

class WorkerPool {
 public:
  // REQUIRES: num_threads >= 1. `thread_init` (may be empty) runs first on
  // every worker thread (e.g. to set the OpenMP thread count).
  WorkerPool(int num_threads, std::function<void()> thread_init = {});
  ~WorkerPool();
  WorkerPool(const WorkerPool&) = delete;
  WorkerPool& operator=(const WorkerPool&) = delete;

  void Schedule(std::function<void()> fn);
  int num_threads() const { return static_cast<int>(threads_.size()); }

 private:
  void Loop();

  std::function<void()> thread_init_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::function<void()>> queue_;  // guarded by mu_
  bool stop_ = false;                        // guarded by mu_
  std::vector<std::thread> threads_;
};

}  // namespace ntk::server

#endif  // NTK_SERVER_WORKER_POOL_H_

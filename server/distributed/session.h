// ntk/server/distributed/session.h: ntk_server --distributed under mpirun
// (docs/distributed.md).
//
//   ntk::server::distributed::Session mpi(&argc, &argv, options);  // MPI_Init_thread
//   if (!mpi.ok()) ...;
//   if (!mpi.is_root()) return mpi.RunWorker();   // ranks 1..K-1
//   ... serve as usual on rank 0 ...
//   // ~Session: rank 0 sends SHUTDOWN to the workers, every rank finalizes MPI
//
// Rank 0 serves gRPC exactly as a single process does; when K > 1 it
// installs the exact 2b/2c solver hook (core/model/direct_solver_hook.h)
// so that exact fits run on all K ranks (core/distributed/direct_solve.h).
// Ranks 1..K-1 wait for commands that rank 0 broadcasts (Command): a fit's
// system followed by the collective solve, or SHUTDOWN. With K = 1 nothing
// is installed and the server behaves as without --distributed.
//
// Faults (docs/distributed.md "Faults"): every worker acknowledges each
// command to rank 0, which waits at most SessionOptions::ack_timeout for
// all of them. A rank that does not answer in time (dead, stopped,
// unreachable) fails the session for good: that fit and every later one
// fail UNAVAILABLE naming the ranks, rank 0 sends itself SIGTERM (the
// server's ordinary graceful shutdown, so the answer reaches the client)
// and ~Session ends the job with MPI_Abort (exit code 1, so mpirun exits
// non-zero and the orchestrator restarts the job: MPI cannot replace a
// rank). A rank that dies is usually seen first by mpirun itself, which
// then tears the job down (SIGTERM, SIGKILL 1 s later) without rank 0's
// help. Not bounded: a rank that stops answering inside the collective
// solve after acknowledging it (mpirun's teardown is what ends that case).
//
// Thread safety: construct and destroy on the main thread, before the
// server's threads start and after they end. The installed solver may be
// called from any thread: one distributed solve runs at a time (a mutex),
// others wait for it. MPI is initialized with MPI_THREAD_SERIALIZED.
// Not handled yet: cancellation of a distributed solve.
#ifndef NTK_SERVER_DISTRIBUTED_SESSION_H_
#define NTK_SERVER_DISTRIBUTED_SESSION_H_

#include <memory>
#include <string>

#include "absl/time/time.h"

namespace ntk::server::distributed {

// What rank 0 broadcasts to the workers, first of each message.
enum class Command : int { kFitExact = 1, kShutdown = 2 };

struct SessionOptions {
  // How long rank 0 waits for every worker to acknowledge a command
  // (--distributed_timeout_seconds). Workers poll for commands every few
  // milliseconds when idle, and are idle whenever rank 0 sends one.
  // REQUIRES: > 0.
  absl::Duration ack_timeout = absl::Seconds(10);
};

class Session {
 public:
  // Initializes MPI (MPI_Init_thread) and, on rank 0 with K > 1, installs
  // the exact solver hook. Errors leave ok() false and error() set.
  Session(int* argc, char*** argv, const SessionOptions& options = {});
  // Rank 0 (K > 1): removes the hook and broadcasts kShutdown, then every
  // rank calls MPI_Finalize. After a fault (above), or when a worker does
  // not acknowledge kShutdown, rank 0 calls MPI_Abort instead (exit 1).
  ~Session();
  Session(const Session&) = delete;
  Session& operator=(const Session&) = delete;

  bool ok() const { return error_.empty(); }
  const std::string& error() const { return error_; }
  int rank() const { return rank_; }
  int size() const { return size_; }
  bool is_root() const { return rank_ == 0; }

  // Ranks 1..K-1: serves rank 0's commands until kShutdown; the exit code
  // (0 after kShutdown). REQUIRES: ok(), !is_root().
  int RunWorker();

  struct Root;  // rank 0's state shared with the installed solver

 private:
  std::string error_;
  int rank_ = 0;
  int size_ = 1;
  bool initialized_ = false;
  std::unique_ptr<Root> root_;  // rank 0 with K > 1 only
};

}  // namespace ntk::server::distributed

#endif  // NTK_SERVER_DISTRIBUTED_SESSION_H_

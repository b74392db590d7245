// ntk/server/distributed/session.h: ntk_server --distributed under mpirun
// (docs/distributed.md).
//
//   ntk::server::distributed::Session mpi(&argc, &argv);   // MPI_Init_thread
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
// Thread safety: construct and destroy on the main thread, before the
// server's threads start and after they end. The installed solver may be
// called from any thread: one distributed solve runs at a time (a mutex),
// others wait for it. MPI is initialized with MPI_THREAD_SERIALIZED.
// Not handled yet: a rank that dies (the job then hangs or aborts as MPI
// decides), cancellation of a distributed solve.
#ifndef NTK_SERVER_DISTRIBUTED_SESSION_H_
#define NTK_SERVER_DISTRIBUTED_SESSION_H_

#include <string>

namespace ntk::server::distributed {

// What rank 0 broadcasts to the workers, first of each message.
enum class Command : int { kFitExact = 1, kShutdown = 2 };

class Session {
 public:
  // Initializes MPI (MPI_Init_thread) and, on rank 0 with K > 1, installs
  // the exact solver hook. Errors leave ok() false and error() set.
  Session(int* argc, char*** argv);
  // Rank 0 (K > 1): broadcasts kShutdown and removes the hook. Every rank:
  // MPI_Finalize.
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

 private:
  std::string error_;
  int rank_ = 0;
  int size_ = 1;
  bool initialized_ = false;
};

}  // namespace ntk::server::distributed

#endif  // NTK_SERVER_DISTRIBUTED_SESSION_H_

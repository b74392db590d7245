// ntk/server/distributed/session.cc: ntk_server's MPI session, the worker
// loop and rank 0's exact solver (session.h, docs/distributed.md).
#include "server/distributed/session.h"

#include <mpi.h>

#include <chrono>
#include <thread>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "core/distributed/direct_solve.h"
#include "core/model/direct_solver_hook.h"
#include "server/log.h"

namespace ntk::server::distributed {
namespace {

// Rank 0 sends each command with MPI_Ibcast; the workers wait for it by
// polling MPI_Test with a short sleep, so that an idle worker does not spin
// a core (a blocking MPI_Bcast busy-polls in Open MPI). Both sides use the
// non-blocking call: blocking and non-blocking collectives do not match.
constexpr auto kIdlePoll = std::chrono::milliseconds(2);

int BroadcastCommand(Command command) {
  int c = static_cast<int>(command);
  MPI_Request request;
  MPI_Ibcast(&c, 1, MPI_INT, 0, MPI_COMM_WORLD, &request);
  MPI_Wait(&request, MPI_STATUS_IGNORE);
  return c;
}

Command ReceiveCommand() {
  int c = 0;
  MPI_Request request;
  MPI_Ibcast(&c, 1, MPI_INT, 0, MPI_COMM_WORLD, &request);
  for (int done = 0;;) {
    MPI_Test(&request, &done, MPI_STATUS_IGNORE);
    if (done) break;
    std::this_thread::sleep_for(kIdlePoll);
  }
  return static_cast<Command>(c);
}

// Rank 0's solver for FittedModel::Fit: one distributed solve at a time.
absl::StatusOr<SolverSolution> SolveOnAllRanks(int size, const TrainingProblem& problem,
                                               const Eigen::MatrixXd& x_train,
                                               const Eigen::MatrixXd& f0) {
  static absl::Mutex mu(absl::kConstInit);
  absl::MutexLock lock(&mu);
  DirectSystem system = DirectSystemFrom(problem, x_train, f0);
  Logf("distributed: exact %s solve of %d rows on %d ranks", RegimeName(problem.regime),
       static_cast<int>(x_train.rows()), size);
  BroadcastCommand(Command::kFitExact);
  if (absl::Status s = BroadcastDirectSystem(MPI_COMM_WORLD, 0, &system); !s.ok()) return s;
  absl::StatusOr<DistributedSolveResult> r = DistributedDirectSolve(MPI_COMM_WORLD, system);
  if (!r.ok()) return r.status();
  return std::move(r->solution);
}

}  // namespace

Session::Session(int* argc, char*** argv) {
  int provided = 0;
  if (MPI_Init_thread(argc, argv, MPI_THREAD_SERIALIZED, &provided) != MPI_SUCCESS) {
    error_ = "MPI_Init_thread failed";
    return;
  }
  initialized_ = true;
  if (provided < MPI_THREAD_SERIALIZED) {
    error_ = "the MPI library does not provide MPI_THREAD_SERIALIZED";
    return;
  }
  MPI_Comm_rank(MPI_COMM_WORLD, &rank_);
  MPI_Comm_size(MPI_COMM_WORLD, &size_);
  if (is_root() && size_ > 1) {
    const int size = size_;
    SetExactDirectSolver([size](const TrainingProblem& p, const Eigen::MatrixXd& x,
                                const Eigen::MatrixXd& f0) {
      return SolveOnAllRanks(size, p, x, f0);
    });
  }
  if (is_root()) Logf("distributed: rank 0 of %d", size_);
}

Session::~Session() {
  if (!initialized_) return;
  if (ok() && is_root() && size_ > 1) {
    SetExactDirectSolver(nullptr);
    BroadcastCommand(Command::kShutdown);
  }
  MPI_Finalize();
}

int Session::RunWorker() {
  for (;;) {
    switch (ReceiveCommand()) {
      case Command::kShutdown:
        return 0;
      case Command::kFitExact: {
        DirectSystem system;
        if (absl::Status s = BroadcastDirectSystem(MPI_COMM_WORLD, 0, &system); !s.ok()) {
          Logf("distributed: rank %d: %s", rank_, s.ToString().c_str());
          return 1;
        }
        // Errors are rank 0's to report (every rank gets the same status).
        (void)DistributedDirectSolve(MPI_COMM_WORLD, system);
        break;
      }
      default:
        Logf("distributed: rank %d: unknown command", rank_);
        return 1;
    }
  }
}

}  // namespace ntk::server::distributed

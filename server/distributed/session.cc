// ntk/server/distributed/session.cc: ntk_server's MPI session, the worker
// loop and rank 0's exact solver (session.h, docs/distributed.md).
#include "server/distributed/session.h"

#include <mpi.h>
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <thread>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/synchronization/mutex.h"
#include "core/distributed/direct_solve.h"
#include "core/model/direct_solver_hook.h"
#include "server/log.h"

namespace ntk::server::distributed {

// Rank 0's state: the job is failed for good once a worker did not
// acknowledge a command (session.h "Faults").
struct Session::Root {
  int size = 1;
  absl::Duration ack_timeout;
  absl::Mutex mu;  // one command (and distributed solve) at a time
  absl::Status failure ABSL_GUARDED_BY(mu);
};

namespace {

// Rank 0 sends each command with MPI_Ibcast; the workers wait for it by
// polling MPI_Test with a short sleep, so that an idle worker does not spin
// a core (a blocking MPI_Bcast busy-polls in Open MPI). Both sides use the
// non-blocking call: blocking and non-blocking collectives do not match.
// Each worker then acknowledges it with a message to rank 0 (kAckTag),
// which rank 0 waits for with a deadline.
constexpr auto kIdlePoll = std::chrono::milliseconds(2);
constexpr auto kAckPoll = std::chrono::milliseconds(1);
constexpr int kAckTag = 7001;

const char* CommandName(Command c) {
  switch (c) {
    case Command::kFitExact:
      return "FIT_EXACT";
    case Command::kShutdown:
      return "SHUTDOWN";
  }
  return "?";
}

// Rank 0: broadcasts `command` and waits up to `timeout` for every worker's
// acknowledgement. UNAVAILABLE naming the ranks that did not answer.
absl::Status SendCommand(Command command, int size, absl::Duration timeout) {
  int c = static_cast<int>(command);
  std::vector<int> acks(size, 0);
  std::vector<MPI_Request> requests(size, MPI_REQUEST_NULL);
  MPI_Ibcast(&c, 1, MPI_INT, 0, MPI_COMM_WORLD, &requests[0]);
  for (int r = 1; r < size; ++r) {
    MPI_Irecv(&acks[r], 1, MPI_INT, r, kAckTag, MPI_COMM_WORLD, &requests[r]);
  }
  const absl::Time deadline = absl::Now() + timeout;
  for (;;) {
    bool all = true;
    for (MPI_Request& q : requests) {  // MPI_Test on a completed (null) request: done
      int done = 0;
      MPI_Test(&q, &done, MPI_STATUS_IGNORE);
      all = all && done;
    }
    if (all) return absl::OkStatus();
    if (absl::Now() >= deadline) break;
    std::this_thread::sleep_for(kAckPoll);
  }
  // The requests still pending are left to MPI_Abort (the job is over).
  std::vector<int> missing;
  for (int r = 1; r < size; ++r) {
    if (requests[r] != MPI_REQUEST_NULL) missing.push_back(r);
  }
  return absl::UnavailableError(absl::StrCat(
      "distributed: rank ", absl::StrJoin(missing, ", "), " of ", size,
      " did not acknowledge ", CommandName(command), " within ",
      absl::FormatDuration(timeout),
      " (dead, stopped or unreachable; --distributed_timeout_seconds). An MPI job cannot "
      "lose a rank: this server stops and exits non-zero so that the job is restarted "
      "(docs/distributed.md \"Faults\")"));
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
  int ack = c;
  MPI_Send(&ack, 1, MPI_INT, 0, kAckTag, MPI_COMM_WORLD);
  return static_cast<Command>(c);
}

// Rank 0's solver for FittedModel::Fit: one distributed solve at a time.
absl::StatusOr<SolverSolution> SolveOnAllRanks(Session::Root* root,
                                               const TrainingProblem& problem,
                                               const Eigen::MatrixXd& x_train,
                                               const Eigen::MatrixXd& f0) {
  absl::MutexLock lock(&root->mu);
  if (!root->failure.ok()) return root->failure;
  DirectSystem system = DirectSystemFrom(problem, x_train, f0);
  Logf("distributed: exact %s solve of %d rows on %d ranks", RegimeName(problem.regime),
       static_cast<int>(x_train.rows()), root->size);
  if (absl::Status s = SendCommand(Command::kFitExact, root->size, root->ack_timeout);
      !s.ok()) {
    // session.h "Faults": every later fit fails the same way; the server
    // shuts down gracefully (this answer still reaches the client) and
    // ~Session aborts the job.
    root->failure = s;
    Logf("%s", std::string(s.message()).c_str());
    ::kill(::getpid(), SIGTERM);
    return s;
  }
  if (absl::Status s = BroadcastDirectSystem(MPI_COMM_WORLD, 0, &system); !s.ok()) return s;
  absl::StatusOr<DistributedSolveResult> r = DistributedDirectSolve(MPI_COMM_WORLD, system);
  if (!r.ok()) return r.status();
  return std::move(r->solution);
}

}  // namespace

Session::Session(int* argc, char*** argv, const SessionOptions& options) {
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
    root_ = std::make_unique<Root>();
    root_->size = size_;
    root_->ack_timeout = options.ack_timeout;
    Root* root = root_.get();
    SetExactDirectSolver([root](const TrainingProblem& p, const Eigen::MatrixXd& x,
                                const Eigen::MatrixXd& f0) {
      return SolveOnAllRanks(root, p, x, f0);
    });
  }
  if (is_root()) Logf("distributed: rank 0 of %d", size_);
}

Session::~Session() {
  if (!initialized_) return;
  if (ok() && root_ != nullptr) {
    SetExactDirectSolver(nullptr);
    absl::MutexLock lock(&root_->mu);
    if (root_->failure.ok()) {
      root_->failure = SendCommand(Command::kShutdown, size_, root_->ack_timeout);
      if (!root_->failure.ok()) Logf("%s", std::string(root_->failure.message()).c_str());
    }
    if (!root_->failure.ok()) {
      Logf("distributed: aborting the MPI job (MPI_Abort, exit code 1)");
      MPI_Abort(MPI_COMM_WORLD, 1);
    }
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

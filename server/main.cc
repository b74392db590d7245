// ntk_server: serves ntk.v1.NtkService (see server/server.h and docs).
//
// Flags: server/flags.h (`ntk_server --help`; each also NTK_<FLAG> in the
// environment). On start the server prints
// "listening on <host>:<port>" to stdout; SIGTERM/SIGINT shut it down
// gracefully (in-flight RPCs get --shutdown_grace_seconds) and it exits 0.
#include <pthread.h>
#include <signal.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <optional>
#include <thread>

#include "absl/synchronization/mutex.h"
#include "core/numerics/huge_pages.h"
#include "server/flags.h"
#include "server/log.h"
#include "server/server.h"
#ifdef NTK_MPI
#include "server/distributed/session.h"
#endif

namespace {

// Threads that libraries start before main() (OpenBLAS starts its pool in a
// library constructor) do not have SIGTERM/SIGINT blocked, so the kernel may
// deliver the process-directed signal to one of them. This handler (only
// ever run on such a thread) forwards it to the sigwait thread, where it is
// blocked and therefore picked up by sigwait(). pthread_kill is
// async-signal-safe.
pthread_t g_signal_thread;
std::atomic<bool> g_signal_thread_ready{false};

extern "C" void ForwardShutdownSignal(int sig) {
  if (g_signal_thread_ready.load()) pthread_kill(g_signal_thread, sig);
}

}  // namespace

int main(int argc, char** argv) {
  // Huge pages for the large matrices (core/numerics/huge_pages.h): may
  // re-execute the process once, so it comes before anything else.
  ntk::ReexecWithHugePageMalloc(argv);

  // Debian's Abseil is built with absl::Mutex deadlock detection on (a
  // debug aid: a lock-order graph updated on every lock and mutex
  // destruction), and gRPC takes and destroys many absl::Mutexes per call:
  // about 1.5% of the server's CPU under Predict load in perf. Off, as in
  // release builds of Abseil.
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);

  // Block the shutdown signals before any thread starts so that every thread
  // inherits the mask and only the sigwait thread below receives them.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  struct sigaction forward = {};
  forward.sa_handler = ForwardShutdownSignal;
  sigemptyset(&forward.sa_mask);
  sigaction(SIGTERM, &forward, nullptr);
  sigaction(SIGINT, &forward, nullptr);

  absl::StatusOr<ntk::server::ServerOptions> options = ntk::server::ParseServerFlags(argc, argv);
  if (!options.ok()) {
    std::fprintf(stderr, "ntk_server: %s\n", std::string(options.status().message()).c_str());
    return 2;
  }
  const ntk::server::ServerOptions& o = *options;
  // --distributed (docs/distributed.md): ranks 1..K-1 work for rank 0 and
  // never serve; rank 0 goes on as below, and its session ends the workers
  // and MPI when main returns.
#ifdef NTK_MPI
  std::optional<ntk::server::distributed::Session> mpi;
  if (o.distributed) {
    ntk::server::distributed::SessionOptions session_options;
    session_options.ack_timeout = absl::Seconds(o.distributed_timeout_seconds);
    mpi.emplace(&argc, &argv, session_options);
    if (!mpi->ok()) {
      std::fprintf(stderr, "ntk_server: --distributed: %s\n", mpi->error().c_str());
      return 1;
    }
    if (!mpi->is_root()) return mpi->RunWorker();
  }
#else
  if (o.distributed) {
    std::fprintf(stderr, "ntk_server: --distributed needs a build with NTK_MPI\n");
    return 2;
  }
#endif

  absl::StatusOr<std::unique_ptr<ntk::server::NtkServer>> server =
      ntk::server::NtkServer::Start(o);
  if (!server.ok()) {
    std::fprintf(stderr, "ntk_server: %s\n", server.status().ToString().c_str());
    return 1;
  }
  std::printf("listening on %s\n", (*server)->address().c_str());
  if (!o.http_listen.empty()) {
    std::printf("http listening on %s\n", (*server)->http_address().c_str());
  }
  std::fflush(stdout);

  std::thread signal_thread([&] {
    int sig = 0;
    sigwait(&signals, &sig);  // blocked in this thread: sigwait receives it
    ntk::server::Logf("server: signal %d, shutting down (grace %d s)", sig,
                      o.shutdown_grace_seconds);
    (*server)->Shutdown(std::chrono::system_clock::now() +
                        std::chrono::seconds(o.shutdown_grace_seconds));
  });
  g_signal_thread = signal_thread.native_handle();
  g_signal_thread_ready.store(true);
  (*server)->Wait();
  signal_thread.join();
  server->reset();
  ntk::server::LogLine("server: stopped");
  return 0;
}

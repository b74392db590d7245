// ntk_server: serves ntk.v1.NtkService (see server/server.h and docs).
//
// Every flag can also be set from the environment as NTK_<FLAG NAME IN
// CAPITALS> (e.g. NTK_LISTEN, NTK_MAX_TRAIN_ROWS): the environment sets the
// default, the command line overrides it. On start the server prints
// "listening on <host>:<port>" to stdout; SIGTERM/SIGINT shut it down
// gracefully (in-flight RPCs get --shutdown_grace_seconds) and it exits 0.
#include <pthread.h>
#include <signal.h>

#include <atomic>
#include <cctype>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/reflection.h"
#include "absl/flags/usage.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_format.h"
#include "absl/strings/strip.h"
#include "absl/synchronization/mutex.h"
#include "server/log.h"
#include "server/server.h"

ABSL_FLAG(std::string, listen, "127.0.0.1:50051",
          "host:port to listen on; port 0 picks a free port (printed as \"listening on ...\")");
ABSL_FLAG(std::string, model_dir, "./models",
          "directory holding one <model_id>.ntkm file per model; created if missing");
ABSL_FLAG(int, threads, 0,
          "compute threads: omp_set_num_threads, and openblas_set_num_threads when "
          "--blas_threads=0 (0: the libraries' defaults, all cores)");
ABSL_FLAG(int, blas_threads, 1,
          "OpenBLAS threads (0: --threads). 1 keeps concurrent small Predicts from queueing for "
          "OpenBLAS's shared thread pool (about 2x more Predict/s at concurrency 64 here, see "
          "server/README.md); fits then use OpenMP for the kernels and one core for BLAS");
ABSL_FLAG(int, worker_threads, 0,
          "threads running PredictDistribution, large Predict and DeleteModel (0: max(2, cores))");
ABSL_FLAG(int, max_message_mb, 64, "largest gRPC message in either direction, MiB");
ABSL_FLAG(int, max_train_rows, 10000, "most training rows per Fit (RESOURCE_EXHAUSTED above)");
ABSL_FLAG(int, max_predict_rows, 100000, "most query rows per Predict/PredictDistribution");
ABSL_FLAG(int, max_features, 65536, "most feature columns (RESOURCE_EXHAUSTED above)");
ABSL_FLAG(int, max_classes, 1000, "most classes per model (RESOURCE_EXHAUSTED above)");
ABSL_FLAG(int, max_models, 1000, "most models held at once (RESOURCE_EXHAUSTED above)");
ABSL_FLAG(int, max_concurrent_fits, 2,
          "most Fit/FitStream calls running at once; more are RESOURCE_EXHAUSTED");
ABSL_FLAG(int, max_num_samples, 100000, "largest PredictDistribution num_samples");
ABSL_FLAG(std::string, tls_cert, "", "PEM certificate chain file; with --tls_key enables TLS");
ABSL_FLAG(std::string, tls_key, "", "PEM private key file for --tls_cert");
ABSL_FLAG(std::string, auth_token_file, "",
          "file holding a bearer token; then every RPC except grpc.health.v1 needs "
          "\"authorization: Bearer <token>\" (else UNAUTHENTICATED)");
ABSL_FLAG(int, shutdown_grace_seconds, 30,
          "on SIGTERM/SIGINT, seconds in-flight RPCs may take before they are cancelled");
ABSL_FLAG(bool, log_rpcs, true, "write one stderr line per RPC and progress lines for fits");

namespace {

constexpr const char* kFlagNames[] = {
    "listen",          "model_dir",        "threads",         "blas_threads",         "worker_threads",
    "max_message_mb",  "max_train_rows",   "max_predict_rows", "max_features",
    "max_classes",     "max_models",       "max_concurrent_fits", "max_num_samples",
    "tls_cert",        "tls_key",          "auth_token_file", "shutdown_grace_seconds",
    "log_rpcs"};

// NTK_<NAME> environment variables set the flags' defaults.
bool ApplyEnvironment() {
  for (const char* name : kFlagNames) {
    const std::string env = "NTK_" + absl::AsciiStrToUpper(name);
    const char* value = std::getenv(env.c_str());
    if (value == nullptr) continue;
    absl::CommandLineFlag* flag = absl::FindCommandLineFlag(name);
    std::string error;
    if (flag == nullptr || !flag->ParseFrom(value, &error)) {
      std::fprintf(stderr, "ntk_server: bad %s=%s: %s\n", env.c_str(), value, error.c_str());
      return false;
    }
  }
  return true;
}

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

bool ReadFile(const std::string& path, std::string* out) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return false;
  std::ostringstream ss;
  ss << in.rdbuf();
  *out = ss.str();
  return true;
}

}  // namespace

int main(int argc, char** argv) {
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

  absl::SetProgramUsageMessage(
      "ntk_server: fits infinite-width NTK classifiers and serves predictions over gRPC "
      "(ntk.v1.NtkService).\nEvery flag may also be set as environment variable "
      "NTK_<FLAG IN CAPITALS>; the command line wins.");
  if (!ApplyEnvironment()) return 2;
  absl::ParseCommandLine(argc, argv);

  ntk::server::ServerOptions o;
  o.listen = absl::GetFlag(FLAGS_listen);
  o.model_dir = absl::GetFlag(FLAGS_model_dir);
  o.threads = absl::GetFlag(FLAGS_threads);
  o.blas_threads = absl::GetFlag(FLAGS_blas_threads);
  o.worker_threads = absl::GetFlag(FLAGS_worker_threads);
  o.max_message_mb = absl::GetFlag(FLAGS_max_message_mb);
  o.max_train_rows = absl::GetFlag(FLAGS_max_train_rows);
  o.max_predict_rows = absl::GetFlag(FLAGS_max_predict_rows);
  o.max_features = absl::GetFlag(FLAGS_max_features);
  o.max_classes = absl::GetFlag(FLAGS_max_classes);
  o.max_models = absl::GetFlag(FLAGS_max_models);
  o.max_concurrent_fits = absl::GetFlag(FLAGS_max_concurrent_fits);
  o.max_num_samples = absl::GetFlag(FLAGS_max_num_samples);
  o.shutdown_grace_seconds = absl::GetFlag(FLAGS_shutdown_grace_seconds);
  o.log_rpcs = absl::GetFlag(FLAGS_log_rpcs);
  const std::string cert = absl::GetFlag(FLAGS_tls_cert), key = absl::GetFlag(FLAGS_tls_key);
  if (cert.empty() != key.empty()) {
    std::fprintf(stderr, "ntk_server: --tls_cert and --tls_key go together\n");
    return 2;
  }
  if (!cert.empty() && (!ReadFile(cert, &o.tls_cert_pem) || !ReadFile(key, &o.tls_key_pem))) {
    std::fprintf(stderr, "ntk_server: cannot read --tls_cert %s or --tls_key %s\n",
                 cert.c_str(), key.c_str());
    return 2;
  }
  const std::string token_file = absl::GetFlag(FLAGS_auth_token_file);
  if (!token_file.empty()) {
    std::string token;
    if (!ReadFile(token_file, &token)) {
      std::fprintf(stderr, "ntk_server: cannot read --auth_token_file %s\n", token_file.c_str());
      return 2;
    }
    o.auth_token = std::string(absl::StripAsciiWhitespace(token));
    if (o.auth_token.empty()) {
      std::fprintf(stderr, "ntk_server: --auth_token_file %s is empty\n", token_file.c_str());
      return 2;
    }
  }

  absl::StatusOr<std::unique_ptr<ntk::server::NtkServer>> server =
      ntk::server::NtkServer::Start(o);
  if (!server.ok()) {
    std::fprintf(stderr, "ntk_server: %s\n", server.status().ToString().c_str());
    return 1;
  }
  std::printf("listening on %s\n", (*server)->address().c_str());
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

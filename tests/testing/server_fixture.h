// tests/testing/server_fixture.h: servers for end-to-end tests, each on
// 127.0.0.1 with an ephemeral port and its own temporary model directory.
//
//   TempDir dir;
//   auto s = InProcessServer::Start(SmallServerOptions(dir.path()));
//   std::unique_ptr<Client> c = s->Connect();
//
//   auto p = SubprocessServer::Start({"--model_dir=" + dir.path()});
//   (*p)->Signal(SIGKILL); (*p)->Wait(...)
//
// Thread safety: the fixtures are used from one test thread; the servers
// they start are fully thread-safe.
#ifndef NTK_TESTS_TESTING_SERVER_FIXTURE_H_
#define NTK_TESTS_TESTING_SERVER_FIXTURE_H_

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <Eigen/Dense>
#include <grpcpp/channel.h>
#include <grpcpp/client_context.h>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "client/client.h"
#include "core/training/spec.h"
#include "proto/ntk/v1/ntk.grpc.pb.h"
#include "server/options.h"
#include "server/server.h"
#include "tests/testing/temp_dir.h"

namespace ntk::testing {

// Writes a self-signed certificate for 127.0.0.1/localhost to
// dir/cert.pem and its key to dir/key.pem with /usr/bin/openssl (installed
// by ./ntk.sh: a missing openssl is an error, not a reason to skip).
absl::Status MakeSelfSignedCertificate(const TempDir& dir);

// Options for a test server: 127.0.0.1:0, `model_dir`, few threads, RPC
// logging off (tests read stderr only for subprocess servers).
server::ServerOptions TestServerOptions(const std::string& model_dir);

// TestServerOptions(model_dir.path()) with TLS: a self-signed certificate
// made in `certs` (MakeSelfSignedCertificate) as tls_cert_pem/tls_key_pem.
absl::StatusOr<server::ServerOptions> TlsTestServerOptions(const TempDir& model_dir,
                                                           const TempDir& certs);

// A TCP port on 127.0.0.1 that the kernel picked and this object holds
// bound but not listening, for as long as it lives: connections to it are
// refused, and no other process can take the port meanwhile (unlike a port
// that "was free a moment ago").
class BoundPort {
 public:
  BoundPort();
  ~BoundPort();
  BoundPort(const BoundPort&) = delete;
  BoundPort& operator=(const BoundPort&) = delete;
  int port() const { return port_; }  // -1 if binding failed

 private:
  int fd_ = -1;
  int port_ = -1;
};

class InProcessServer {
 public:
  // ASSERTs in the caller are not possible here: returns null and adds a
  // test failure when the server does not start.
  static std::unique_ptr<InProcessServer> Start(const server::ServerOptions& options);
  ~InProcessServer();

  server::NtkServer& server() { return *server_; }
  const std::string& address() const { return server_->address(); }
  // A client of this server (insecure unless `options` says otherwise;
  // options.target is replaced by address()).
  std::unique_ptr<Client> Connect(ClientOptions options = {}) const;
  // A raw stub for requests the client library would not build.
  std::unique_ptr<v1::NtkService::Stub> RawStub() const;
  void Stop();  // shuts down now (idempotent)

 private:
  std::unique_ptr<server::NtkServer> server_;
};

// ntk_server (NTK_SERVER_PATH) as a child process (Spawn of
// tests/testing/subprocess.h, inherited NTK_* variables dropped). Its stdout
// is parsed for "listening on HOST:PORT" (readiness: the server prints it
// once it serves); its stderr goes to stderr_path().
class SubprocessServer {
 public:
  // Adds --listen=127.0.0.1:0 unless args contain --listen. `env` entries
  // ("NAME=value") are added to the child's environment.
  static absl::StatusOr<std::unique_ptr<SubprocessServer>> Start(
      const std::vector<std::string>& args, const std::vector<std::string>& env = {},
      std::chrono::milliseconds startup_timeout = std::chrono::seconds(30)) {
#ifdef NTK_SERVER_PATH
    return StartBinary(NTK_SERVER_PATH, args, env, startup_timeout);
#else
    (void)args, (void)env, (void)startup_timeout;
    return absl::FailedPreconditionError("NTK_SERVER_PATH is not defined");
#endif
  }
  static absl::StatusOr<std::unique_ptr<SubprocessServer>> StartBinary(
      const std::string& server_path, const std::vector<std::string>& args,
      const std::vector<std::string>& env, std::chrono::milliseconds startup_timeout);
  ~SubprocessServer();  // SIGKILL + reap when still running

  pid_t pid() const { return pid_; }
  const std::string& address() const { return address_; }
  const std::string& stderr_path() const { return stderr_path_; }
  std::string ReadStderr() const;
  std::unique_ptr<Client> Connect(ClientOptions options = {}) const;

  void Signal(int signal) const;
  // Waits for the child to exit: its exit code, or 128 + signal when killed.
  // DEADLINE_EXCEEDED when it is still running after `timeout`.
  absl::StatusOr<int> Wait(std::chrono::milliseconds timeout);

 private:
  SubprocessServer() = default;
  pid_t pid_ = -1;
  int stdout_fd_ = -1;
  std::string address_;
  std::string stderr_path_;
  std::unique_ptr<TempDir> log_dir_;
};

// A labelled data set: `classes` Gaussian blobs in d dimensions, n rows,
// deterministic in `seed`.
struct Blobs {
  Eigen::MatrixXd x;      // n x d
  std::vector<int> y;     // n labels in [0, classes)
};
Blobs MakeBlobs(int n, int d, int classes, uint64_t seed);
// The same rows as core's TrainingData (features and hard labels).
TrainingData BlobsData(int n, int d, int classes, uint64_t seed);

// Soft targets (rows on the simplex) for labels y: (1 - eps) one-hot + eps / C.
Eigen::MatrixXd SoftTargets(const std::vector<int>& y, int classes, double eps);

// A small ReLU spec: depth 2, CROSS_ENTROPY, regularization `lambda`
// (negative: unset, the server's default).
v1::ModelSpec SmallSpec(double lambda = -1);

// A client context whose deadline is `timeout` from now.
std::unique_ptr<grpc::ClientContext> CallContext(std::chrono::seconds timeout);

// The positive integer in environment variable `name` (how the long runs of
// the churn and crash tests scale them up, see ./ntk.sh), else `fallback`.
int EnvInt(const char* name, int fallback);

}  // namespace ntk::testing

#endif  // NTK_TESTS_TESTING_SERVER_FIXTURE_H_

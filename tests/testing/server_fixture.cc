#include "tests/testing/server_fixture.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>
#include <thread>
#include <utility>

#include <grpcpp/create_channel.h>
#include <grpcpp/security/credentials.h>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/strip.h"
#include "gtest/gtest.h"
#include "tests/testing/subprocess.h"

namespace ntk::testing {

absl::Status MakeSelfSignedCertificate(const TempDir& dir) {
  const ProcessResult r = RunProcess(
      {"/usr/bin/openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
       "-subj", "/CN=localhost", "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost",
       "-keyout", dir.File("key.pem"), "-out", dir.File("cert.pem")});
  if (r.exit_code != 0) {
    return absl::FailedPreconditionError(absl::StrCat(
        "/usr/bin/openssl req failed (exit ", r.exit_code,
        "; package openssl is installed by ./ntk.sh): ", r.err));
  }
  return absl::OkStatus();
}

absl::StatusOr<server::ServerOptions> TlsTestServerOptions(const TempDir& model_dir,
                                                           const TempDir& certs) {
  absl::Status made = MakeSelfSignedCertificate(certs);
  if (!made.ok()) return made;
  server::ServerOptions options = TestServerOptions(model_dir.path());
  options.tls_cert_pem = ReadFileOrEmpty(certs.File("cert.pem"));
  options.tls_key_pem = ReadFileOrEmpty(certs.File("key.pem"));
  return options;
}

server::ServerOptions TestServerOptions(const std::string& model_dir) {
  server::ServerOptions o;
  o.listen = "127.0.0.1:0";
  o.model_dir = model_dir;
  o.threads = 2;
  o.worker_threads = 2;
  o.max_concurrent_fits = 2;
  o.log_rpcs = false;
  o.shutdown_grace_seconds = 5;
  return o;
}

BoundPort::BoundPort() {
  fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd_ < 0) return;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  socklen_t len = sizeof(addr);
  if (::bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0 &&
      ::getsockname(fd_, reinterpret_cast<sockaddr*>(&addr), &len) == 0) {
    port_ = ntohs(addr.sin_port);
  }
}

BoundPort::~BoundPort() {
  if (fd_ >= 0) ::close(fd_);
}

std::unique_ptr<InProcessServer> InProcessServer::Start(const server::ServerOptions& options) {
  absl::StatusOr<std::unique_ptr<server::NtkServer>> s = server::NtkServer::Start(options);
  if (!s.ok()) {
    ADD_FAILURE() << "server did not start: " << s.status();
    return nullptr;
  }
  auto out = std::unique_ptr<InProcessServer>(new InProcessServer());
  out->server_ = *std::move(s);
  return out;
}

InProcessServer::~InProcessServer() { Stop(); }

void InProcessServer::Stop() {
  if (server_ != nullptr) server_->Shutdown(std::chrono::system_clock::now());
}

std::unique_ptr<Client> InProcessServer::Connect(ClientOptions options) const {
  options.target = address();
  absl::StatusOr<std::unique_ptr<Client>> c = Client::Connect(options);
  if (!c.ok()) {
    ADD_FAILURE() << "connect: " << c.status();
    return nullptr;
  }
  return *std::move(c);
}

std::unique_ptr<v1::NtkService::Stub> InProcessServer::RawStub() const {
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(256 << 20);
  args.SetMaxSendMessageSize(256 << 20);
  return v1::NtkService::NewStub(
      grpc::CreateCustomChannel(address(), grpc::InsecureChannelCredentials(), args));
}

absl::StatusOr<std::unique_ptr<SubprocessServer>> SubprocessServer::StartBinary(
    const std::string& server_path, const std::vector<std::string>& args,
    const std::vector<std::string>& env, std::chrono::milliseconds startup_timeout) {
  auto s = std::unique_ptr<SubprocessServer>(new SubprocessServer());
  s->log_dir_ = std::make_unique<TempDir>();
  s->stderr_path_ = s->log_dir_->File("stderr.log");

  std::vector<std::string> argv = {server_path};
  bool has_listen = false;
  for (const std::string& a : args) has_listen |= absl::StartsWith(a, "--listen");
  if (!has_listen) argv.push_back("--listen=127.0.0.1:0");
  argv.insert(argv.end(), args.begin(), args.end());
  SpawnOptions spawn;
  spawn.drop_ntk_env = true;
  for (const std::string& e : env) {
    const size_t eq = e.find('=');
    spawn.env[e.substr(0, eq)] = eq == std::string::npos ? "" : e.substr(eq + 1);
  }
  int out_pipe[2];
  if (::pipe2(out_pipe, O_CLOEXEC) != 0) return absl::InternalError("pipe");
  spawn.stdout_fd = out_pipe[1];
  spawn.stderr_fd = ::open(s->stderr_path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (spawn.stderr_fd < 0) return absl::InternalError("open stderr log");
  absl::StatusOr<pid_t> pid = Spawn(argv, spawn);
  ::close(out_pipe[1]);
  ::close(spawn.stderr_fd);
  if (!pid.ok()) {
    ::close(out_pipe[0]);
    return pid.status();
  }
  s->pid_ = *pid;
  s->stdout_fd_ = out_pipe[0];

  // Read stdout until "listening on HOST:PORT\n".
  std::string out;
  const auto until = std::chrono::steady_clock::now() + startup_timeout;
  while (true) {
    size_t nl = out.find('\n');
    if (nl != std::string::npos) {
      absl::string_view line(out.data(), nl);
      if (absl::ConsumePrefix(&line, "listening on ")) {
        s->address_ = std::string(line);
        return s;
      }
      out.erase(0, nl + 1);
      continue;
    }
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        until - std::chrono::steady_clock::now());
    if (left.count() <= 0) {
      return absl::DeadlineExceededError("ntk_server did not print \"listening on\"; stderr:\n" +
                                         s->ReadStderr());
    }
    struct pollfd p = {s->stdout_fd_, POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(left.count())) <= 0) continue;
    char buf[256];
    ssize_t n = ::read(s->stdout_fd_, buf, sizeof(buf));
    if (n <= 0) {
      return absl::UnavailableError("ntk_server exited before listening; stderr:\n" +
                                    s->ReadStderr());
    }
    out.append(buf, static_cast<size_t>(n));
  }
}

SubprocessServer::~SubprocessServer() {
  if (pid_ > 0) {
    ::kill(pid_, SIGKILL);
    int status;
    ::waitpid(pid_, &status, 0);
  }
  if (stdout_fd_ >= 0) ::close(stdout_fd_);
}

std::string SubprocessServer::ReadStderr() const { return ReadFileOrEmpty(stderr_path_); }

std::unique_ptr<Client> SubprocessServer::Connect(ClientOptions options) const {
  options.target = address_;
  absl::StatusOr<std::unique_ptr<Client>> c = Client::Connect(options);
  if (!c.ok()) {
    ADD_FAILURE() << "connect: " << c.status();
    return nullptr;
  }
  return *std::move(c);
}

void SubprocessServer::Signal(int signal) const {
  if (pid_ > 0) ::kill(pid_, signal);
}

absl::StatusOr<int> SubprocessServer::Wait(std::chrono::milliseconds timeout) {
  if (pid_ <= 0) return absl::FailedPreconditionError("not running");
  absl::StatusOr<int> code = WaitForExit(pid_, timeout);
  if (code.ok()) pid_ = -1;
  return code;
}

Blobs MakeBlobs(int n, int d, int classes, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<double> normal(0.0, 1.0);
  Eigen::MatrixXd centers(classes, d);
  for (int c = 0; c < classes; ++c)
    for (int j = 0; j < d; ++j) centers(c, j) = 2.0 * normal(rng);
  Blobs b;
  b.x.resize(n, d);
  b.y.resize(n);
  for (int i = 0; i < n; ++i) {
    const int c = i % classes;
    b.y[i] = c;
    for (int j = 0; j < d; ++j) b.x(i, j) = centers(c, j) + normal(rng);
  }
  return b;
}

TrainingData BlobsData(int n, int d, int classes, uint64_t seed) {
  Blobs b = MakeBlobs(n, d, classes, seed);
  TrainingData data;
  data.features = std::move(b.x);
  data.labels = std::move(b.y);
  return data;
}

Eigen::MatrixXd SoftTargets(const std::vector<int>& y, int classes, double eps) {
  Eigen::MatrixXd t = Eigen::MatrixXd::Constant(static_cast<Eigen::Index>(y.size()), classes,
                                                eps / classes);
  for (size_t i = 0; i < y.size(); ++i) t(static_cast<Eigen::Index>(i), y[i]) += 1.0 - eps;
  return t;
}

v1::ModelSpec SmallSpec(double lambda) {
  v1::ModelSpec s;
  s.mutable_kernel()->set_activation(v1::RELU);
  s.mutable_kernel()->set_depth(2);
  s.mutable_training()->set_loss(v1::CROSS_ENTROPY);
  if (lambda >= 0) s.mutable_training()->set_regularization(lambda);
  s.mutable_preprocessing()->set_standardize(true);
  return s;
}

std::unique_ptr<grpc::ClientContext> CallContext(std::chrono::seconds timeout) {
  auto ctx = std::make_unique<grpc::ClientContext>();
  ctx->set_deadline(std::chrono::system_clock::now() + timeout);
  return ctx;
}

int EnvInt(const char* name, int fallback) {
  const char* value = std::getenv(name);
  int parsed = 0;
  if (value != nullptr && absl::SimpleAtoi(value, &parsed) && parsed > 0) return parsed;
  return fallback;
}

}  // namespace ntk::testing

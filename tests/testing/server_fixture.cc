#include "tests/testing/server_fixture.h"

#include "server/model_store.h"

#include <fcntl.h>
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

#include <grpcpp/create_channel.h>
#include <grpcpp/security/credentials.h>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/strip.h"
#include "gtest/gtest.h"

extern char** environ;

namespace ntk::testing {

TempDir::TempDir() {
  const char* base = std::getenv("TMPDIR");
  std::string tmpl = absl::StrCat(base != nullptr && *base ? base : "/tmp", "/ntk-test-XXXXXX");
  std::vector<char> buf(tmpl.begin(), tmpl.end());
  buf.push_back('\0');
  if (::mkdtemp(buf.data()) == nullptr) {
    ADD_FAILURE() << "mkdtemp " << tmpl << ": " << std::strerror(errno);
  }
  path_ = buf.data();
}

TempDir::~TempDir() {
  std::error_code ec;
  std::filesystem::remove_all(path_, ec);
}

std::vector<std::string> TempDir::List() const {
  std::vector<std::string> out;
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator(path_, ec)) {
    // A server's model_dir lock file (server/model_store.h) is not content.
    if (e.path().filename() == server::kLockFileName) continue;
    out.push_back(e.path().filename().string());
  }
  std::sort(out.begin(), out.end());
  return out;
}

bool MakeSelfSignedCertificate(const TempDir& dir, std::string* why) {
  if (access("/usr/bin/openssl", X_OK) != 0) {
    *why = "/usr/bin/openssl not found";
    return false;
  }
  const std::string cmd =
      "/usr/bin/openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=localhost "
      "-addext subjectAltName=IP:127.0.0.1,DNS:localhost -keyout " + dir.File("key.pem") +
      " -out " + dir.File("cert.pem") + " > " + dir.File("openssl.log") + " 2>&1";
  if (std::system(cmd.c_str()) != 0) {
    *why = "openssl req failed";
    return false;
  }
  return true;
}

bool TlsTestServerOptions(const TempDir& model_dir, const TempDir& certs,
                          server::ServerOptions* options, std::string* why) {
  if (!MakeSelfSignedCertificate(certs, why)) return false;
  *options = TestServerOptions(model_dir.path());
  options->tls_cert_pem = ReadFileOrEmpty(certs.File("cert.pem"));
  options->tls_key_pem = ReadFileOrEmpty(certs.File("key.pem"));
  return true;
}

std::string ReadFileOrEmpty(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
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

  // Everything the child needs is prepared before fork (the child only
  // calls async-signal-safe functions).
  std::vector<std::string> argv_s = {server_path};
  bool has_listen = false;
  for (const std::string& a : args) has_listen |= absl::StartsWith(a, "--listen");
  if (!has_listen) argv_s.push_back("--listen=127.0.0.1:0");
  argv_s.insert(argv_s.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (std::string& a : argv_s) argv.push_back(a.data());
  argv.push_back(nullptr);
  std::vector<std::string> env_s;
  for (char** e = environ; *e != nullptr; ++e) {
    if (!absl::StartsWith(*e, "NTK_")) env_s.push_back(*e);  // only ours
  }
  env_s.insert(env_s.end(), env.begin(), env.end());
  std::vector<char*> envp;
  for (std::string& e : env_s) envp.push_back(e.data());
  envp.push_back(nullptr);

  int out_pipe[2];
  if (::pipe2(out_pipe, O_CLOEXEC) != 0) return absl::InternalError("pipe");
  int err_fd = ::open(s->stderr_path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (err_fd < 0) return absl::InternalError("open stderr log");
  pid_t pid = ::fork();
  if (pid < 0) return absl::InternalError("fork");
  if (pid == 0) {
    ::dup2(out_pipe[1], STDOUT_FILENO);
    ::dup2(err_fd, STDERR_FILENO);
    ::execve(argv[0], argv.data(), envp.data());
    ::_exit(127);
  }
  ::close(out_pipe[1]);
  ::close(err_fd);
  s->pid_ = pid;
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

std::string SubprocessServer::ReadStderr() const {
  std::ifstream in(stderr_path_);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

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
  const auto until = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    int status = 0;
    pid_t r = ::waitpid(pid_, &status, WNOHANG);
    if (r == pid_) {
      pid_ = -1;
      if (WIFEXITED(status)) return WEXITSTATUS(status);
      if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
      return -1;
    }
    if (std::chrono::steady_clock::now() > until) {
      return absl::DeadlineExceededError("ntk_server still running");
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
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

}  // namespace ntk::testing

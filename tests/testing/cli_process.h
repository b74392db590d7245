// ntk/tests/testing/cli_process.h: running programs and an ntk_server as
// subprocesses in end-to-end tests (used by ntkctl_test and
// python_example_test).
//
//   ntk::testing::TempDir dir;                      // removed at scope exit
//   ntk::testing::ServerProcess server;
//   ASSERT_TRUE(server.Start(NTK_SERVER_PATH, dir.path() + "/models"));
//   ntk::testing::ProcessResult r =
//       ntk::testing::RunProcess({NTKCTL_PATH, "--server=" + server.address(),
//                                 "health"});
//   EXPECT_EQ(r.exit_code, 0) << r.err;
//
// Header-only (inline) so that it adds nothing to ntk_test_support.
// Servers bind 127.0.0.1 on an ephemeral port the kernel picks (--listen
// 127.0.0.1:0; the server prints the port) and are stopped (SIGTERM, then
// SIGKILL after a grace period) by the destructor. Every child runs
// with a time limit and is killed when it exceeds it.
//
// Thread safety: not thread-safe; use from the test's main thread.
#ifndef NTK_TESTS_TESTING_CLI_PROCESS_H_
#define NTK_TESTS_TESTING_CLI_PROCESS_H_

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <thread>
#include <utility>
#include <vector>

namespace ntk {
namespace testing {

// A fresh directory under $TMPDIR (or /tmp), removed with its contents by the
// destructor.
class TempDir {
 public:
  TempDir() {
    const char* base = std::getenv("TMPDIR");
    std::string templ =
        std::string(base != nullptr && *base ? base : "/tmp") + "/ntk-test-XXXXXX";
    std::vector<char> buf(templ.begin(), templ.end());
    buf.push_back('\0');
    if (mkdtemp(buf.data()) != nullptr) path_ = buf.data();
  }
  ~TempDir() {
    std::error_code ec;
    if (!path_.empty()) std::filesystem::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  // Empty when the directory could not be created.
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

inline std::string ReadFileOrEmpty(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

inline bool WriteFile(const std::string& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary);
  out << text;
  return static_cast<bool>(out);
}

struct ProcessResult {
  int exit_code = -1;  // the exit status, or 128 + signal, or -1 on failure
  bool timed_out = false;
  std::string out;     // stdout
  std::string err;     // stderr
};

namespace internal {

// fork + exec with stdout/stderr to the given files (or /dev/null when
// empty) and extra environment variables. Returns the child's pid or -1.
inline pid_t Spawn(const std::vector<std::string>& argv,
                   const std::map<std::string, std::string>& env,
                   const std::string& out_path, const std::string& err_path) {
  std::vector<char*> args;
  for (const std::string& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  const pid_t pid = fork();
  if (pid != 0) return pid;  // parent (or -1)
  // Child: only async-signal-safe calls until exec (plus setenv, which is
  // fine in a single-threaded child of a test process).
  const int in = open("/dev/null", O_RDONLY);
  if (in >= 0) dup2(in, 0);
  const int out = open(out_path.empty() ? "/dev/null" : out_path.c_str(),
                       O_WRONLY | O_CREAT | O_TRUNC, 0644);
  const int err = open(err_path.empty() ? "/dev/null" : err_path.c_str(),
                       O_WRONLY | O_CREAT | O_TRUNC, 0644);
  if (out >= 0) dup2(out, 1);
  if (err >= 0) dup2(err, 2);
  for (const auto& [k, v] : env) {
    if (v.empty()) {
      unsetenv(k.c_str());
    } else {
      setenv(k.c_str(), v.c_str(), 1);
    }
  }
  execv(args[0], args.data());
  _exit(127);
}

// Waits up to `timeout` for `pid`; returns true and the status when it ended.
inline bool WaitFor(pid_t pid, std::chrono::milliseconds timeout, int* status) {
  const auto end = std::chrono::steady_clock::now() + timeout;
  while (true) {
    const pid_t r = waitpid(pid, status, WNOHANG);
    if (r == pid) return true;
    if (r < 0) return false;
    if (std::chrono::steady_clock::now() >= end) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
}

inline int ExitCodeOf(int status) {
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return -1;
}

}  // namespace internal

// Runs argv[0] (an absolute path) with arguments argv[1..] and waits up to
// `timeout` (then kills it). `env` adds or (with an empty value) removes
// environment variables in the child.
inline ProcessResult RunProcess(
    const std::vector<std::string>& argv,
    const std::map<std::string, std::string>& env = {},
    std::chrono::seconds timeout = std::chrono::seconds(120)) {
  ProcessResult r;
  TempDir dir;
  if (dir.path().empty()) return r;
  const std::string out = dir.path() + "/stdout", err = dir.path() + "/stderr";
  const pid_t pid = internal::Spawn(argv, env, out, err);
  if (pid < 0) return r;
  int status = 0;
  if (!internal::WaitFor(pid, timeout, &status)) {
    r.timed_out = true;
    kill(pid, SIGKILL);
    waitpid(pid, &status, 0);
  }
  r.exit_code = internal::ExitCodeOf(status);
  r.out = ReadFileOrEmpty(out);
  r.err = ReadFileOrEmpty(err);
  return r;
}

// A TCP port on 127.0.0.1 that was free a moment ago (bound to port 0 and
// closed again), e.g. for a client that must find nobody listening.
inline int PickFreePort() {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return -1;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  int port = -1;
  socklen_t len = sizeof(addr);
  if (bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0 &&
      getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0) {
    port = ntohs(addr.sin_port);
  }
  close(fd);
  return port;
}

// An ntk_server child process on 127.0.0.1:<free port>.
class ServerProcess {
 public:
  ServerProcess() = default;
  ~ServerProcess() { Stop(); }
  ServerProcess(const ServerProcess&) = delete;
  ServerProcess& operator=(const ServerProcess&) = delete;

  // Starts `server_path --listen=127.0.0.1:0 --model_dir=<model_dir>
  // <extra_args>` and waits (up to 30 s) for the line "listening on
  // 127.0.0.1:<port>" that ntk_server prints to stdout once it serves; the
  // kernel picks the port, so there is no race for it. The server's stderr
  // goes to log_path() (for failure messages).
  bool Start(const std::string& server_path, const std::string& model_dir,
             const std::vector<std::string>& extra_args = {}) {
    if (log_dir_.path().empty()) return false;
    std::vector<std::string> argv = {server_path, "--listen=127.0.0.1:0",
                                     "--model_dir=" + model_dir};
    argv.insert(argv.end(), extra_args.begin(), extra_args.end());
    // The server must not pick up settings from the test's environment.
    const std::map<std::string, std::string> env = {
        {"NTK_LISTEN", ""},       {"NTK_MODEL_DIR", ""},
        {"NTK_AUTH_TOKEN_FILE", ""}, {"NTK_TLS_CERT", ""},
        {"NTK_TLS_KEY", ""},      {"NTK_SERVER", ""}};
    const std::string out_path = log_dir_.path() + "/server.out";
    pid_ = internal::Spawn(argv, env, out_path, log_path());
    if (pid_ < 0) return false;
    const std::string marker = "listening on 127.0.0.1:";
    const auto end = std::chrono::steady_clock::now() + std::chrono::seconds(30);
    while (std::chrono::steady_clock::now() < end) {
      const std::string out = ReadFileOrEmpty(out_path);
      const size_t at = out.find(marker);
      if (at != std::string::npos && out.find('\n', at) != std::string::npos) {
        port_ = std::atoi(out.c_str() + at + marker.size());
        return port_ > 0;
      }
      int status = 0;
      if (waitpid(pid_, &status, WNOHANG) == pid_) {  // exited early
        pid_ = -1;
        return false;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    Stop();
    return false;
  }

  // SIGTERM, then SIGKILL after 10 s. Returns the exit code (-1 if not
  // running).
  int Stop() {
    if (pid_ <= 0) return -1;
    int status = 0;
    kill(pid_, SIGTERM);
    if (!internal::WaitFor(pid_, std::chrono::seconds(10), &status)) {
      kill(pid_, SIGKILL);
      waitpid(pid_, &status, 0);
    }
    pid_ = -1;
    return internal::ExitCodeOf(status);
  }

  int port() const { return port_; }
  std::string address() const {
    return "127.0.0.1:" + std::to_string(port_);
  }
  std::string log_path() const { return log_dir_.path() + "/server.err"; }
  std::string log() const { return ReadFileOrEmpty(log_path()); }

 private:
  TempDir log_dir_;
  pid_t pid_ = -1;
  int port_ = -1;
};

}  // namespace testing
}  // namespace ntk

#endif  // NTK_TESTS_TESTING_CLI_PROCESS_H_

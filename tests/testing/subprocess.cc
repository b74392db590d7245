#include "tests/testing/subprocess.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <thread>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "tests/testing/temp_dir.h"

extern char** environ;

namespace ntk::testing {

absl::StatusOr<pid_t> Spawn(const std::vector<std::string>& argv_in,
                            const SpawnOptions& options) {
  if (argv_in.empty()) return absl::InvalidArgumentError("argv: empty");
  std::vector<std::string> argv_s = argv_in;
  std::vector<char*> argv;
  for (std::string& a : argv_s) argv.push_back(a.data());
  argv.push_back(nullptr);

  std::vector<std::string> env_s;
  for (char** e = environ; *e != nullptr; ++e) {
    const std::string entry = *e;
    const std::string name = entry.substr(0, entry.find('='));
    if (options.drop_ntk_env && absl::StartsWith(name, "NTK_")) continue;
    if (options.env.count(name) != 0) continue;  // replaced or removed below
    env_s.push_back(entry);
  }
  for (const auto& [name, value] : options.env) {
    if (!value.empty()) env_s.push_back(name + "=" + value);
  }
  std::vector<char*> envp;
  for (std::string& e : env_s) envp.push_back(e.data());
  envp.push_back(nullptr);

  const int null_fd = ::open("/dev/null", O_RDWR | O_CLOEXEC);
  if (null_fd < 0) return absl::InternalError(absl::StrCat("open /dev/null: ", std::strerror(errno)));
  const int out_fd = options.stdout_fd >= 0 ? options.stdout_fd : null_fd;
  const int err_fd = options.stderr_fd >= 0 ? options.stderr_fd : null_fd;
  const pid_t pid = ::fork();
  if (pid == 0) {
    ::dup2(null_fd, STDIN_FILENO);
    ::dup2(out_fd, STDOUT_FILENO);
    ::dup2(err_fd, STDERR_FILENO);
    ::execve(argv[0], argv.data(), envp.data());
    ::_exit(127);
  }
  ::close(null_fd);
  if (pid < 0) return absl::InternalError(absl::StrCat("fork: ", std::strerror(errno)));
  return pid;
}

absl::StatusOr<int> WaitForExit(pid_t pid, std::chrono::milliseconds timeout) {
  const auto until = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    int status = 0;
    const pid_t r = ::waitpid(pid, &status, WNOHANG);
    if (r == pid) {
      if (WIFEXITED(status)) return WEXITSTATUS(status);
      if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
      return -1;
    }
    if (r < 0) return absl::InternalError(absl::StrCat("waitpid: ", std::strerror(errno)));
    if (std::chrono::steady_clock::now() >= until) {
      return absl::DeadlineExceededError(absl::StrCat("process ", pid, " still running"));
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
}

ProcessResult RunProcess(const std::vector<std::string>& argv,
                         const std::map<std::string, std::string>& env,
                         std::chrono::seconds timeout) {
  ProcessResult r;
  TempDir dir;
  const std::string out_path = dir.File("stdout"), err_path = dir.File("stderr");
  SpawnOptions o;
  o.env = env;
  o.stdout_fd = ::open(out_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  o.stderr_fd = ::open(err_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  absl::StatusOr<pid_t> pid = Spawn(argv, o);
  ::close(o.stdout_fd);
  ::close(o.stderr_fd);
  if (!pid.ok()) {
    r.err = pid.status().ToString();
    return r;
  }
  absl::StatusOr<int> code = WaitForExit(*pid, timeout);
  if (!code.ok()) {
    r.timed_out = true;
    ::kill(*pid, SIGKILL);
    code = WaitForExit(*pid, std::chrono::seconds(60));
  }
  r.exit_code = code.ok() ? *code : -1;
  r.out = ReadFileOrEmpty(out_path);
  r.err = ReadFileOrEmpty(err_path);
  return r;
}

}  // namespace ntk::testing

// tests/testing/subprocess.h: the one fork/exec helper of the tests.
//
//   ProcessResult r = RunProcess({NTKCTL_PATH, "--server=" + addr, "health"},
//                                {{"NTK_SERVER", ""}});
//   EXPECT_EQ(r.exit_code, 0) << r.err;
//
// Spawn and WaitForExit are the pieces RunProcess and SubprocessServer
// (tests/testing/server_fixture.h) are built from. Every child gets
// /dev/null as stdin; argv and the environment are prepared before fork,
// so the child calls only async-signal-safe functions until exec.
//
// Thread safety: thread-safe (no shared state besides the process table).
#ifndef NTK_TESTS_TESTING_SUBPROCESS_H_
#define NTK_TESTS_TESTING_SUBPROCESS_H_

#include <sys/types.h>

#include <chrono>
#include <map>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace ntk::testing {

struct SpawnOptions {
  // Changes to the inherited environment: NAME -> value sets NAME,
  // NAME -> "" removes it.
  std::map<std::string, std::string> env;
  // Remove every inherited NTK_* variable first (servers under test must
  // not pick up settings from the test's environment).
  bool drop_ntk_env = false;
  // The child's stdout / stderr (dup2'ed; -1: /dev/null). The caller keeps
  // ownership and closes its copies after Spawn.
  int stdout_fd = -1;
  int stderr_fd = -1;
};

// Starts argv[0] (an absolute path) with arguments argv[1..].
// REQUIRES: argv non-empty.
absl::StatusOr<pid_t> Spawn(const std::vector<std::string>& argv, const SpawnOptions& options);

// Waits up to `timeout` for `pid` to exit and reaps it: its exit code, or
// 128 + signal when killed. DEADLINE_EXCEEDED when it still runs (then
// the child is neither killed nor reaped). Polls waitpid every 10 ms: this
// waits for an external process, never synchronizes threads.
absl::StatusOr<int> WaitForExit(pid_t pid, std::chrono::milliseconds timeout);

struct ProcessResult {
  int exit_code = -1;  // exit status, 128 + signal, or -1 if it did not run
  bool timed_out = false;
  std::string out;  // stdout
  std::string err;  // stderr (or why it did not run)
};

// Runs argv to completion (SIGKILL after `timeout`) and collects its output.
// `env` as SpawnOptions::env.
ProcessResult RunProcess(const std::vector<std::string>& argv,
                         const std::map<std::string, std::string>& env = {},
                         std::chrono::seconds timeout = std::chrono::seconds(120));

}  // namespace ntk::testing

#endif  // NTK_TESTS_TESTING_SUBPROCESS_H_

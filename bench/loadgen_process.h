// ntk/bench/loadgen_process.h: the processes ntk_loadgen (bench/loadgen.cc)
// measures: the echo service it re-executes itself as (--serve_echo), and
// starting, reading the port of and stopping a child process.
//
// Thread safety: called from ntk_loadgen's main thread only. A Child is
// owned by its caller, who must Stop it.
#ifndef NTK_BENCH_LOADGEN_PROCESS_H_
#define NTK_BENCH_LOADGEN_PROCESS_H_

#include <sys/types.h>

#include <string>
#include <vector>

namespace ntk::bench {

// Serves bench/echo.proto's Echo on 127.0.0.1:0, prints the chosen port on
// stdout, and stops on SIGTERM/SIGINT (or when the parent dies). Returns
// the process exit code.
int ServeEcho();

struct Child {
  pid_t pid = -1;
};

// Sends SIGTERM, waits up to 15 s, then SIGKILL. Only our own child's pid.
void Stop(Child* c);

// Starts `argv` with extra environment `env`; stdout to a pipe (returned in
// *stdout_fd when non-null, else /dev/null), stderr to `log_path`.
Child Spawn(const std::vector<std::string>& argv, const std::vector<std::string>& env,
            const std::string& log_path, int* stdout_fd);

// Reads one line (the port) from fd, waiting at most 20 s; 0 on failure.
int ReadPort(int fd);

// A port that was free a moment ago (bind to 0, read it, close).
int FreePort();

}  // namespace ntk::bench

#endif  // NTK_BENCH_LOADGEN_PROCESS_H_

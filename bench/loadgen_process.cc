// ntk/bench/loadgen_process.cc: see loadgen_process.h.
#include "bench/loadgen_process.h"

#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <grpcpp/grpcpp.h>

#include "bench/echo.grpc.pb.h"

namespace ntk::bench {
namespace {

using Clock = std::chrono::steady_clock;

class EchoService final : public Echo::CallbackService {
  grpc::ServerUnaryReactor* Echo(grpc::CallbackServerContext* ctx,
                                 const EchoMessage* request,
                                 EchoMessage* response) override {
    *response = *request;
    grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
    reactor->Finish(grpc::Status::OK);
    return reactor;
  }
};

}  // namespace

int ServeEcho() {
  prctl(PR_SET_PDEATHSIG, SIGTERM);
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);  // before gRPC starts threads

  EchoService service;
  grpc::ServerBuilder builder;
  int port = 0;
  builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port);
  builder.RegisterService(&service);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (server == nullptr || port == 0) {
    fprintf(stderr, "echo: cannot start\n");
    return 1;
  }
  printf("%d\n", port);
  fflush(stdout);
  int sig = 0;
  sigwait(&set, &sig);
  server->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(2));
  return 0;
}

void Stop(Child* c) {
  if (c->pid <= 0) return;
  kill(c->pid, SIGTERM);
  const auto deadline = Clock::now() + std::chrono::seconds(15);
  while (Clock::now() < deadline) {
    int status = 0;
    if (waitpid(c->pid, &status, WNOHANG) == c->pid) {
      c->pid = -1;
      return;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  kill(c->pid, SIGKILL);
  waitpid(c->pid, nullptr, 0);
  c->pid = -1;
}

Child Spawn(const std::vector<std::string>& argv,
            const std::vector<std::string>& env, const std::string& log_path,
            int* stdout_fd) {
  int fds[2] = {-1, -1};
  if (stdout_fd != nullptr && pipe(fds) != 0) return {};
  Child c;
  c.pid = fork();
  if (c.pid == 0) {
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (stdout_fd != nullptr) {
      dup2(fds[1], 1);
      close(fds[0]);
      close(fds[1]);
    } else {
      int null_fd = open("/dev/null", O_WRONLY);
      dup2(null_fd, 1);
    }
    int log_fd = open(log_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (log_fd >= 0) dup2(log_fd, 2);
    for (const std::string& e : env) putenv(strdup(e.c_str()));
    std::vector<char*> args;
    for (const std::string& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    execv(args[0], args.data());
    fprintf(stderr, "exec %s: %s\n", args[0], strerror(errno));
    _exit(127);
  }
  if (stdout_fd != nullptr) {
    close(fds[1]);
    *stdout_fd = fds[0];
  }
  return c;
}

int ReadPort(int fd) {
  std::string line;
  const auto deadline = Clock::now() + std::chrono::seconds(20);
  fcntl(fd, F_SETFL, O_NONBLOCK);
  while (Clock::now() < deadline) {
    char ch;
    const ssize_t got = read(fd, &ch, 1);
    if (got == 1) {
      if (ch == '\n') return std::atoi(line.c_str());
      line.push_back(ch);
    } else if (got == 0) {
      return 0;  // closed
    } else {
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
  }
  return 0;
}

int FreePort() {
  int s = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  socklen_t len = sizeof(addr);
  int port = 0;
  if (bind(s, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0 &&
      getsockname(s, reinterpret_cast<sockaddr*>(&addr), &len) == 0)
    port = ntohs(addr.sin_port);
  close(s);
  return port;
}

}  // namespace ntk::bench

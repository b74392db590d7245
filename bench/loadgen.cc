// ntk/bench/loadgen.cc: a gRPC load generator for ntk_server, next to a
// trivial echo service measured in the same run as the ceiling.
//
// What it does, all on 127.0.0.1 with ephemeral ports:
//   1. starts the echo service (bench/echo.proto; callback API like our
//      server; this same binary re-executed with --serve_echo) as a
//      subprocess;
//   2. starts ntk_server as a subprocess (--listen=127.0.0.1:<free port>,
//      --model_dir=<temp dir>, --log_rpcs as given: default true, the
//      server's default, stderr to a file), waits for its health check, and fits one
//      small model through ntk::Client (N = 1000, d = 64, C = 10 synthetic
//      class means + noise, defaults: regime 2b);
//   3. for each target (echo, Predict, PredictDistribution) and each
//      concurrency c in --concurrency (default 1,8,64): keeps c single-row
//      requests in flight from one completion-queue thread for --warmup_s,
//      then counts the calls that complete within the next --duration_ms
//      (at most --max_calls); reports requests/s, p50/p99 latency (from
//      call start to its completion) and the server process's CPU time
//      (user + system, /proc/<pid>/stat) per completed call in that window;
//   4. stops both servers (SIGTERM) and removes the temp dir.
//
// Results: a table on stdout and, with --json_out=FILE, one JSON object per
// cell. run.sh turns them into ratios to the echo ceiling. On a machine
// shared with other work, req/s moves with the others' load; the server's
// CPU per call ("server_cpu_us") moves much less, so compare that between
// two builds of the server.
//
//   ./ntk_loadgen --duration_ms=3000 --json_out=loadgen.json
//
// Why one file over ~500 lines: it is one self-contained benchmark binary
// (echo service, subprocess control, completion-queue driver, report) whose
// parts are used only here and only in this order; bench/ builds each
// benchmark from one source so run.sh and the CMake list stay one line each.
//
// Not a test: it asserts nothing about speed. Calls that fail are counted
// (errors) and excluded from the latencies.
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iterator>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <grpcpp/grpcpp.h>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "bench/bench_support.h"
#include "bench/echo.grpc.pb.h"
#include "client/client.h"
#include "proto/ntk/v1/ntk.grpc.pb.h"

namespace {

using Clock = std::chrono::steady_clock;

// ---- The echo service (subprocess mode) ----------------------------------------

class EchoService final : public ntk::bench::Echo::CallbackService {
  grpc::ServerUnaryReactor* Echo(grpc::CallbackServerContext* ctx,
                                 const ntk::bench::EchoMessage* request,
                                 ntk::bench::EchoMessage* response) override {
    *response = *request;
    grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
    reactor->Finish(grpc::Status::OK);
    return reactor;
  }
};

// Serves Echo on 127.0.0.1:0, prints the chosen port on stdout, and stops
// on SIGTERM/SIGINT (or when the parent dies).
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

// ---- Subprocesses -------------------------------------------------------------

struct Child {
  pid_t pid = -1;
};

// Sends SIGTERM, waits up to 15 s, then SIGKILL. Only our own child's pid.
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

// Starts `argv` with extra environment `env`; stdout to a pipe (returned in
// *stdout_fd when non-null, else /dev/null), stderr to `log_path`.
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

// Reads one line (the port) from fd, waiting at most 20 s.
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

// A port that was free a moment ago (bind to 0, read it, close).
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

// CPU time (user + system) process `pid` has used so far, microseconds;
// -1 when /proc/<pid>/stat cannot be read.
double ProcessCpuUs(pid_t pid) {
  std::ifstream f(absl::StrCat("/proc/", pid, "/stat"));
  std::string stat((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  const size_t comm_end = stat.rfind(')');  // the command name may hold spaces
  if (comm_end == std::string::npos) return -1;
  // Fields after "pid (comm) ": 3 state ... 14 utime, 15 stime (clock ticks).
  std::vector<std::string> fields = absl::StrSplit(stat.substr(comm_end + 1), ' ', absl::SkipEmpty());
  if (fields.size() < 13) return -1;
  const double ticks = std::atof(fields[11].c_str()) + std::atof(fields[12].c_str());
  return ticks * 1e6 / static_cast<double>(sysconf(_SC_CLK_TCK));
}

// ---- The load loop --------------------------------------------------------------

struct CellResult {
  std::string target;
  int concurrency = 0;
  double seconds = 0;
  long completed = 0;  // successful completions in the measured window
  long errors = 0;
  std::string first_error;
  double rps = 0;
  double p50_us = 0, p99_us = 0, mean_us = 0;
  double server_cpu_us = -1;  // server CPU per completed call in the window (-1: unknown)
};

// Keeps `concurrency` calls in flight from this thread: `prepare` creates a
// (not yet started) call of the request on `cq`; each completion starts the
// next call until the measured window ends, then the rest drain. The CPU
// time of `server_pid` is read when the window opens and closes.
template <typename Request, typename Response>
CellResult RunCell(
    const std::string& target, pid_t server_pid, int concurrency, double warmup_s,
    double duration_s, long max_calls, const std::vector<Request>& requests,
    std::function<std::unique_ptr<grpc::ClientAsyncResponseReader<Response>>(
        grpc::ClientContext*, const Request&, grpc::CompletionQueue*)>
        prepare) {
  struct Call {
    grpc::ClientContext ctx;
    Response response;
    grpc::Status status;
    std::unique_ptr<grpc::ClientAsyncResponseReader<Response>> rpc;
    Clock::time_point start;
  };
  grpc::CompletionQueue cq;
  long issued = 0;
  auto launch = [&]() {
    auto* call = new Call;
    call->ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
    call->start = Clock::now();
    call->rpc = prepare(&call->ctx, requests[issued % requests.size()], &cq);
    call->rpc->StartCall();
    call->rpc->Finish(&call->response, &call->status, call);
    ++issued;
  };

  const Clock::time_point t0 = Clock::now();
  const Clock::time_point measure_from =
      t0 + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(warmup_s));
  const Clock::time_point measure_to =
      measure_from + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(duration_s));
  CellResult r;
  r.target = target;
  r.concurrency = concurrency;
  std::vector<double> latencies_us;
  latencies_us.reserve(1 << 16);
  int in_flight = 0;
  for (int i = 0; i < concurrency; ++i, ++in_flight) launch();
  Clock::time_point last_counted = measure_from;
  bool capped = false;
  double cpu_from = -1, cpu_to = -1;
  while (in_flight > 0) {
    void* tag = nullptr;
    bool ok = false;
    if (!cq.Next(&tag, &ok)) break;
    auto* call = static_cast<Call*>(tag);
    const Clock::time_point end = Clock::now();
    if (cpu_from < 0 && end >= measure_from) cpu_from = ProcessCpuUs(server_pid);
    if (cpu_to < 0 && cpu_from >= 0 && (end > measure_to || capped)) {
      cpu_to = ProcessCpuUs(server_pid);
    }
    // Counted: every call that completes inside the measured window.
    if (end >= measure_from && end <= measure_to && !capped) {
      if (ok && call->status.ok()) {
        ++r.completed;
        latencies_us.push_back(
            std::chrono::duration<double, std::micro>(end - call->start).count());
        last_counted = end;
        if (r.completed >= max_calls) capped = true;
      } else {
        ++r.errors;
      }
    }
    if (!(ok && call->status.ok()) && r.first_error.empty())
      r.first_error = call->status.error_message();
    delete call;
    --in_flight;
    if (end < measure_to && !capped) {
      launch();
      ++in_flight;
    }
  }
  cq.Shutdown();
  {
    void* tag;
    bool ok;
    while (cq.Next(&tag, &ok)) {
    }
  }
  // Measured window: the full duration, or up to the last counted call when
  // --max_calls cut it short.
  r.seconds = capped ? std::chrono::duration<double>(last_counted - measure_from).count()
                     : duration_s;
  r.rps = r.seconds > 0 ? r.completed / r.seconds : 0;
  if (cpu_to < 0 && cpu_from >= 0) cpu_to = ProcessCpuUs(server_pid);  // window ended last
  if (cpu_from >= 0 && cpu_to >= cpu_from && r.completed > 0) {
    r.server_cpu_us = (cpu_to - cpu_from) / static_cast<double>(r.completed);
  }
  if (!latencies_us.empty()) {
    std::sort(latencies_us.begin(), latencies_us.end());
    auto q = [&](double p) {
      const size_t i = std::min(latencies_us.size() - 1,
                                static_cast<size_t>(p * (latencies_us.size() - 1) + 0.5));
      return latencies_us[i];
    };
    r.p50_us = q(0.50);
    r.p99_us = q(0.99);
    double sum = 0;
    for (double v : latencies_us) sum += v;
    r.mean_us = sum / latencies_us.size();
  }
  return r;
}

bool g_log_rpcs = true;  // --log_rpcs, reported with every cell

std::string Json(const CellResult& r) {
  return absl::StrCat("{\"target\":\"", r.target, "\",\"concurrency\":", r.concurrency,
                      ",\"server_log_rpcs\":", g_log_rpcs ? "true" : "false",
                      ",\"seconds\":", r.seconds, ",\"completed\":", r.completed,
                      ",\"errors\":", r.errors, ",\"rps\":", r.rps,
                      ",\"p50_us\":", r.p50_us, ",\"p99_us\":", r.p99_us,
                      ",\"mean_us\":", r.mean_us, ",\"server_cpu_us\":", r.server_cpu_us, "}");
}

// RunCell at each concurrency of `levels`, appending to *results; each
// cell's JSON goes to stderr as it completes.
template <typename Request, typename Response, typename Prepare>
void RunCells(const std::string& target, pid_t server_pid, const std::vector<int>& levels,
              double warmup_s, double duration_s, long max_calls,
              const std::vector<Request>& requests, const Prepare& prepare,
              std::vector<CellResult>* results) {
  for (int c : levels) {
    results->push_back(RunCell<Request, Response>(target, server_pid, c, warmup_s, duration_s,
                                                  max_calls, requests, prepare));
    fprintf(stderr, "%s\n", Json(results->back()).c_str());
  }
}

bool WaitHealthy(ntk::Client* client, double seconds) {
  const auto deadline = Clock::now() + std::chrono::duration_cast<Clock::duration>(
                                           std::chrono::duration<double>(seconds));
  while (Clock::now() < deadline) {
    if (client->Health().ok()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  return false;
}

}  // namespace

int main(int argc, char** argv) {
  using ntk::bench::TakeIntFlag;
  using ntk::bench::TakeStringFlag;
  if (argc > 1 && std::strcmp(argv[1], "--serve_echo") == 0) return ServeEcho();

  const std::string server_path = TakeStringFlag(&argc, argv, "server", NTK_SERVER_PATH);
  const double duration_s = TakeIntFlag(&argc, argv, "duration_ms", 3000) / 1000.0;
  const double warmup_s = TakeIntFlag(&argc, argv, "warmup_ms", 500) / 1000.0;
  const long max_calls = TakeIntFlag(&argc, argv, "max_calls", 1000000);
  const int n = static_cast<int>(TakeIntFlag(&argc, argv, "n", 1000));
  const int d = static_cast<int>(TakeIntFlag(&argc, argv, "d", 64));
  const int classes = static_cast<int>(TakeIntFlag(&argc, argv, "classes", 10));
  const std::string conc_flag = TakeStringFlag(&argc, argv, "concurrency", "1,8,64");
  const std::string targets_flag =
      TakeStringFlag(&argc, argv, "targets", "echo,predict,distribution");
  const std::string json_out = TakeStringFlag(&argc, argv, "json_out", "");
  const bool log_rpcs = TakeIntFlag(&argc, argv, "log_rpcs", 1) != 0;
  g_log_rpcs = log_rpcs;
  if (argc > 1) {
    fprintf(stderr,
            "usage: ntk_loadgen [--server=PATH] [--duration_ms=3000] [--warmup_ms=500]\n"
            "  [--max_calls=1000000] [--n=1000] [--d=64] [--classes=10]\n"
            "  [--concurrency=1,8,64] [--targets=echo,predict,distribution]\n"
            "  [--json_out=FILE] [--log_rpcs=1]\n  unknown argument: %s\n", argv[1]);
    return 2;
  }
  std::vector<int> concurrency;
  for (absl::string_view s : absl::StrSplit(conc_flag, ',', absl::SkipEmpty()))
    concurrency.push_back(std::atoi(std::string(s).c_str()));
  auto wanted = [&](const char* t) { return targets_flag.find(t) != std::string::npos; };

  // Temp dir for the model store and the servers' logs.
  char tmpl[] = "/tmp/ntk-loadgen-XXXXXX";
  if (mkdtemp(tmpl) == nullptr) {
    perror("mkdtemp");
    return 1;
  }
  const std::string tmp = tmpl;
  signal(SIGPIPE, SIG_IGN);

  // Query rows: a different draw of the same class structure as training.
  ntk::bench::Dataset train = ntk::bench::SyntheticClasses(n, d, classes, 11);
  ntk::bench::Dataset query = ntk::bench::SyntheticClasses(256, d, classes, 11, 1.5);

  std::vector<CellResult> results;
  int rc = 0;

  // ---- echo ----
  Child echo;
  if (wanted("echo")) {
    int out_fd = -1;
    char self[4096];
    const ssize_t len = readlink("/proc/self/exe", self, sizeof(self) - 1);
    if (len <= 0) {
      perror("readlink");
      return 1;
    }
    self[len] = '\0';
    echo = Spawn({self, "--serve_echo"}, {}, tmp + "/echo.log", &out_fd);
    const int port = ReadPort(out_fd);
    close(out_fd);
    if (port <= 0) {
      fprintf(stderr, "echo server did not start (see %s/echo.log)\n", tmp.c_str());
      rc = 1;
    } else {
      auto channel = grpc::CreateChannel(absl::StrCat("127.0.0.1:", port),
                                         grpc::InsecureChannelCredentials());
      channel->WaitForConnected(std::chrono::system_clock::now() + std::chrono::seconds(10));
      auto stub = ntk::bench::Echo::NewStub(channel);
      std::vector<ntk::bench::EchoMessage> requests(query.features.rows());
      for (int i = 0; i < query.features.rows(); ++i) {
        requests[i].set_model_id("bench");
        for (int j = 0; j < d; ++j) requests[i].add_values(query.features(i, j));
      }
      RunCells<ntk::bench::EchoMessage, ntk::bench::EchoMessage>(
          "echo", echo.pid, concurrency, warmup_s, duration_s, max_calls, requests,
          [&](grpc::ClientContext* ctx, const ntk::bench::EchoMessage& req,
              grpc::CompletionQueue* cq) { return stub->PrepareAsyncEcho(ctx, req, cq); },
          &results);
    }
    Stop(&echo);
  }

  // ---- ntk_server ----
  if (wanted("predict") || wanted("distribution")) {
    const int port = FreePort();
    const std::string target = absl::StrCat("127.0.0.1:", port);
    // The server's stderr (one line per RPC unless --log_rpcs=0) goes to a
    // file, as under a service manager.
    Child server = Spawn({server_path, "--listen=" + target, "--model_dir=" + tmp + "/models",
                          std::string("--log_rpcs=") + (log_rpcs ? "true" : "false"),
                          "--shutdown_grace_seconds=2"},
                         {}, tmp + "/server.log", nullptr);
    ntk::ClientOptions options;
    options.target = target;
    absl::StatusOr<std::unique_ptr<ntk::Client>> client = ntk::Client::Connect(options);
    if (!client.ok() || !WaitHealthy(client->get(), 30)) {
      fprintf(stderr, "ntk_server did not become healthy (see %s/server.log)\n", tmp.c_str());
      rc = 1;
    } else {
      ntk::v1::ModelSpec spec;
      spec.mutable_preprocessing()->set_standardize(true);
      spec.mutable_preprocessing()->set_normalize_rows(true);
      absl::StatusOr<ntk::v1::ModelInfo> info =
          (*client)->Fit("bench", spec, train.features, train.labels);
      if (!info.ok()) {
        fprintf(stderr, "Fit failed: %s\n", info.status().ToString().c_str());
        rc = 1;
      } else {
        fprintf(stderr, "fitted: N=%d d=%d C=%d regime %s in %.3f s\n", n, d, classes,
                info->stats().regime().c_str(), info->stats().fit_seconds());
        auto channel = grpc::CreateChannel(target, grpc::InsecureChannelCredentials());
        auto stub = ntk::v1::NtkService::NewStub(channel);
        std::vector<ntk::v1::PredictRequest> preq(query.features.rows());
        std::vector<ntk::v1::PredictDistributionRequest> dreq(query.features.rows());
        for (int i = 0; i < query.features.rows(); ++i) {
          preq[i].set_model_id("bench");
          *preq[i].mutable_features() = ntk::Client::ToProto(query.features.row(i));
          dreq[i].set_model_id("bench");
          *dreq[i].mutable_features() = *preq[i].mutable_features();
          dreq[i].set_method(ntk::v1::METHOD_UNSPECIFIED);
          dreq[i].set_seed(i);
        }
        if (wanted("predict")) {
          RunCells<ntk::v1::PredictRequest, ntk::v1::PredictResponse>(
              "predict", server.pid, concurrency, warmup_s, duration_s, max_calls, preq,
              [&](grpc::ClientContext* ctx, const ntk::v1::PredictRequest& req,
                  grpc::CompletionQueue* cq) { return stub->PrepareAsyncPredict(ctx, req, cq); },
              &results);
        }
        if (wanted("distribution")) {
          RunCells<ntk::v1::PredictDistributionRequest, ntk::v1::PredictDistributionResponse>(
              "distribution", server.pid, concurrency, warmup_s, duration_s, max_calls, dreq,
              [&](grpc::ClientContext* ctx, const ntk::v1::PredictDistributionRequest& req,
                  grpc::CompletionQueue* cq) {
                return stub->PrepareAsyncPredictDistribution(ctx, req, cq);
              },
              &results);
        }
      }
    }
    client = absl::UnknownError("released");  // close the channel before stopping
    Stop(&server);
  }

  printf("%-13s %5s %10s %10s %10s %12s %8s\n", "target", "conc", "req/s", "p50 us", "p99 us",
         "srv CPU us", "errors");
  for (const CellResult& r : results) {
    printf("%-13s %5d %10.0f %10.0f %10.0f %12.1f %8ld%s%s\n", r.target.c_str(), r.concurrency,
           r.rps, r.p50_us, r.p99_us, r.server_cpu_us, r.errors,
           r.first_error.empty() ? "" : "  first: ", r.first_error.c_str());
    if (r.errors > 0 || r.completed == 0) rc = 1;
  }
  if (!json_out.empty()) {
    std::ofstream f(json_out);
    f << "[\n";
    for (size_t i = 0; i < results.size(); ++i)
      f << "  " << Json(results[i]) << (i + 1 < results.size() ? ",\n" : "\n");
    f << "]\n";
  }
  std::error_code ec;
  if (rc == 0) std::filesystem::remove_all(tmp, ec);
  else fprintf(stderr, "logs kept in %s\n", tmp.c_str());
  return rc;
}

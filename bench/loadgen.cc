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
// Files: this one (flags, the runs against the two servers, the report);
// bench/loadgen_cell.h (one measured cell and its JSON line);
// bench/loadgen_process.{h,cc} (the echo service, child processes).
//
// Not a test: it asserts nothing about speed. Calls that fail are counted
// (errors) and excluded from the latencies.
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <grpcpp/grpcpp.h>

#include "absl/strings/str_cat.h"
#include "bench/bench_support.h"
#include "bench/echo.grpc.pb.h"
#include "bench/loadgen_cell.h"
#include "bench/loadgen_process.h"
#include "client/client.h"
#include "proto/ntk/v1/ntk.grpc.pb.h"
#include "tools/common/list_flags.h"

namespace {

// Polls the health check every 100 ms for up to `seconds` (waiting for a
// starting process, not synchronizing threads).
bool WaitHealthy(ntk::Client* client, double seconds) {
  using Clock = std::chrono::steady_clock;
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
  using ntk::bench::CellOptions;
  using ntk::bench::CellResult;
  using ntk::bench::Child;
  using ntk::bench::RunCells;
  using ntk::bench::TakeIntFlag;
  using ntk::bench::TakeStringFlag;
  if (argc > 1 && std::strcmp(argv[1], "--serve_echo") == 0) return ntk::bench::ServeEcho();

  const std::string server_path = TakeStringFlag(&argc, argv, "server", NTK_SERVER_PATH);
  CellOptions cells;
  cells.duration_s = TakeIntFlag(&argc, argv, "duration_ms", 3000) / 1000.0;
  cells.warmup_s = TakeIntFlag(&argc, argv, "warmup_ms", 500) / 1000.0;
  cells.max_calls = TakeIntFlag(&argc, argv, "max_calls", 1000000);
  const int n = static_cast<int>(TakeIntFlag(&argc, argv, "n", 1000));
  const int d = static_cast<int>(TakeIntFlag(&argc, argv, "d", 64));
  const int classes = static_cast<int>(TakeIntFlag(&argc, argv, "classes", 10));
  const std::string conc_flag = TakeStringFlag(&argc, argv, "concurrency", "1,8,64");
  const std::string targets_flag =
      TakeStringFlag(&argc, argv, "targets", "echo,predict,distribution");
  const std::string json_out = TakeStringFlag(&argc, argv, "json_out", "");
  const bool log_rpcs = TakeIntFlag(&argc, argv, "log_rpcs", 1) != 0;
  cells.server_log_rpcs = log_rpcs;
  if (argc > 1) {
    fprintf(stderr,
            "usage: ntk_loadgen [--server=PATH] [--duration_ms=3000] [--warmup_ms=500]\n"
            "  [--max_calls=1000000] [--n=1000] [--d=64] [--classes=10]\n"
            "  [--concurrency=1,8,64] [--targets=echo,predict,distribution]\n"
            "  [--json_out=FILE] [--log_rpcs=1]\n  unknown argument: %s\n", argv[1]);
    return 2;
  }
  const absl::StatusOr<std::vector<int>> levels =
      ntk::tools::ParsePositiveIntList("concurrency", conc_flag);
  if (!levels.ok()) {
    fprintf(stderr, "ntk_loadgen: %s\n", levels.status().ToString().c_str());
    return 2;
  }
  const std::vector<int>& concurrency = *levels;
  auto wanted = [&](const char* t) { return ntk::tools::ListHas(targets_flag, t); };

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
    echo = ntk::bench::Spawn({self, "--serve_echo"}, {}, tmp + "/echo.log", &out_fd);
    const int port = ntk::bench::ReadPort(out_fd);
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
          "echo", echo.pid, concurrency, cells, requests,
          [&](grpc::ClientContext* ctx, const ntk::bench::EchoMessage& req,
              grpc::CompletionQueue* cq) { return stub->PrepareAsyncEcho(ctx, req, cq); },
          &results);
    }
    ntk::bench::Stop(&echo);
  }

  // ---- ntk_server ----
  if (wanted("predict") || wanted("distribution")) {
    const int port = ntk::bench::FreePort();
    const std::string target = absl::StrCat("127.0.0.1:", port);
    // The server's stderr (one line per RPC unless --log_rpcs=0) goes to a
    // file, as under a service manager.
    Child server = ntk::bench::Spawn({server_path, "--listen=" + target, "--model_dir=" + tmp + "/models",
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
              "predict", server.pid, concurrency, cells, preq,
              [&](grpc::ClientContext* ctx, const ntk::v1::PredictRequest& req,
                  grpc::CompletionQueue* cq) { return stub->PrepareAsyncPredict(ctx, req, cq); },
              &results);
        }
        if (wanted("distribution")) {
          RunCells<ntk::v1::PredictDistributionRequest, ntk::v1::PredictDistributionResponse>(
              "distribution", server.pid, concurrency, cells, dreq,
              [&](grpc::ClientContext* ctx, const ntk::v1::PredictDistributionRequest& req,
                  grpc::CompletionQueue* cq) {
                return stub->PrepareAsyncPredictDistribution(ctx, req, cq);
              },
              &results);
        }
      }
    }
    client = absl::UnknownError("released");  // close the channel before stopping
    ntk::bench::Stop(&server);
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
      f << "  " << ntk::bench::Json(results[i]) << (i + 1 < results.size() ? ",\n" : "\n");
    f << "]\n";
  }
  std::error_code ec;
  if (rc == 0) std::filesystem::remove_all(tmp, ec);
  else fprintf(stderr, "logs kept in %s\n", tmp.c_str());
  return rc;
}

// ntk/bench/loadgen_cell.h: one measured cell of ntk_loadgen
// (bench/loadgen.cc): `concurrency` calls of one target kept in flight from
// one completion-queue thread, counted in a window after a warm-up, with
// latency quantiles and the server process's CPU time per call; its JSON
// line.
//
// Thread safety: RunCell uses only its own completion queue; call it from
// one thread at a time per stub. CellResult is a plain value.
#ifndef NTK_BENCH_LOADGEN_CELL_H_
#define NTK_BENCH_LOADGEN_CELL_H_

#include <sys/types.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <iterator>
#include <memory>
#include <string>
#include <vector>

#include <grpcpp/grpcpp.h>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace ntk::bench {

// The window of every cell: --warmup_ms, --duration_ms, --max_calls, and
// the server's --log_rpcs (reported with each cell).
struct CellOptions {
  double warmup_s = 0.5;
  double duration_s = 3;
  long max_calls = 1000000;
  bool server_log_rpcs = true;
};

// CPU time (user + system) process `pid` has used so far, microseconds;
// -1 when /proc/<pid>/stat cannot be read.
inline double ProcessCpuUs(pid_t pid) {
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
  bool server_log_rpcs = true;  // the server's --log_rpcs (CellOptions), reported with the cell
};

// Keeps `concurrency` calls in flight from this thread: `prepare` creates a
// (not yet started) call of the request on `cq`; each completion starts the
// next call until the measured window ends, then the rest drain. The CPU
// time of `server_pid` is read when the window opens and closes.
template <typename Request, typename Response>
CellResult RunCell(
    const std::string& target, pid_t server_pid, int concurrency, const CellOptions& options,
    const std::vector<Request>& requests,
    std::function<std::unique_ptr<grpc::ClientAsyncResponseReader<Response>>(
        grpc::ClientContext*, const Request&, grpc::CompletionQueue*)>
        prepare) {
  using Clock = std::chrono::steady_clock;
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
      t0 + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(options.warmup_s));
  const Clock::time_point measure_to =
      measure_from + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(options.duration_s));
  CellResult r;
  r.target = target;
  r.concurrency = concurrency;
  r.server_log_rpcs = options.server_log_rpcs;
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
        if (r.completed >= options.max_calls) capped = true;
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
                     : options.duration_s;
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

// One JSON object (one line) per cell, the format run.sh and summarize.py read.
inline std::string Json(const CellResult& r) {
  return absl::StrCat("{\"target\":\"", r.target, "\",\"concurrency\":", r.concurrency,
                      ",\"server_log_rpcs\":", r.server_log_rpcs ? "true" : "false",
                      ",\"seconds\":", r.seconds, ",\"completed\":", r.completed,
                      ",\"errors\":", r.errors, ",\"rps\":", r.rps,
                      ",\"p50_us\":", r.p50_us, ",\"p99_us\":", r.p99_us,
                      ",\"mean_us\":", r.mean_us, ",\"server_cpu_us\":", r.server_cpu_us, "}");
}

// RunCell at each concurrency of `levels`, appending to *results; each
// cell's JSON goes to stderr as it completes.
template <typename Request, typename Response, typename Prepare>
void RunCells(const std::string& target, pid_t server_pid, const std::vector<int>& levels,
              const CellOptions& options, const std::vector<Request>& requests,
              const Prepare& prepare, std::vector<CellResult>* results) {
  for (int c : levels) {
    results->push_back(
        RunCell<Request, Response>(target, server_pid, c, options, requests, prepare));
    fprintf(stderr, "%s\n", Json(results->back()).c_str());
  }
}

}  // namespace ntk::bench

#endif  // NTK_BENCH_LOADGEN_CELL_H_

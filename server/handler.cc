#include "server/handler.h"

#include <omp.h>

#include <algorithm>
#include <chrono>

#include "absl/strings/str_format.h"
#include "server/log.h"

namespace ntk::server {
namespace {

int64_t SteadyNs() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

}  // namespace

void SingleThreadedComputeOnThisThread() {
  static thread_local bool done = false;
  if (!done) {
    omp_set_num_threads(1);
    done = true;
  }
}

CallLog::CallLog(const char* m, std::string id, int64_t r)
    : method(m), model_id(std::move(id)), rows(r), start_ns(SteadyNs()) {}

void CallLog::Done(const absl::Status& status) const {
  const double ms = static_cast<double>(SteadyNs() - start_ns) / 1e6;
  const std::string id = model_id.empty() ? std::string("-") : LogfmtValue(model_id);
  const char* sep = extra.empty() ? "" : " ";
  if (status.ok()) {
    Logf("rpc=%s model=%s rows=%d code=OK ms=%.3f%s%s", method, id, rows, ms, sep, extra);
  } else {
    Logf("rpc=%s model=%s rows=%d code=%s ms=%.3f%s%s msg=%s", method, id, rows,
         absl::StatusCodeToString(status.code()), ms, sep, extra,
         LogfmtValue(status.message(), /*always_quote=*/true));
  }
}

bool SlotCounter::TryAcquire() {
  int n = used_.load();
  while (n < max_) {
    if (used_.compare_exchange_weak(n, n + 1)) return true;
  }
  return false;
}

RpcRunner::RpcRunner(const ServerOptions& options, const TokenAuth* auth, Metrics* metrics,
                     WorkerPool* compute_pool, WorkerPool* fit_pool, WorkerPool* predict_pool,
                     InflightCalls* inflight)
    : options_(options),
      auth_(auth),
      metrics_(metrics),
      compute_pool_(compute_pool),
      fit_pool_(fit_pool),
      predict_pool_(predict_pool),
      inflight_(inflight),
      fit_slots_(options.max_concurrent_fits),
      stream_watchdog_(options.stream_idle_seconds),
      memory_budget_(MemoryBudgetBytes(options)) {}

absl::Status RpcRunner::TakeSlot(Where where) {
  if (where != Where::kFit || fit_slots_.TryAcquire()) return absl::OkStatus();
  return absl::ResourceExhaustedError(
      absl::StrFormat("Fit: %d fits already running (--max_concurrent_fits = %d)",
                      fit_slots_.max(), fit_slots_.max()));
}

absl::Status RpcRunner::Admit(const grpc::ServerContextBase& ctx, Where where) {
  if (absl::Status s = auth_->Check(ctx); !s.ok()) return s;
  return TakeSlot(where);
}

void RpcRunner::Schedule(Where where, std::function<void()> fn) {
  WorkerPool* pool = compute_pool_;
  const char* name = "compute";
  if (where == Where::kFit) {
    pool = fit_pool_;
    name = "fit";
  } else if (where == Where::kPredict) {
    pool = predict_pool_;
    name = "predict";
  }
  pool->Schedule([this, name, queued_ns = SteadyNs(), fn = std::move(fn)] {
    metrics_->ObserveQueueWait(name, static_cast<double>(SteadyNs() - queued_ns) / 1e9);
    fn();
  });
}

void RpcCall::StartTimeCeiling(double seconds) {
  if (!(seconds > 0) || HasDeadline()) return;
  ceiling_seconds_ = std::min(seconds, 1e9);  // ~31 years: no duration overflow
  ceiling_at_ = std::chrono::steady_clock::now() +
                std::chrono::duration_cast<std::chrono::steady_clock::duration>(
                    std::chrono::duration<double>(ceiling_seconds_));
}

bool RpcCall::PastTimeCeiling() const {
  return ceiling_seconds_ > 0 && std::chrono::steady_clock::now() > ceiling_at_;
}

absl::Status RpcRunner::Finish(const RpcCall& call, Where where, bool admitted,
                               absl::Status status) {
  if (admitted && where == Where::kFit && !call.fit_slot_detached()) fit_slots_.Release();
  if (status.code() == absl::StatusCode::kCancelled && call.PastDeadline()) {
    status = absl::DeadlineExceededError(
        absl::StrFormat("%s: deadline exceeded (%s)", call.log().method, status.message()));
  } else if (status.code() == absl::StatusCode::kCancelled && call.PastTimeCeiling()) {
    status = absl::ResourceExhaustedError(absl::StrFormat(
        "%s: stopped after %g s of work without a deadline (--max_request_seconds = %g); "
        "set a deadline or ask the operator to raise the limit (%s)",
        call.log().method, call.time_ceiling_seconds(), call.time_ceiling_seconds(),
        status.message()));
  }
  if (options_.log_rpcs) call.log().Done(status);
  metrics_->ObserveCall(call.log().method, status.code(),
                        static_cast<double>(SteadyNs() - call.log().start_ns) / 1e9,
                        call.log().rows, where == Where::kFit);
  return status;
}

}  // namespace ntk::server

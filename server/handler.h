// ntk/server/handler.h: what every RPC handler shares, written once: bearer
// auth, admission (fit slots), where the work runs, deadline/cancellation,
// exceptions, the RPC log line and the absl -> gRPC status mapping at the edge.
//
//   return runner_.Unary(ctx, CallLog("GetModel", request->model_id()), Where::kInline,
//                        [=](RpcCall& call) -> absl::Status { ...; return absl::OkStatus(); });
//
// A handler is then the translation (wire <-> core) and the call. The body
// runs after auth (and, for Where::kFit, after a fit slot was taken) and
// returns absl::Status; RpcRunner maps it to grpc::Status (server/status.h),
// turning CANCELLED after the deadline into DEADLINE_EXCEEDED, writes the log
// line, counts the call in the metrics (server/metrics.h) and finishes the
// call. Streaming handlers (server/fit_stream.h) use the building blocks
// Admit / Schedule / Complete. Calls that are not gRPC calls (the HTTP/REST
// binding, server/http/) go through Blocking: the same auth rule, admission,
// places, log line, metrics and status, returned as absl::Status.
//
// Every RPC writes one log line to stderr when it finishes:
//   <UTC time> rpc=<Method> model=<id or -> rows=<n> code=<STATUS_CODE> ms=<milliseconds>
// followed by ` <extra>` when the body set one (e.g. cache_bytes=...), and
// ` msg="<message>"` on errors.
//
// Thread safety: RpcRunner's methods may be called from any thread; an
// RpcCall is used by one thread at a time. Ownership: the pools, auth and
// `inflight` are not owned and must outlive every call.
#ifndef NTK_SERVER_HANDLER_H_
#define NTK_SERVER_HANDLER_H_

#include <atomic>
#include <chrono>
#include <cstdint>
#include <exception>
#include <functional>
#include <future>
#include <new>
#include <string>
#include <type_traits>
#include <utility>

#include <grpcpp/server_context.h>
#include <grpcpp/support/server_callback.h>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "core/model/model.h"
#include "server/auth.h"
#include "server/inflight.h"
#include "server/memory_budget.h"
#include "server/metrics.h"
#include "server/options.h"
#include "server/status.h"
#include "server/stream_idle.h"
#include "server/worker_pool.h"

namespace ntk::server {

// The per-RPC log line; copyable so it can travel into worker closures.
struct CallLog {
  explicit CallLog(const char* method, std::string model_id = "", int64_t rows = 0);
  const char* method;
  std::string model_id;
  int64_t rows = 0;
  std::string extra;     // appended as is, e.g. "cache_bytes=123"
  int64_t start_ns = 0;  // steady clock
  void Done(const absl::Status& status) const;
};

// Where a call's body runs.
enum class Where {
  kInline,   // on the gRPC callback thread (cheap work; OpenMP held to 1 thread)
  kCompute,  // on the compute pool (PredictDistribution, Delete)
  kPredict,  // on the Predict pool (Predicts too large for inline; they may wait
             // there for a batch: server/predict_batcher.h)
  kFit,      // on the fit pool, holding one of --max_concurrent_fits slots
};

// One call as its body sees it.
// A background fit (server/fit.h) runs as an RpcCall without a context
// (ctx null: no deadline) after its Fit call has answered.
class RpcCall {
 public:
  // A gRPC call: its deadline and cancellation are the context's.
  RpcCall(grpc::CallbackServerContext* ctx, CallLog log) : ctx_(ctx), log_(std::move(log)) {}
  // A call without a gRPC context (HTTP): no deadline, never cancelled.
  explicit RpcCall(CallLog log) : ctx_(nullptr), log_(std::move(log)) {}
  CallLog& log() { return log_; }
  const CallLog& log() const { return log_; }
  // Where the runner placed this call's body (decided once, before it ran;
  // the body reads it instead of deciding again).
  Where where() const { return where_; }
  void set_where(Where where) { where_ = where; }
  std::chrono::system_clock::time_point deadline() const {
    return ctx_ != nullptr ? ctx_->deadline() : std::chrono::system_clock::time_point::max();
  }
  bool HasDeadline() const {
    return deadline() != std::chrono::system_clock::time_point::max();
  }
  bool PastDeadline() const { return std::chrono::system_clock::now() > deadline(); }
  // The client cancelled, or `cancel_flag` (set_cancel_flag) is set.
  bool Cancelled() const {
    return (ctx_ != nullptr && ctx_->IsCancelled()) ||
           (cancel_flag_ != nullptr && cancel_flag_->load());
  }
  // A flag that cancels this call's work too (DeleteModel of a FITTING
  // model: server/fit_tracker.h). Not owned; must outlive the call's body.
  void set_cancel_flag(const std::atomic<bool>* flag) { cancel_flag_ = flag; }
  // The body handed its fit slot to a background fit (server/fit.h), which
  // releases it with RpcRunner::ReleaseFitSlot; Complete then does not.
  void DetachFitSlot() { fit_slot_detached_ = true; }
  bool fit_slot_detached() const { return fit_slot_detached_; }
  // --max_request_seconds (ServerOptions::max_request_seconds): when the
  // call has no deadline and `seconds` > 0, its work may run `seconds` of
  // wall time from now. Called when the work starts (for FitStream: once
  // the data is complete, so upload time does not count).
  void StartTimeCeiling(double seconds);
  // The ceiling is set and has passed.
  bool PastTimeCeiling() const;
  double time_ceiling_seconds() const { return ceiling_seconds_; }
  // The client is gone, the deadline or the time ceiling has passed: stop working.
  bool Stopped() const { return Cancelled() || PastDeadline() || PastTimeCeiling(); }
  // A core ProgressFn that asks the work to stop once Stopped().
  ProgressFn ContinueWhileWanted() const {
    return [this](double, const char*) { return !Stopped(); };
  }

 private:
  grpc::CallbackServerContext* ctx_;
  CallLog log_;
  Where where_ = Where::kInline;
  const std::atomic<bool>* cancel_flag_ = nullptr;
  bool fit_slot_detached_ = false;
  double ceiling_seconds_ = 0;  // 0: no ceiling
  std::chrono::steady_clock::time_point ceiling_at_;
};

// At most `max` holders at once (admission for fits).
class SlotCounter {
 public:
  explicit SlotCounter(int max) : max_(max > 0 ? max : 1) {}
  bool TryAcquire();
  void Release() { used_.fetch_sub(1); }
  int max() const { return max_; }
  int used() const { return used_.load(); }

 private:
  const int max_;
  std::atomic<int> used_{0};
};

class RpcRunner {
 public:
  // REQUIRES: every pointer non-null.
  RpcRunner(const ServerOptions& options, const TokenAuth* auth, Metrics* metrics,
            WorkerPool* compute_pool, WorkerPool* fit_pool, WorkerPool* predict_pool,
            InflightCalls* inflight);

  // Auth, admission, then `body(RpcCall&) -> absl::Status` where `place`
  // says (a Where, or a callable returning one, evaluated after auth), then
  // Complete. The body may write the response until it returns.
  template <typename Place, typename Body>
  grpc::ServerUnaryReactor* Unary(grpc::CallbackServerContext* ctx, CallLog log, Place place,
                                  Body body);

  // Auth and, for kFit, a fit slot (RESOURCE_EXHAUSTED naming
  // --max_concurrent_fits when none is free). OK: the caller must Complete.
  absl::Status Admit(const grpc::ServerContextBase& ctx, Where where);
  // For kFit, one fit slot (RESOURCE_EXHAUSTED naming --max_concurrent_fits
  // when none is free); OK for the other places. Complete(admitted = true)
  // releases it. FitStream takes its slot only once the data is complete.
  absl::Status TakeSlot(Where where);
  void Schedule(Where where, std::function<void()> fn);
  // Releases a fit slot a call detached (RpcCall::DetachFitSlot).
  void ReleaseFitSlot() { fit_slots_.Release(); }
  // Releases what Admit took (when `admitted`), maps `status` (CANCELLED
  // past the deadline -> DEADLINE_EXCEEDED; CANCELLED past the time ceiling
  // -> RESOURCE_EXHAUSTED naming --max_request_seconds), logs, counts the
  // call in the metrics and returns the final status.
  absl::Status Finish(const RpcCall& call, Where where, bool admitted, absl::Status status);
  // Finish, as the gRPC edge status.
  grpc::Status Complete(const RpcCall& call, Where where, bool admitted, absl::Status status) {
    return ToGrpcStatus(Finish(call, where, admitted, std::move(status)));
  }

  // A call that is not a gRPC call (HTTP/REST), run to completion on the
  // calling thread (which waits while a pool runs it): auth against
  // `authorization` (the header's value; null when absent), admission, then
  // body(RpcCall&) -> absl::Status where `place` says, then Finish.
  template <typename Place, typename Body>
  absl::Status Blocking(const std::string* authorization, CallLog log, Place place, Body body);

  // fn() -> absl::Status, with any exception turned into a status
  // (bad_alloc: RESOURCE_EXHAUSTED; others: INTERNAL). None may cross the edge.
  template <typename Fn>
  static absl::Status NoThrow(Fn&& fn);

  const ServerOptions& options() const { return options_; }
  InflightCalls* inflight() const { return inflight_; }
  const TokenAuth& auth() const { return *auth_; }
  Metrics* metrics() const { return metrics_; }
  // Fit slots held now.
  int fits_in_flight() const { return fit_slots_.used(); }
  // Working-memory admission (server/memory_budget.h).
  MemoryBudget* memory_budget() { return &memory_budget_; }
  // Ends streams idle for --stream_idle_seconds (server/stream_idle.h).
  StreamWatchdog* stream_watchdog() { return &stream_watchdog_; }

 private:
  const ServerOptions options_;
  template <typename Place>
  static Where Resolve(Place& place) {
    if constexpr (std::is_invocable_r_v<Where, Place>) {
      return place();
    } else {
      return place;
    }
  }

  const TokenAuth* const auth_;
  Metrics* const metrics_;
  WorkerPool* const compute_pool_;
  WorkerPool* const fit_pool_;
  WorkerPool* const predict_pool_;
  InflightCalls* const inflight_;
  SlotCounter fit_slots_;
  StreamWatchdog stream_watchdog_;
  MemoryBudget memory_budget_;
};

// Small work runs on gRPC's threads; keep OpenMP from starting a team on
// each of them (the work is too small to split, and idle teams spin).
void SingleThreadedComputeOnThisThread();

// ---- Implementation details ----

template <typename Fn>
absl::Status RpcRunner::NoThrow(Fn&& fn) {
  try {
    return fn();
  } catch (const std::bad_alloc&) {
    return absl::ResourceExhaustedError("server: out of memory");
  } catch (const std::exception& e) {
    return absl::InternalError(absl::StrCat("server: ", e.what()));
  } catch (...) {
    return absl::InternalError("server: unknown exception");
  }
}

template <typename Place, typename Body>
grpc::ServerUnaryReactor* RpcRunner::Unary(grpc::CallbackServerContext* ctx, CallLog log,
                                           Place place, Body body) {
  grpc::ServerUnaryReactor* reactor = new CountedUnaryReactor(inflight_);
  auto call = std::make_shared<RpcCall>(ctx, std::move(log));
  Where where = Where::kInline;
  absl::Status admitted = auth_->Check(*ctx);
  if (admitted.ok()) {
    where = Resolve(place);
    call->set_where(where);
    admitted = TakeSlot(where);
  }
  if (!admitted.ok()) {
    reactor->Finish(Complete(*call, where, false, std::move(admitted)));
    return reactor;
  }
  auto run = [this, reactor, call, where, body = std::move(body)]() mutable {
    call->StartTimeCeiling(options_.max_request_seconds);
    absl::Status s = NoThrow([&] { return body(*call); });
    reactor->Finish(Complete(*call, where, true, std::move(s)));
  };
  if (where == Where::kInline) {
    SingleThreadedComputeOnThisThread();
    run();
  } else {
    Schedule(where, std::move(run));
  }
  return reactor;
}

template <typename Place, typename Body>
absl::Status RpcRunner::Blocking(const std::string* authorization, CallLog log, Place place,
                                 Body body) {
  RpcCall call(std::move(log));
  Where where = Where::kInline;
  absl::Status admitted = auth_->CheckAuthorization(authorization);
  if (admitted.ok()) {
    where = Resolve(place);
    call.set_where(where);
    admitted = TakeSlot(where);
  }
  if (!admitted.ok()) return Finish(call, where, false, std::move(admitted));
  call.StartTimeCeiling(options_.max_request_seconds);  // REST calls have no deadline
  absl::Status s;
  if (where == Where::kInline) {
    SingleThreadedComputeOnThisThread();
    s = NoThrow([&] { return body(call); });
  } else {
    std::promise<absl::Status> done;
    std::future<absl::Status> result = done.get_future();
    Schedule(where, [&] { done.set_value(NoThrow([&] { return body(call); })); });
    s = result.get();
  }
  return Finish(call, where, true, std::move(s));
}

}  // namespace ntk::server

#endif  // NTK_SERVER_HANDLER_H_

// ntk/server/inflight.h: counting the RPCs a server is still working on, so
// that shutdown can tell "nothing in flight" from "let them finish".
//
// Every handler of ours (NtkService, ServerReflection) enters the count when
// gRPC hands it the call and leaves it in its reactor's OnDone, i.e. after
// the final status has been handed to the transport. grpc.health.v1 calls
// (gRPC's own service) are not counted: Check is instantaneous and Watch
// streams stay open by design, so neither should hold a shutdown.
//
//   InflightCalls calls;
//   grpc::ServerUnaryReactor* r = new CountedUnaryReactor(&calls);
//   r->Finish(status);  // calls.count() drops once gRPC calls OnDone
//
// Thread safety: all methods are thread-safe. Ownership: InflightCalls is
// owned by the server and must outlive every reactor that points to it.
#ifndef NTK_SERVER_INFLIGHT_H_
#define NTK_SERVER_INFLIGHT_H_

#include <atomic>
#include <cstdint>

#include <grpcpp/support/server_callback.h>

namespace ntk::server {

class InflightCalls {
 public:
  void Enter() { count_.fetch_add(1, std::memory_order_relaxed); }
  void Exit() { count_.fetch_sub(1, std::memory_order_acq_rel); }
  int64_t count() const { return count_.load(std::memory_order_acquire); }

 private:
  std::atomic<int64_t> count_{0};
};

// A unary reactor that counts its call in `calls` from construction until
// gRPC calls OnDone, then deletes itself. Use it instead of
// ctx->DefaultReactor(). REQUIRES: calls != nullptr.
class CountedUnaryReactor final : public grpc::ServerUnaryReactor {
 public:
  explicit CountedUnaryReactor(InflightCalls* calls) : calls_(calls) { calls_->Enter(); }
  void OnDone() override {
    InflightCalls* const calls = calls_;
    delete this;
    calls->Exit();
  }

 private:
  InflightCalls* const calls_;
};

}  // namespace ntk::server

#endif  // NTK_SERVER_INFLIGHT_H_

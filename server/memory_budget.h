// ntk/server/memory_budget.h: admission of requests against one memory
// budget (issue 11 findings 1 and 6; docs/operations.md "Memory").
//
// Every Fit, Predict and PredictDistribution reserves its estimated working
// memory (core/model/cost.h) before it allocates, and releases it when done
// (Reservation, RAII). A request whose estimate does not fit into what is
// left is refused with RESOURCE_EXHAUSTED naming the estimate, the budget
// and what is in use; two requests that each fit alone therefore cannot
// together exceed the budget.
//
// The default budget (--memory_budget_mb = 0) is the smallest of: 3/4 of
// physical memory, the cgroup limit (v2 memory.max, v1
// memory.limit_in_bytes) and, when RLIMIT_AS is set, half of the address
// space left under it at start-up (allocator arenas and thread stacks take
// address space beyond what the estimate counts).
//
// Thread safety: thread-safe. A Reservation must not outlive its budget.
#ifndef NTK_SERVER_MEMORY_BUDGET_H_
#define NTK_SERVER_MEMORY_BUDGET_H_

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "server/options.h"

namespace ntk::server {

class MemoryBudget {
 public:
  // Holds `bytes` of the budget until destroyed. Move-only.
  class Reservation {
   public:
    Reservation() = default;
    Reservation(Reservation&& o) noexcept : budget_(o.budget_), bytes_(o.bytes_) {
      o.budget_ = nullptr;
    }
    Reservation& operator=(Reservation&& o) noexcept;
    ~Reservation();
    int64_t bytes() const { return bytes_; }

   private:
    friend class MemoryBudget;
    Reservation(MemoryBudget* b, int64_t bytes) : budget_(b), bytes_(bytes) {}
    MemoryBudget* budget_ = nullptr;
    int64_t bytes_ = 0;
  };

  // limit_bytes <= 0: no limit (every reservation succeeds).
  explicit MemoryBudget(int64_t limit_bytes) : limit_(limit_bytes) {}

  // Reserves `bytes` for `what` (e.g. "Fit"), or RESOURCE_EXHAUSTED
  // "<what>: needs an estimated <b> bytes (<MiB>), over the memory budget:
  // <used> of <limit> bytes in use (--memory_budget_mb)".
  absl::StatusOr<Reservation> Reserve(int64_t bytes, const std::string& what);

  int64_t limit() const { return limit_; }
  int64_t used() const;

 private:
  void Release(int64_t bytes);
  const int64_t limit_;
  mutable absl::Mutex mu_;
  int64_t used_ ABSL_GUARDED_BY(mu_) = 0;
};

// The default budget described above, in bytes (0 when nothing is known).
int64_t DefaultMemoryBudgetBytes();
// options.memory_budget_mb in bytes, or DefaultMemoryBudgetBytes() when 0.
int64_t MemoryBudgetBytes(const ServerOptions& options);

// RESOURCE_EXHAUSTED "response: <method> would answer with <b> bytes, over
// --max_message_mb = <mb> (<limit> bytes)" when `bytes` exceeds
// MaxMessageBytes(options): refused before the work, so that the client
// and the RPC log see the same status (issue 11 findings 5, 9).
absl::Status CheckResponseSize(int64_t bytes, const ServerOptions& options, const char* method);

// CheckResponseSize(response_bytes), then budget->Reserve(working_bytes):
// what a Predict or PredictDistribution does before it computes.
absl::StatusOr<MemoryBudget::Reservation> AdmitRequest(MemoryBudget* budget,
                                                       const ServerOptions& options,
                                                       const char* method,
                                                       int64_t response_bytes,
                                                       int64_t working_bytes);

}  // namespace ntk::server

#endif  // NTK_SERVER_MEMORY_BUDGET_H_

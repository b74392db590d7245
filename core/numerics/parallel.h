// ntk/core/numerics/parallel.h: exceptions inside OpenMP parallel regions.
//
// An exception may not leave an OpenMP parallel region: one thrown inside
// (std::bad_alloc from an Eigen temporary, a std::vector) calls
// std::terminate and takes the whole server down. Every parallel loop body
// that can allocate runs through a RegionExceptions instead:
//
//   RegionExceptions trap;
//   #pragma omp parallel for
//   for (Index j = 0; j < n; ++j) {
//     trap.Run([&] { ... });  // `return` skips to the next iteration
//   }
//   trap.Rethrow();  // after the region, on the calling thread
//
// The first exception is kept and rethrown after the region, where the
// server's edge (server/handler.h RpcRunner::NoThrow) turns std::bad_alloc
// into RESOURCE_EXHAUSTED for that request. Once one iteration failed the
// others skip their work (the result is discarded anyway).
//
// Thread safety: Run may be called from every thread of the region at once;
// Rethrow from one thread after the region. Not copyable.
#ifndef NTK_CORE_NUMERICS_PARALLEL_H_
#define NTK_CORE_NUMERICS_PARALLEL_H_

#include <atomic>
#include <exception>
#include <mutex>

namespace ntk {

class RegionExceptions {
 public:
  RegionExceptions() = default;
  RegionExceptions(const RegionExceptions&) = delete;
  RegionExceptions& operator=(const RegionExceptions&) = delete;

  // Runs fn() unless an earlier iteration threw; keeps the first exception.
  template <typename Fn>
  void Run(Fn&& fn) noexcept {
    if (failed_.load(std::memory_order_relaxed)) return;
    try {
      fn();
    } catch (...) {
      std::lock_guard<std::mutex> lock(mu_);
      if (!first_) first_ = std::current_exception();
      failed_.store(true, std::memory_order_relaxed);
    }
  }

  // Throws the kept exception, if any. REQUIRES: outside the region.
  void Rethrow() {
    if (first_) std::rethrow_exception(first_);
  }

 private:
  std::atomic<bool> failed_{false};
  std::mutex mu_;
  std::exception_ptr first_;
};

}  // namespace ntk

#endif  // NTK_CORE_NUMERICS_PARALLEL_H_

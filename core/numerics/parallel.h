// ntk/core/numerics/parallel.h: exceptions inside OpenMP parallel regions,
// and column-parallel BLAS work.
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

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <exception>
#include <mutex>
#include <utility>

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

// fn(begin, width) for the blocks [begin, begin + width) of [0, n), each
// `width` long (the last may be shorter), spread over the OpenMP threads
// (dynamic schedule: blocks of unequal cost balance); exceptions as
// RegionExceptions (rethrown here). For BLAS work whose blocks are
// independent: the server runs OpenBLAS single-threaded (server/README.md
// "Threads"), so this is how long operations use every core. The partition
// depends on n and width only, never on the thread count, so results are
// the same bits for every --threads. Serial inside an active parallel region.
// REQUIRES: width >= 1; fn writes only what its block owns.
template <typename Fn>
void ParallelBlocks(int64_t n, int64_t width, Fn&& fn) {
  const int64_t tasks = (n + width - 1) / width;
  RegionExceptions trap;
#pragma omp parallel for schedule(dynamic, 1) if (tasks > 1)
  for (int64_t t = 0; t < tasks; ++t) {
    trap.Run([&] { fn(t * width, std::min(width, n - t * width)); });
  }
  trap.Rethrow();
}

// ParallelBlocks over the columns of a product or triangular solve with
// `cols` right-hand sides: about an eighth of them per block (enough blocks
// to balance 2-8 threads), at least 16 (each block still a BLAS-3 call).
template <typename Fn>
void ParallelColumnBlocks(int64_t cols, Fn&& fn) {
  ParallelBlocks(cols, std::max<int64_t>(16, (cols + 7) / 8), std::forward<Fn>(fn));
}

}  // namespace ntk

#endif  // NTK_CORE_NUMERICS_PARALLEL_H_

// core/numerics/parallel.h: an exception thrown inside an OpenMP parallel
// loop body reaches the caller after the region instead of calling
// std::terminate (without RegionExceptions this test binary would abort).
#include <omp.h>

#include <atomic>
#include <new>
#include <stdexcept>
#include <vector>

#include "gtest/gtest.h"
#include "core/numerics/parallel.h"

namespace ntk {
namespace {

// A parallel loop over n iterations in which iteration `bad` throws what
// `thrower` throws; returns how many iterations completed their body.
template <typename Thrower>
int RunLoop(int n, int bad, Thrower thrower) {
  std::atomic<int> completed{0};
  RegionExceptions trap;
#pragma omp parallel for schedule(dynamic, 1) num_threads(2)
  for (int i = 0; i < n; ++i) {
    trap.Run([&] {
      if (i == bad) thrower();
      std::vector<double> scratch(64, 1.0);  // allocates, like the real bodies
      completed += scratch[0] > 0 ? 1 : 0;
    });
  }
  trap.Rethrow();
  return completed;
}

TEST(ParallelExceptionsTest, BadAllocInsideTheRegionReachesTheCaller) {
  EXPECT_THROW(RunLoop(1000, 17, [] { throw std::bad_alloc(); }), std::bad_alloc);
}

TEST(ParallelExceptionsTest, TheFirstExceptionIsKeptWithItsType) {
  try {
    RunLoop(100, 0, [] { throw std::length_error("too long"); });
    ADD_FAILURE() << "no exception";
  } catch (const std::length_error& e) {
    EXPECT_STREQ(e.what(), "too long");
  }
}

TEST(ParallelExceptionsTest, WithoutExceptionsEveryIterationRuns) {
  EXPECT_EQ(RunLoop(1000, -1, [] {}), 1000);
}

}  // namespace
}  // namespace ntk

// tests/distribution_cache_test.cc: DistributionCache (core/distribution/cache.h).
// Budget, LRU and counters are checked against a brute-force reference LRU;
// single flight is checked by counts (absl::Notification and the cache's own
// waiting/in_flight counters), never by time.
#include "core/distribution/cache.h"

#include <algorithm>
#include <atomic>
#include <random>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/synchronization/notification.h"
#include "gtest/gtest.h"

namespace ntk {
namespace {

using Key = DistributionCache::Key;
using Value = std::shared_ptr<const CacheEntry>;
using Result = absl::StatusOr<Value>;

class Blob : public CacheEntry {
 public:
  explicit Blob(int64_t bytes) : bytes_(bytes) {}
  int64_t Bytes() const override { return bytes_; }

 private:
  const int64_t bytes_;
};

Value MakeBlob(int64_t bytes) { return std::make_shared<const Blob>(bytes); }

// A compute that counts its calls, announces the first, and then blocks
// until `release` is notified before returning `result`.
class BlockedCompute {
 public:
  BlockedCompute(Result result, const absl::Notification* release)
      : result_(std::move(result)), release_(release) {}
  std::function<Result()> Fn() {
    return [this]() -> Result {
      if (calls_.fetch_add(1) == 0) started_.Notify();
      release_->WaitForNotification();
      return result_;
    };
  }
  void AwaitStart() const { started_.WaitForNotification(); }
  int calls() const { return calls_.load(); }

 private:
  const Result result_;
  const absl::Notification* release_;
  absl::Notification started_;
  std::atomic<int> calls_{0};
};

// Spins until `n` GetOrCompute calls wait on another's computation, or until
// `broken()` says single flight already failed (so a bug fails, not hangs).
template <typename Broken>
void AwaitWaiters(const DistributionCache& cache, int64_t n, Broken broken) {
  while (cache.stats().waiting < n && !broken()) std::this_thread::yield();
}

TEST(DistributionCache, BudgetLruAndCountersMatchBruteForce) {
  constexpr int64_t kBudget = 100;
  DistributionCache cache(DistributionCache::Options{kBudget});
  // Reference: (key, bytes), most recently used first.
  std::vector<std::pair<Key, int64_t>> ref;
  int64_t hits = 0, misses = 0, evictions = 0;
  auto same = [](const Key& a, const Key& b) {
    return a.model_id == b.model_id && a.generation == b.generation && a.part == b.part;
  };
  auto find = [&](const Key& k) {
    return std::find_if(ref.begin(), ref.end(), [&](const auto& e) { return same(e.first, k); });
  };
  auto ref_put = [&](const Key& k, int64_t bytes) {
    if (auto it = find(k); it != ref.end()) ref.erase(it);
    if (bytes > kBudget) return;
    int64_t sum = 0;
    for (const auto& e : ref) sum += e.second;
    for (; sum + bytes > kBudget; ++evictions) {
      sum -= ref.back().second;
      ref.pop_back();
    }
    ref.insert(ref.begin(), {k, bytes});
  };
  auto ref_touch = [&](const Key& k) {  // true if present
    auto it = find(k);
    if (it == ref.end()) return false;
    std::rotate(ref.begin(), it, it + 1);
    ++hits;
    return true;
  };
  const std::vector<std::string> models = {"m1", "m10", "m2"};  // "m1" is a prefix of "m10"
  std::mt19937 rng(20240611);
  auto pick = [&](int n) { return static_cast<int>(rng() % n); };
  for (int step = 0; step < 4000; ++step) {
    const Key key{models[pick(3)], static_cast<uint64_t>(pick(2)), "p" + std::to_string(pick(3))};
    const int64_t bytes = pick(10) == 0 ? kBudget + 1 : 1 + pick(60);
    switch (pick(10)) {
      case 0:
        cache.DropModel(key.model_id);
        ref.erase(std::remove_if(ref.begin(), ref.end(),
                                 [&](const auto& e) { return e.first.model_id == key.model_id; }),
                  ref.end());
        break;
      case 1:
      case 2:
        cache.Put(key, MakeBlob(bytes));
        ref_put(key, bytes);
        break;
      case 3:
      case 4:
        ASSERT_EQ(cache.Lookup(key) != nullptr, ref_touch(key)) << "step " << step;
        break;
      default: {
        bool computed = false;
        Result r = cache.GetOrCompute(key, [&]() -> Result {
          computed = true;
          return MakeBlob(bytes);
        });
        ASSERT_TRUE(r.ok());
        const bool cached = ref_touch(key);
        ASSERT_EQ(computed, !cached) << "step " << step;
        if (computed) {
          ++misses;
          ref_put(key, bytes);
          EXPECT_EQ((*r)->Bytes(), bytes);  // an oversized entry is still returned
        }
      }
    }
    const DistributionCache::Stats s = cache.stats();
    int64_t sum = 0;
    for (const auto& e : ref) sum += e.second;
    ASSERT_LE(s.bytes, kBudget) << "step " << step;
    ASSERT_EQ(s.bytes, sum) << "step " << step;
    ASSERT_EQ(s.entries, static_cast<int64_t>(ref.size())) << "step " << step;
    ASSERT_EQ(s.hits, hits) << "step " << step;
    ASSERT_EQ(s.misses, misses) << "step " << step;
    ASSERT_EQ(s.evictions, evictions) << "step " << step;
    for (const std::string& m : models) {
      int64_t model_sum = 0;
      for (const auto& e : ref) model_sum += e.first.model_id == m ? e.second : 0;
      ASSERT_EQ(cache.ModelBytes(m), model_sum) << "step " << step << " model " << m;
    }
  }
  EXPECT_GT(evictions, 0);  // the sequence exercised eviction
}

TEST(DistributionCache, EvictsLeastRecentlyUsedAndHeldEntriesSurvive) {
  DistributionCache cache(DistributionCache::Options{30});
  const Value a = MakeBlob(10), b = MakeBlob(10), c = MakeBlob(10);
  cache.Put({"m", 1, "a"}, a);
  cache.Put({"m", 1, "b"}, b);
  cache.Put({"m", 1, "c"}, c);
  EXPECT_EQ(cache.Lookup({"m", 1, "a"}), a);  // a is now the most recent; b the least
  cache.Put({"m", 1, "d"}, MakeBlob(10));
  EXPECT_EQ(cache.Lookup({"m", 1, "b"}), nullptr);
  EXPECT_EQ(cache.Lookup({"m", 1, "a"}), a);
  EXPECT_EQ(cache.Lookup({"m", 1, "c"}), c);
  EXPECT_EQ(cache.stats().evictions, 1);
  EXPECT_EQ(b->Bytes(), 10);  // a holder keeps an evicted entry alive
}

TEST(DistributionCache, OversizedEntryIsReturnedButNotKeptAndEvictsNothing) {
  DistributionCache cache(DistributionCache::Options{10});
  cache.Put({"m", 1, "small"}, MakeBlob(4));
  int computes = 0;
  auto big = [&]() -> Result {
    ++computes;
    return MakeBlob(11);
  };
  for (int i = 0; i < 2; ++i) {
    Result r = cache.GetOrCompute({"m", 1, "big"}, big);
    ASSERT_TRUE(r.ok());
    EXPECT_EQ((*r)->Bytes(), 11);
  }
  EXPECT_EQ(computes, 2);
  EXPECT_EQ(cache.stats().bytes, 4);
  EXPECT_EQ(cache.stats().evictions, 0);
  EXPECT_NE(cache.Lookup({"m", 1, "small"}), nullptr);
}

TEST(DistributionCache, GenerationsAreSeparateAndDropModelReleasesThemAll) {
  DistributionCache cache(DistributionCache::Options{1000});
  auto make = [](int64_t bytes) { return [bytes]() -> Result { return MakeBlob(bytes); }; };
  Result g1 = cache.GetOrCompute({"m", 1, "exact"}, make(100));
  Result g2 = cache.GetOrCompute({"m", 2, "exact"}, make(200));
  ASSERT_TRUE(g1.ok() && g2.ok());
  EXPECT_NE(*g1, *g2);
  EXPECT_EQ(cache.stats().misses, 2);
  cache.Put({"m10", 1, "exact"}, MakeBlob(50));
  EXPECT_EQ(cache.ModelBytes("m"), 300);
  cache.DropModel("m");
  EXPECT_EQ(cache.ModelBytes("m"), 0);
  EXPECT_EQ(cache.ModelBytes("m10"), 50);
  EXPECT_EQ(cache.stats().bytes, 50);
  EXPECT_EQ(cache.stats().entries, 1);
  EXPECT_EQ(cache.Lookup({"m", 1, "exact"}), nullptr);
}

TEST(DistributionCacheSingleFlight, ConcurrentFirstCallsComputeOnceAndOtherKeysProceed) {
  constexpr int kThreads = 8;
  DistributionCache cache(DistributionCache::Options{1000});
  const Key key{"m", 1, "mc/seed=7/S=64"};
  const Value computed = MakeBlob(10);
  absl::Notification release;
  BlockedCompute blocked(computed, &release);
  std::vector<Result> results(kThreads, absl::UnknownError("not run"));
  std::vector<std::thread> threads;
  for (int i = 0; i < kThreads; ++i) {
    threads.emplace_back([&, i] { results[i] = cache.GetOrCompute(key, blocked.Fn()); });
  }
  blocked.AwaitStart();
  AwaitWaiters(cache, kThreads - 1, [&] { return blocked.calls() > 1; });
  EXPECT_EQ(blocked.calls(), 1);
  // While that computation is blocked, other keys are served on this thread.
  constexpr int kOtherKeys = 5;
  for (int i = 0; i < kOtherKeys; ++i) {
    Result r = cache.GetOrCompute({"m", 1, "other" + std::to_string(i)},
                                  []() -> Result { return MakeBlob(1); });
    ASSERT_TRUE(r.ok());
  }
  EXPECT_EQ(cache.Lookup(key), nullptr);  // not cached yet, and does not wait
  EXPECT_EQ(cache.stats().in_flight, 1);
  release.Notify();
  for (std::thread& t : threads) t.join();
  EXPECT_EQ(blocked.calls(), 1);
  for (const Result& r : results) {
    ASSERT_TRUE(r.ok()) << r.status();
    EXPECT_EQ(*r, computed);
  }
  const DistributionCache::Stats s = cache.stats();
  EXPECT_EQ(s.misses, 1 + kOtherKeys);
  EXPECT_EQ(s.hits, kThreads - 1);
  EXPECT_EQ(s.waiting, 0);
  EXPECT_EQ(s.in_flight, 0);
}

// The computer fails with its own request's cancellation (returned or
// thrown): its waiters do not see that error; exactly one of them computes.
void CheckWaitersRecomputeAfterFailure(bool throw_instead) {
  constexpr int kWaiters = 3;
  DistributionCache cache(DistributionCache::Options{1000});
  const Key key{"m", 1, "exact"};
  absl::Notification release;
  BlockedCompute failing(absl::CancelledError("the first request was cancelled"), &release);
  Result first = absl::UnknownError("not run");
  std::thread computer([&] {
    auto fn = failing.Fn();
    if (!throw_instead) {
      first = cache.GetOrCompute(key, fn);
      return;
    }
    try {
      first = cache.GetOrCompute(
          key, [&fn]() -> Result { throw std::runtime_error(fn().status().ToString()); });
    } catch (const std::runtime_error&) {
      first = absl::CancelledError("thrown");
    }
  });
  failing.AwaitStart();
  const Value good = MakeBlob(10);
  std::atomic<int> good_calls{0};
  std::vector<Result> results(kWaiters, absl::UnknownError("not run"));
  std::vector<std::thread> waiters;
  for (int i = 0; i < kWaiters; ++i) {
    waiters.emplace_back([&, i] {
      results[i] = cache.GetOrCompute(key, [&]() -> Result {
        ++good_calls;
        return good;
      });
    });
  }
  AwaitWaiters(cache, kWaiters, [&] { return good_calls.load() > 0; });
  EXPECT_EQ(good_calls.load(), 0);
  release.Notify();
  computer.join();
  for (std::thread& t : waiters) t.join();
  EXPECT_EQ(first.status().code(), absl::StatusCode::kCancelled);
  EXPECT_EQ(good_calls.load(), 1);
  for (const Result& r : results) {
    ASSERT_TRUE(r.ok()) << r.status();
    EXPECT_EQ(*r, good);
  }
  EXPECT_EQ(cache.Lookup(key), good);
  EXPECT_EQ(cache.stats().misses, 2);
}

TEST(DistributionCacheSingleFlight, WaitersRecomputeWhenTheComputerFails) {
  CheckWaitersRecomputeAfterFailure(/*throw_instead=*/false);
}

TEST(DistributionCacheSingleFlight, WaitersRecomputeWhenTheComputerThrows) {
  CheckWaitersRecomputeAfterFailure(/*throw_instead=*/true);
}

TEST(DistributionCacheSingleFlight, DropModelDuringComputationReturnsButDoesNotKeep) {
  DistributionCache cache(DistributionCache::Options{1000});
  const Key dropped{"m", 1, "exact"}, other{"m10", 1, "exact"};
  absl::Notification release;
  const Value value = MakeBlob(10);
  BlockedCompute dropped_compute(value, &release), other_compute(MakeBlob(20), &release);
  Result first = absl::UnknownError("not run"), waiter = absl::UnknownError("not run");
  std::thread t1([&] { first = cache.GetOrCompute(dropped, dropped_compute.Fn()); });
  std::thread t2([&] { EXPECT_TRUE(cache.GetOrCompute(other, other_compute.Fn()).ok()); });
  dropped_compute.AwaitStart();
  other_compute.AwaitStart();
  std::thread t3([&] { waiter = cache.GetOrCompute(dropped, dropped_compute.Fn()); });
  AwaitWaiters(cache, 1, [&] { return dropped_compute.calls() > 1; });
  cache.DropModel("m");  // e.g. the model was re-fitted or deleted
  release.Notify();
  for (std::thread* t : {&t1, &t2, &t3}) t->join();
  EXPECT_EQ(dropped_compute.calls(), 1);
  ASSERT_TRUE(first.ok() && waiter.ok());
  EXPECT_EQ(*first, value);
  EXPECT_EQ(*waiter, value);
  EXPECT_EQ(cache.Lookup(dropped), nullptr);
  EXPECT_EQ(cache.ModelBytes("m"), 0);
  EXPECT_EQ(cache.ModelBytes("m10"), 20);  // another model's computation is kept
  EXPECT_EQ(cache.stats().bytes, 20);
}

}  // namespace
}  // namespace ntk

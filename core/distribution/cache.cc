// ntk/core/distribution/cache.cc: DistributionCache (see cache.h).
//
// Locks: `Impl::mu` guards the entries, the LRU list, the in-flight table
// and the counters; it is held only for map/list updates, never while an
// entry is computed or while a caller waits. Each in-flight computation has
// its own `Flight::mu`, on which its waiters block. Lock order: Impl::mu is
// never held while taking a Flight::mu.
#include "core/distribution/cache.h"

#include <algorithm>
#include <list>
#include <map>
#include <tuple>
#include <utility>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"

namespace ntk {
namespace {

using Key = DistributionCache::Key;
using Value = std::shared_ptr<const CacheEntry>;
using ComputeFn = std::function<absl::StatusOr<Value>()>;

struct KeyLess {
  bool operator()(const Key& a, const Key& b) const {
    return std::tie(a.model_id, a.generation, a.part) <
           std::tie(b.model_id, b.generation, b.part);
  }
};

// The first key of `model_id` in KeyLess order.
Key FirstKeyOf(const std::string& model_id) { return Key{model_id, 0, ""}; }

// One computation in progress; shared by its computer and its waiters.
struct Flight {
  absl::Mutex mu;
  bool done ABSL_GUARDED_BY(mu) = false;
  Value value ABSL_GUARDED_BY(mu);  // nullptr when done: the computation failed
  // Guarded by Impl::mu (not expressible here): false once DropModel ran for
  // this key's model, so the result is returned to callers but not kept.
  bool keep = true;
};

}  // namespace

struct DistributionCache::Impl {
  struct Node {
    Key key;
    Value value;
    int64_t bytes;
  };
  using Index = std::map<Key, std::list<Node>::iterator, KeyLess>;

  explicit Impl(int64_t budget_bytes) : budget(budget_bytes) {}

  const int64_t budget;
  mutable absl::Mutex mu;
  std::list<Node> lru ABSL_GUARDED_BY(mu);  // front: most recently used
  Index index ABSL_GUARDED_BY(mu);
  std::map<Key, std::shared_ptr<Flight>, KeyLess> flights ABSL_GUARDED_BY(mu);
  Stats counters ABSL_GUARDED_BY(mu);  // bytes, entries, hits, misses, evictions, waiting

  // The cached value for `key`, marked most recently used; nullptr if absent.
  Value Touch(const Key& key) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
    auto it = index.find(key);
    if (it == index.end()) return nullptr;
    lru.splice(lru.begin(), lru, it->second);
    return it->second->value;
  }

  Index::iterator Erase(Index::iterator it) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
    counters.bytes -= it->second->bytes;
    --counters.entries;
    lru.erase(it->second);
    return index.erase(it);
  }

  // Keeps `value` (of `bytes`) under `key`, replacing any old entry and
  // evicting from the LRU end until it fits. Larger than the budget: not kept.
  void Insert(const Key& key, Value value, int64_t bytes)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
    if (auto old = index.find(key); old != index.end()) Erase(old);
    if (bytes > budget) return;
    while (counters.bytes + bytes > budget) {
      Erase(index.find(lru.back().key));
      ++counters.evictions;
    }
    lru.push_front(Node{key, std::move(value), bytes});
    index.emplace(key, lru.begin());
    counters.bytes += bytes;
    ++counters.entries;
  }

  // Ends `flight` (registered under `key`): keeps `value` unless it failed
  // (nullptr) or its model was dropped, then wakes the waiters.
  void Finish(const Key& key, Flight& flight, Value value) ABSL_LOCKS_EXCLUDED(mu) {
    const int64_t bytes = value ? std::max<int64_t>(0, value->Bytes()) : 0;
    {
      absl::MutexLock lock(&mu);
      if (value && flight.keep) Insert(key, value, bytes);
      // Only the computer erases its flight, so the one under `key` is this one.
      flights.erase(key);
    }
    absl::MutexLock lock(&flight.mu);
    flight.value = std::move(value);
    flight.done = true;
  }

  // Runs `compute` with no lock held and publishes its outcome to `flight`,
  // also if `compute` throws, so that waiters never hang.
  absl::StatusOr<Value> Compute(const Key& key, Flight& flight, const ComputeFn& compute) {
    struct Publish {
      Impl& impl;
      const Key& key;
      Flight& flight;
      Value value;  // stays nullptr unless compute succeeds
      ~Publish() { impl.Finish(key, flight, std::move(value)); }
    } publish{*this, key, flight, nullptr};
    absl::StatusOr<Value> result = compute();
    if (result.ok() && *result == nullptr) {
      result = absl::InternalError("DistributionCache: compute returned no entry for part '" +
                                   key.part + "'");
    }
    if (result.ok()) publish.value = *result;
    return result;
  }
};

DistributionCache::DistributionCache(const Options& options)
    : impl_(std::make_unique<Impl>(options.budget_bytes)) {}

DistributionCache::~DistributionCache() = default;

absl::StatusOr<std::shared_ptr<const CacheEntry>> DistributionCache::GetOrCompute(
    const Key& key, const ComputeFn& compute) {
  Impl& s = *impl_;
  for (;;) {
    std::shared_ptr<Flight> flight;
    bool computer = false;
    {
      absl::MutexLock lock(&s.mu);
      if (Value value = s.Touch(key)) {
        ++s.counters.hits;
        return value;
      }
      auto [it, started] = s.flights.try_emplace(key);
      if (started) {
        it->second = std::make_shared<Flight>();
        ++s.counters.misses;
      } else {
        ++s.counters.waiting;
      }
      flight = it->second;
      computer = started;
    }
    if (computer) return s.Compute(key, *flight, compute);
    Value shared;
    {
      absl::MutexLock lock(&flight->mu, absl::Condition(&flight->done));
      shared = flight->value;
    }
    absl::MutexLock lock(&s.mu);
    --s.counters.waiting;
    if (shared) {
      ++s.counters.hits;
      return shared;
    }
    // The computer failed, perhaps with its own cancellation or deadline,
    // which is not this caller's: loop and compute (or wait) again.
  }
}

std::shared_ptr<const CacheEntry> DistributionCache::Lookup(const Key& key) {
  absl::MutexLock lock(&impl_->mu);
  Value value = impl_->Touch(key);
  if (value) ++impl_->counters.hits;
  return value;
}

void DistributionCache::Put(const Key& key, std::shared_ptr<const CacheEntry> value) {
  if (value == nullptr) return;
  const int64_t bytes = std::max<int64_t>(0, value->Bytes());
  absl::MutexLock lock(&impl_->mu);
  impl_->Insert(key, std::move(value), bytes);
}

void DistributionCache::DropModel(const std::string& model_id) {
  Impl& s = *impl_;
  absl::MutexLock lock(&s.mu);
  for (auto it = s.index.lower_bound(FirstKeyOf(model_id));
       it != s.index.end() && it->first.model_id == model_id;) {
    it = s.Erase(it);
  }
  for (auto it = s.flights.lower_bound(FirstKeyOf(model_id));
       it != s.flights.end() && it->first.model_id == model_id; ++it) {
    it->second->keep = false;
  }
}

int64_t DistributionCache::ModelBytes(const std::string& model_id) const {
  absl::MutexLock lock(&impl_->mu);
  int64_t bytes = 0;
  for (auto it = impl_->index.lower_bound(FirstKeyOf(model_id));
       it != impl_->index.end() && it->first.model_id == model_id; ++it) {
    bytes += it->second->bytes;
  }
  return bytes;
}

DistributionCache::Stats DistributionCache::stats() const {
  absl::MutexLock lock(&impl_->mu);
  Stats out = impl_->counters;
  out.budget_bytes = impl_->budget;
  out.in_flight = static_cast<int64_t>(impl_->flights.size());
  return out;
}

}  // namespace ntk

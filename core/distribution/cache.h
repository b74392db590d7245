// ntk/core/distribution/cache.h: the factors PredictDistribution builds
// (Cholesky factors, linearization factors, Monte Carlo sample sets), kept
// across requests under a byte budget. docs/model-contract.md
// "4. PredictDistribution" says what the factors are; this class only keeps
// them.
//
// Ownership: the server owns one DistributionCache for all its models (the
// CLI tools own their own). Models do not hold factors; a caller passes a
// DistributionCache::Scope (cache + model id + generation) in
// DistributionOptions, and the method looks its factors up there.
//
// Keys are (model id, generation, part). `generation` changes whenever a
// model id is re-fitted or re-loaded, so a stale entry is never served; the
// owner also calls DropModel when a model is replaced or deleted, so its
// bytes are released at once; a computation of that model still in flight
// is then returned to its callers but not kept. `part` names the factor,
// e.g. "exact", "linearized", "mc/seed=7/S=64".
//
// Budget: the sum of Bytes() of the cached entries stays <= budget_bytes;
// inserting evicts least-recently-used entries first. An entry larger than
// the whole budget is computed and returned to its callers but not kept.
// Entries are immutable and shared: a request keeps using an entry it holds
// after eviction.
//
// Thread safety: all methods may be called concurrently. No lock is held
// while an entry is computed: concurrent GetOrCompute calls for the same key
// run `compute` once (single flight) and the others wait for that result
// only; calls for other keys proceed. If the computing call fails (any
// error, e.g. its own request's CANCELLED or DEADLINE_EXCEEDED), its error
// goes to its own caller only; its waiters retry, one of them computing
// with its own `compute`. A waiter cannot be cancelled while it waits: its
// wait is as long as the computation it joined.
#ifndef NTK_CORE_DISTRIBUTION_CACHE_H_
#define NTK_CORE_DISTRIBUTION_CACHE_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace ntk {

// Base of every cached value; Bytes() is its memory footprint.
class CacheEntry {
 public:
  virtual ~CacheEntry() = default;
  virtual int64_t Bytes() const = 0;
};

class DistributionCache {
 public:
  struct Options {
    int64_t budget_bytes = int64_t{1} << 30;
  };
  struct Key {
    std::string model_id;
    uint64_t generation = 0;
    std::string part;
  };
  // Accounting, for ModelInfo, logs and metrics.
  struct Stats {
    int64_t bytes = 0;          // held now
    int64_t budget_bytes = 0;
    int64_t entries = 0;
    int64_t hits = 0;           // answers without own computation (incl. Lookup)
    int64_t misses = 0;         // computations started
    int64_t evictions = 0;      // entries removed to make room (not DropModel)
    int64_t in_flight = 0;      // computations running now
    int64_t waiting = 0;        // GetOrCompute calls waiting for another's now
  };
  // What a model's PredictDistribution needs to use the cache.
  struct Scope {
    DistributionCache* cache = nullptr;  // not owned; nullptr: compute, keep nothing
    std::string model_id;
    uint64_t generation = 0;
  };

  explicit DistributionCache(const Options& options);
  // REQUIRES: no call on this cache is in progress.
  ~DistributionCache();
  DistributionCache(const DistributionCache&) = delete;
  DistributionCache& operator=(const DistributionCache&) = delete;

  // The entry for `key`, computed by `compute` when absent (see the header
  // comment for concurrency). Errors are those of `compute`; a successful
  // `compute` must return a non-null entry (else INTERNAL). `compute` runs
  // on the calling thread with no cache lock held; it may use the cache,
  // but not for `key` itself (that waits for itself).
  absl::StatusOr<std::shared_ptr<const CacheEntry>> GetOrCompute(
      const Key& key,
      const std::function<absl::StatusOr<std::shared_ptr<const CacheEntry>>()>& compute);

  // Typed convenience over GetOrCompute. REQUIRES: every entry stored under
  // a key of this part is a T.
  template <typename T>
  absl::StatusOr<std::shared_ptr<const T>> Get(
      const Key& key,
      const std::function<absl::StatusOr<std::shared_ptr<const T>>()>& compute) {
    auto r = GetOrCompute(key, [&]() -> absl::StatusOr<std::shared_ptr<const CacheEntry>> {
      auto v = compute();
      if (!v.ok()) return v.status();
      return std::shared_ptr<const CacheEntry>(*std::move(v));
    });
    if (!r.ok()) return r.status();
    return std::static_pointer_cast<const T>(*std::move(r));
  }

  // The entry for `key` if cached (counts as a use), else nullptr.
  std::shared_ptr<const CacheEntry> Lookup(const Key& key);

  // Inserts a value computed elsewhere (e.g. the factor a Fit computed),
  // replacing any entry under `key`; nullptr is ignored.
  void Put(const Key& key, std::shared_ptr<const CacheEntry> value);

  // Drops every entry of `model_id` (all generations); computations of it in
  // flight now are not kept. A later call for a dropped generation (a request
  // still holding the old model) keeps its entry again; LRU ages it out.
  void DropModel(const std::string& model_id);

  // Bytes held for one model (all generations).
  int64_t ModelBytes(const std::string& model_id) const;

  Stats stats() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace ntk

#endif  // NTK_CORE_DISTRIBUTION_CACHE_H_

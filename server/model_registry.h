// ntk/server/model_registry.h: the set of servable models (a small
// TensorFlow-Serving-like manager).
//
// Holds map id -> std::shared_ptr<const ModelEntry>. Readers (Predict,
// PredictDistribution, Get, List) take the shared_ptr under a short mutex
// and compute outside it, so any number of them run while a Fit runs.
// Publishing a model swaps one pointer under the mutex: a reader sees the
// old entry or the new one, never a mix. Delete only drops the map's
// reference; readers in flight keep theirs alive until they finish.
//
// Writes (Commit, Delete) are serialized by a second mutex that also covers
// the file operations, so the directory and the map change in the same order:
// Commit persists the model (ModelStore::Save, atomic and durable) and only
// then publishes it; Delete removes the file and then the entry.
//
// A Fit first Reserve()s its id (ALREADY_EXISTS without `replace`, ABORTED
// while another Fit of the same id runs, RESOURCE_EXHAUSTED over max_models),
// and then either Commit()s or Release()s it. While it runs, its state and
// progress are in fits() (server/fit_tracker.h): ModelInfo FITTING, and
// FAILED for a background fit that failed.
//
// Generations: every published entry gets the next value of one monotonic
// counter, so a re-fitted or re-loaded id never shares DistributionCache keys
// with its predecessor (core/distribution/cache.h). When an id is replaced or
// deleted the registry calls cache->DropModel(id) after the swap, releasing
// its factors at once; factors an in-flight call on the old entry inserts
// later are never served (stale generation) and age out by LRU.
//
// Locks: write_mu_ (Commit/Delete: map + directory, held across file I/O,
// never across a fit) then mu_ (the map; held for lookups and swaps only).
// No lock is held while a model computes.
//
// Thread safety: every method is thread-safe.
#ifndef NTK_SERVER_MODEL_REGISTRY_H_
#define NTK_SERVER_MODEL_REGISTRY_H_

#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "core/distribution/cache.h"
#include "absl/synchronization/mutex.h"
#include "core/model/model.h"
#include "proto/ntk/v1/ntk.pb.h"
#include "server/fit_tracker.h"
#include "server/model_store.h"
#include "server/predict_batcher.h"

namespace ntk::server {

// One servable model. Immutable once published.
struct ModelEntry {
  std::string id;
  int64_t created_unix_ms = 0;
  uint64_t generation = 0;  // unique per publish (see above)
  int64_t model_bytes = 0;  // memory the model holds (FittedModel::MemoryBytes)
  std::shared_ptr<const FittedModel> model;
  v1::ModelInfo info;  // built once from the above (convert.h)
  // Batches this model's concurrent Predicts (server/predict_batcher.h);
  // the entry's only mutable state, thread-safe itself.
  std::shared_ptr<PredictBatcher> batcher;

  // Where this entry's PredictDistribution factors live.
  DistributionCache::Scope CacheScope(DistributionCache* cache) const {
    return DistributionCache::Scope{cache, id, generation};
  }
};

class ModelRegistry {
 public:
  // `store` may be null (nothing persisted; tests); `cache` may be null
  // (nothing to drop). Neither owned; both must outlive the registry.
  // max_models <= 0: no limit. Each entry gets a PredictBatcher with
  // `batching`.
  ModelRegistry(const ModelStore* store, int max_models, DistributionCache* cache,
                PredictBatcher::Options batching = {});

  // The entry of `id`, or null.
  std::shared_ptr<const ModelEntry> Get(const std::string& id) const;
  // All entries, ordered by id.
  std::vector<std::shared_ptr<const ModelEntry>> List() const;
  size_t size() const;

  absl::Status Reserve(const std::string& id, bool replace);
  void Release(const std::string& id);
  // Persists `payload` (model->Serialize()) and publishes the model under a
  // new generation, then releases the reservation. On a persistence error
  // nothing is published (and the reservation is released).
  absl::StatusOr<std::shared_ptr<const ModelEntry>> Commit(
      const std::string& id, int64_t created_unix_ms, std::shared_ptr<const FittedModel> model,
      std::string payload);
  // NOT_FOUND when absent. Removes the file first, then the entry.
  absl::Status Delete(const std::string& id);
  // Publishes a model loaded from the store at start (not persisted again);
  // `payload_bytes`: the size of its stored payload.
  void InsertLoaded(const std::string& id, int64_t created_unix_ms,
                    std::shared_ptr<const FittedModel> model, int64_t payload_bytes);

  DistributionCache* cache() const { return cache_; }
  // Fits in progress (and failed background fits) by id.
  FitTracker& fits() { return fits_; }
  const FitTracker& fits() const { return fits_; }

 private:
  std::shared_ptr<const ModelEntry> MakeEntry(const std::string& id, int64_t created_unix_ms,
                                              std::shared_ptr<const FittedModel> model,
                                              int64_t model_bytes);
  // Swaps `entry` in for its id; returns the entry it replaced (may be null).
  std::shared_ptr<const ModelEntry> Publish(std::shared_ptr<const ModelEntry> entry);

  const ModelStore* const store_;
  const int max_models_;
  DistributionCache* const cache_;
  const PredictBatcher::Options batching_;
  std::atomic<uint64_t> next_generation_{1};
  std::mutex write_mu_;  // serializes Commit/Delete (map + directory)
  mutable absl::Mutex mu_;
  std::map<std::string, std::shared_ptr<const ModelEntry>> models_ ABSL_GUARDED_BY(mu_);
  std::set<std::string> pending_ ABSL_GUARDED_BY(mu_);  // ids with a Fit in progress
  FitTracker fits_;
};

}  // namespace ntk::server

#endif  // NTK_SERVER_MODEL_REGISTRY_H_

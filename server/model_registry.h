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
// and then either Commit()s or Release()s it.
//
// Thread safety: every method is thread-safe.
#ifndef NTK_SERVER_MODEL_REGISTRY_H_
#define NTK_SERVER_MODEL_REGISTRY_H_

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "core/model/model.h"
#include "proto/ntk/v1/ntk.pb.h"
#include "server/model_store.h"

namespace ntk::server {

// One servable model. Immutable once published.
struct ModelEntry {
  std::string id;
  int64_t created_unix_ms = 0;
  std::shared_ptr<const FittedModel> model;
  v1::ModelInfo info;  // built once from the above (convert.h)
};

// Builds an entry (and its ModelInfo). REQUIRES: model != nullptr.
std::shared_ptr<const ModelEntry> MakeEntry(std::string id, int64_t created_unix_ms,
                                            std::shared_ptr<const FittedModel> model);

class ModelRegistry {
 public:
  // `store` may be null (nothing persisted; tests). Not owned; must outlive
  // the registry. max_models <= 0: no limit.
  ModelRegistry(const ModelStore* store, int max_models);

  // The entry of `id`, or null.
  std::shared_ptr<const ModelEntry> Get(const std::string& id) const;
  // All entries, ordered by id.
  std::vector<std::shared_ptr<const ModelEntry>> List() const;
  size_t size() const;

  absl::Status Reserve(const std::string& id, bool replace);
  void Release(const std::string& id);
  // Persists `entry` and publishes it, then releases its reservation.
  // On a persistence error nothing is published (and the reservation is released).
  absl::Status Commit(std::shared_ptr<const ModelEntry> entry);
  // NOT_FOUND when absent. Removes the file first, then the entry.
  absl::Status Delete(const std::string& id);
  // Publishes a model loaded from the store at start (not persisted again).
  void InsertLoaded(std::shared_ptr<const ModelEntry> entry);

 private:
  const ModelStore* const store_;
  const int max_models_;
  std::mutex write_mu_;  // serializes Commit/Delete (map + directory)
  mutable absl::Mutex mu_;
  std::map<std::string, std::shared_ptr<const ModelEntry>> models_ ABSL_GUARDED_BY(mu_);
  std::set<std::string> pending_ ABSL_GUARDED_BY(mu_);  // ids with a Fit in progress
};

}  // namespace ntk::server

#endif  // NTK_SERVER_MODEL_REGISTRY_H_

#include "server/model_registry.h"

#include <utility>

#include "absl/strings/str_format.h"
#include "server/convert.h"

namespace ntk::server {

ModelRegistry::ModelRegistry(const ModelStore* store, int max_models, DistributionCache* cache,
                             PredictBatcher::Options batching)
    : store_(store), max_models_(max_models), cache_(cache), batching_(batching) {}

std::shared_ptr<const ModelEntry> ModelRegistry::MakeEntry(
    const std::string& id, int64_t created_unix_ms, std::shared_ptr<const FittedModel> model,
    int64_t model_bytes) {
  auto e = std::make_shared<ModelEntry>();
  e->id = id;
  e->created_unix_ms = created_unix_ms;
  e->generation = next_generation_.fetch_add(1);
  e->model_bytes = model != nullptr ? model->MemoryBytes() : model_bytes;
  e->model = std::move(model);
  ModelInfoToProto(e->id, e->created_unix_ms, *e->model, &e->info);
  e->batcher = std::make_shared<PredictBatcher>(batching_);
  return e;
}

std::shared_ptr<const ModelEntry> ModelRegistry::Publish(std::shared_ptr<const ModelEntry> entry) {
  std::shared_ptr<const ModelEntry> old;
  const std::string id = entry->id;
  {
    absl::MutexLock lock(&mu_);
    old = std::move(models_[id]);
    models_[id] = std::move(entry);
    pending_.erase(id);
  }
  if (old != nullptr && cache_ != nullptr) cache_->DropModel(id);
  return old;
}

std::shared_ptr<const ModelEntry> ModelRegistry::Get(const std::string& id) const {
  absl::MutexLock lock(&mu_);
  auto it = models_.find(id);
  if (it == models_.end()) return nullptr;
  return it->second;
}

std::vector<std::shared_ptr<const ModelEntry>> ModelRegistry::List() const {
  absl::MutexLock lock(&mu_);
  std::vector<std::shared_ptr<const ModelEntry>> out;
  out.reserve(models_.size());
  for (const auto& [id, e] : models_) out.push_back(e);
  return out;
}

size_t ModelRegistry::size() const {
  absl::MutexLock lock(&mu_);
  return models_.size();
}

absl::Status ModelRegistry::Reserve(const std::string& id, bool replace) {
  absl::MutexLock lock(&mu_);
  if (pending_.count(id) > 0) {
    return absl::AbortedError(
        absl::StrFormat("model_id: a Fit of \"%s\" is already in progress", id));
  }
  const bool exists = models_.count(id) > 0;
  if (exists && !replace) {
    return absl::AlreadyExistsError(absl::StrFormat(
        "model_id: model \"%s\" already exists (set replace to overwrite it)", id));
  }
  if (!exists && max_models_ > 0) {
    size_t new_ids = 0;
    for (const std::string& p : pending_) new_ids += models_.count(p) == 0 ? 1 : 0;
    if (models_.size() + new_ids >= static_cast<size_t>(max_models_)) {
      return absl::ResourceExhaustedError(absl::StrFormat(
          "model_id: the server already holds or is fitting %d models (--max_models = %d)",
          models_.size() + new_ids, max_models_));
    }
  }
  pending_.insert(id);
  return absl::OkStatus();
}

void ModelRegistry::Release(const std::string& id) {
  absl::MutexLock lock(&mu_);
  pending_.erase(id);
}

absl::StatusOr<std::shared_ptr<const ModelEntry>> ModelRegistry::Commit(
    const std::string& id, int64_t created_unix_ms, std::shared_ptr<const FittedModel> model,
    std::string payload) {
  const auto payload_bytes = static_cast<int64_t>(payload.size());
  std::lock_guard<std::mutex> write_lock(write_mu_);
  if (store_ != nullptr) {
    StoredModel stored;
    stored.id = id;
    stored.created_unix_ms = created_unix_ms;
    stored.payload = std::move(payload);
    absl::Status s = store_->Save(stored);
    if (!s.ok()) {
      Release(id);
      return absl::Status(s.code(), absl::StrFormat("model_id: could not persist model \"%s\": %s",
                                                    id, s.message()));
    }
  }
  std::shared_ptr<const ModelEntry> entry =
      MakeEntry(id, created_unix_ms, std::move(model), payload_bytes);
  Publish(entry);  // the replaced entry (if any) may be freed here, outside mu_
  return entry;
}

absl::Status ModelRegistry::Delete(const std::string& id) {
  std::lock_guard<std::mutex> write_lock(write_mu_);
  if (Get(id) == nullptr) {
    return absl::NotFoundError(absl::StrFormat("model_id: no model \"%s\"", id));
  }
  if (store_ != nullptr) {
    absl::Status s = store_->Remove(id);
    if (!s.ok()) {
      return absl::Status(s.code(),
                          absl::StrFormat("model_id: could not remove the file of \"%s\": %s",
                                          id, s.message()));
    }
  }
  std::shared_ptr<const ModelEntry> old;
  {
    absl::MutexLock lock(&mu_);
    auto it = models_.find(id);
    if (it != models_.end()) {
      old = std::move(it->second);
      models_.erase(it);
    }
  }
  if (cache_ != nullptr) cache_->DropModel(id);
  return absl::OkStatus();  // `old` may free the model here, outside mu_
}

void ModelRegistry::InsertLoaded(const std::string& id, int64_t created_unix_ms,
                                 std::shared_ptr<const FittedModel> model,
                                 int64_t payload_bytes) {
  Publish(MakeEntry(id, created_unix_ms, std::move(model), payload_bytes));
}

}  // namespace ntk::server

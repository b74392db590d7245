#include "server/model_registry.h"

#include <utility>

#include "absl/strings/str_format.h"
#include "server/convert.h"

namespace ntk::server {

std::shared_ptr<const ModelEntry> MakeEntry(std::string id, int64_t created_unix_ms,
                                            std::shared_ptr<const FittedModel> model) {
  auto e = std::make_shared<ModelEntry>();
  e->id = std::move(id);
  e->created_unix_ms = created_unix_ms;
  e->model = std::move(model);
  ModelInfoToProto(e->id, e->created_unix_ms, *e->model, &e->info);
  return e;
}

ModelRegistry::ModelRegistry(const ModelStore* store, int max_models)
    : store_(store), max_models_(max_models) {}

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

absl::Status ModelRegistry::Commit(std::shared_ptr<const ModelEntry> entry) {
  StoredModel stored;
  if (store_ != nullptr) {  // serialize outside the write lock
    stored.id = entry->id;
    stored.created_unix_ms = entry->created_unix_ms;
    stored.payload = entry->model->Serialize();
  }
  std::lock_guard<std::mutex> write_lock(write_mu_);
  if (store_ != nullptr) {
    absl::Status s = store_->Save(stored);
    if (!s.ok()) {
      Release(entry->id);
      return absl::InternalError(absl::StrFormat(
          "model_id: could not persist model \"%s\": %s", entry->id, s.message()));
    }
  }
  std::shared_ptr<const ModelEntry> old;
  {
    absl::MutexLock lock(&mu_);
    const std::string id = entry->id;
    old = std::move(models_[id]);
    models_[id] = std::move(entry);
    pending_.erase(id);
  }
  return absl::OkStatus();  // `old` may free the replaced model here, outside mu_
}

absl::Status ModelRegistry::Delete(const std::string& id) {
  std::lock_guard<std::mutex> write_lock(write_mu_);
  if (Get(id) == nullptr) {
    return absl::NotFoundError(absl::StrFormat("model_id: no model \"%s\"", id));
  }
  if (store_ != nullptr) {
    absl::Status s = store_->Remove(id);
    if (!s.ok()) {
      return absl::InternalError(absl::StrFormat(
          "model_id: could not remove the file of \"%s\": %s", id, s.message()));
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
  return absl::OkStatus();  // `old` may free the model here, outside mu_
}

void ModelRegistry::InsertLoaded(std::shared_ptr<const ModelEntry> entry) {
  absl::MutexLock lock(&mu_);
  const std::string id = entry->id;
  models_[id] = std::move(entry);
}

}  // namespace ntk::server

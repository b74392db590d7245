#include "server/watch_model.h"

#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <utility>

#include "absl/strings/str_format.h"
#include "server/convert.h"
#include "server/fit_tracker.h"

namespace ntk::server {
namespace {

class WatchReactor;

// What the fit's record holds (weakly) to reach the reactor; `reactor` is
// null once the reactor is done. `mu` guards it and the reactor's state.
struct Link final : FitWatcher {
  std::mutex mu;
  WatchReactor* reactor = nullptr;
  void OnFitChanged() override;
};

class WatchReactor final : public grpc::ServerWriteReactor<v1::ModelInfo> {
 public:
  enum class Action { kNone, kWrite, kFinish };

  WatchReactor(RpcRunner* runner, ModelRegistry* registry, grpc::CallbackServerContext* ctx,
               const std::string& id)
      : runner_(runner), call_(ctx, CallLog("WatchModel", id)) {
    runner_->inflight()->Enter();  // left in OnDone
    absl::Status s = runner_->Admit(*ctx, Where::kInline);
    if (s.ok()) s = ValidateModelId(id);
    if (s.ok()) s = ChooseSource(registry, id);
    if (!s.ok()) {
      Finish(runner_->Complete(call_, Where::kInline, true, std::move(s)));
      return;
    }
    link_ = std::make_shared<Link>();
    link_->reactor = this;
    if (record_ != nullptr) record_->Watch(link_);
    Run();
  }

  // Decides the next step. REQUIRES: link_->mu held.
  Action NextLocked() {
    if (finishing_ || writing_) return Action::kNone;
    if (cancelled_ || sent_terminal_) {
      finishing_ = true;
      final_ = cancelled_ ? absl::CancelledError("WatchModel: cancelled by the client")
                          : absl::OkStatus();
      return Action::kFinish;
    }
    FitSnapshot s = record_ != nullptr ? record_->Snapshot() : fixed_;
    if (s.version == last_version_) return Action::kNone;
    last_version_ = s.version;
    sent_terminal_ = s.terminal;
    message_ = std::move(s.info);
    writing_ = true;
    return Action::kWrite;
  }
  // Carries out NextLocked's decision. REQUIRES: link_->mu not held.
  void Act(Action a) {
    if (a == Action::kWrite) StartWrite(&message_);
    if (a == Action::kFinish) Finish(runner_->Complete(call_, Where::kInline, true, final_));
  }
  void Run() {
    Action a;
    {
      std::lock_guard<std::mutex> lock(link_->mu);
      a = NextLocked();
    }
    Act(a);
  }

  void OnWriteDone(bool ok) override {
    {
      std::lock_guard<std::mutex> lock(link_->mu);
      writing_ = false;
      if (!ok) cancelled_ = true;
    }
    Run();
  }
  void OnCancel() override {
    if (link_ == nullptr) return;  // finished in the constructor
    {
      std::lock_guard<std::mutex> lock(link_->mu);
      cancelled_ = true;
    }
    Run();
  }
  void OnDone() override {
    if (link_ != nullptr) {
      std::lock_guard<std::mutex> lock(link_->mu);
      link_->reactor = nullptr;
    }
    InflightCalls* const inflight = runner_->inflight();
    delete this;
    inflight->Exit();
  }

 private:
  // The fit of `id` in progress, else the READY model, else a FAILED
  // background fit; NOT_FOUND when none.
  absl::Status ChooseSource(ModelRegistry* registry, const std::string& id) {
    std::shared_ptr<FitRecord> record = registry->fits().Find(id);
    if (record != nullptr && !record->done()) {
      record_ = std::move(record);
      return absl::OkStatus();
    }
    fixed_.version = 1;
    fixed_.terminal = true;
    if (std::shared_ptr<const ModelEntry> entry = registry->Get(id)) {
      fixed_.info = entry->info;
    } else if (record != nullptr) {
      fixed_.info = record->Snapshot().info;
    } else {
      return absl::NotFoundError(absl::StrFormat("model_id: no model or fit \"%s\"", id));
    }
    return absl::OkStatus();
  }

  RpcRunner* const runner_;
  RpcCall call_;
  std::shared_ptr<Link> link_;
  std::shared_ptr<FitRecord> record_;  // null: fixed_ is the whole answer
  FitSnapshot fixed_;
  // Guarded by link_->mu:
  v1::ModelInfo message_;  // being written while writing_
  uint64_t last_version_ = 0;
  bool writing_ = false, finishing_ = false, cancelled_ = false, sent_terminal_ = false;
  absl::Status final_;
};

void Link::OnFitChanged() {
  WatchReactor* r = nullptr;
  WatchReactor::Action a = WatchReactor::Action::kNone;
  {
    std::lock_guard<std::mutex> lock(mu);
    if (reactor == nullptr) return;
    r = reactor;
    a = r->NextLocked();
  }
  // A write or finish in progress keeps the reactor alive until it completes.
  r->Act(a);
}

}  // namespace

grpc::ServerWriteReactor<v1::ModelInfo>* NewWatchModelReactor(RpcRunner* runner,
                                                              ModelRegistry* registry,
                                                              grpc::CallbackServerContext* ctx,
                                                              const v1::GetModelRequest* request) {
  return new WatchReactor(runner, registry, ctx, request->model_id());
}

}  // namespace ntk::server

#include "server/service.h"

#include <omp.h>

#include <chrono>
#include <exception>
#include <new>
#include <utility>
#include <vector>

#include <google/protobuf/util/message_differencer.h>

#include "absl/status/status.h"
#include "absl/strings/str_format.h"
#include "server/convert.h"
#include "server/log.h"

namespace ntk::server {
namespace {

int64_t SteadyNs() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

grpc::Status Err(grpc::StatusCode code, std::string message) {
  return grpc::Status(code, std::move(message));
}

// Small Predicts run on gRPC's threads; keep OpenMP from starting a team on
// each of them (the work is too small to split, and idle teams spin).
void SingleThreadedComputeOnThisThread() {
  static thread_local bool done = false;
  if (!done) {
    omp_set_num_threads(1);
    done = true;
  }
}

// Runs fn, turning any exception into a status (none may cross the RPC boundary).
template <typename Fn>
grpc::Status NoThrow(Fn&& fn) {
  try {
    return fn();
  } catch (const std::bad_alloc&) {
    return Err(grpc::StatusCode::RESOURCE_EXHAUSTED, "server: out of memory");
  } catch (const std::exception& e) {
    return Err(grpc::StatusCode::INTERNAL, absl::StrFormat("server: %s", e.what()));
  } catch (...) {
    return Err(grpc::StatusCode::INTERNAL, "server: unknown exception");
  }
}

}  // namespace

CallLog::CallLog(const char* m, bool on) : method(m), start_ns(SteadyNs()), enabled(on) {}

void CallLog::Done(const grpc::Status& status) const {
  if (!enabled) return;
  const double ms = static_cast<double>(SteadyNs() - start_ns) / 1e6;
  const absl::StatusCode code = static_cast<absl::StatusCode>(status.error_code());
  if (status.ok()) {
    Logf("rpc=%s model=%s rows=%d code=OK ms=%.3f", method,
         model_id.empty() ? "-" : model_id, rows, ms);
  } else {
    Logf("rpc=%s model=%s rows=%d code=%s ms=%.3f msg=\"%s\"", method,
         model_id.empty() ? "-" : model_id, rows, absl::StatusCodeToString(code), ms,
         status.error_message());
  }
}

NtkServiceImpl::NtkServiceImpl(const ServerOptions& options, ModelRegistry* registry,
                               WorkerPool* compute_pool, WorkerPool* fit_pool,
                               InflightCalls* inflight)
    : options_(options),
      auth_(options.auth_token),
      registry_(registry),
      compute_pool_(compute_pool),
      fit_pool_(fit_pool),
      inflight_(inflight) {}

bool NtkServiceImpl::TryAcquireFitSlot() {
  int n = fits_running_.load();
  const int max = options_.max_concurrent_fits > 0 ? options_.max_concurrent_fits : 1;
  while (n < max) {
    if (fits_running_.compare_exchange_weak(n, n + 1)) return true;
  }
  return false;
}

void NtkServiceImpl::ReleaseFitSlot() { fits_running_.fetch_sub(1); }

namespace {
grpc::Status FitSlotError(int max) {
  return Err(grpc::StatusCode::RESOURCE_EXHAUSTED,
             absl::StrFormat("Fit: %d fits already running (--max_concurrent_fits = %d)",
                             max, max));
}
}  // namespace

grpc::Status NtkServiceImpl::RunFit(grpc::CallbackServerContext* ctx, const FitInput& in,
                                    v1::FitResponse* response, CallLog* log) {
  if (ctx->IsCancelled()) return Err(grpc::StatusCode::CANCELLED, "Fit: cancelled by the client");
  std::string id = in.model_id.empty() ? GenerateModelId() : in.model_id;
  log->model_id = id;
  log->rows = static_cast<int64_t>(in.features.rows);
  if (absl::Status s = ValidateModelId(id); !s.ok()) return ToGrpcStatus(s);
  static const v1::ModelSpec kEmptySpec;
  absl::StatusOr<ModelSpec> spec =
      ModelSpecFromProto(in.spec != nullptr ? *in.spec : kEmptySpec, options_);
  if (!spec.ok()) return ToGrpcStatus(spec.status());
  absl::StatusOr<TrainingData> data = TrainingDataFromViews(
      in.features, in.labels, in.num_labels, in.targets, *spec, options_);
  if (!data.ok()) return ToGrpcStatus(data.status());

  if (absl::Status s = registry_->Reserve(id, in.replace); !s.ok()) return ToGrpcStatus(s);
  bool committed = false;
  struct ReleaseGuard {
    ModelRegistry* r;
    const std::string& id;
    bool* committed;
    ~ReleaseGuard() {
      if (!*committed) r->Release(id);
    }
  } guard{registry_, id, &committed};

  if (options_.log_rpcs) {
    Logf("fit model=%s phase=start rows=%d cols=%d", id, data->features.rows(),
         data->features.cols());
  }
  const auto deadline = ctx->deadline();
  const auto start = std::chrono::steady_clock::now();
  auto last_log = start;
  double last_fraction = 0;
  bool cancelled = false, deadline_hit = false;
  std::string last_phase = "start";
  FitOptions fit_options;
  fit_options.progress = [&](double fraction, const char* phase) {
    last_phase = phase != nullptr ? phase : "";
    if (ctx->IsCancelled()) {
      cancelled = true;
      return false;
    }
    if (std::chrono::system_clock::now() > deadline) {
      deadline_hit = true;
      return false;
    }
    const auto now = std::chrono::steady_clock::now();
    if (options_.log_rpcs &&
        (fraction >= last_fraction + 0.1 || now - last_log > std::chrono::seconds(3))) {
      last_fraction = fraction;
      last_log = now;
      Logf("fit model=%s phase=%s progress=%.0f%% elapsed_ms=%d", id, last_phase,
           100.0 * fraction,
           std::chrono::duration_cast<std::chrono::milliseconds>(now - start).count());
    }
    return true;
  };

  absl::StatusOr<std::unique_ptr<FittedModel>> fitted =
      FittedModel::Fit(*spec, *data, fit_options);
  // The training data is no longer needed: free it before persisting.
  data = absl::UnknownError("released");
  const bool past_deadline = std::chrono::system_clock::now() > deadline;
  if (deadline_hit || (!fitted.ok() && past_deadline)) {
    return Err(grpc::StatusCode::DEADLINE_EXCEEDED,
               absl::StrFormat("Fit: deadline exceeded (phase %s); no model was kept", last_phase));
  }
  if (cancelled || ctx->IsCancelled()) {
    return Err(grpc::StatusCode::CANCELLED, "Fit: cancelled; no model was kept");
  }
  if (!fitted.ok()) return ToGrpcStatus(fitted.status());
  if (past_deadline) {
    return Err(grpc::StatusCode::DEADLINE_EXCEEDED, "Fit: deadline exceeded; no model was kept");
  }
  std::shared_ptr<const ModelEntry> entry =
      MakeEntry(id, NowUnixMs(), std::shared_ptr<const FittedModel>(std::move(*fitted)));
  committed = true;  // Commit releases the reservation in every case
  if (absl::Status s = registry_->Commit(entry); !s.ok()) return ToGrpcStatus(s);
  *response->mutable_model() = entry->info;
  return grpc::Status::OK;
}

grpc::ServerUnaryReactor* NtkServiceImpl::Fit(grpc::CallbackServerContext* ctx,
                                              const v1::FitRequest* request,
                                              v1::FitResponse* response) {
  grpc::ServerUnaryReactor* reactor = new CountedUnaryReactor(inflight_);
  CallLog log("Fit", options_.log_rpcs);
  log.model_id = request->model_id();
  log.rows = request->features().rows();
  grpc::Status s = auth_.Check(*ctx);
  if (s.ok() && !TryAcquireFitSlot()) s = FitSlotError(options_.max_concurrent_fits);
  if (!s.ok()) {
    log.Done(s);
    reactor->Finish(s);
    return reactor;
  }
  fit_pool_->Schedule([this, ctx, request, response, reactor, log]() mutable {
    grpc::Status st = NoThrow([&] {
      FitInput in;
      in.model_id = request->model_id();
      in.replace = request->replace();
      in.spec = &request->spec();
      in.features = ViewOf(request->features());
      in.labels = request->labels().data();
      in.num_labels = static_cast<size_t>(request->labels_size());
      in.targets = ViewOf(request->targets());
      return RunFit(ctx, in, response, &log);
    });
    ReleaseFitSlot();
    log.Done(st);
    reactor->Finish(st);
  });
  return reactor;
}

namespace {

// Accumulates the rows of a FitStream and runs the fit when the stream ends.
class FitStreamReactor final : public grpc::ServerReadReactor<v1::FitRequest> {
 public:
  FitStreamReactor(NtkServiceImpl* service, grpc::CallbackServerContext* ctx,
                   v1::FitResponse* response)
      : service_(service), ctx_(ctx), response_(response),
        log_("FitStream", service->options().log_rpcs) {
    service_->inflight()->Enter();  // left in OnDone
    grpc::Status s = service_->auth().Check(*ctx_);
    if (s.ok()) {
      if (service_->TryAcquireFitSlot()) {
        holds_slot_ = true;
      } else {
        s = FitSlotError(service_->options().max_concurrent_fits);
      }
    }
    if (!s.ok()) {
      Done(s);
      return;
    }
    StartRead(&message_);
  }

  void OnReadDone(bool ok) override {
    if (!ok) {  // end of the stream (or cancelled: RunFit sees it)
      if (num_messages_ == 0) {
        Done(Err(grpc::StatusCode::INVALID_ARGUMENT,
                 "FitStream: the stream carried no messages"));
        return;
      }
      service_->fit_pool()->Schedule([this] { RunFitAndFinish(); });
      return;
    }
    grpc::Status s = NoThrow([&] { return Append(); });
    if (!s.ok()) {
      Done(s);
      return;
    }
    StartRead(&message_);
  }

  void OnDone() override {
    InflightCalls* const inflight = service_->inflight();
    delete this;
    inflight->Exit();
  }

 private:
  void Done(const grpc::Status& s) {
    if (holds_slot_) {
      holds_slot_ = false;
      service_->ReleaseFitSlot();
    }
    log_.Done(s);
    Finish(s);
  }

  grpc::Status Append() {
    const v1::FitRequest& m = message_;
    const int index = num_messages_++;
    const ServerOptions& opt = service_->options();
    if (index == 0) {
      model_id_ = m.model_id();
      replace_ = m.replace();
      spec_ = m.spec();
      log_.model_id = model_id_;
    } else {
      if (!m.model_id().empty() && m.model_id() != model_id_) {
        return Err(grpc::StatusCode::INVALID_ARGUMENT,
                   absl::StrFormat("model_id: FitStream message %d has \"%s\", the first "
                                   "had \"%s\"; only the first message sets it",
                                   index, m.model_id(), model_id_));
      }
      if (m.has_spec() &&
          !google::protobuf::util::MessageDifferencer::Equals(m.spec(), spec_)) {
        return Err(grpc::StatusCode::INVALID_ARGUMENT,
                   absl::StrFormat("spec: FitStream message %d carries a different spec; "
                                   "only the first message sets it",
                                   index));
      }
      if (m.replace() && !replace_) {
        return Err(grpc::StatusCode::INVALID_ARGUMENT,
                   absl::StrFormat("replace: FitStream message %d sets replace; only the "
                                   "first message sets it",
                                   index));
      }
    }
    // Features.
    const v1::Matrix& f = m.features();
    if (f.rows() > 0 || f.cols() > 0 || f.values_size() > 0) {
      if (grpc::Status s = AppendChunk("features", f, index, &rows_, &cols_, &features_);
          !s.ok()) {
        return s;
      }
      if (absl::Status s = CheckTrainingShape(rows_, cols_, opt); !s.ok()) {
        return ToGrpcStatus(s);
      }
    }
    log_.rows = static_cast<int64_t>(rows_);
    // Labels.
    if (m.labels_size() > 0) {
      if (opt.max_train_rows > 0 &&
          labels_.size() + m.labels_size() > static_cast<size_t>(opt.max_train_rows)) {
        return Err(grpc::StatusCode::RESOURCE_EXHAUSTED,
                   absl::StrFormat("labels: more than --max_train_rows = %d labels",
                                   opt.max_train_rows));
      }
      labels_.insert(labels_.end(), m.labels().begin(), m.labels().end());
    }
    // Targets.
    const v1::Matrix& t = m.targets();
    if (t.rows() > 0 || t.cols() > 0 || t.values_size() > 0) {
      if (grpc::Status s =
              AppendChunk("targets", t, index, &target_rows_, &target_cols_, &targets_);
          !s.ok()) {
        return s;
      }
      if (opt.max_train_rows > 0 && target_rows_ > static_cast<uint64_t>(opt.max_train_rows)) {
        return Err(grpc::StatusCode::RESOURCE_EXHAUSTED,
                   absl::StrFormat("targets.rows: %d exceeds --max_train_rows = %d",
                                   target_rows_, opt.max_train_rows));
      }
      if (opt.max_classes > 0 && target_cols_ > static_cast<uint64_t>(opt.max_classes)) {
        return Err(grpc::StatusCode::RESOURCE_EXHAUSTED,
                   absl::StrFormat("targets.cols: %d classes exceed --max_classes = %d",
                                   target_cols_, opt.max_classes));
      }
    }
    return grpc::Status::OK;
  }

  // Appends one message's rows of `field` (features or targets): its column
  // count must match earlier messages' and its values rows * cols.
  static grpc::Status AppendChunk(const char* field, const v1::Matrix& m, int index,
                                  uint64_t* rows, uint64_t* cols, std::vector<double>* values) {
    if (*cols != 0 && m.cols() != *cols) {
      return Err(grpc::StatusCode::INVALID_ARGUMENT,
                 absl::StrFormat("%s.cols: FitStream message %d has %d columns, "
                                 "earlier messages %d",
                                 field, index, m.cols(), *cols));
    }
    const uint64_t want = static_cast<uint64_t>(m.rows()) * m.cols();
    if (static_cast<uint64_t>(m.values_size()) != want) {
      return Err(grpc::StatusCode::INVALID_ARGUMENT,
                 absl::StrFormat("%s.values: FitStream message %d: size %d != rows*cols = %d",
                                 field, index, m.values_size(), want));
    }
    *cols = m.cols();
    *rows += m.rows();
    values->insert(values->end(), m.values().begin(), m.values().end());
    return grpc::Status::OK;
  }

  void RunFitAndFinish() {
    grpc::Status s = NoThrow([&] {
      NtkServiceImpl::FitInput in;
      in.model_id = model_id_;
      in.replace = replace_;
      in.spec = &spec_;
      in.features.rows = rows_;
      in.features.cols = cols_;
      in.features.values = features_.data();
      in.features.size = features_.size();
      in.labels = labels_.data();
      in.num_labels = labels_.size();
      in.targets.rows = target_rows_;
      in.targets.cols = target_cols_;
      in.targets.values = targets_.data();
      in.targets.size = targets_.size();
      return service_->RunFit(ctx_, in, response_, &log_);
    });
    // Free the buffers before finishing.
    std::vector<double>().swap(features_);
    std::vector<double>().swap(targets_);
    std::vector<int32_t>().swap(labels_);
    Done(s);
  }

  NtkServiceImpl* const service_;
  grpc::CallbackServerContext* const ctx_;
  v1::FitResponse* const response_;
  CallLog log_;
  bool holds_slot_ = false;
  v1::FitRequest message_;
  int num_messages_ = 0;
  std::string model_id_;
  bool replace_ = false;
  v1::ModelSpec spec_;
  uint64_t rows_ = 0, cols_ = 0;
  std::vector<double> features_;
  std::vector<int32_t> labels_;
  uint64_t target_rows_ = 0, target_cols_ = 0;
  std::vector<double> targets_;
};

}  // namespace

grpc::ServerReadReactor<v1::FitRequest>* NtkServiceImpl::FitStream(
    grpc::CallbackServerContext* ctx, v1::FitResponse* response) {
  return new FitStreamReactor(this, ctx, response);
}

namespace {

grpc::Status DoPredict(const ModelEntry& entry, const v1::PredictRequest& request,
                       v1::PredictResponse* response, const ServerOptions& options) {
  absl::StatusOr<Eigen::MatrixXd> x =
      QueryFeaturesFromProto(request.features(), *entry.model, options);
  if (!x.ok()) return ToGrpcStatus(x.status());
  absl::StatusOr<Prediction> p = entry.model->Predict(*x);
  if (!p.ok()) return ToGrpcStatus(p.status());
  PredictionToProto(*p, response);
  return grpc::Status::OK;
}

}  // namespace

grpc::Status NtkServiceImpl::FindModel(const grpc::CallbackServerContext& ctx,
                                       const std::string& model_id,
                                       std::shared_ptr<const ModelEntry>* entry) const {
  grpc::Status s = auth_.Check(ctx);
  if (s.ok()) s = ToGrpcStatus(ValidateModelId(model_id));
  if (!s.ok()) return s;
  *entry = registry_->Get(model_id);
  if (*entry == nullptr) {
    return Err(grpc::StatusCode::NOT_FOUND, absl::StrFormat("model_id: no model \"%s\"", model_id));
  }
  return grpc::Status::OK;
}

grpc::ServerUnaryReactor* NtkServiceImpl::Predict(grpc::CallbackServerContext* ctx,
                                                  const v1::PredictRequest* request,
                                                  v1::PredictResponse* response) {
  grpc::ServerUnaryReactor* reactor = new CountedUnaryReactor(inflight_);
  CallLog log("Predict", options_.log_rpcs);
  log.model_id = request->model_id();
  log.rows = request->features().rows();
  std::shared_ptr<const ModelEntry> entry;
  grpc::Status s = FindModel(*ctx, request->model_id(), &entry);
  if (!s.ok()) {
    log.Done(s);
    reactor->Finish(s);
    return reactor;
  }
  const double work = static_cast<double>(request->features().rows()) *
                      entry->model->Info().num_train *
                      (static_cast<double>(request->features().cols()) + entry->model->Info().num_classes);
  if (work <= options_.inline_predict_max_work) {
    SingleThreadedComputeOnThisThread();
    s = NoThrow([&] { return DoPredict(*entry, *request, response, options_); });
    log.Done(s);
    reactor->Finish(s);
    return reactor;
  }
  compute_pool_->Schedule([this, entry, request, response, reactor, log] {
    grpc::Status st = NoThrow([&] { return DoPredict(*entry, *request, response, options_); });
    log.Done(st);
    reactor->Finish(st);
  });
  return reactor;
}

grpc::ServerUnaryReactor* NtkServiceImpl::PredictDistribution(
    grpc::CallbackServerContext* ctx, const v1::PredictDistributionRequest* request,
    v1::PredictDistributionResponse* response) {
  grpc::ServerUnaryReactor* reactor = new CountedUnaryReactor(inflight_);
  CallLog log("PredictDistribution", options_.log_rpcs);
  log.model_id = request->model_id();
  log.rows = request->features().rows();
  std::shared_ptr<const ModelEntry> entry;
  grpc::Status s = FindModel(*ctx, request->model_id(), &entry);
  if (!s.ok()) {
    log.Done(s);
    reactor->Finish(s);
    return reactor;
  }
  compute_pool_->Schedule([this, ctx, entry, request, response, reactor, log] {
    grpc::Status st = NoThrow([&]() -> grpc::Status {
      absl::StatusOr<DistributionOptions> opts =
          DistributionOptionsFromProto(*request, options_);
      if (!opts.ok()) return ToGrpcStatus(opts.status());
      absl::StatusOr<Eigen::MatrixXd> x =
          QueryFeaturesFromProto(request->features(), *entry->model, options_);
      if (!x.ok()) return ToGrpcStatus(x.status());
      const auto deadline = ctx->deadline();
      opts->progress = [ctx, deadline](double, const char*) {
        return !ctx->IsCancelled() && std::chrono::system_clock::now() <= deadline;
      };
      absl::StatusOr<DistributionResult> d = entry->model->PredictDistribution(*x, *opts);
      if (!d.ok()) {
        if (d.status().code() == absl::StatusCode::kCancelled &&
            std::chrono::system_clock::now() > deadline) {
          return Err(grpc::StatusCode::DEADLINE_EXCEEDED,
                     "PredictDistribution: deadline exceeded");
        }
        return ToGrpcStatus(d.status());
      }
      DistributionToProto(*d, response);
      return grpc::Status::OK;
    });
    log.Done(st);
    reactor->Finish(st);
  });
  return reactor;
}

grpc::ServerUnaryReactor* NtkServiceImpl::GetModel(grpc::CallbackServerContext* ctx,
                                                   const v1::GetModelRequest* request,
                                                   v1::ModelInfo* response) {
  grpc::ServerUnaryReactor* reactor = new CountedUnaryReactor(inflight_);
  CallLog log("GetModel", options_.log_rpcs);
  log.model_id = request->model_id();
  std::shared_ptr<const ModelEntry> entry;
  grpc::Status s = FindModel(*ctx, request->model_id(), &entry);
  if (s.ok()) {
    *response = entry->info;
    log.rows = entry->info.num_train();
  }
  log.Done(s);
  reactor->Finish(s);
  return reactor;
}

grpc::ServerUnaryReactor* NtkServiceImpl::ListModels(grpc::CallbackServerContext* ctx,
                                                     const v1::ListModelsRequest*,
                                                     v1::ListModelsResponse* response) {
  grpc::ServerUnaryReactor* reactor = new CountedUnaryReactor(inflight_);
  CallLog log("ListModels", options_.log_rpcs);
  grpc::Status s = auth_.Check(*ctx);
  if (s.ok()) {
    for (const auto& e : registry_->List()) *response->add_models() = e->info;
    log.rows = response->models_size();
  }
  log.Done(s);
  reactor->Finish(s);
  return reactor;
}

grpc::ServerUnaryReactor* NtkServiceImpl::DeleteModel(grpc::CallbackServerContext* ctx,
                                                      const v1::DeleteModelRequest* request,
                                                      v1::DeleteModelResponse*) {
  grpc::ServerUnaryReactor* reactor = new CountedUnaryReactor(inflight_);
  CallLog log("DeleteModel", options_.log_rpcs);
  log.model_id = request->model_id();
  grpc::Status s = auth_.Check(*ctx);
  if (s.ok()) s = ToGrpcStatus(ValidateModelId(request->model_id()));
  if (!s.ok()) {
    log.Done(s);
    reactor->Finish(s);
    return reactor;
  }
  compute_pool_->Schedule([this, request, reactor, log] {
    grpc::Status st =
        NoThrow([&] { return ToGrpcStatus(registry_->Delete(request->model_id())); });
    log.Done(st);
    reactor->Finish(st);
  });
  return reactor;
}

}  // namespace ntk::server

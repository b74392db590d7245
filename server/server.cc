#include "server/server.h"

#include <omp.h>

#include <algorithm>
#include <thread>
#include <utility>

#include <grpc/grpc.h>
#include <grpc/support/time.h>
#include <grpcpp/health_check_service_interface.h>
#include <grpcpp/security/server_credentials.h>
#include <grpcpp/server_builder.h>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "grpc/health/v1/health.pb.h"
#include "server/log.h"

extern "C" void openblas_set_num_threads(int);

namespace ntk::server {

void SetComputeThreads(int threads, int blas_threads) {
  if (threads > 0) omp_set_num_threads(threads);
  const int blas = blas_threads == 0 ? threads : blas_threads;
  if (blas > 0) openblas_set_num_threads(blas);
}

NtkServer::NtkServer(const ServerOptions& options)
    : options_(options), auth_(options.auth_token) {}

ServerState NtkServer::State() const {
  ServerState state;
  for (const auto& e : registry_->List()) {
    ++state.models;
    state.model_bytes += e->model_bytes;
  }
  state.cache_bytes = cache_->stats().bytes;
  state.cache_budget_bytes = DistributionCacheBudgetBytes(options_);
  state.fits_in_flight = runner_->fits_in_flight();
  return state;
}

absl::StatusOr<std::unique_ptr<NtkServer>> NtkServer::Start(const ServerOptions& options) {
  if (options.tls_cert_pem.empty() != options.tls_key_pem.empty()) {
    return absl::InvalidArgumentError("tls_cert and tls_key: give both or neither");
  }
  std::unique_ptr<NtkServer> s(new NtkServer(options));
  SetComputeThreads(options.threads, options.blas_threads);

  // Models on disk.
  s->store_ = std::make_unique<ModelStore>(options.model_dir);
  if (absl::Status st = s->store_->Open(); !st.ok()) return st;
  DistributionCache::Options cache_options;
  cache_options.budget_bytes = DistributionCacheBudgetBytes(options);
  s->cache_ = std::make_unique<DistributionCache>(cache_options);
  s->registry_ =
      std::make_unique<ModelRegistry>(s->store_.get(), options.max_models, s->cache_.get(),
                                      PredictBatching(options));
  int loaded = 0, skipped = 0;
  std::vector<std::string> errors;
  for (StoredModel& m : s->store_->LoadAll(&errors)) {
    absl::StatusOr<std::unique_ptr<FittedModel>> model = FittedModel::Deserialize(m.payload);
    if (!model.ok()) {
      Logf("store: skipping damaged model file %s: %s", s->store_->PathFor(m.id),
           model.status().ToString());
      ++skipped;
      continue;
    }
    s->registry_->InsertLoaded(m.id, m.created_unix_ms,
                               std::shared_ptr<const FittedModel>(std::move(*model)),
                               static_cast<int64_t>(m.payload.size()));
    ++loaded;
  }
  skipped += static_cast<int>(errors.size());
  Logf("store: loaded %d models from %s (%d damaged files skipped)", loaded, options.model_dir,
       skipped);

  // Worker pools.
  const int threads = options.threads;
  auto init = [threads] {
    if (threads > 0) omp_set_num_threads(threads);
  };
  s->fit_pool_ = std::make_unique<WorkerPool>(std::max(1, options.max_concurrent_fits), init);
  int workers = options.worker_threads;
  if (workers <= 0) workers = std::max(2, static_cast<int>(std::thread::hardware_concurrency()));
  s->compute_pool_ = std::make_unique<WorkerPool>(workers, init);
  // Predicts that may wait for a batch (server/predict_batcher.h): many
  // threads, mostly waiting (at most --predict_batch_in_flight computations
  // per model run at once), with the compute pool's OpenMP setting, so that a
  // lone Predict runs as fast as it did there.
  s->predict_pool_ = std::make_unique<WorkerPool>(std::max(1, options.predict_threads), init);
  s->runner_ = std::make_unique<RpcRunner>(options, &s->auth_, &s->metrics_,
                                           s->compute_pool_.get(), s->fit_pool_.get(),
                                           s->predict_pool_.get(),
                                           &s->inflight_);
  s->inference_ = std::make_unique<Inference>(s->registry_.get(), s->runner_.get());
  s->service_ = std::make_unique<NtkServiceImpl>(s->registry_.get(), s->runner_.get(),
                                                 s->inference_.get());
  s->oip_service_ =
      std::make_unique<oip::InferenceServiceImpl>(s->runner_.get(), s->inference_.get());
  s->reflection_ = std::make_unique<ReflectionService>(
      &s->auth_, &s->inflight_,
      std::vector<std::string>{
          v1::NtkService::service_full_name(),
          inference::GRPCInferenceService::service_full_name(),
          // Naming it through its descriptor also links health.proto's
          // descriptors into the server (only clients use them otherwise),
          // so that reflection can describe grpc.health.v1.Health.
          grpc::health::v1::HealthCheckRequest::descriptor()->file()->FindServiceByName("Health")
              ->full_name()});

  // gRPC.
  static std::once_flag global_once;
  std::call_once(global_once, [] { grpc::EnableDefaultHealthCheckService(true); });
  std::shared_ptr<grpc::ServerCredentials> creds;
  if (!options.tls_cert_pem.empty()) {
    grpc::SslServerCredentialsOptions ssl;
    ssl.pem_key_cert_pairs.push_back({options.tls_key_pem, options.tls_cert_pem});
    creds = grpc::SslServerCredentials(ssl);
  } else {
    creds = grpc::InsecureServerCredentials();
  }
  grpc::ServerBuilder builder;
  // gRPC sets SO_REUSEPORT by default: a second server on a taken port would
  // start and share the connections (issue 11 finding 3). Off: bind fails.
  builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
  builder.AddListeningPort(options.listen, creds, &s->port_);
  builder.RegisterService(s->service_.get());
  builder.RegisterService(s->oip_service_.get());
  builder.RegisterService(s->reflection_.get());
  const int max_bytes = static_cast<int>(MaxMessageBytes(options));
  builder.SetMaxReceiveMessageSize(max_bytes);
  builder.SetMaxSendMessageSize(max_bytes);
  s->server_ = builder.BuildAndStart();
  if (s->server_ == nullptr || s->port_ == 0) {
    if (s->server_ != nullptr) s->server_->Shutdown();
    return absl::UnavailableError(absl::StrFormat(
        "listen: cannot listen on %s (is the port in use by another process?)", options.listen));
  }
  if (grpc::HealthCheckServiceInterface* h = s->server_->GetHealthCheckService()) {
    h->SetServingStatus(true);
    h->SetServingStatus("ntk.v1.NtkService", true);
  }
  if (!options.http_listen.empty()) {
    NtkServer* const self = s.get();
    absl::StatusOr<std::unique_ptr<HttpServer>> http =
        HttpServer::Start(options.http_listen, s->runner_.get(), s->inference_.get(),
                          [self] { return self->State(); });
    if (!http.ok()) {
      s->server_->Shutdown();
      return http.status();
    }
    s->http_ = *std::move(http);
  }
  const size_t colon = options.listen.rfind(':');
  s->address_ = absl::StrCat(
      colon == std::string::npos ? options.listen : options.listen.substr(0, colon), ":",
      s->port_);
  Logf("server: serving ntk.v1.NtkService on %s (%s, auth %s, %d models, threads %d, "
       "blas_threads %d, distribution cache %d MiB)",
       s->address_, options.tls_cert_pem.empty() ? "insecure" : "TLS",
       options.auth_token.empty() ? "off" : "on", loaded, options.threads,
       options.blas_threads, cache_options.budget_bytes >> 20);
  return s;
}

void NtkServer::Shutdown(std::chrono::system_clock::time_point deadline) {
  std::call_once(shutdown_once_, [&] {
    if (http_ != nullptr) http_->Stop();
    if (server_ == nullptr) return;
    // Background fits would not survive the restart (docs/api.md "Long
    // fits"): stop them now, so their watchers end and the pool drains.
    registry_->fits().CancelBackground();
    if (grpc::HealthCheckServiceInterface* h = server_->GetHealthCheckService()) {
      h->SetServingStatus(false);
    }
    // Start gRPC core's shutdown ourselves (grpc::Server::Shutdown would
    // block until every connection is gone): no new calls from here on,
    // GOAWAY to every connection. `done` gets `tag` once it has finished.
    // (The C API: a grpc::CompletionQueue only takes gRPC++'s own tags.)
    grpc_completion_queue* done = grpc_completion_queue_create_for_next(nullptr);
    int tag = 0;
    grpc_server_shutdown_and_notify(server_->c_server(), done, &tag);
    // Wait for the in-flight calls. Once none has been left for kSettle
    // (time for clients that are polling to answer the GOAWAY and close, and
    // for a call gRPC had matched just before the shutdown to reach its
    // handler and be counted), close the remaining connections: there are
    // no calls on them left to cancel.
    constexpr auto kSettle = std::chrono::milliseconds(200);
    constexpr int kPollMs = 10;
    bool finished = false, closed = false;
    auto idle_since = std::chrono::steady_clock::time_point::max();
    while (std::chrono::system_clock::now() < deadline) {
      const grpc_event e = grpc_completion_queue_next(
          done,
          gpr_time_add(gpr_now(GPR_CLOCK_MONOTONIC), gpr_time_from_millis(kPollMs, GPR_TIMESPAN)),
          nullptr);
      if (e.type == GRPC_OP_COMPLETE) {
        finished = true;
        break;
      }
      if (closed) continue;
      const auto now = std::chrono::steady_clock::now();
      if (inflight_.count() > 0) {
        idle_since = std::chrono::steady_clock::time_point::max();
      } else if (idle_since == std::chrono::steady_clock::time_point::max()) {
        idle_since = now;
      } else if (now - idle_since >= kSettle) {
        grpc_server_cancel_all_calls(server_->c_server());
        closed = true;
      }
    }
    // gRPC++'s own shutdown: at once when core is done; past the deadline it
    // cancels what is left first.
    server_->Shutdown(finished ? std::chrono::system_clock::now() : deadline);
    grpc_completion_queue_shutdown(done);
    while (grpc_completion_queue_next(done, gpr_inf_future(GPR_CLOCK_MONOTONIC), nullptr).type !=
           GRPC_QUEUE_SHUTDOWN) {
    }
    grpc_completion_queue_destroy(done);
  });
}

void NtkServer::Wait() {
  if (server_ != nullptr) server_->Wait();
}

NtkServer::~NtkServer() {
  Shutdown(std::chrono::system_clock::now());
  Wait();
  // No RPC is in flight any more; drain and join the pools before the
  // service and registry they point to go away.
  compute_pool_.reset();
  predict_pool_.reset();
  fit_pool_.reset();
  http_.reset();
  server_.reset();
  reflection_.reset();
  oip_service_.reset();
  service_.reset();
}

}  // namespace ntk::server

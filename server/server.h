// ntk/server/server.h: one running ntk server (used by main.cc and by
// in-process tests).
//
//   ServerOptions o; o.listen = "127.0.0.1:0"; o.model_dir = dir;
//   absl::StatusOr<std::unique_ptr<NtkServer>> s = NtkServer::Start(o);
//   ... connect to (*s)->address() ...
//   (*s)->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(30));
//
// Start() applies --threads, creates the DistributionCache (budget
// --distribution_cache_mb, server/options.h), opens the model directory
// (removing leftover temporary files), loads every model there (damaged files are logged and
// skipped), and serves ntk.v1.NtkService, the Open Inference Protocol's
// inference.GRPCInferenceService (server/oip/service.h), grpc.health.v1 and
// server reflection (grpc.reflection.v1alpha, server/reflection.h; behind
// the bearer token like NtkService). With --http_listen it also serves HTTP
// (server/http/http_server.h: OIP REST, /metrics).
//
// Shutdown: the server stops accepting calls and sends every connection a
// GOAWAY; calls in flight (counted by server/inflight.h) get until the
// deadline. As soon as none is left, connections that are still open are
// closed from this side: an idle client reads the GOAWAY only when it next
// polls its socket (a gRPC client without calls does that every 5 s, its
// backup poller), and gRPC's own Shutdown waits for every connection to
// close, so without this an idle channel held every shutdown for up to 5 s.
//
// Thread safety: Shutdown and Wait may be called from any thread; Shutdown
// is idempotent. The destructor shuts down immediately if Shutdown was not
// called, waits for in-flight RPCs and joins the worker pools.
#ifndef NTK_SERVER_SERVER_H_
#define NTK_SERVER_SERVER_H_

#include <chrono>
#include <memory>
#include <mutex>
#include <string>

#include <grpcpp/server.h>

#include "absl/status/statusor.h"
#include "core/distribution/cache.h"
#include "server/auth.h"
#include "server/handler.h"
#include "server/http/http_server.h"
#include "server/inference.h"
#include "server/metrics.h"
#include "server/model_registry.h"
#include "server/model_store.h"
#include "server/oip/service.h"
#include "server/inflight.h"
#include "server/options.h"
#include "server/reflection.h"
#include "server/service.h"
#include "server/worker_pool.h"

namespace ntk::server {

// omp_set_num_threads(threads) (this thread) and
// openblas_set_num_threads(blas_threads == 0 ? threads : blas_threads)
// (global). A count <= 0 leaves that library alone.
void SetComputeThreads(int threads, int blas_threads);

class NtkServer {
 public:
  static absl::StatusOr<std::unique_ptr<NtkServer>> Start(const ServerOptions& options);
  ~NtkServer();
  NtkServer(const NtkServer&) = delete;
  NtkServer& operator=(const NtkServer&) = delete;

  int port() const { return port_; }
  // host:port with the selected port, e.g. "127.0.0.1:38811".
  const std::string& address() const { return address_; }
  // The HTTP listener's host:port, "" when --http_listen is empty.
  std::string http_address() const { return http_ ? http_->address() : ""; }
  // What the server holds now (for /metrics).
  ServerState State() const;

  // Stops accepting RPCs, lets in-flight ones finish until `deadline`, then
  // cancels the rest (their fits stop at the next progress check). Returns
  // when the server has shut down: promptly (about 0.2 s) when nothing is in
  // flight, however many idle connections are open.
  void Shutdown(std::chrono::system_clock::time_point deadline);
  // Blocks until the server has shut down.
  void Wait();

  ModelRegistry& registry() { return *registry_; }
  DistributionCache& distribution_cache() { return *cache_; }
  const ServerOptions& options() const { return options_; }

 private:
  explicit NtkServer(const ServerOptions& options);

  const ServerOptions options_;
  std::unique_ptr<ModelStore> store_;
  std::unique_ptr<DistributionCache> cache_;  // factors of every model; outlives the registry
  std::unique_ptr<ModelRegistry> registry_;
  std::unique_ptr<WorkerPool> fit_pool_;
  std::unique_ptr<WorkerPool> compute_pool_;
  std::unique_ptr<WorkerPool> predict_pool_;
  InflightCalls inflight_;  // outlives the services and the grpc::Server
  TokenAuth auth_;
  Metrics metrics_;
  std::unique_ptr<RpcRunner> runner_;
  std::unique_ptr<Inference> inference_;
  std::unique_ptr<NtkServiceImpl> service_;
  std::unique_ptr<oip::InferenceServiceImpl> oip_service_;
  std::unique_ptr<ReflectionService> reflection_;
  std::unique_ptr<HttpServer> http_;
  std::unique_ptr<grpc::Server> server_;  // declared last: destroyed first
  int port_ = 0;
  std::string address_;
  std::once_flag shutdown_once_;
};

}  // namespace ntk::server

#endif  // NTK_SERVER_SERVER_H_

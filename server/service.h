// ntk/server/service.h: the ntk.v1.NtkService implementation (gRPC callback API).
//
// Cheap RPCs (GetModel, ListModels, small Predict) run inline on gRPC's
// callback threads. Heavy work runs on worker pools owned by the caller so
// gRPC threads are never blocked for long: Fit and FitStream on `fit_pool`
// (at most --max_concurrent_fits at once; more is RESOURCE_EXHAUSTED), and
// PredictDistribution, large Predict and DeleteModel on `compute_pool`.
//
// Every RPC writes one log line to stderr when it finishes:
//   <UTC time> rpc=<Method> model=<id or -> rows=<n> code=<STATUS_CODE> ms=<milliseconds>
// and long fits write progress lines:
//   <UTC time> fit model=<id> phase=<phase> progress=<pct>% elapsed_ms=<ms>
//
// Fits honor the call's deadline and cancellation: core's ProgressFn returns
// false once the call is cancelled or past its deadline; the Fit then ends
// with DEADLINE_EXCEEDED or CANCELLED and leaves no model and no file.
//
// Every call is counted in `inflight` (server/inflight.h) from the handler's
// entry until gRPC is done with it, so shutdown knows when nothing is left.
//
// Thread safety: all methods are called by gRPC from any thread. The
// registry, pools and `inflight` are not owned and must outlive the
// grpc::Server.
#ifndef NTK_SERVER_SERVICE_H_
#define NTK_SERVER_SERVICE_H_

#include <atomic>
#include <cstdint>
#include <string>

#include "proto/ntk/v1/ntk.grpc.pb.h"
#include "server/auth.h"
#include "server/convert.h"
#include "server/inflight.h"
#include "server/model_registry.h"
#include "server/options.h"
#include "server/worker_pool.h"

namespace ntk::server {

// The per-RPC log line; copyable so it can travel into worker closures.
struct CallLog {
  const char* method = "";
  std::string model_id;
  int64_t rows = 0;
  int64_t start_ns = 0;  // steady clock
  bool enabled = true;
  CallLog(const char* m, bool on);
  void Done(const grpc::Status& status) const;
};

class NtkServiceImpl final : public v1::NtkService::CallbackService {
 public:
  // REQUIRES: every pointer non-null.
  NtkServiceImpl(const ServerOptions& options, ModelRegistry* registry,
                 WorkerPool* compute_pool, WorkerPool* fit_pool, InflightCalls* inflight);

  grpc::ServerUnaryReactor* Fit(grpc::CallbackServerContext* context,
                                const v1::FitRequest* request,
                                v1::FitResponse* response) override;
  grpc::ServerReadReactor<v1::FitRequest>* FitStream(
      grpc::CallbackServerContext* context, v1::FitResponse* response) override;
  grpc::ServerUnaryReactor* Predict(grpc::CallbackServerContext* context,
                                    const v1::PredictRequest* request,
                                    v1::PredictResponse* response) override;
  grpc::ServerUnaryReactor* PredictDistribution(
      grpc::CallbackServerContext* context, const v1::PredictDistributionRequest* request,
      v1::PredictDistributionResponse* response) override;
  grpc::ServerUnaryReactor* GetModel(grpc::CallbackServerContext* context,
                                     const v1::GetModelRequest* request,
                                     v1::ModelInfo* response) override;
  grpc::ServerUnaryReactor* ListModels(grpc::CallbackServerContext* context,
                                       const v1::ListModelsRequest* request,
                                       v1::ListModelsResponse* response) override;
  grpc::ServerUnaryReactor* DeleteModel(grpc::CallbackServerContext* context,
                                        const v1::DeleteModelRequest* request,
                                        v1::DeleteModelResponse* response) override;

  // Inputs of one fit, viewing memory owned by the caller.
  struct FitInput {
    std::string model_id;
    bool replace = false;
    const v1::ModelSpec* spec = nullptr;
    MatrixView features;
    const int32_t* labels = nullptr;
    size_t num_labels = 0;
    MatrixView targets;
  };
  // Validates, fits, persists and publishes. Runs on the fit pool.
  grpc::Status RunFit(grpc::CallbackServerContext* context, const FitInput& input,
                      v1::FitResponse* response, CallLog* log);

  // Auth, model-id validation and registry lookup shared by the handlers
  // that read one model: OK and *entry set, or the status to answer with.
  grpc::Status FindModel(const grpc::CallbackServerContext& ctx, const std::string& model_id,
                         std::shared_ptr<const ModelEntry>* entry) const;

  bool TryAcquireFitSlot();
  void ReleaseFitSlot();
  const ServerOptions& options() const { return options_; }
  const TokenAuth& auth() const { return auth_; }
  WorkerPool* fit_pool() const { return fit_pool_; }
  InflightCalls* inflight() const { return inflight_; }

 private:
  const ServerOptions options_;
  const TokenAuth auth_;
  ModelRegistry* const registry_;
  WorkerPool* const compute_pool_;
  WorkerPool* const fit_pool_;
  InflightCalls* const inflight_;
  std::atomic<int> fits_running_{0};
};

}  // namespace ntk::server

#endif  // NTK_SERVER_SERVICE_H_

// ntk/server/service.h: the ntk.v1.NtkService implementation (gRPC callback
// API). Each handler is the translation (server/convert.h) and the call into
// core (Predict and PredictDistribution through server/inference.h, shared
// with the Open Inference Protocol); auth, admission, where the work runs,
// deadlines, logging, metrics and status mapping are RpcRunner's
// (server/handler.h).
//
// Where work runs: GetModel, ListModels and small Predicts inline on gRPC's
// callback threads; Fit and FitStream (server/fit_stream.h) on `fit_pool` (at
// most --max_concurrent_fits at once; more is RESOURCE_EXHAUSTED);
// PredictDistribution, large Predict and DeleteModel on `compute_pool`;
// WatchModel (server/watch_model.h) writes from whichever thread reports
// the fit's progress.
// PredictDistribution looks its factors up in the registry's
// DistributionCache under the entry's (model id, generation).
//
// Every call is counted in `inflight` (server/inflight.h) from the handler's
// entry until gRPC is done with it, so shutdown knows when nothing is left.
//
// Thread safety: all methods are called by gRPC from any thread. The
// registry, runner and inference are not owned and must outlive the
// grpc::Server.
#ifndef NTK_SERVER_SERVICE_H_
#define NTK_SERVER_SERVICE_H_

#include <memory>
#include <string>

#include "proto/ntk/v1/ntk.grpc.pb.h"
#include "server/handler.h"
#include "server/inference.h"
#include "server/model_registry.h"
#include "server/options.h"

namespace ntk::server {

class NtkServiceImpl final : public v1::NtkService::CallbackService {
 public:
  // REQUIRES: every pointer non-null.
  NtkServiceImpl(ModelRegistry* registry, RpcRunner* runner, const Inference* inference);

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
  grpc::ServerWriteReactor<v1::ModelInfo>* WatchModel(
      grpc::CallbackServerContext* context, const v1::GetModelRequest* request) override;

 private:
  const ServerOptions& options_;
  ModelRegistry* const registry_;
  RpcRunner& runner_;
  const Inference& inference_;
};

}  // namespace ntk::server

#endif  // NTK_SERVER_SERVICE_H_

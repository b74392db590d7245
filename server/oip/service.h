// ntk/server/oip/service.h: the Open Inference Protocol (V2) gRPC service,
// inference.GRPCInferenceService (third_party/open-inference-protocol/
// proto/inference/grpc_predict_v2.proto),
// beside ntk.v1.NtkService on the same port. docs/api.md "Open Inference
// Protocol (V2)".
//
// ModelInfer, ModelMetadata, ModelReady and ServerMetadata run through the
// server's RpcRunner (server/handler.h: bearer token, admission, where the
// work runs, deadline, log line, metrics, status) with the bodies of
// server/oip/calls.h, shared with the HTTP binding. ServerLive and
// ServerReady are probes: like grpc.health.v1 they need no token and are
// neither logged nor counted (a liveness probe must not depend on a secret).
//
// Thread safety: called by gRPC from any thread. The runner and inference
// are not owned and must outlive the grpc::Server.
#ifndef NTK_SERVER_OIP_SERVICE_H_
#define NTK_SERVER_OIP_SERVICE_H_

#include "proto/inference/grpc_predict_v2.grpc.pb.h"
#include "server/handler.h"
#include "server/inference.h"

namespace ntk::server::oip {

class InferenceServiceImpl final : public inference::GRPCInferenceService::CallbackService {
 public:
  // REQUIRES: both non-null.
  InferenceServiceImpl(RpcRunner* runner, const Inference* inference)
      : runner_(*runner), inference_(*inference) {}

  grpc::ServerUnaryReactor* ServerLive(grpc::CallbackServerContext* ctx,
                                       const inference::ServerLiveRequest* request,
                                       inference::ServerLiveResponse* response) override;
  grpc::ServerUnaryReactor* ServerReady(grpc::CallbackServerContext* ctx,
                                        const inference::ServerReadyRequest* request,
                                        inference::ServerReadyResponse* response) override;
  grpc::ServerUnaryReactor* ModelReady(grpc::CallbackServerContext* ctx,
                                       const inference::ModelReadyRequest* request,
                                       inference::ModelReadyResponse* response) override;
  grpc::ServerUnaryReactor* ServerMetadata(grpc::CallbackServerContext* ctx,
                                           const inference::ServerMetadataRequest* request,
                                           inference::ServerMetadataResponse* response) override;
  grpc::ServerUnaryReactor* ModelMetadata(grpc::CallbackServerContext* ctx,
                                          const inference::ModelMetadataRequest* request,
                                          inference::ModelMetadataResponse* response) override;
  grpc::ServerUnaryReactor* ModelInfer(grpc::CallbackServerContext* ctx,
                                       const inference::ModelInferRequest* request,
                                       inference::ModelInferResponse* response) override;

 private:
  RpcRunner& runner_;
  const Inference& inference_;
};

}  // namespace ntk::server::oip

#endif  // NTK_SERVER_OIP_SERVICE_H_

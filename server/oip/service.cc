#include "server/oip/service.h"

#include "server/oip/calls.h"
#include "server/oip/infer.h"

namespace ntk::server::oip {
namespace {

grpc::ServerUnaryReactor* Answered(grpc::CallbackServerContext* ctx) {
  grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
  reactor->Finish(grpc::Status::OK);
  return reactor;
}

}  // namespace

grpc::ServerUnaryReactor* InferenceServiceImpl::ServerLive(grpc::CallbackServerContext* ctx,
                                                           const inference::ServerLiveRequest*,
                                                           inference::ServerLiveResponse* r) {
  r->set_live(true);
  return Answered(ctx);
}

grpc::ServerUnaryReactor* InferenceServiceImpl::ServerReady(grpc::CallbackServerContext* ctx,
                                                            const inference::ServerReadyRequest*,
                                                            inference::ServerReadyResponse* r) {
  r->set_ready(true);  // models are loaded before the server listens
  return Answered(ctx);
}

grpc::ServerUnaryReactor* InferenceServiceImpl::ModelReady(
    grpc::CallbackServerContext* ctx, const inference::ModelReadyRequest* request,
    inference::ModelReadyResponse* response) {
  return runner_.Unary(ctx, CallLog("ModelReady", request->name()), Where::kInline,
                       [this, request, response](RpcCall&) -> absl::Status {
                         bool ready = false;
                         absl::Status s = oip::ModelReady(inference_, request->name(),
                                                          request->version(), &ready);
                         response->set_ready(ready);
                         return s;
                       });
}

grpc::ServerUnaryReactor* InferenceServiceImpl::ServerMetadata(
    grpc::CallbackServerContext* ctx, const inference::ServerMetadataRequest*,
    inference::ServerMetadataResponse* response) {
  return runner_.Unary(ctx, CallLog("ServerMetadata"), Where::kInline,
                       [response](RpcCall&) -> absl::Status {
                         ServerMetadataFor(response);
                         return absl::OkStatus();
                       });
}

grpc::ServerUnaryReactor* InferenceServiceImpl::ModelMetadata(
    grpc::CallbackServerContext* ctx, const inference::ModelMetadataRequest* request,
    inference::ModelMetadataResponse* response) {
  return runner_.Unary(ctx, CallLog("ModelMetadata", request->name()), Where::kInline,
                       [this, request, response](RpcCall&) -> absl::Status {
                         return oip::ModelMetadata(inference_, request->name(),
                                                   request->version(), response);
                       });
}

grpc::ServerUnaryReactor* InferenceServiceImpl::ModelInfer(
    grpc::CallbackServerContext* ctx, const inference::ModelInferRequest* request,
    inference::ModelInferResponse* response) {
  return runner_.Unary(
      ctx, CallLog("ModelInfer", request->model_name()),
      [this, request] { return InferPlace(inference_, *request); },
      [this, request, response](RpcCall& call) -> absl::Status {
        return oip::ModelInfer(inference_, call, *request, response);
      });
}

}  // namespace ntk::server::oip

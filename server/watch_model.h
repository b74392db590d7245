// ntk/server/watch_model.h: WatchModel, a server stream of one model's
// ModelInfo (docs/api.md "Long fits").
//
// With a fit of the id in progress (server/fit_tracker.h), the stream writes
// its ModelInfo at once (FITTING with progress) and again after every change
// the record reports, then the final READY (the published model) or FAILED
// (error = the fit's status message), and ends OK. Changes that arrive while
// a write is in flight are coalesced: the next write carries the newest
// state, so a slow reader never queues messages. Without a fit, a READY
// model (or a FAILED background fit) is written once and the stream ends
// OK; an unknown id is NOT_FOUND. The stream ends CANCELLED when the client
// goes away. A model being re-fitted with `replace` is watched through its
// fit.
//
// Thread safety: gRPC and the fit's thread call the reactor concurrently;
// its state is guarded by one mutex. Ownership: the reactor deletes itself
// in OnDone; `runner` and `registry` must outlive it. The stream counts as a
// call in flight (server/inflight.h) from its start until OnDone.
#ifndef NTK_SERVER_WATCH_MODEL_H_
#define NTK_SERVER_WATCH_MODEL_H_

#include <grpcpp/support/server_callback.h>

#include "proto/ntk/v1/ntk.pb.h"
#include "server/handler.h"
#include "server/model_registry.h"

namespace ntk::server {

grpc::ServerWriteReactor<v1::ModelInfo>* NewWatchModelReactor(RpcRunner* runner,
                                                              ModelRegistry* registry,
                                                              grpc::CallbackServerContext* ctx,
                                                              const v1::GetModelRequest* request);

}  // namespace ntk::server

#endif  // NTK_SERVER_WATCH_MODEL_H_

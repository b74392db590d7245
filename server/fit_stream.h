// ntk/server/fit_stream.h: FitStream, the Fit for training sets larger than
// one message: reassembles the rows of every message's features, labels and
// targets (in order; each chunk in either Matrix encoding) and then runs the
// fit (server/fit.h) on the fit pool.
//
// Only the first message sets model_id, spec and replace; a later message
// that carries a different one is INVALID_ARGUMENT naming the field and the
// message index, as is a chunk whose column count differs from earlier ones.
// Limits (--max_train_rows, --max_features, --max_classes) are checked as
// rows arrive, so an oversized stream is refused before it is all buffered.
//
// Thread safety: gRPC calls a reactor's methods one at a time. Ownership:
// the reactor deletes itself in OnDone; `runner`, `registry` must outlive it.
#ifndef NTK_SERVER_FIT_STREAM_H_
#define NTK_SERVER_FIT_STREAM_H_

#include <grpcpp/support/server_callback.h>

#include "proto/ntk/v1/ntk.pb.h"
#include "server/handler.h"
#include "server/model_registry.h"

namespace ntk::server {

// A new reactor for one FitStream call (what the service's FitStream returns).
grpc::ServerReadReactor<v1::FitRequest>* NewFitStreamReactor(RpcRunner* runner,
                                                             ModelRegistry* registry,
                                                             grpc::CallbackServerContext* ctx,
                                                             v1::FitResponse* response);

}  // namespace ntk::server

#endif  // NTK_SERVER_FIT_STREAM_H_

// ntk/server/status.h: the one place where absl::Status (the working type in
// core/ and server/) becomes grpc::Status, at the RPC edge.
//
// Thread safety: pure functions.
#ifndef NTK_SERVER_STATUS_H_
#define NTK_SERVER_STATUS_H_

#include <grpcpp/support/status.h>

#include "absl/status/status.h"

namespace ntk::server {

// absl and gRPC status codes have the same numbers; translated 1:1 with the
// message unchanged.
grpc::Status ToGrpcStatus(const absl::Status& status);

}  // namespace ntk::server

#endif  // NTK_SERVER_STATUS_H_

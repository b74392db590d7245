// ntk/server/auth.h: bearer-token check for every NtkService and Open
// Inference Protocol call, gRPC metadata or HTTP header alike.
//
// When a token is configured, a call must carry the metadata
// "authorization: Bearer <token>" (the scheme in any case, RFC 6750: "bearer"
// too); a missing or wrong one is UNAUTHENTICATED.
// The grpc.health.v1 service is a separate service and never checked.
// The comparison takes time independent of where the strings differ.
//
// Thread safety: immutable after construction; Check is thread-safe.
#ifndef NTK_SERVER_AUTH_H_
#define NTK_SERVER_AUTH_H_

#include <string>

#include <grpcpp/server_context.h>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace ntk::server {

class TokenAuth {
 public:
  explicit TokenAuth(std::string token);  // empty: no authentication
  bool enabled() const { return !token_.empty(); }
  // OK, or UNAUTHENTICATED "authorization: ...".
  absl::Status Check(const grpc::ServerContextBase& context) const;
  // The same rule for an authorization value from anywhere (an HTTP
  // header); null when the call has none.
  absl::Status CheckAuthorization(const std::string* value) const;

 private:
  std::string token_;  // the token, or empty
};

// Constant-time equality (for secrets).
bool SecretEquals(absl::string_view a, absl::string_view b);

}  // namespace ntk::server

#endif  // NTK_SERVER_AUTH_H_

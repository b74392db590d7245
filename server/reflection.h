// ntk/server/reflection.h: the server reflection service
// grpc.reflection.v1alpha.ServerReflection (what gRPC 1.51's own plugin
// serves, and what grpcurl / buf curl fall back to), behind the same bearer
// token as NtkService.
//
// gRPC's plugin (grpc++_reflection) cannot be put behind the token in 1.51:
// an AuthMetadataProcessor aborts the process on insecure credentials, and a
// server interceptor cannot fail a call before its handler runs. So this is
// our own callback implementation over the protobuf generated descriptor
// pool, answering every request type the plugin answers, with the same
// error codes: file_by_filename, file_containing_symbol,
// file_containing_extension (the file and its transitive dependencies, each
// once per response), all_extension_numbers_of_type and list_services
// (the names given to the constructor). Anything else:
// error_response UNIMPLEMENTED; unknown names: error_response NOT_FOUND.
//
// With a token configured, a stream without "authorization: Bearer <token>"
// is finished at once with UNAUTHENTICATED (TokenAuth::Check, as for every
// NtkService RPC); grpc.health.v1 stays the only open service.
//
// Thread safety: called by gRPC from any thread; each stream is handled by
// one reactor at a time. `auth` and `inflight` are not owned and must
// outlive the grpc::Server.
#ifndef NTK_SERVER_REFLECTION_H_
#define NTK_SERVER_REFLECTION_H_

#include <string>
#include <vector>

#include "grpc/reflection/v1alpha/reflection.grpc.pb.h"
#include "server/auth.h"
#include "server/inflight.h"

namespace ntk::server {

class ReflectionService final
    : public ::grpc::reflection::v1alpha::ServerReflection::CallbackService {
 public:
  // `services`: full names listed by list_services (this service's own name
  // is added). REQUIRES: auth and inflight non-null.
  ReflectionService(const TokenAuth* auth, InflightCalls* inflight,
                    std::vector<std::string> services);

  ::grpc::ServerBidiReactor<::grpc::reflection::v1alpha::ServerReflectionRequest,
                            ::grpc::reflection::v1alpha::ServerReflectionResponse>*
  ServerReflectionInfo(::grpc::CallbackServerContext* context) override;

  // The answer to one request (no I/O; exposed for tests).
  void Answer(const ::grpc::reflection::v1alpha::ServerReflectionRequest& request,
              ::grpc::reflection::v1alpha::ServerReflectionResponse* response) const;

 private:
  const TokenAuth* const auth_;
  InflightCalls* const inflight_;
  const std::vector<std::string> services_;
};

}  // namespace ntk::server

#endif  // NTK_SERVER_REFLECTION_H_

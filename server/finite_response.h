// ntk/server/finite_response.h: the last check before a response leaves the
// server: no NaN or +-Inf in any number of it (docs/operations.md "Bad
// input"). Core refuses inputs that would make its answers non-finite
// (core/numerics/values.h); this is the edge's guarantee should anything
// still produce one.
//
// Thread safety: pure functions (logging aside).
#ifndef NTK_SERVER_FINITE_RESPONSE_H_
#define NTK_SERVER_FINITE_RESPONSE_H_

#include <string>

#include <google/protobuf/message.h>

#include "absl/status/status.h"

namespace ntk::server {

// The path of the first non-finite number in `message` (every double and
// float field, nested messages, ntk.v1.Matrix values and raw data), e.g.
// "points[3].probability_mean.values[1]", or "" when there is none.
std::string FirstNonFiniteField(const google::protobuf::Message& message);

// OK when FirstNonFiniteField is ""; else logs
// `edge: rpc=<method> non-finite value in response field <path>; answered INTERNAL`
// and returns INTERNAL "<method>: the computed answer contains a non-finite
// value (<path>); it was not sent".
absl::Status CheckResponseFinite(const char* method, const google::protobuf::Message& message);

}  // namespace ntk::server

#endif  // NTK_SERVER_FINITE_RESPONSE_H_

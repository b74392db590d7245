#include "server/auth.h"

#include <utility>

namespace ntk::server {

TokenAuth::TokenAuth(std::string token)
    : expected_(token.empty() ? std::string() : "Bearer " + token) {}

bool SecretEquals(absl::string_view a, absl::string_view b) {
  unsigned char diff = a.size() == b.size() ? 0 : 1;
  const size_t n = a.size() < b.size() ? a.size() : b.size();
  for (size_t i = 0; i < n; ++i) diff |= static_cast<unsigned char>(a[i] ^ b[i]);
  return diff == 0;
}

absl::Status TokenAuth::Check(const grpc::ServerContextBase& context) const {
  if (expected_.empty()) return absl::OkStatus();
  const auto& md = context.client_metadata();
  auto it = md.find("authorization");
  if (it == md.end()) {
    return absl::UnauthenticatedError(
        "authorization: missing; send \"authorization: Bearer <token>\"");
  }
  if (!SecretEquals(absl::string_view(it->second.data(), it->second.size()), expected_)) {
    return absl::UnauthenticatedError("authorization: wrong token");
  }
  return absl::OkStatus();
}

}  // namespace ntk::server

#include "server/auth.h"

#include <utility>

#include "absl/strings/match.h"

namespace ntk::server {

TokenAuth::TokenAuth(std::string token) : token_(std::move(token)) {}

bool SecretEquals(absl::string_view a, absl::string_view b) {
  unsigned char diff = a.size() == b.size() ? 0 : 1;
  const size_t n = a.size() < b.size() ? a.size() : b.size();
  for (size_t i = 0; i < n; ++i) diff |= static_cast<unsigned char>(a[i] ^ b[i]);
  return diff == 0;
}

absl::Status TokenAuth::Check(const grpc::ServerContextBase& context) const {
  if (token_.empty()) return absl::OkStatus();
  const auto& md = context.client_metadata();
  auto it = md.find("authorization");
  if (it == md.end()) return CheckAuthorization(nullptr);
  const std::string value(it->second.data(), it->second.size());
  return CheckAuthorization(&value);
}

absl::Status TokenAuth::CheckAuthorization(const std::string* header) const {
  if (token_.empty()) return absl::OkStatus();
  if (header == nullptr) {
    return absl::UnauthenticatedError(
        "authorization: missing; send \"authorization: Bearer <token>\"");
  }
  // RFC 6750 / RFC 7235: the scheme name is case-insensitive ("bearer" too).
  constexpr absl::string_view kScheme = "Bearer ";
  const absl::string_view value(*header);
  if (value.size() < kScheme.size() ||
      !absl::EqualsIgnoreCase(value.substr(0, kScheme.size()), kScheme) ||
      !SecretEquals(value.substr(kScheme.size()), token_)) {
    return absl::UnauthenticatedError("authorization: wrong token");
  }
  return absl::OkStatus();
}

}  // namespace ntk::server

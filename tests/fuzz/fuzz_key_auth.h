// The authenticator the ingress fuzz targets put in front of a pipeline: it
// lets in exactly one bearer key, as bearer_auth would, so that an input can
// reach both the refusal (401) and everything admission does after it.
#pragma once

#include <string>
#include <string_view>

#include <slack_proxy/sdk/stages.h>

namespace slack_proxy::fuzz {

inline constexpr std::string_view kKey = "fuzz-key";

class KeyAuthenticator final : public sdk::Authenticator {
 public:
  sdk::AuthResult authenticate(const sdk::RequestView& request) noexcept override {
    const auto auth = request.header("Authorization");
    if (auth && *auth == "Bearer " + std::string(kKey))
      return sdk::AuthResult::allow("fuzz-client");
    return sdk::AuthResult::deny(401, auth ? "invalid_auth" : "not_authed");
  }
};

}  // namespace slack_proxy::fuzz

// Authenticates callers by a shared key: `Authorization: Bearer <key>`, or,
// for webhook-style callers that cannot set headers, the last path segment.
// The matching key's name becomes the caller's identity (message.caller).
#ifndef SLACK_PROXY_PLUGINS_BEARER_AUTH_H
#define SLACK_PROXY_PLUGINS_BEARER_AUTH_H

#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>

#include <slack_proxy/sdk/host.h>
#include <slack_proxy/sdk/plugin.h>
#include <slack_proxy/sdk/settings.h>
#include <slack_proxy/sdk/stages.h>

#include "key_store.h"

namespace slack_proxy::plugins::bearer_auth {

struct Settings {
  std::string keys_file;  // empty: none
  std::string keys_env;   // empty: the environment is not read
  bool path_keys = false;
};

// No setting holds a key: keys are secrets and live in a file or the
// environment, never in the config file.
inline const sdk::Schema<Settings> kSchema{
    sdk::setting("keys_file", &Settings::keys_file,
                 "file of '<name> <key>' or '<name> sha256:<hex>' lines; empty: none")
        .default_to(""),
    sdk::setting("keys_env", &Settings::keys_env,
                 "environment variable holding 'name=key,name2=sha256:<hex>'; empty: not read")
        .default_to("SLACK_PROXY_CLIENT_KEYS"),
    sdk::setting("path_keys", &Settings::path_keys,
                 "also accept the key as the last path segment (webhook-style callers)")
        .default_to("false"),
};

// Checks what the settings mean together: reads neither the file nor the
// environment, so it is safe for `slack-proxy validate`. Throws
// std::invalid_argument when keys_env is no variable name or no source is
// set.
void check_settings(const Settings& settings);

// Reads keys_file and the variable named by keys_env, hashes every key and
// wipes the plaintext. Throws when either source is malformed or unreadable,
// or when no key is configured at all.
KeyStore load_keys(const Settings& settings, sdk::Logger& log);

// The key of an `Authorization` header value: what follows the scheme
// `Bearer` (any case) and whitespace. Empty when the scheme is another one or
// no key follows.
std::string_view bearer_credential(std::string_view authorization) noexcept;

// The last segment of a request target's path, query and fragment ignored:
// "/services/abc?x=1" -> "abc". Empty when the path ends with '/'.
std::string_view last_path_segment(std::string_view target) noexcept;

// At most `per_second` warnings a second, counting what it holds back so the
// next line can say how many were suppressed. Thread-safe.
class WarnThrottle {
 public:
  explicit WarnThrottle(int per_second) : per_second_(per_second) {}
  // True when a line may be written now; `suppressed` is then the number of
  // lines held back since the last one written.
  bool allow(sdk::SteadyTime now, std::uint64_t& suppressed);

 private:
  std::mutex mutex_;
  const int per_second_;
  sdk::SteadyTime window_start_{};
  int in_window_ = 0;
  std::uint64_t suppressed_ = 0;
};

class BearerAuth final : public sdk::Authenticator {
 public:
  // Failure warnings allowed per second; the rest are counted.
  static constexpr int kWarningsPerSecond = 10;

  BearerAuth(sdk::HostServices& host, const Settings& settings, KeyStore keys);

  sdk::AuthResult authenticate(const sdk::RequestView& request) noexcept override;

  // Test-only: what is kept (names and digests, never a plaintext key).
  const KeyStore& keys() const noexcept { return keys_; }

 private:
  sdk::AuthResult refuse(const sdk::RequestView& request, std::string_view error,
                         std::string_view why);

  sdk::Logger& log_;
  const sdk::Clock& clock_;
  const bool path_keys_;
  const KeyStore keys_;
  WarnThrottle warnings_{kWarningsPerSecond};
};

// The plugin's factory. With ctx.check_only it checks the settings and
// returns a stage that knows no key, without reading the file or the
// environment.
std::unique_ptr<BearerAuth> make_bearer_auth(const sdk::PluginContext& ctx,
                                             const Settings& settings);

}  // namespace slack_proxy::plugins::bearer_auth

#endif  // SLACK_PROXY_PLUGINS_BEARER_AUTH_H

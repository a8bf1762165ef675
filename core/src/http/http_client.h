// The host's HTTP(S) client, handed to sinks as sdk::HttpClient
// (HostServices::http_client): pooled keep-alive sessions, TLS peers verified
// with their host name, each phase bounded by the timeout, replies capped,
// Retry-After read, outgoing proxies taken from the environment, secrets
// scrubbed from everything it reports.
//
// Part of sp_plugin_runtime, so that the SDK's testing library can give a
// plugin's tests the very client the proxy gives the plugin.
#ifndef SLACK_PROXY_CORE_HTTP_HTTP_CLIENT_H
#define SLACK_PROXY_CORE_HTTP_HTTP_CLIENT_H

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include <slack_proxy/sdk/host.h>

namespace slack_proxy {

// The proxy variables as the process had them when a client was made.
// Lower-case names win over upper-case ones, as curl reads them; an empty
// value counts as unset.
struct ProxyEnvironment {
  std::string https_proxy;  // for https:// URLs (tunnelled with CONNECT)
  std::string http_proxy;   // for http:// URLs (absolute-form requests)
  std::string no_proxy;     // hosts that bypass both

  static ProxyEnvironment from_process();
  bool empty() const { return https_proxy.empty() && http_proxy.empty(); }
};

// One proxy to send through. `username`/`password` are SECRET.
struct ProxyRoute {
  std::string host;
  std::uint16_t port = 80;
  std::string username;
  std::string password;

  std::string where() const;  // "host:port", never the credentials
};

// The proxy a URL of `scheme` ("http"/"https") to `host`:`port` goes
// through, or nullopt for a direct connection. Loopback hosts (localhost,
// 127.0.0.0/8, ::1) never use a proxy: none could reach them. Throws
// std::invalid_argument naming the variable (never its value, which may hold
// credentials) when the variable that applies is not an http:// proxy URL.
std::optional<ProxyRoute> proxy_for(const ProxyEnvironment& env, std::string_view scheme,
                                    std::string_view host, std::uint16_t port);

// True when NO_PROXY (`list`: comma-separated, `*` for every host; an entry
// matches the host itself and its subdomains, with an optional `:port`)
// exempts `host`:`port`.
bool no_proxy_matches(std::string_view list, std::string_view host, std::uint16_t port);

// How long a Retry-After header asks us to wait: delta-seconds or an
// IMF-fixdate (relative to `now`); capped at 24 h; garbage means 1 s.
std::chrono::milliseconds parse_retry_after(const std::string& value, sdk::WallTime now);

// A client for `settings`, or null with a secret-free `error` when they
// cannot be used (an unusable ca_file, a user_agent with control characters,
// a malformed proxy variable). `clock` must outlive the client; it dates
// Retry-After.
std::shared_ptr<sdk::HttpClient> make_http_client(const sdk::HttpClientSettings& settings,
                                                  const sdk::Clock& clock,
                                                  const ProxyEnvironment& proxies,
                                                  std::string& error);
// The same, with the proxy variables of this process, read now.
std::shared_ptr<sdk::HttpClient> make_http_client(const sdk::HttpClientSettings& settings,
                                                  const sdk::Clock& clock, std::string& error);

}  // namespace slack_proxy

#endif  // SLACK_PROXY_CORE_HTTP_HTTP_CLIENT_H

// The one HTTP(S) client of the Slack sinks. slack_sink (chat.postMessage)
// and webhook_sink (incoming webhooks) both deliver through it, so they share
// the connection pool, the TLS checks and the reading of Slack's replies, and
// a fix to any of those reaches both.
//
// Public header of sp_slack_sink_logic: other plugins may include it as
// <slack_sink/slack_poster.h> and link that library.
#ifndef SLACK_PROXY_PLUGINS_SLACK_SINK_SLACK_POSTER_H
#define SLACK_PROXY_PLUGINS_SLACK_SINK_SLACK_POSTER_H

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include <Poco/Net/Context.h>
#include <Poco/Net/HTTPClientSession.h>
#include <slack_proxy/sdk/host.h>
#include <slack_proxy/sdk/stages.h>

namespace slack_proxy::plugins::slack_sink {

// Where requests go. Only the scheme, host and port are ever shown in logs
// and errors: an incoming-webhook URL carries its secret in the path.
struct Endpoint {
  bool tls = true;
  std::string host;
  std::uint16_t port = 443;
  std::string path_and_query = "/";

  std::string origin() const;  // "https://slack.com:443"
};

// Accepts http and https URLs with a host. Throws std::invalid_argument that
// never repeats the URL.
Endpoint parse_endpoint(const std::string& url);

// How the poster talks to its endpoint.
struct HttpSettings {
  Endpoint endpoint;
  std::chrono::milliseconds timeout{10000};
  std::size_t max_connections = 8;
  std::string user_agent = "slack-proxy/0.1";
  // PEM file of the CAs trusted for https instead of the system store; ""
  // means the system store.
  std::string ca_file;
  // The URL's path is a credential (incoming webhooks): it is also scrubbed
  // from reply text and transport errors that end up in a result.
  bool path_is_secret = false;
};

// Reads and checks the settings every Slack sink declares: `timeout`,
// `max_connections`, `user_agent` and `ca_file` (not `url`, whose source
// differs per sink). Throws std::invalid_argument when a value makes no sense.
HttpSettings parse_http_settings(const sdk::ConfigView& config);

// Throws std::invalid_argument unless `name` can be an environment variable's
// name; `setting` is the key that named it, for the message.
void check_variable_name(std::string_view setting, const std::string& name);

// True for text that cannot go into an HTTP header or URL as is.
bool has_control_or_space(std::string_view text);

// Cheap stand-in for a parse: ingress only queues JSON objects, so this
// catches corruption, not clever input.
bool looks_like_object(std::string_view text);

// How long a Retry-After header asks us to wait: delta-seconds or an
// HTTP-date (relative to `now`); capped at 24 h; garbage means 1 s.
std::chrono::milliseconds parse_retry_after(const std::string& value, sdk::WallTime now);

inline constexpr const char* kDurationMetric = "slackproxy_slack_request_duration_seconds";

class SlackPoster {
 public:
  // Throws std::invalid_argument when ca_file holds no usable certificate.
  SlackPoster(sdk::HostServices& host, HttpSettings settings);
  ~SlackPoster();
  SlackPoster(const SlackPoster&) = delete;
  SlackPoster& operator=(const SlackPoster&) = delete;

  // POSTs `body` as JSON and reports what Slack answered: JSON `ok`/`error`
  // (Web API) or a plain-text `ok`/code (incoming webhooks), 429 with its
  // Retry-After, 5xx, or a transport failure. `bearer_token` is sent as
  // `Authorization: Bearer ...` unless empty. Thread-safe. Throws only on a
  // bug; the caller maps that to internal_error_in_sink.
  sdk::SendResult post(const std::string& body, const std::string& bearer_token);

  // `text` with `bearer_token` (and the URL's path, when it is secret)
  // replaced by "[redacted]", for text that came from elsewhere.
  std::string redacted(std::string text, std::string_view bearer_token) const;

  const HttpSettings& settings() const { return settings_; }

 private:
  using Session = std::unique_ptr<Poco::Net::HTTPClientSession>;

  sdk::SendResult exchange(const std::string& body, const std::string& bearer_token);
  // Idle keep-alive sessions are reused; a new one is opened when none is idle.
  Session acquire();
  void release(Session session);

  const sdk::Clock& clock_;
  sdk::Histogram& duration_;
  HttpSettings settings_;
  Poco::Net::Context::Ptr tls_context_;  // null for plain http
  std::mutex idle_mutex_;
  std::vector<Session> idle_;
};

}  // namespace slack_proxy::plugins::slack_sink

#endif  // SLACK_PROXY_PLUGINS_SLACK_SINK_SLACK_POSTER_H

// Delivers messages to Slack's chat.postMessage (or any URL that answers like
// it, such as an incoming webhook or the fake Slack) over HTTP or HTTPS.
#ifndef SLACK_PROXY_PLUGINS_SLACK_SINK_H
#define SLACK_PROXY_PLUGINS_SLACK_SINK_H

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
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

struct Settings {
  Endpoint endpoint;
  std::string token_env = "SLACK_TOKEN";
  std::chrono::milliseconds timeout{10000};
  std::size_t max_connections = 8;
  std::string user_agent = "slack-proxy/0.1";
  // PEM file of the CAs trusted for https instead of the system store; ""
  // means the system store.
  std::string ca_file;
};

inline constexpr const char* kDurationMetric = "slackproxy_slack_request_duration_seconds";

// Throws std::invalid_argument when a value makes no sense.
Settings parse_settings(const sdk::ConfigView& config);

// The bot token from environment variable `name`. Throws std::runtime_error
// with a one-line, secret-free explanation when it is unset, empty or not a
// plausible header value.
std::string read_token(const std::string& name);

// How long a Retry-After header asks us to wait: delta-seconds or an
// HTTP-date (relative to `now`); capped at 24 h; garbage means 1 s.
std::chrono::milliseconds parse_retry_after(const std::string& value, sdk::WallTime now);

class SlackSink final : public sdk::Sink {
 public:
  SlackSink(sdk::HostServices& host, Settings settings, std::string token);
  ~SlackSink() override;

  // Thread-safe: the dispatcher sends for different channels concurrently.
  sdk::SendResult send(const sdk::Message& message) noexcept override;

 private:
  using Session = std::unique_ptr<Poco::Net::HTTPClientSession>;

  sdk::SendResult post(const std::string& body);
  // Idle keep-alive sessions are reused; a new one is opened when none is idle.
  Session acquire();
  void release(Session session);
  // Scrubs the token out of text that came from elsewhere (a reply, an
  // exception) before it goes into a result or a log.
  std::string redacted(std::string text) const;

  sdk::Logger& log_;
  const sdk::Clock& clock_;
  sdk::Histogram& duration_;
  Settings settings_;
  std::string authorization_;  // "Bearer <token>"
  std::string token_;
  Poco::Net::Context::Ptr tls_context_;  // null for plain http
  std::mutex idle_mutex_;
  std::vector<Session> idle_;
};

}  // namespace slack_proxy::plugins::slack_sink

#endif  // SLACK_PROXY_PLUGINS_SLACK_SINK_H

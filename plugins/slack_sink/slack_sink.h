// Delivers messages to Slack's chat.postMessage (or any URL that answers like
// it, such as the fake Slack) over HTTP or HTTPS.
#ifndef SLACK_PROXY_PLUGINS_SLACK_SINK_H
#define SLACK_PROXY_PLUGINS_SLACK_SINK_H

#include <string>

#include <slack_proxy/sdk/host.h>
#include <slack_proxy/sdk/stages.h>
#include <slack_sink/slack_poster.h>

namespace slack_proxy::plugins::slack_sink {

struct Settings : HttpSettings {
  std::string token_env = "SLACK_TOKEN";
};

// Throws std::invalid_argument when a value makes no sense.
Settings parse_settings(const sdk::ConfigView& config);

// The bot token from environment variable `name`. Throws std::runtime_error
// with a one-line, secret-free explanation when it is unset, empty or not a
// plausible header value.
std::string read_token(const std::string& name);

class SlackSink final : public sdk::Sink {
 public:
  SlackSink(sdk::HostServices& host, Settings settings, std::string token);
  ~SlackSink() override;

  // Thread-safe: the dispatcher sends for different channels concurrently.
  sdk::SendResult send(const sdk::Message& message) noexcept override;

 private:
  SlackPoster poster_;
  std::string token_;
};

}  // namespace slack_proxy::plugins::slack_sink

#endif  // SLACK_PROXY_PLUGINS_SLACK_SINK_H

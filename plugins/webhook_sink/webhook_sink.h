// Delivers messages to a Slack incoming webhook
// (https://hooks.slack.com/services/T.../B.../...). The URL is the
// credential: only its scheme, host and port are ever shown.
#ifndef SLACK_PROXY_PLUGINS_WEBHOOK_SINK_H
#define SLACK_PROXY_PLUGINS_WEBHOOK_SINK_H

#include <memory>
#include <string>

#include <slack_proxy/sdk/host.h>
#include <slack_proxy/sdk/plugin.h>
#include <slack_proxy/sdk/stages.h>
#include <slack_sink/slack_poster.h>

namespace slack_proxy::plugins::webhook_sink {

struct Settings {
  // Where the URL comes from: `url` itself, else the file `url_file`, else
  // the variable `url_env` names (which has a default). Setting both `url`
  // and `url_file` is refused.
  enum class UrlSource { Setting, File, Env };

  // The endpoint is set from `url` when that is given; otherwise it is read
  // from the file or the variable when the sink is made.
  slack_sink::HttpSettings http;
  UrlSource url_source = UrlSource::Env;
  std::string url_file;
  std::string url_env = "SLACK_WEBHOOK_URL";
};

// Throws std::invalid_argument when a value makes no sense; never repeats
// the URL. Reads no environment and no file.
Settings parse_settings(const sdk::ConfigView& config);

// Where the webhook URL in environment variable `name` points. Throws
// std::runtime_error with one line that names the variable, never its value,
// when it is unset, empty or not an http(s) URL.
slack_sink::Endpoint read_url(const std::string& name);

// Where the webhook URL in file `path` (trimmed) points. Throws
// std::runtime_error with one line that names url_file and the path, never
// the content, when the file is missing, unreadable, empty or does not hold
// an http(s) URL.
slack_sink::Endpoint read_url_file(const std::string& path);

class WebhookSink final : public sdk::Sink {
 public:
  // Treats the endpoint's path as the secret it is, whatever `settings` says.
  WebhookSink(sdk::HostServices& host, slack_sink::HttpSettings settings);

  // Thread-safe: the dispatcher sends for different channels concurrently.
  sdk::SendResult send(const sdk::Message& message) noexcept override;

 private:
  slack_sink::SlackPoster poster_;
};

// The plugin's factory. In check-only mode neither the environment nor
// url_file is read: the sink is built against a stand-in URL so that the
// other settings are still checked, and it is never used.
std::unique_ptr<sdk::Sink> make_webhook_sink(const sdk::PluginContext& ctx);

}  // namespace slack_proxy::plugins::webhook_sink

#endif  // SLACK_PROXY_PLUGINS_WEBHOOK_SINK_H

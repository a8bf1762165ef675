// Delivers messages to a Slack incoming webhook
// (https://hooks.slack.com/services/T.../B.../...) through the host's HTTP
// client. The URL is the credential: only its scheme, host and port are ever
// shown.
#ifndef SLACK_PROXY_PLUGINS_WEBHOOK_SINK_H
#define SLACK_PROXY_PLUGINS_WEBHOOK_SINK_H

#include <memory>
#include <string>

#include <slack_proxy/sdk/host.h>
#include <slack_proxy/sdk/plugin.h>
#include <slack_proxy/sdk/settings.h>
#include <slack_proxy/sdk/stages.h>

namespace slack_proxy::plugins::webhook_sink {

// The settings as the host checked them against kSchema. Where the URL comes
// from, first that is set: `url`, else the file `url_file`, else the
// variable `url_env` names. Setting both `url` and `url_file` is refused.
struct Settings {
  std::string url;
  std::string url_file;
  std::string url_env;
  sdk::HttpClientSettings http;
};

inline const sdk::Schema<Settings> kSchema{
    sdk::setting("url", &Settings::url,
                 "incoming-webhook URL (http or https); prefer url_env, the URL is a secret")
        .default_to(""),
    sdk::setting("url_file", &Settings::url_file,
                 "file holding the webhook URL (trimmed), read when url is empty; wins over "
                 "url_env")
        .default_to(""),
    sdk::setting("url_env", &Settings::url_env,
                 "environment variable holding the webhook URL, read when url and url_file are "
                 "empty")
        .at_least(1)
        .default_to("SLACK_WEBHOOK_URL"),
    sdk::http_client_settings(&Settings::http),
};

inline constexpr const char* kDurationMetric = "slackproxy_slack_request_duration_seconds";

// Throws std::invalid_argument when a value makes no sense in a way the
// schema cannot say; never repeats the URL. Reads no environment and no file.
void check_settings(const Settings& settings);

// The webhook URL in environment variable `name`. Throws std::runtime_error
// with one line that names the variable, never its value, when it is unset,
// empty or not an http(s) URL.
std::string read_url(const std::string& name);

// The webhook URL in file `path` (trimmed). Throws std::runtime_error with one
// line that names url_file and the path, never the content, when the file is
// missing, unreadable, empty or does not hold an http(s) URL.
std::string read_url_file(const std::string& path);

// What a webhook's reply means: a plain-text "ok", a plain-text error code,
// 429 and 5xx with Retry-After, or the client's transport failure.
sdk::SendResult read_reply(const sdk::HttpResponse& response);

class WebhookSink final : public sdk::Sink {
 public:
  // Throws std::runtime_error when the host cannot make the HTTP client.
  WebhookSink(sdk::HostServices& host, std::string url, const sdk::HttpClientSettings& http);

  // Thread-safe: the dispatcher sends for different channels concurrently.
  // A 429 also pauses the whole pipeline (its one webhook) until Retry-After.
  sdk::SendResult send(const sdk::Message& message) override;

  // The webhook's own budget (HostServices::budget_id of its URL): Slack
  // limits each incoming webhook, so pipelines posting to one share it.
  std::string budget_of(const sdk::Message& message) override;

 private:
  const sdk::Clock& clock_;
  sdk::Histogram& duration_;
  std::string url_;  // SECRET
  std::string budget_;
  std::shared_ptr<sdk::HttpClient> http_;
};

// The plugin's factory. In check-only mode neither the environment nor
// url_file is read; the other settings (ca_file included) are still checked,
// and there is nothing to build.
std::unique_ptr<sdk::Sink> make_webhook_sink(const sdk::PluginContext& ctx, const Settings& settings);

}  // namespace slack_proxy::plugins::webhook_sink

#endif  // SLACK_PROXY_PLUGINS_WEBHOOK_SINK_H

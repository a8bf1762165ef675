#include "webhook_sink.h"

#include <cstdlib>
#include <stdexcept>
#include <string_view>
#include <utility>

#include <slack_sink/secret_file.h>

namespace slack_proxy::plugins::webhook_sink {

namespace {

using slack_sink::Endpoint;

// Never posted to: a check-only sink is destroyed unused.
constexpr const char* kStandInUrl = "https://hooks.slack.com/services/";

// Poco's URI parser lets a trailing newline through, which would land in the
// request line.
Endpoint webhook_endpoint(const std::string& url) {
  if (slack_sink::has_control_or_space(url)) {
    throw std::invalid_argument("url contains whitespace or control characters");
  }
  return slack_sink::parse_endpoint(url);
}

// A webhook URL pasted where a path or a variable name belongs: it must not
// be repeated in the error that follows.
bool looks_like_url(std::string_view text) { return text.find("://") != std::string_view::npos; }

slack_sink::HttpSettings secret_path(slack_sink::HttpSettings settings) {
  settings.path_is_secret = true;
  return settings;
}

}  // namespace

Settings parse_settings(const sdk::ConfigView& config) {
  Settings s;
  s.http = slack_sink::parse_http_settings(config);
  const std::string url = config.get_string("url");
  s.url_file = config.get_string("url_file");
  if (!url.empty() && !s.url_file.empty()) {
    throw std::invalid_argument("url and url_file are both set: set only one of them");
  }
  if (!url.empty()) {
    s.url_source = Settings::UrlSource::Setting;
    s.http.endpoint = webhook_endpoint(url);
  } else if (!s.url_file.empty()) {
    s.url_source = Settings::UrlSource::File;
    if (looks_like_url(s.url_file)) {
      throw std::invalid_argument(
          "url_file looks like a URL: give the path of a file that holds the webhook URL, never "
          "the URL itself");
    }
    for (unsigned char c : s.url_file) {
      if (c < 0x20 || c == 0x7f) {
        throw std::invalid_argument("url_file contains control characters");
      }
    }
  } else {
    s.url_source = Settings::UrlSource::Env;
  }
  s.url_env = config.get_string("url_env");
  // Checked before check_variable_name, which would repeat it.
  if (looks_like_url(s.url_env)) {
    throw std::invalid_argument(
        "url_env looks like a URL: give the name of the environment variable that holds the "
        "webhook URL, or put the URL in url");
  }
  slack_sink::check_variable_name("url_env", s.url_env);
  return s;
}

Endpoint read_url(const std::string& name) {
  const char* value = std::getenv(name.c_str());
  if (value == nullptr || *value == '\0') {
    throw std::runtime_error("environment variable " + name +
                             " is not set: export your incoming-webhook URL "
                             "(https://hooks.slack.com/services/...) or set url_env");
  }
  try {
    return webhook_endpoint(value);
  } catch (const std::invalid_argument& e) {
    throw std::runtime_error("environment variable " + name +
                             " does not hold a usable webhook URL: " + e.what());
  }
}

Endpoint read_url_file(const std::string& path) {
  const std::string url = slack_sink::read_secret_file(
      "url_file", path, "the incoming-webhook URL (https://hooks.slack.com/services/...)");
  try {
    return webhook_endpoint(url);
  } catch (const std::invalid_argument& e) {
    throw std::runtime_error("url_file \"" + path +
                             "\" does not hold a usable webhook URL: " + e.what());
  }
}

WebhookSink::WebhookSink(sdk::HostServices& host, slack_sink::HttpSettings settings)
    : poster_(host, secret_path(std::move(settings))) {
  if (!poster_.settings().endpoint.tls) {
    host.logger().warn("url is plain http: the webhook's secret path travels unencrypted");
  }
}

sdk::SendResult WebhookSink::send(const sdk::Message& message) noexcept {
  return sdk::guarded(
      [&] {
        if (!slack_sink::looks_like_object(message.payload)) {
          return sdk::SendResult::failed(0, "invalid_payload",
                                         "message " + message.id + " is not a JSON object");
        }
        // The webhook decides the channel, so the payload goes exactly as
        // the caller sent it; there is no token to send.
        return poster_.post(message.payload, std::string());
      },
      [&](std::string_view what) {
        return sdk::SendResult::failed(
            0, "internal_error_in_sink",
            poster_.redacted("webhook_sink failed: " + std::string(what), {}));
      });
}

std::unique_ptr<sdk::Sink> make_webhook_sink(const sdk::PluginContext& ctx) {
  Settings settings = parse_settings(ctx.config);
  if (settings.url_source != Settings::UrlSource::Setting) {
    // `validate` checks settings, not secrets: the URL is one, and CI has none.
    if (ctx.check_only) {
      settings.http.endpoint = slack_sink::parse_endpoint(kStandInUrl);
    } else if (settings.url_source == Settings::UrlSource::File) {
      settings.http.endpoint = read_url_file(settings.url_file);
    } else {
      settings.http.endpoint = read_url(settings.url_env);
    }
  }
  return std::make_unique<WebhookSink>(ctx.host, std::move(settings.http));
}

}  // namespace slack_proxy::plugins::webhook_sink

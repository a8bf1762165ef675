#include "webhook_sink.h"

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <optional>
#include <stdexcept>
#include <string_view>
#include <utility>

#include <slack_proxy/sdk/outcome.h>
#include <slack_proxy/sdk/secret_file.h>

namespace slack_proxy::plugins::webhook_sink {

namespace {

constexpr std::string_view kWhitespace = " \t\r\n\v\f";
constexpr const char* kUrlWhat = "the incoming-webhook URL (https://hooks.slack.com/services/...)";
// What a 429 means without a Retry-After; back_pressure_of's fallback too.
constexpr std::chrono::seconds kDefaultRetryAfter{1};

bool has_control_or_space(std::string_view text) {
  for (unsigned char c : text) {
    if (c <= 0x20 || c == 0x7f) return true;
  }
  return false;
}

std::string_view trim(std::string_view text) {
  const auto first = text.find_first_not_of(kWhitespace);
  if (first == std::string_view::npos) return {};
  const auto last = text.find_last_not_of(kWhitespace);
  return text.substr(first, last - first + 1);
}

// "host[:port]" of what follows "scheme://". The user info ends at the last
// '@' (a password may hold one, unencoded); a port that is not digits is
// dropped, since it may be the start of a password ("user:pa#ss@host").
std::string_view host_and_port(std::string_view rest) {
  std::string_view authority = rest.substr(0, rest.find_first_of("/?#"));
  if (const auto at = authority.rfind('@'); at != std::string_view::npos) {
    authority.remove_prefix(at + 1);
  }
  const auto colon = authority.rfind(':');
  if (colon == std::string_view::npos || authority.find(']', colon) != std::string_view::npos) {
    return authority;  // no port, or the colon is inside an IPv6 literal
  }
  const std::string_view port = authority.substr(colon + 1);
  const bool digits = std::all_of(port.begin(), port.end(),
                                  [](unsigned char c) { return c >= '0' && c <= '9'; });
  return digits ? authority : authority.substr(0, colon);
}

// A webhook URL pasted where a path or a variable name belongs: it must not
// be repeated in the error that follows.
bool looks_like_url(std::string_view text) { return text.find("://") != std::string_view::npos; }

// http(s)://host[...]: the client checks the rest when it sends. Never
// repeats the URL, only its scheme.
void check_url(const std::string& url) {
  const auto scheme_end = url.find("://");
  const std::string scheme = scheme_end == std::string::npos ? "" : url.substr(0, scheme_end);
  if (scheme != "http" && scheme != "https") {
    throw std::invalid_argument(
        "url must start with http:// or https://" +
        (scheme.empty() || has_control_or_space(scheme) ? std::string()
                                                         : ", got scheme \"" + scheme + "\""));
  }
  // A trailing newline would land in the request line.
  if (has_control_or_space(url)) {
    throw std::invalid_argument("url contains whitespace or control characters");
  }
  const std::string_view rest = std::string_view(url).substr(scheme_end + 3);
  const std::string_view host = host_and_port(rest);
  if (host.empty() || host.front() == ':') throw std::invalid_argument("url has no host");
}

// "https://host:port" of a checked URL: never its user info, nor the path
// that is the secret.
std::string origin_of(const std::string& url) {
  const auto scheme_end = url.find("://");
  return url.substr(0, scheme_end + 3) +
         std::string(host_and_port(std::string_view(url).substr(scheme_end + 3)));
}

std::shared_ptr<sdk::HttpClient> client_from(sdk::HostServices& host,
                                             const sdk::HttpClientSettings& settings) {
  std::string error;
  auto client = host.http_client(settings, error);
  if (!client) throw std::runtime_error(error.empty() ? "the host made no HTTP client" : error);
  return client;
}

}  // namespace

void check_settings(const Settings& s) {
  if (!s.url.empty() && !s.url_file.empty()) {
    throw std::invalid_argument("url and url_file are both set: set only one of them");
  }
  if (!s.url.empty()) check_url(s.url);
  if (s.url.empty() && !s.url_file.empty()) {
    if (looks_like_url(s.url_file)) {
      throw std::invalid_argument(
          "url_file looks like a URL: give the path of a file that holds the webhook URL, never "
          "the URL itself");
    }
    for (unsigned char c : s.url_file) {
      if (c < 0x20 || c == 0x7f) throw std::invalid_argument("url_file contains control characters");
    }
  }
  // Checked before the name's shape, whose message would repeat it.
  if (looks_like_url(s.url_env)) {
    throw std::invalid_argument(
        "url_env looks like a URL: give the name of the environment variable that holds the "
        "webhook URL, or put the URL in url");
  }
  if (s.url_env.empty() || s.url_env.find('=') != std::string::npos ||
      has_control_or_space(s.url_env)) {
    throw std::invalid_argument("url_env must name an environment variable, got \"" + s.url_env +
                                "\"");
  }
}

std::string read_url(const std::string& name) {
  const char* value = std::getenv(name.c_str());
  if (value == nullptr || *value == '\0') {
    throw std::runtime_error("environment variable " + name +
                             " is not set: export your incoming-webhook URL "
                             "(https://hooks.slack.com/services/...) or set url_env");
  }
  try {
    check_url(value);
  } catch (const std::invalid_argument& e) {
    throw std::runtime_error("environment variable " + name +
                             " does not hold a usable webhook URL: " + e.what());
  }
  return value;
}

std::string read_url_file(const std::string& path) {
  std::string problem;
  std::optional<std::string> read = sdk::read_secret_file(path, problem);
  if (!read) {
    // An empty file is the one failure where saying what belongs in it helps.
    if (problem.ends_with(" is empty")) problem += std::string(": it must hold ") + kUrlWhat;
    throw std::runtime_error("url_file " + problem);
  }
  std::string url = *std::move(read);
  try {
    check_url(url);
  } catch (const std::invalid_argument& e) {
    throw std::runtime_error("url_file \"" + path +
                             "\" does not hold a usable webhook URL: " + e.what());
  }
  return url;
}

sdk::SendResult read_reply(const sdk::HttpResponse& response) {
  if (response.status == 0) return sdk::SendResult::failure(response.error, response.detail);
  const int status = response.status;
  const std::string_view text = trim(response.body);
  if (status >= 200 && status <= 299) {
    if (text == "ok") return sdk::SendResult::ok(status);
    return sdk::SendResult::failed(status, std::string(sdk::outcome::kBadResponse),
                                   response.detail);
  }
  // Webhooks answer errors with a bare code ("channel_not_found").
  const bool is_code = !text.empty() && text.size() <= 64 &&
                       text.find_first_not_of("abcdefghijklmnopqrstuvwxyz_") == std::string_view::npos;
  auto result = sdk::SendResult::failed(status, "", response.detail);
  if (status == 429) {
    result.error = is_code ? std::string(text) : "rate_limited";
    result.retry_after = response.retry_after.value_or(kDefaultRetryAfter);
  } else {
    result.error = is_code ? std::string(text) : "http_" + std::to_string(status);
    if (status >= 500) result.retry_after = response.retry_after;
  }
  return result;
}

WebhookSink::WebhookSink(sdk::HostServices& host, std::string url,
                         const sdk::HttpClientSettings& http)
    : clock_(host.clock()),
      duration_(host.metrics().histogram(kDurationMetric,
                                         "Time taken by one request to Slack, in seconds",
                                         {0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10})),
      url_(std::move(url)),
      budget_(host.budget_id(url_)),
      http_(client_from(host, http)) {
  host.logger().info("delivering to " + origin_of(url_));
  if (url_.starts_with("http://")) {
    host.logger().warn("url is plain http: the webhook's secret path travels unencrypted");
  }
}

sdk::SendResult WebhookSink::send(const sdk::Message& message) {
  // The webhook decides the channel, so the payload goes exactly as the
  // host hands it over; there is no token to send.
  sdk::HttpRequest request;
  request.url = url_;
  request.body = message.payload;
  request.url_is_secret = true;
  const auto started = clock_.now();
  const sdk::HttpResponse response = http_->send(request);
  const auto now = clock_.now();
  duration_.observe(std::chrono::duration<double>(now - started).count());
  sdk::SendResult result = read_reply(response);
  // A pipeline has one webhook: its limit holds every message of the
  // pipeline (its workspace), whatever the channel.
  result.back_pressure =
      sdk::back_pressure_of(response, sdk::BackPressure::Scope::Workspace, now, kDefaultRetryAfter);
  return result;
}

std::unique_ptr<sdk::Sink> make_webhook_sink(const sdk::PluginContext& ctx, const Settings& settings) {
  check_settings(settings);
  if (ctx.check_only) {
    // `validate` checks settings, not secrets: the URL is one, and CI has
    // none. Making the client still judges ca_file and the proxy variables.
    client_from(ctx.host, settings.http);
    return nullptr;
  }
  std::string url = settings.url;
  if (url.empty()) {
    url = settings.url_file.empty() ? read_url(settings.url_env) : read_url_file(settings.url_file);
  }
  return std::make_unique<WebhookSink>(ctx.host, std::move(url), settings.http);
}

std::string WebhookSink::budget_of(const sdk::Message&) { return budget_; }

}  // namespace slack_proxy::plugins::webhook_sink

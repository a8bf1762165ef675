// Host services: everything a plugin may use from the proxy.
//
// A plugin never reaches for a global (no static logger, no system clock, no
// global metrics registry). It gets these from the host when it is created,
// so a test can hand it a fake clock and mock metrics (see sdk/testing/).
//
// Every method here is noexcept: host services never throw into a plugin.
// All references handed out stay valid for the life of the stage.
#ifndef SLACK_PROXY_SDK_HOST_H
#define SLACK_PROXY_SDK_HOST_H

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <slack_proxy/sdk/marks.h>
#include <slack_proxy/sdk/message.h>
#include <slack_proxy/sdk/pacing.h>
#include <slack_proxy/sdk/stages.h>

namespace slack_proxy::sdk {

// ---------------------------------------------------------------- clock --

// The source of time for pacing, backoff and TTLs. Tests pass a fake one
// (FakeClock in sdk/testing/fakes.h) and move it by hand.
class Clock {
 public:
  virtual ~Clock() = default;
  // Monotonic time: use for every interval and deadline.
  virtual SteadyTime now() const noexcept = 0;
  // Calendar time: use only for timestamps shown to humans.
  virtual WallTime wall_now() const noexcept = 0;
};

// --------------------------------------------------------------- logger --

enum class LogLevel { Trace, Debug, Info, Warn, Error };

// Lines go to the proxy's log, prefixed with the stage name. Never pass a
// token, key or Authorization header: the host redacts what it recognises,
// but the plugin is responsible for not logging secrets in the first place.
class Logger {
 public:
  virtual ~Logger() = default;
  virtual bool enabled(LogLevel level) const noexcept = 0;
  virtual void log(LogLevel level, std::string_view message) noexcept = 0;

  void debug(std::string_view m) noexcept { log(LogLevel::Debug, m); }
  void info(std::string_view m) noexcept { log(LogLevel::Info, m); }
  void warn(std::string_view m) noexcept { log(LogLevel::Warn, m); }
  void error(std::string_view m) noexcept { log(LogLevel::Error, m); }
};

// -------------------------------------------------------------- metrics --

using Labels = std::vector<std::pair<std::string, std::string>>;

class Counter {
 public:
  virtual ~Counter() = default;
  virtual void inc(double by = 1.0) noexcept = 0;
};

class Gauge {
 public:
  virtual ~Gauge() = default;
  virtual void set(double value) noexcept = 0;
  virtual void add(double delta) noexcept = 0;
};

class Histogram {
 public:
  virtual ~Histogram() = default;
  virtual void observe(double value) noexcept = 0;
};

// Prometheus metrics registry. Asking twice for the same name and labels
// returns the same series. Names should start with "slackproxy_". A name
// reused with another type or help text, or an invalid name, yields a series
// that records nothing, and the host logs why.
class Metrics {
 public:
  virtual ~Metrics() = default;
  virtual Counter& counter(std::string_view name, std::string_view help,
                           const Labels& labels = {}) noexcept = 0;
  virtual Gauge& gauge(std::string_view name, std::string_view help,
                       const Labels& labels = {}) noexcept = 0;
  // `buckets` are upper bounds in ascending order (seconds for durations).
  virtual Histogram& histogram(std::string_view name, std::string_view help,
                               const std::vector<double>& buckets,
                               const Labels& labels = {}) noexcept = 0;
};

// ---------------------------------------------------------- config view --

// The stage's own settings, read-only. Before the plugin is created the host
// has already rejected unknown keys and wrong types and filled in schema
// defaults, so a key the schema declares with a default is always present.
// Asking for a key the schema does not declare, or with the wrong type,
// returns the type's zero value.
class ConfigView {
 public:
  virtual ~ConfigView() = default;
  virtual bool has(std::string_view key) const noexcept = 0;
  virtual std::string get_string(std::string_view key) const noexcept = 0;
  virtual std::int64_t get_integer(std::string_view key) const noexcept = 0;
  virtual double get_number(std::string_view key) const noexcept = 0;
  virtual bool get_boolean(std::string_view key) const noexcept = 0;
  virtual std::chrono::milliseconds get_duration(std::string_view key) const noexcept = 0;
  virtual std::vector<std::string> get_string_list(std::string_view key) const noexcept = 0;
  // Where the setting came from, for error messages: "file.toml:12:3".
  virtual std::string source_of(std::string_view key) const noexcept = 0;

  // ABI 1.1 (appended, so a 1.0 plugin's calls land where they did).
  // An enum reads with get_string().
  virtual std::map<std::string, std::string> get_string_map(std::string_view key) const noexcept = 0;
  // SECRET. The value the host read from the setting's env variable or file
  // when the stage was created; "" in check-only mode. Never log it.
  virtual std::string get_secret(std::string_view key) const noexcept = 0;
};

// ---------------------------------------------------------- http client --

// The settings every HTTP-speaking stage shares, declared once in the SDK
// (sdk::http_client_settings() in settings.h adds them to a schema).
struct HttpClientSettings {
  std::chrono::milliseconds timeout{10000};  // each of connect, send, receive
  std::int64_t max_connections = 8;          // keep-alive connections kept for reuse
  std::string user_agent;                    // "" = "slack-proxy/<version>"
  std::string ca_file;                       // PEM CAs for https; "" = the system store
};

struct HttpRequest {
  std::string method = "POST";
  std::string url;  // http:// or https://, with a host
  std::string content_type = "application/json; charset=utf-8";
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
  // SECRET. Sent as "Authorization: Bearer <token>" unless empty; scrubbed
  // from every error and detail the client reports.
  std::string bearer_token;
  // The URL's path is a credential (an incoming webhook's): errors and
  // details show only the scheme, host and port.
  bool url_is_secret = false;
};

struct HttpResponse {
  // 0 when no reply arrived; then `error` is an outcome code (outcome.h):
  // connection_failed, timeout, tls_error or bad_response, or
  // invalid_message when the request itself could not be sent (a bad URL, a
  // header with control characters).
  int status = 0;
  std::string error;
  std::string detail;  // one secret-free sentence, for logs
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;  // at most 1 MiB is kept
  // A Retry-After header read for you (delta-seconds or an HTTP-date, capped
  // at 24 h); nullopt when absent.
  std::optional<std::chrono::milliseconds> retry_after;

  // Case-insensitive; "" when absent.
  std::string header(std::string_view name) const {
    auto lower = [](char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c; };
    for (const auto& [n, v] : headers) {
      if (n.size() != name.size()) continue;
      bool same = true;
      for (std::size_t i = 0; same && i < n.size(); ++i) same = lower(n[i]) == lower(name[i]);
      if (same) return v;
    }
    return {};
  }
};

// HTTP's own back-pressure: a 429 (Too Many Requests) asks the client to
// pause until its Retry-After, or `fallback` when it names no time. A sink
// chooses the scope (a Slack token's limit covers its workspace).
inline std::optional<BackPressure> back_pressure_of(const HttpResponse& response,
                                                    BackPressure::Scope scope, SteadyTime now,
                                                    std::chrono::milliseconds fallback =
                                                        std::chrono::seconds(1)) {
  if (response.status != 429) return std::nullopt;
  return BackPressure{scope, now + response.retry_after.value_or(fallback)};
}

// A pooled HTTP(S) client made by the host: TLS peers verified (host name
// included), keep-alive connections reused, every phase bounded by the
// timeout, HTTPS_PROXY / HTTP_PROXY / NO_PROXY honoured, secrets scrubbed.
// Thread-safe; send() blocks the calling sink worker.
class HttpClient {
 public:
  virtual ~HttpClient() = default;
  virtual HttpResponse send(const HttpRequest& request) noexcept = 0;
};

// ------------------------------------------------------------ services --

// Bundle handed to every plugin factory.
class HostServices {
 public:
  virtual ~HostServices() = default;
  virtual Logger& logger() noexcept = 0;
  virtual Metrics& metrics() noexcept = 0;
  virtual const Clock& clock() noexcept = 0;

  // ABI 1.1. A new client with its own connection pool, or null when the
  // settings cannot be used (an unreadable ca_file): then `error` says why.
  // The client lives as long as the returned pointer; keep it in the stage.
  virtual std::shared_ptr<HttpClient> http_client(const HttpClientSettings& settings,
                                                  std::string& error) noexcept = 0;

  // ABI 1.2. The buckets every stage of this process shares.
  virtual SharedBuckets& shared_buckets() noexcept = 0;
  // ABI 1.2. A stable, secret-free name for the rate budget a credential
  // draws from: the same credential gives the same name in every pipeline
  // and every process, and the name does not reveal it (a truncated SHA-256
  // of the credential). For a sink's Sink::budget_of().
  virtual std::string budget_id(std::string_view credential) const noexcept = 0;

  // ABI 1.3. This stage's marks (marks.h): shared with the same stage of
  // every replica when the proxy has [redis], in this process otherwise.
  virtual SharedMarks& shared_marks() noexcept = 0;
};

}  // namespace slack_proxy::sdk

#endif  // SLACK_PROXY_SDK_HOST_H

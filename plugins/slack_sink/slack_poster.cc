#include <slack_sink/slack_poster.h>

#include <algorithm>
#include <charconv>
#include <filesystem>
#include <fstream>
#include <optional>
#include <stdexcept>
#include <utility>

#include <Poco/DateTime.h>
#include <Poco/DateTimeFormat.h>
#include <Poco/DateTimeParser.h>
#include <Poco/Exception.h>
#include <Poco/JSON/Object.h>
#include <Poco/JSON/ParseHandler.h>
#include <Poco/JSON/Parser.h>
#include <Poco/Net/HTTPRequest.h>
#include <Poco/Net/HTTPResponse.h>
#include <Poco/Net/HTTPSClientSession.h>
#include <Poco/Net/IPAddress.h>
#include <Poco/Net/InvalidCertificateHandler.h>
#include <Poco/Net/NetException.h>
#include <Poco/Net/NetSSL.h>
#include <Poco/Net/SSLException.h>
#include <Poco/Net/VerificationErrorArgs.h>
#include <Poco/StreamCopier.h>
#include <Poco/URI.h>
#include <openssl/ssl.h>
#include <openssl/x509_vfy.h>
#include <openssl/x509v3.h>

namespace slack_proxy::plugins::slack_sink {

namespace {

constexpr std::size_t kDetailBodyBytes = 200;
constexpr std::chrono::seconds kDefaultRetryAfter{1};
constexpr std::chrono::hours kMaxRetryAfter{24};
// Shorter path segments are ids or words ("services"), not credentials.
constexpr std::size_t kMinSecretSegment = 8;

bool has_control(std::string_view text) {
  for (unsigned char c : text) {
    if (c < 0x20 || c == 0x7f) return true;
  }
  return false;
}

std::string_view trimmed(std::string_view text) {
  const auto first = text.find_first_not_of(" \t\r\n");
  if (first == std::string_view::npos) return {};
  const auto last = text.find_last_not_of(" \t\r\n");
  return text.substr(first, last - first + 1);
}

Poco::JSON::Object::Ptr parse_object(const std::string& text) {
  Poco::JSON::Parser parser(new Poco::JSON::ParseHandler(true));
  return parser.parse(text).extract<Poco::JSON::Object::Ptr>();
}

// Slack's error code from a JSON reply ({"ok":false,"error":"..."}), or from
// an incoming webhook's plain-text reply ("channel_not_found").
std::optional<std::string> error_code_in(const std::string& body) {
  try {
    auto reply = parse_object(body);
    if (reply && reply->has("error")) return reply->getValue<std::string>("error");
    return std::nullopt;
  } catch (const Poco::Exception&) {
  }
  const std::string_view text = trimmed(body);
  const bool looks_like_code =
      !text.empty() && text.size() <= 64 &&
      text.find_first_not_of("abcdefghijklmnopqrstuvwxyz_") == std::string_view::npos;
  if (looks_like_code) return std::string(text);
  return std::nullopt;
}

void initialize_ssl_once() {
  static std::once_flag once;
  std::call_once(once, [] { Poco::Net::initializeSSL(); });
}

// Why OpenSSL refused the peer's certificate in the last handshake on this
// thread ("hostname mismatch", "self-signed certificate"), for the result's
// detail: Poco's exception only says "certificate verify failed". The
// handshake runs on the sending thread, inside post().
thread_local std::string rejected_certificate;

// Installed on the poster's own context so that a handler some other code put
// in Poco's process-wide SSLManager (an accept-all one, say) never decides for
// this poster.
class RejectInvalidCertificate final : public Poco::Net::InvalidCertificateHandler {
 public:
  RejectInvalidCertificate() : InvalidCertificateHandler(/*handleErrorsOnServerSide=*/false) {}
  void onInvalidCertificate(const void*, Poco::Net::VerificationErrorArgs& error) override {
    error.setIgnoreError(false);
    rejected_certificate = error.errorMessage();
  }
};

// Poco checks the host name only after the handshake, and skips it for
// loopback names (localhost, 127.0.0.1, anything resolving there) unless
// VERIFY_STRICT. OpenSSL checks it inside the handshake, for every name,
// before a byte of the request (and its token or secret path) is written.
void require_host_name(Poco::Net::Context& context, const std::string& host) {
  X509_VERIFY_PARAM* param = SSL_CTX_get0_param(context.sslContext());
  X509_VERIFY_PARAM_set_hostflags(param, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
  Poco::Net::IPAddress address;
  const int set = Poco::Net::IPAddress::tryParse(host, address)
                      ? X509_VERIFY_PARAM_set1_ip_asc(param, host.c_str())
                      : X509_VERIFY_PARAM_set1_host(param, host.c_str(), host.size());
  if (set != 1) throw std::runtime_error("cannot make TLS check the host name " + host);
}

// Trusts `ca_file` alone when set, else the system store; the server's chain
// must lead to a trusted CA and its certificate must name `host`.
Poco::Net::Context::Ptr client_context(const std::string& ca_file, const std::string& host) {
  using Poco::Net::Context;
  initialize_ssl_once();
  Context::Ptr context;
  try {
    context = new Context(Context::TLS_CLIENT_USE, "", "", ca_file, Context::VERIFY_RELAXED, 9,
                          /*loadDefaultCAs=*/ca_file.empty());
  } catch (const Poco::Exception& e) {
    if (ca_file.empty()) throw;
    throw std::invalid_argument("ca_file \"" + ca_file +
                                "\" holds no usable PEM CA certificate: " + e.displayText());
  }
  context->requireMinimumProtocol(Context::PROTO_TLSV1_2);
  context->setInvalidCertificateHandler(new RejectInvalidCertificate);
  require_host_name(*context, host);
  return context;
}

void replace_all(std::string& text, std::string_view needle, std::string_view with) {
  if (needle.empty()) return;
  for (auto pos = text.find(needle); pos != std::string::npos;
       pos = text.find(needle, pos + with.size())) {
    text.replace(pos, needle.size(), with);
  }
}

}  // namespace

bool has_control_or_space(std::string_view text) {
  for (unsigned char c : text) {
    if (c <= 0x20 || c == 0x7f) return true;
  }
  return false;
}

bool looks_like_object(std::string_view text) {
  const std::string_view body = trimmed(text);
  return !body.empty() && body.front() == '{' && body.back() == '}';
}

void check_variable_name(std::string_view setting, const std::string& name) {
  if (name.empty() || name.find('=') != std::string::npos || has_control_or_space(name)) {
    throw std::invalid_argument(std::string(setting) + " must name an environment variable, got \"" +
                                name + "\"");
  }
}

Endpoint parse_endpoint(const std::string& url) {
  Poco::URI uri;
  try {
    uri = Poco::URI(url);
  } catch (const Poco::Exception&) {
    // The URL itself is not repeated: a webhook URL is a secret.
    throw std::invalid_argument("url is not a valid URL");
  }
  Endpoint endpoint;
  if (uri.getScheme() == "https") {
    endpoint.tls = true;
  } else if (uri.getScheme() == "http") {
    endpoint.tls = false;
  } else {
    throw std::invalid_argument("url must start with http:// or https://, got scheme \"" +
                                uri.getScheme() + "\"");
  }
  if (uri.getHost().empty()) throw std::invalid_argument("url has no host");
  endpoint.host = uri.getHost();
  endpoint.port = uri.getPort();
  endpoint.path_and_query = uri.getPathAndQuery();
  if (endpoint.path_and_query.empty()) endpoint.path_and_query = "/";
  return endpoint;
}

std::string Endpoint::origin() const {
  return (tls ? "https://" : "http://") + host + ":" + std::to_string(port);
}

HttpSettings parse_http_settings(const sdk::ConfigView& config) {
  HttpSettings s;
  s.timeout = config.get_duration("timeout");
  const std::int64_t max_connections = config.get_integer("max_connections");
  s.user_agent = config.get_string("user_agent");

  if (s.timeout <= std::chrono::milliseconds::zero()) {
    throw std::invalid_argument("timeout must be > 0, got " + std::to_string(s.timeout.count()) +
                                "ms");
  }
  if (max_connections < 1 || max_connections > 1024) {
    throw std::invalid_argument("max_connections must be between 1 and 1024, got " +
                                std::to_string(max_connections));
  }
  s.max_connections = static_cast<std::size_t>(max_connections);
  if (s.user_agent.empty() || has_control(s.user_agent)) {
    throw std::invalid_argument("user_agent must be non-empty text without control characters");
  }
  s.ca_file = config.get_string("ca_file");
  if (!s.ca_file.empty()) {
    const std::string named = "ca_file \"" + s.ca_file + "\"";
    std::error_code error;
    const auto status = std::filesystem::status(s.ca_file, error);
    if (!std::filesystem::exists(status)) throw std::invalid_argument(named + " does not exist");
    if (!std::filesystem::is_regular_file(status)) {
      throw std::invalid_argument(named + " is not a regular file (a PEM file of CA certificates)");
    }
    if (!std::ifstream(s.ca_file).is_open()) {
      throw std::invalid_argument(named + " is not readable");
    }
  }
  return s;
}

// Retry-After as delta-seconds or as an HTTP-date (RFC 9110). Garbage falls
// back to a short pause rather than none; an absurd value is capped rather
// than shrunk, because waiting too little is what gets an app disabled.
std::chrono::milliseconds parse_retry_after(const std::string& value, sdk::WallTime now) {
  long long seconds = 0;
  const char* end = value.data() + value.size();
  auto [ptr, ec] = std::from_chars(value.data(), end, seconds);
  if (ec == std::errc() && ptr == end && seconds >= 0) {
    return std::min<std::chrono::milliseconds>(std::chrono::seconds(seconds), kMaxRetryAfter);
  }
  if (ec == std::errc::result_out_of_range) return kMaxRetryAfter;
  // Poco's parser accepts nearly anything, so insist on the IMF-fixdate
  // shape first: "Sun, 06 Nov 1994 08:49:37 GMT".
  const bool date_shaped = value.size() == 29 && value.compare(3, 2, ", ") == 0 &&
                           value.compare(value.size() - 4, 4, " GMT") == 0;
  Poco::DateTime date;
  int tzd = 0;
  if (date_shaped &&
      Poco::DateTimeParser::tryParse(Poco::DateTimeFormat::HTTP_FORMAT, value, date, tzd)) {
    const auto at = std::chrono::system_clock::from_time_t(date.timestamp().epochTime()) -
                    std::chrono::seconds(tzd);
    const auto wait = std::chrono::duration_cast<std::chrono::milliseconds>(at - now);
    return std::clamp<std::chrono::milliseconds>(wait, std::chrono::milliseconds(0),
                                                 kMaxRetryAfter);
  }
  return kDefaultRetryAfter;
}

SlackPoster::SlackPoster(sdk::HostServices& host, HttpSettings settings)
    : clock_(host.clock()),
      duration_(host.metrics().histogram(kDurationMetric,
                                         "Time taken by one request to Slack, in seconds",
                                         {0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10})),
      settings_(std::move(settings)) {
  if (settings_.endpoint.tls) {
    tls_context_ = client_context(settings_.ca_file, settings_.endpoint.host);
  }
  idle_.reserve(settings_.max_connections);
  host.logger().info("delivering to " + settings_.endpoint.origin());
}

SlackPoster::~SlackPoster() = default;

sdk::SendResult SlackPoster::post(const std::string& body, const std::string& bearer_token) {
  const auto started = clock_.now();
  auto result = exchange(body, bearer_token);
  duration_.observe(std::chrono::duration<double>(clock_.now() - started).count());
  return result;
}

sdk::SendResult SlackPoster::exchange(const std::string& body, const std::string& bearer_token) {
  const Endpoint& endpoint = settings_.endpoint;
  Poco::Net::HTTPRequest request(Poco::Net::HTTPRequest::HTTP_POST, endpoint.path_and_query,
                                 Poco::Net::HTTPMessage::HTTP_1_1);
  if (!bearer_token.empty()) request.set("Authorization", "Bearer " + bearer_token);
  request.setContentType("application/json; charset=utf-8");
  request.set("User-Agent", settings_.user_agent);
  request.setContentLength(static_cast<std::streamsize>(body.size()));
  request.setKeepAlive(true);

  // Only released back to the pool after a clean exchange: after an error the
  // connection's state is unknown.
  Session session = acquire();
  rejected_certificate.clear();
  const auto no_reply = [&](std::string code, const Poco::Exception& e) {
    return sdk::SendResult::failed(
        0, std::move(code),
        redacted("POST to " + endpoint.origin() + " failed: " + e.displayText(), bearer_token));
  };
  try {
    session->sendRequest(request).write(body.data(), static_cast<std::streamsize>(body.size()));
    Poco::Net::HTTPResponse response;
    std::istream& in = session->receiveResponse(response);
    std::string reply;
    Poco::StreamCopier::copyToString(in, reply);
    const int status = static_cast<int>(response.getStatus());
    const bool keep = response.getKeepAlive();
    if (keep) release(std::move(session));

    const std::string detail =
        redacted("HTTP " + std::to_string(status) + " from " + endpoint.origin() + ": " +
                     reply.substr(0, kDetailBodyBytes),
                 bearer_token);
    std::optional<std::chrono::milliseconds> retry_after;
    if (response.has("Retry-After"))
      retry_after = parse_retry_after(response.get("Retry-After"), clock_.wall_now());

    if (status >= 200 && status <= 299) {
      // Incoming webhooks answer a plain "ok".
      if (trimmed(reply) == "ok") return sdk::SendResult::ok(status);
      Poco::JSON::Object::Ptr parsed;
      try {
        parsed = parse_object(reply);
      } catch (const Poco::Exception&) {
        return sdk::SendResult::failed(status, "bad_response", detail);
      }
      if (parsed && parsed->has("ok") && parsed->get("ok").isBoolean()) {
        if (parsed->getValue<bool>("ok")) return sdk::SendResult::ok(status);
        if (parsed->has("error")) {
          return sdk::SendResult::failed(status, parsed->getValue<std::string>("error"), detail);
        }
      }
      return sdk::SendResult::failed(status, "bad_response", detail);
    }

    auto code = error_code_in(reply);
    auto result = sdk::SendResult::failed(status, "", detail);
    if (status == 429) {
      result.error = code.value_or("rate_limited");
      result.retry_after = retry_after.value_or(kDefaultRetryAfter);
    } else {
      result.error = code.value_or("http_" + std::to_string(status));
      if (status >= 500) result.retry_after = retry_after;
    }
    return result;
  } catch (const Poco::TimeoutException& e) {
    return no_reply("timeout", e);
  } catch (const Poco::Net::SSLException& e) {
    auto result = no_reply("tls_error", e);
    if (!rejected_certificate.empty()) {
      result.detail += " (certificate rejected: " + rejected_certificate + ")";
    }
    return result;
  } catch (const Poco::Net::MessageException& e) {
    return no_reply("bad_response", e);
  } catch (const Poco::IOException& e) {
    // Refused, reset, closed without a reply, host not found.
    return no_reply("connection_failed", e);
  }
}

SlackPoster::Session SlackPoster::acquire() {
  {
    std::lock_guard lock(idle_mutex_);
    if (!idle_.empty()) {
      Session session = std::move(idle_.back());
      idle_.pop_back();
      return session;
    }
  }
  const Endpoint& endpoint = settings_.endpoint;
  Session session;
  if (endpoint.tls) {
    session =
        std::make_unique<Poco::Net::HTTPSClientSession>(endpoint.host, endpoint.port, tls_context_);
  } else {
    session = std::make_unique<Poco::Net::HTTPClientSession>(endpoint.host, endpoint.port);
  }
  const Poco::Timespan timeout(
      std::chrono::duration_cast<std::chrono::microseconds>(settings_.timeout).count());
  session->setTimeout(timeout, timeout, timeout);
  session->setKeepAlive(true);
  return session;
}

void SlackPoster::release(Session session) {
  std::lock_guard lock(idle_mutex_);
  if (idle_.size() < settings_.max_connections) idle_.push_back(std::move(session));
}

std::string SlackPoster::redacted(std::string text, std::string_view bearer_token) const {
  replace_all(text, bearer_token, "[redacted]");
  if (settings_.path_is_secret) {
    const std::string& path = settings_.endpoint.path_and_query;
    if (path != "/") replace_all(text, path, "[redacted]");
    // The last segment alone is the credential; a reply may quote just that.
    const auto path_end = path.find('?');
    const std::string_view route = std::string_view(path).substr(0, path_end);
    const auto slash = route.find_last_of('/');
    const std::string_view last = slash == std::string_view::npos ? route : route.substr(slash + 1);
    if (last.size() >= kMinSecretSegment) replace_all(text, last, "[redacted]");
  }
  return text;
}

}  // namespace slack_proxy::plugins::slack_sink

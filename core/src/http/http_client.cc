#include "http/http_client.h"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <istream>
#include <map>
#include <mutex>
#include <ostream>
#include <stdexcept>
#include <utility>
#include <vector>

#include <Poco/DateTime.h>
#include <Poco/DateTimeFormat.h>
#include <Poco/DateTimeParser.h>
#include <Poco/Exception.h>
#include <Poco/Net/Context.h>
#include <Poco/Net/HTTPClientSession.h>
#include <Poco/Net/HTTPRequest.h>
#include <Poco/Net/HTTPResponse.h>
#include <Poco/Net/HTTPSClientSession.h>
#include <Poco/Net/IPAddress.h>
#include <Poco/Net/InvalidCertificateHandler.h>
#include <Poco/Net/NetException.h>
#include <Poco/Net/NetSSL.h>
#include <Poco/Net/SSLException.h>
#include <Poco/Net/VerificationErrorArgs.h>
#include <Poco/URI.h>
#include <openssl/ssl.h>
#include <openssl/x509_vfy.h>
#include <openssl/x509v3.h>
#include <slack_proxy/sdk/abi.h>
#include <slack_proxy/sdk/outcome.h>

namespace slack_proxy {

namespace {

namespace outcome = sdk::outcome;

constexpr std::size_t kMaxBodyBytes = 1024 * 1024;  // the SDK promises at most 1 MiB
constexpr std::size_t kDetailBodyBytes = 200;
constexpr std::chrono::seconds kDefaultRetryAfter{1};
constexpr std::chrono::hours kMaxRetryAfter{24};
constexpr std::chrono::seconds kMaxRetryAfterSeconds{kMaxRetryAfter};
// Shorter path segments are ids or words ("services"), not credentials.
constexpr std::size_t kMinSecretSegment = 8;
constexpr std::string_view kRedacted = "[redacted]";

bool has_control(std::string_view text) {
  return std::any_of(text.begin(), text.end(),
                     [](unsigned char c) { return c < 0x20 || c == 0x7f; });
}

std::string lowercase(std::string_view text) {
  std::string out(text);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

std::string_view trimmed(std::string_view text) {
  const auto first = text.find_first_not_of(" \t\r\n");
  if (first == std::string_view::npos) return {};
  const auto last = text.find_last_not_of(" \t\r\n");
  return text.substr(first, last - first + 1);
}

void replace_all(std::string& text, std::string_view needle, std::string_view with) {
  if (needle.empty()) return;
  for (auto pos = text.find(needle); pos != std::string::npos;
       pos = text.find(needle, pos + with.size())) {
    text.replace(pos, needle.size(), with);
  }
}

// Replaces `needle` where it stands as a word (no letter, digit, '_', '-'
// or '.' on either side): a short proxy user name ("svc") is redacted
// without cutting it out of other words and numbers.
void replace_word(std::string& text, std::string_view needle, std::string_view with) {
  if (needle.empty()) return;
  const auto word_char = [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) != 0 || c == '_' || c == '-' || c == '.';
  };
  for (auto pos = text.find(needle); pos != std::string::npos;) {
    const std::size_t after = pos + needle.size();
    if ((pos > 0 && word_char(text[pos - 1])) || (after < text.size() && word_char(text[after]))) {
      pos = text.find(needle, pos + 1);
      continue;
    }
    text.replace(pos, needle.size(), with);
    pos = text.find(needle, pos + with.size());
  }
}

// The first of the variables that is set and non-empty.
std::string first_set(std::initializer_list<const char*> names) {
  for (const char* name : names) {
    const char* value = std::getenv(name);
    if (value != nullptr && *value != '\0') return value;
  }
  return {};
}

bool is_loopback(std::string_view host) {
  const std::string name = lowercase(host);
  if (name == "localhost" || name.ends_with(".localhost")) return true;
  Poco::Net::IPAddress address;
  return Poco::Net::IPAddress::tryParse(name, address) && address.isLoopback();
}

// Where a request goes. Only scheme, host and port are ever shown: an
// incoming-webhook URL carries its secret in the path.
struct Target {
  bool tls = true;
  std::string host;
  std::uint16_t port = 443;
  std::string path_and_query = "/";

  std::string origin() const {
    return (tls ? "https://" : "http://") + host + ":" + std::to_string(port);
  }
};

// Nullopt unless `url` is http(s) with a host and fits in a request line.
std::optional<Target> parse_target(const std::string& url) {
  if (has_control(url) || url.find(' ') != std::string::npos) return std::nullopt;
  Poco::URI uri;
  try {
    uri = Poco::URI(url);
  } catch (const Poco::Exception&) {
    return std::nullopt;
  }
  const std::string scheme = lowercase(uri.getScheme());
  if ((scheme != "https" && scheme != "http") || uri.getHost().empty()) return std::nullopt;
  Target target;
  target.tls = scheme == "https";
  target.host = uri.getHost();
  target.port = uri.getPort();
  target.path_and_query = uri.getPathAndQuery();
  if (target.path_and_query.empty()) target.path_and_query = "/";
  return target;
}

// Proxy URLs: "http://[user:password@]host[:port]" or the bare "host:port"
// curl also accepts. Errors name the variable only: its value may hold a
// password.
ProxyRoute parse_proxy(std::string_view variable, const std::string& value) {
  const std::string bad = std::string(variable) + " is not an http:// proxy URL";
  const std::string url = value.find("://") == std::string::npos ? "http://" + value : value;
  Poco::URI uri;
  try {
    uri = Poco::URI(url);
  } catch (const Poco::Exception&) {
    throw std::invalid_argument(bad);
  }
  if (lowercase(uri.getScheme()) != "http") {
    throw std::invalid_argument(bad + " (only plain http:// proxies are supported, got scheme \"" +
                                uri.getScheme() + "\")");
  }
  if (uri.getHost().empty() || has_control(url)) throw std::invalid_argument(bad);
  ProxyRoute route;
  route.host = uri.getHost();
  route.port = uri.getPort();
  const std::string& user_info = uri.getUserInfo();  // already percent-decoded
  const auto colon = user_info.find(':');
  route.username = user_info.substr(0, colon);
  if (colon != std::string::npos) route.password = user_info.substr(colon + 1);
  return route;
}

// "host", "host:port", "[v6]", "[v6]:port", or a bare v6 address.
std::pair<std::string, std::optional<std::uint16_t>> split_no_proxy_entry(std::string_view entry) {
  std::optional<std::uint16_t> port;
  const auto read_port = [&port](std::string_view digits) {
    unsigned value = 0;
    auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), value);
    if (ec == std::errc() && end == digits.data() + digits.size() && value <= 65535) {
      port = static_cast<std::uint16_t>(value);
    }
  };
  if (entry.starts_with('[')) {
    const auto close = entry.find(']');
    if (close == std::string_view::npos) return {std::string(entry), port};
    if (entry.size() > close + 2 && entry[close + 1] == ':') read_port(entry.substr(close + 2));
    return {std::string(entry.substr(1, close - 1)), port};
  }
  const auto colon = entry.find(':');
  if (colon != std::string_view::npos && entry.find(':', colon + 1) == std::string_view::npos) {
    read_port(entry.substr(colon + 1));
    return {std::string(entry.substr(0, colon)), port};
  }
  return {std::string(entry), port};
}

void initialize_ssl_once() {
  static std::once_flag once;
  std::call_once(once, [] { Poco::Net::initializeSSL(); });
}

// Why OpenSSL refused the peer's certificate in the last handshake on this
// thread ("hostname mismatch", "self-signed certificate"): Poco's exception
// only says "certificate verify failed". The handshake runs on the sending
// thread, inside send().
thread_local std::string rejected_certificate;

// Installed on the client's own contexts so that a handler some other code
// put in Poco's process-wide SSLManager (an accept-all one, say) never
// decides for this client.
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
// must lead to a trusted CA and its certificate must name `host`. The host
// name lives in the context, so there is one context per host.
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

// The ca_file checks a person can act on, before OpenSSL's own opinion.
void check_ca_file(const std::string& ca_file) {
  const std::string named = "ca_file \"" + ca_file + "\"";
  std::error_code error;
  const auto status = std::filesystem::status(ca_file, error);
  if (!std::filesystem::exists(status)) throw std::invalid_argument(named + " does not exist");
  if (!std::filesystem::is_regular_file(status)) {
    throw std::invalid_argument(named + " is not a regular file (a PEM file of CA certificates)");
  }
  if (!std::ifstream(ca_file).is_open()) throw std::invalid_argument(named + " is not readable");
  // A context for a stand-in host proves the file holds a usable certificate.
  client_context(ca_file, "localhost");
}

// Reads at most kMaxBodyBytes; false when the reply was longer (the rest is
// left unread, so the connection cannot be reused).
bool read_capped(std::istream& in, std::string& body) {
  char buffer[16 * 1024];
  while (in) {
    in.read(buffer, sizeof buffer);
    const auto n = static_cast<std::size_t>(in.gcount());
    if (n == 0) break;
    if (body.size() + n > kMaxBodyBytes) {
      body.append(buffer, kMaxBodyBytes - body.size());
      return false;
    }
    body.append(buffer, n);
  }
  return true;
}

// Why the request cannot be sent as it is; "" when it can. Never quotes a
// value: headers may hold credentials.
std::string request_problem(const sdk::HttpRequest& request) {
  const auto token_char = [](unsigned char c) {
    return std::isalnum(c) != 0 || std::string_view("!#$%&'*+-.^_`|~").find(static_cast<char>(c)) !=
                                       std::string_view::npos;
  };
  if (request.method.empty() || !std::all_of(request.method.begin(), request.method.end(), token_char)) {
    return "the request's method is not an HTTP method";
  }
  if (has_control(request.bearer_token) || request.bearer_token.find(' ') != std::string::npos) {
    return "the bearer token contains whitespace or control characters";
  }
  if (has_control(request.content_type)) return "the content type contains control characters";
  for (const auto& [name, value] : request.headers) {
    if (name.empty() || !std::all_of(name.begin(), name.end(), token_char)) {
      return "a header name is not an HTTP token";
    }
    if (has_control(value)) return "header " + name + " contains control characters";
  }
  return {};
}

class PooledHttpClient final : public sdk::HttpClient {
 public:
  PooledHttpClient(const sdk::HttpClientSettings& settings, const sdk::Clock& clock,
                   std::optional<ProxyRoute> https_proxy, std::optional<ProxyRoute> http_proxy,
                   std::string no_proxy)
      : clock_(clock),
        timeout_(std::chrono::duration_cast<std::chrono::microseconds>(settings.timeout).count()),
        max_idle_(static_cast<std::size_t>(std::max<std::int64_t>(settings.max_connections, 1))),
        user_agent_(settings.user_agent.empty()
                        ? std::string("slack-proxy/") + SLACK_PROXY_SDK_VERSION
                        : settings.user_agent),
        ca_file_(settings.ca_file),
        https_proxy_(std::move(https_proxy)),
        http_proxy_(std::move(http_proxy)),
        no_proxy_(std::move(no_proxy)) {}

  sdk::HttpResponse send(const sdk::HttpRequest& request) noexcept override {
    try {
      const auto target = parse_target(request.url);
      // The URL is not repeated: it may be a webhook's secret.
      if (!target) return failure(outcome::kInvalidMessage, "the URL is not an http(s) URL with a host");
      if (auto problem = request_problem(request); !problem.empty()) {
        return failure(outcome::kInvalidMessage, problem);
      }
      return exchange(request, *target, route_for(*target));
    } catch (const std::exception& e) {
      return failure(outcome::kConnectionFailed,
                     scrub("request failed: " + std::string(e.what()), request, std::nullopt));
    } catch (...) {
      return failure(outcome::kConnectionFailed, "request failed: unknown error");
    }
  }

 private:
  using Session = std::unique_ptr<Poco::Net::HTTPClientSession>;

  static sdk::HttpResponse failure(std::string_view code, std::string detail) {
    sdk::HttpResponse response;
    response.error = std::string(code);
    response.detail = std::move(detail);
    return response;
  }

  std::optional<ProxyRoute> route_for(const Target& target) const {
    const auto& proxy = target.tls ? https_proxy_ : http_proxy_;
    if (!proxy || is_loopback(target.host) || no_proxy_matches(no_proxy_, target.host, target.port)) {
      return std::nullopt;
    }
    return proxy;
  }

  sdk::HttpResponse exchange(const sdk::HttpRequest& request, const Target& target,
                             const std::optional<ProxyRoute>& proxy) {
    Poco::Net::HTTPRequest out(request.method, target.path_and_query,
                               Poco::Net::HTTPMessage::HTTP_1_1);
    out.set("User-Agent", user_agent_);
    if (!request.content_type.empty()) out.setContentType(request.content_type);
    for (const auto& [name, value] : request.headers) out.set(name, value);
    if (!request.bearer_token.empty()) out.set("Authorization", "Bearer " + request.bearer_token);
    if (!request.body.empty() || request.method == "POST" || request.method == "PUT") {
      out.setContentLength(static_cast<std::streamsize>(request.body.size()));
    }
    out.setKeepAlive(true);

    const std::string where =
        request.method + " to " + target.origin() + (proxy ? " via proxy " + proxy->where() : "");
    // Back in the pool only after a clean, complete exchange: after an error
    // the connection's state is unknown.
    Session session = acquire(target, proxy);
    rejected_certificate.clear();
    const auto no_reply = [&](std::string_view code, const Poco::Exception& e) {
      return failure(code, scrub(where + " failed: " + e.displayText(), request, proxy));
    };
    try {
      std::ostream& body_out = session->sendRequest(out);
      // Poco's streams report a failed read or write by throwing only when asked to.
      body_out.exceptions(std::ios::badbit);
      body_out.write(request.body.data(), static_cast<std::streamsize>(request.body.size()));
      Poco::Net::HTTPResponse reply;
      std::istream& in = session->receiveResponse(reply);
      in.exceptions(std::ios::badbit);
      sdk::HttpResponse response;
      const bool complete = read_capped(in, response.body);
      response.status = static_cast<int>(reply.getStatus());
      for (const auto& [name, value] : reply) response.headers.emplace_back(name, value);
      if (reply.has("Retry-After")) {
        response.retry_after = parse_retry_after(reply.get("Retry-After"), clock_.wall_now());
      }
      response.detail = scrub("HTTP " + std::to_string(response.status) + " from " +
                                  target.origin() + ": " + response.body.substr(0, kDetailBodyBytes),
                              request, proxy);
      if (complete && reply.getKeepAlive()) release(target.origin(), std::move(session));
      return response;
    } catch (const Poco::TimeoutException& e) {
      return no_reply(outcome::kTimeout, e);
    } catch (const Poco::Net::SSLException& e) {
      auto response = no_reply(outcome::kTlsError, e);
      if (!rejected_certificate.empty()) {
        response.detail += " (certificate rejected: " + rejected_certificate + ")";
      }
      return response;
    } catch (const Poco::Net::MessageException& e) {
      return no_reply(outcome::kBadResponse, e);
    } catch (const Poco::Exception& e) {
      // Refused, reset, closed without a reply, host not found, a proxy
      // that would not CONNECT.
      return no_reply(outcome::kConnectionFailed, e);
    }
  }

  // An idle keep-alive session to the same origin, else a new one.
  Session acquire(const Target& target, const std::optional<ProxyRoute>& proxy) {
    {
      std::lock_guard lock(mutex_);
      auto it = idle_.find(target.origin());
      if (it != idle_.end() && !it->second.empty()) {
        Session session = std::move(it->second.back());
        it->second.pop_back();
        --idle_count_;
        return session;
      }
    }
    Session session;
    if (target.tls) {
      session = std::make_unique<Poco::Net::HTTPSClientSession>(target.host, target.port,
                                                                context_for(target.host));
    } else {
      session = std::make_unique<Poco::Net::HTTPClientSession>(target.host, target.port);
    }
    // Set explicitly, so that a process-wide proxy someone gave Poco never applies.
    Poco::Net::HTTPClientSession::ProxyConfig config;
    if (proxy) {
      config.host = proxy->host;
      config.port = proxy->port;
      config.username = proxy->username;
      config.password = proxy->password;
    }
    session->setProxyConfig(config);
    session->setTimeout(timeout_, timeout_, timeout_);
    session->setKeepAlive(true);
    return session;
  }

  void release(const std::string& origin, Session session) {
    std::lock_guard lock(mutex_);
    if (idle_count_ >= max_idle_) return;
    idle_[origin].push_back(std::move(session));
    ++idle_count_;
  }

  Poco::Net::Context::Ptr context_for(const std::string& host) {
    std::lock_guard lock(mutex_);
    auto& context = contexts_[host];
    if (!context) context = client_context(ca_file_, host);
    return context;
  }

  // `text` without the request's secrets: its bearer token, its URL's path
  // when that is a credential, and the proxy's credentials (its user name
  // too: a proxy is shown as host and port only).
  std::string scrub(std::string text, const sdk::HttpRequest& request,
                    const std::optional<ProxyRoute>& proxy) const {
    replace_all(text, request.bearer_token, kRedacted);
    for (const auto* route : {&https_proxy_, &http_proxy_, &proxy}) {
      if (!*route) continue;
      replace_all(text, (*route)->password, kRedacted);
      replace_word(text, (*route)->username, kRedacted);
    }
    if (request.url_is_secret) {
      const auto target = parse_target(request.url);
      const std::string path = target ? target->path_and_query : std::string();
      if (!path.empty() && path != "/") replace_all(text, path, kRedacted);
      // The last segment alone is the credential; a reply may quote just that.
      const std::string_view route = std::string_view(path).substr(0, path.find('?'));
      const auto slash = route.find_last_of('/');
      const std::string_view last = slash == std::string_view::npos ? route : route.substr(slash + 1);
      if (last.size() >= kMinSecretSegment) replace_all(text, last, kRedacted);
    }
    return text;
  }

  const sdk::Clock& clock_;
  const Poco::Timespan timeout_;
  const std::size_t max_idle_;
  const std::string user_agent_;
  const std::string ca_file_;
  const std::optional<ProxyRoute> https_proxy_;
  const std::optional<ProxyRoute> http_proxy_;
  const std::string no_proxy_;

  std::mutex mutex_;
  std::map<std::string, std::vector<Session>> idle_;  // by origin
  std::size_t idle_count_ = 0;
  std::map<std::string, Poco::Net::Context::Ptr> contexts_;  // by host
};

}  // namespace

ProxyEnvironment ProxyEnvironment::from_process() {
  ProxyEnvironment env;
  env.https_proxy = first_set({"https_proxy", "HTTPS_PROXY"});
  env.http_proxy = first_set({"http_proxy", "HTTP_PROXY"});
  env.no_proxy = first_set({"no_proxy", "NO_PROXY"});
  return env;
}

std::string ProxyRoute::where() const { return host + ":" + std::to_string(port); }

bool no_proxy_matches(std::string_view list, std::string_view host, std::uint16_t port) {
  const std::string name = lowercase(host);
  std::size_t start = 0;
  while (start <= list.size()) {
    const auto comma = std::min(list.find(',', start), list.size());
    const std::string_view entry = trimmed(list.substr(start, comma - start));
    start = comma + 1;
    if (entry.empty()) continue;
    if (entry == "*") return true;
    auto [pattern, entry_port] = split_no_proxy_entry(entry);
    pattern = lowercase(pattern);
    // ".example.com" and "*.example.com" mean what "example.com" means.
    if (pattern.starts_with("*.")) pattern.erase(0, 2);
    if (pattern.starts_with('.')) pattern.erase(0, 1);
    if (pattern.empty() || (entry_port && *entry_port != port)) continue;
    if (name == pattern) return true;
    if (name.size() > pattern.size() && name.ends_with(pattern) &&
        name[name.size() - pattern.size() - 1] == '.') {
      return true;
    }
  }
  return false;
}

std::optional<ProxyRoute> proxy_for(const ProxyEnvironment& env, std::string_view scheme,
                                    std::string_view host, std::uint16_t port) {
  const bool tls = lowercase(scheme) == "https";
  const std::string& value = tls ? env.https_proxy : env.http_proxy;
  if (value.empty() || is_loopback(host) || no_proxy_matches(env.no_proxy, host, port)) {
    return std::nullopt;
  }
  return parse_proxy(tls ? "HTTPS_PROXY" : "HTTP_PROXY", value);
}

// Retry-After as delta-seconds or as an HTTP-date (RFC 9110). Garbage falls
// back to a short pause rather than none; an absurd value is capped rather
// than shrunk, because waiting too little is what gets an app disabled.
std::chrono::milliseconds parse_retry_after(const std::string& value, sdk::WallTime now) {
  long long seconds = 0;
  const char* end = value.data() + value.size();
  auto [ptr, ec] = std::from_chars(value.data(), end, seconds);
  if (ec == std::errc() && ptr == end && seconds >= 0) {
    // Capped while still in seconds: from 9.3e15 s on, milliseconds overflow.
    if (seconds >= kMaxRetryAfterSeconds.count()) return kMaxRetryAfter;
    return std::chrono::seconds(seconds);
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
    // Compared in seconds first: the clock counts nanoseconds, which overflow
    // for dates past 2262 (or before 1677).
    const long long at = static_cast<long long>(date.timestamp().epochTime()) - tzd;
    const long long ahead =
        at - std::chrono::duration_cast<std::chrono::seconds>(now.time_since_epoch()).count();
    if (ahead >= kMaxRetryAfterSeconds.count() + 1) return kMaxRetryAfter;
    if (ahead < -1) return std::chrono::milliseconds(0);
    const auto wait = std::chrono::duration_cast<std::chrono::milliseconds>(
        sdk::WallTime(std::chrono::seconds(at)) - now);
    return std::clamp<std::chrono::milliseconds>(wait, std::chrono::milliseconds(0),
                                                 kMaxRetryAfter);
  }
  return kDefaultRetryAfter;
}

std::shared_ptr<sdk::HttpClient> make_http_client(const sdk::HttpClientSettings& settings,
                                                  const sdk::Clock& clock,
                                                  const ProxyEnvironment& proxies,
                                                  std::string& error) {
  try {
    if (settings.timeout <= std::chrono::milliseconds::zero()) {
      throw std::invalid_argument("timeout must be > 0");
    }
    if (has_control(settings.user_agent)) {
      throw std::invalid_argument("user_agent must be text without control characters");
    }
    if (!settings.ca_file.empty()) check_ca_file(settings.ca_file);
    std::optional<ProxyRoute> https_proxy;
    std::optional<ProxyRoute> http_proxy;
    if (!proxies.https_proxy.empty()) https_proxy = parse_proxy("HTTPS_PROXY", proxies.https_proxy);
    if (!proxies.http_proxy.empty()) http_proxy = parse_proxy("HTTP_PROXY", proxies.http_proxy);
    return std::make_shared<PooledHttpClient>(settings, clock, std::move(https_proxy),
                                              std::move(http_proxy), proxies.no_proxy);
  } catch (const std::exception& e) {
    error = e.what();
    return nullptr;
  }
}

std::shared_ptr<sdk::HttpClient> make_http_client(const sdk::HttpClientSettings& settings,
                                                  const sdk::Clock& clock, std::string& error) {
  return make_http_client(settings, clock, ProxyEnvironment::from_process(), error);
}

}  // namespace slack_proxy

#include "fake_slack.h"

#include <Poco/JSON/Array.h>
#include <Poco/JSON/Object.h>
#include <Poco/JSON/Parser.h>
#include <Poco/Net/HTTPRequestHandler.h>
#include <Poco/Net/HTTPRequestHandlerFactory.h>
#include <Poco/Net/HTTPServer.h>
#include <Poco/Net/HTTPServerParams.h>
#include <Poco/Net/HTTPServerRequest.h>
#include <Poco/Net/HTTPServerResponse.h>
#include <Poco/Net/NetSSL.h>
#include <Poco/Net/SecureServerSocket.h>
#include <Poco/Net/ServerSocket.h>
#include <Poco/Net/SocketAddress.h>
#include <Poco/SHA2Engine.h>
#include <Poco/StreamCopier.h>
#include <Poco/ThreadPool.h>

#include <algorithm>
#include <cctype>
#include <mutex>
#include <sstream>
#include <stdexcept>

namespace slack_proxy::testing {

namespace {

// Slow replies each hold a thread, so there must be more threads than the
// proxy's concurrent sends for a slow channel not to stall the others.
constexpr int kServerThreads = 32;
constexpr std::string_view kControlPrefix = "/_fake/";

// Never undone: uninitializeSSL() while another user's sockets are alive
// would pull OpenSSL out from under them.
void initialize_ssl_once() {
  static std::once_flag once;
  std::call_once(once, [] { Poco::Net::initializeSSL(); });
}

std::string to_json(const Poco::Dynamic::Var& value) {
  std::ostringstream out;
  Poco::JSON::Stringifier::stringify(value, out);
  return out.str();
}

std::string error_body(const std::string& code) {
  Poco::JSON::Object body;
  body.set("ok", false);
  body.set("error", code);
  return to_json(body);
}

std::string lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return s;
}

// The channel of a chat.postMessage JSON body; "" for anything else.
std::string channel_of(const std::string& body) {
  try {
    Poco::JSON::Parser parser;
    auto object = parser.parse(body).extract<Poco::JSON::Object::Ptr>();
    if (object && object->has("channel") && object->get("channel").isString()) {
      return object->getValue<std::string>("channel");
    }
  } catch (const std::exception&) {
    // Not a JSON object: nothing to filter on.
  }
  return {};
}

std::string sha256_hex(const std::string& text) {
  Poco::SHA2Engine engine(Poco::SHA2Engine::SHA_256);
  engine.update(text);
  return Poco::DigestEngine::digestToHex(engine.digest());
}

Poco::Net::ServerSocket listening_socket(const Poco::Net::SocketAddress& address,
                                         const std::optional<TlsFiles>& tls) {
  constexpr int kBacklog = 64;
  if (!tls) return Poco::Net::ServerSocket(address, kBacklog);
  initialize_ssl_once();
  // Clients are asked for no certificate of their own.
  Poco::Net::Context::Ptr context =
      new Poco::Net::Context(Poco::Net::Context::TLS_SERVER_USE, tls->private_key,
                             tls->certificate, "", Poco::Net::Context::VERIFY_NONE);
  return Poco::Net::SecureServerSocket(address, kBacklog, context);
}

struct ControlRule {
  Behaviour behaviour;
  int times = 1;
  std::string channel;
};

// Reads the control API's JSON (see fake_slack.h) into a behaviour.
ControlRule control_rule_from_json(const std::string& text) {
  Poco::JSON::Parser parser;
  auto json = parser.parse(text).extract<Poco::JSON::Object::Ptr>();
  if (!json) throw std::invalid_argument("expected a JSON object");
  ControlRule rule;
  rule.behaviour = Behaviour::ok();
  if (json->has("error")) {
    rule.behaviour = Behaviour::error(json->getValue<std::string>("error"));
  }
  if (json->has("status")) {
    const int status = json->getValue<int>("status");
    if (status == 429) {
      rule.behaviour = Behaviour::rate_limited(
          json->has("retry_after") ? json->getValue<int>("retry_after") : 1);
    } else if (status != 200) {
      rule.behaviour = Behaviour::http_status(status);
    }
  }
  if (json->has("body")) {
    rule.behaviour.body = json->getValue<std::string>("body");
    rule.behaviour.echo_message = false;
  }
  if (json->has("content_type")) {
    rule.behaviour.content_type = json->getValue<std::string>("content_type");
  }
  if (json->has("retry_after")) {
    rule.behaviour.retry_after_seconds = json->getValue<int>("retry_after");
  }
  if (json->has("delay_ms")) {
    rule.behaviour.delay = std::chrono::milliseconds(json->getValue<int>("delay_ms"));
  }
  if (json->has("times")) rule.times = json->getValue<int>("times");
  if (json->has("channel")) rule.channel = json->getValue<std::string>("channel");
  return rule;
}

// Reads POST /_fake/limits (see fake_slack.h); unknown keys are refused so
// that a typo does not silently leave a limit at its default.
Limits limits_from_json(const std::string& text) {
  Poco::JSON::Parser parser;
  auto json = parser.parse(text).extract<Poco::JSON::Object::Ptr>();
  if (!json) throw std::invalid_argument("expected a JSON object");
  Limits limits;
  for (const auto& [key, value] : *json) {
    if (key == "channel_rate") {
      limits.channel_rate = value.convert<double>();
    } else if (key == "channel_burst") {
      limits.channel_burst = value.convert<int>();
    } else if (key == "workspace_per_minute") {
      limits.workspace_per_minute = value.convert<double>();
    } else if (key == "workspace_burst") {
      limits.workspace_burst = value.convert<int>();
    } else if (key == "retry_after") {
      limits.retry_after_seconds = value.convert<int>();
    } else if (key == "jitter_tolerance_ms") {
      limits.jitter_tolerance = std::chrono::milliseconds(value.convert<int>());
    } else {
      throw std::invalid_argument("unknown key \"" + key +
                                  "\"; allowed: channel_rate, channel_burst, "
                                  "workspace_per_minute, workspace_burst, retry_after, "
                                  "jitter_tolerance_ms");
    }
  }
  return limits;
}

void reply(Poco::Net::HTTPServerResponse& response, int status, const std::string& content_type,
           const std::string& body) {
  const auto code = static_cast<Poco::Net::HTTPResponse::HTTPStatus>(status);
  response.setStatusAndReason(code, Poco::Net::HTTPResponse::getReasonForStatus(code));
  response.setContentType(content_type);
  response.setContentLength(static_cast<std::streamsize>(body.size()));
  // Flushed here rather than when Poco destroys the stream, so that a reply
  // counted as answered has really been handed to the socket.
  std::ostream& out = response.send();
  out << body;
  out.flush();
}

}  // namespace

// ------------------------------------------------------------ Behaviour --

Behaviour Behaviour::ok() {
  Behaviour b;
  b.echo_message = true;
  return b;
}

Behaviour Behaviour::error(std::string code) {
  Behaviour b;
  b.body = error_body(code);
  return b;
}

Behaviour Behaviour::rate_limited(int retry_after_seconds) {
  Behaviour b;
  b.status = 429;
  b.body = error_body("ratelimited");
  b.retry_after_seconds = retry_after_seconds;
  return b;
}

Behaviour Behaviour::http_status(int status) {
  Behaviour b;
  b.status = status;
  switch (status) {
    case 500: b.body = error_body("internal_error"); break;
    case 503: b.body = error_body("service_unavailable"); break;
    case 504: b.body = error_body("request_timeout"); break;
    default: b.body = error_body("http_" + std::to_string(status)); break;
  }
  return b;
}

Behaviour Behaviour::slow(std::chrono::milliseconds delay) {
  Behaviour b = ok();
  b.delay = delay;
  return b;
}

// ------------------------------------------------------------- handlers --

class FakeSlack::Handler : public Poco::Net::HTTPRequestHandler {
 public:
  explicit Handler(FakeSlack& owner) : owner_(owner) {}

  void handleRequest(Poco::Net::HTTPServerRequest& request,
                     Poco::Net::HTTPServerResponse& response) override {
    RecordedRequest recorded;
    Poco::StreamCopier::copyToString(request.stream(), recorded.body);
    recorded.at = std::chrono::steady_clock::now();
    recorded.method = request.getMethod();
    recorded.path = request.getURI();
    if (recorded.path.starts_with(kControlPrefix)) {
      control(request.getMethod(), recorded.path.substr(kControlPrefix.size()), recorded.body,
              response);
      return;
    }
    recorded.content_type = request.get("Content-Type", "");
    recorded.authorization = request.get("Authorization", "");
    for (const auto& [name, value] : request) recorded.headers[lower(name)] = value;
    recorded.channel = channel_of(recorded.body);
    const std::string channel = recorded.channel;

    if (const auto retry_after = owner_.over_limits(channel, recorded.at)) {
      const Behaviour limited = Behaviour::rate_limited(*retry_after);
      response.set("Retry-After", std::to_string(*retry_after));
      // Noted before the reply is written, so that whoever reads it finds it
      // recorded; the in-flight grace absorbs the write.
      owner_.note_rate_limit_answered(*retry_after);
      reply(response, limited.status, limited.content_type, limited.body);
      return;
    }

    std::uint64_t generation = 0;
    const Behaviour behaviour = owner_.admit(std::move(recorded), generation);
    if (behaviour.delay.count() > 0 && !owner_.wait_delay(behaviour.delay)) {
      response.setKeepAlive(false);
      return;
    }
    if (behaviour.retry_after_seconds) {
      response.set("Retry-After", std::to_string(*behaviour.retry_after_seconds));
    }
    std::string body = behaviour.body;
    if (behaviour.echo_message) {
      Poco::JSON::Object echo;
      echo.set("ok", true);
      echo.set("channel", channel);
      echo.set("ts", owner_.next_ts());
      body = to_json(echo);
    }
    reply(response, behaviour.status, behaviour.content_type, body);
    owner_.note_answered(generation);
  }

 private:
  void control(const std::string& method, const std::string& command, const std::string& body,
               Poco::Net::HTTPServerResponse& response) {
    const std::string json = "application/json; charset=utf-8";
    try {
      if (command == "requests" && method == "GET") {
        reply(response, 200, json, owner_.requests_json());
      } else if (command == "reset" && method == "POST") {
        owner_.reset();
        reply(response, 200, json, R"({"ok":true})");
      } else if (command == "enqueue" && method == "POST") {
        ControlRule rule = control_rule_from_json(body);
        owner_.enqueue(std::move(rule.behaviour), rule.times, std::move(rule.channel));
        reply(response, 200, json, R"({"ok":true})");
      } else if (command == "limits" && method == "POST") {
        owner_.enforce_limits(limits_from_json(body));
        reply(response, 200, json, R"({"ok":true})");
      } else if (command == "stats" && method == "GET") {
        reply(response, 200, json, owner_.stats_json());
      } else if (command == "default" && method == "POST") {
        owner_.set_default(control_rule_from_json(body).behaviour);
        reply(response, 200, json, R"({"ok":true})");
      } else {
        reply(response, 404, json, error_body("unknown_control_command"));
      }
    } catch (const std::exception& e) {
      Poco::JSON::Object err;
      err.set("ok", false);
      err.set("error", "invalid_control_request");
      err.set("detail", std::string(e.what()));
      reply(response, 400, json, to_json(err));
    }
  }

  FakeSlack& owner_;
};

class FakeSlack::HandlerFactory : public Poco::Net::HTTPRequestHandlerFactory {
 public:
  explicit HandlerFactory(FakeSlack& owner) : owner_(owner) {}
  Poco::Net::HTTPRequestHandler* createRequestHandler(
      const Poco::Net::HTTPServerRequest&) override {
    return new Handler(owner_);
  }

 private:
  FakeSlack& owner_;
};

// ------------------------------------------------------------ FakeSlack --

FakeSlack::FakeSlack(std::uint16_t port) : requested_port_(port), default_(Behaviour::ok()) {}

FakeSlack::FakeSlack(std::uint16_t port, TlsFiles tls)
    : requested_port_(port), tls_(std::move(tls)), default_(Behaviour::ok()) {}

FakeSlack::~FakeSlack() { stop(); }

void FakeSlack::start() {
  if (server_) return;
  {
    std::lock_guard lock(mutex_);
    stopping_ = false;
  }
  Poco::Net::ServerSocket socket =
      listening_socket(Poco::Net::SocketAddress("127.0.0.1", requested_port_), tls_);
  port_ = socket.address().port();
  started_at_ = std::chrono::steady_clock::now();

  auto params = Poco::AutoPtr<Poco::Net::HTTPServerParams>(new Poco::Net::HTTPServerParams);
  params->setMaxThreads(kServerThreads);
  params->setMaxQueued(256);
  params->setKeepAlive(true);
  pool_ = std::make_unique<Poco::ThreadPool>(2, kServerThreads);
  server_ = std::make_unique<Poco::Net::HTTPServer>(new HandlerFactory(*this), *pool_, socket,
                                                    params);
  server_->start();
}

void FakeSlack::stop() {
  if (!server_) return;
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  changed_.notify_all();
  server_->stopAll(true);
  server_.reset();
  pool_->joinAll();
  pool_.reset();
}

std::uint16_t FakeSlack::port() const { return port_; }

std::string FakeSlack::url() const {
  const std::string origin = tls_ ? "https://localhost:" : "http://127.0.0.1:";
  return origin + std::to_string(port_) + "/api/chat.postMessage";
}

void FakeSlack::set_default(Behaviour b) {
  std::lock_guard lock(mutex_);
  default_ = std::move(b);
}

void FakeSlack::enqueue(Behaviour b, int times, std::string channel) {
  if (times <= 0) return;
  std::lock_guard lock(mutex_);
  rules_.push_back(Rule{std::move(b), times, std::move(channel)});
}

std::vector<RecordedRequest> FakeSlack::requests() const {
  std::lock_guard lock(mutex_);
  return requests_;
}

std::size_t FakeSlack::count() const {
  std::lock_guard lock(mutex_);
  return requests_.size();
}

bool FakeSlack::wait_for(std::size_t n, std::chrono::milliseconds timeout) const {
  std::unique_lock lock(mutex_);
  return changed_.wait_for(lock, timeout, [&] { return requests_.size() >= n; });
}

void FakeSlack::reset() {
  std::lock_guard lock(mutex_);
  requests_.clear();
  answered_ = 0;
  ++generation_;
  rules_.clear();
  default_ = Behaviour::ok();
  rate_limited_ = 0;
  limited_arrivals_.clear();
  rate_limit_answers_.clear();
  if (limiter_) {
    const Limits limits = limiter_->limits();  // emplace destroys the old one first
    limiter_.emplace(limits);
  }
}

void FakeSlack::enforce_limits(const Limits& limits) {
  SlackLimiter limiter(limits);  // validates before anything changes
  std::lock_guard lock(mutex_);
  limiter_.emplace(std::move(limiter));
}

std::size_t FakeSlack::rate_limited() const {
  std::lock_guard lock(mutex_);
  return rate_limited_;
}

std::optional<int> FakeSlack::over_limits(const std::string& channel,
                                          std::chrono::steady_clock::time_point at) {
  std::lock_guard lock(mutex_);
  if (!limiter_) return std::nullopt;
  limited_arrivals_.push_back(at);
  auto retry_after = limiter_->admit(channel, at);
  if (retry_after) ++rate_limited_;
  return retry_after;
}

void FakeSlack::note_rate_limit_answered(int retry_after_seconds) {
  const auto now = std::chrono::steady_clock::now();
  std::lock_guard lock(mutex_);
  rate_limit_answers_.push_back(RateLimitAnswer{kFakeWorkspace, now, retry_after_seconds});
}

std::vector<RateLimitAnswer> FakeSlack::rate_limit_answers() const {
  std::lock_guard lock(mutex_);
  return rate_limit_answers_;
}

std::size_t FakeSlack::early_after_429() const {
  std::lock_guard lock(mutex_);
  return early_after_429_locked();
}

std::size_t FakeSlack::early_after_429_locked() const {
  return static_cast<std::size_t>(
      std::count_if(limited_arrivals_.begin(), limited_arrivals_.end(), [&](auto at) {
        return std::any_of(rate_limit_answers_.begin(), rate_limit_answers_.end(),
                           [&](const RateLimitAnswer& a) {
                             return at >= a.answered_at + kInFlightGrace &&
                                    at < a.answered_at + std::chrono::seconds(
                                                             a.retry_after_seconds);
                           });
      }));
}

std::size_t FakeSlack::answered() const {
  std::lock_guard lock(mutex_);
  return answered_;
}

bool FakeSlack::wait_answered(std::size_t n, std::chrono::milliseconds timeout) const {
  std::unique_lock lock(mutex_);
  return changed_.wait_for(lock, timeout, [&] { return answered_ >= n; });
}

void FakeSlack::note_answered(std::uint64_t generation) {
  {
    std::lock_guard lock(mutex_);
    if (generation != generation_) return;
    ++answered_;
  }
  changed_.notify_all();
}

void FakeSlack::on_request(std::function<void(const RecordedRequest&)> callback) {
  on_request_ = std::move(callback);
}

Behaviour FakeSlack::admit(RecordedRequest request, std::uint64_t& generation) {
  Behaviour chosen;
  {
    std::lock_guard lock(mutex_);
    generation = generation_;
    auto rule = std::find_if(rules_.begin(), rules_.end(), [&](const Rule& r) {
      return r.channel.empty() || r.channel == request.channel;
    });
    if (rule != rules_.end()) {
      chosen = rule->behaviour;
      if (--rule->remaining == 0) rules_.erase(rule);
    } else {
      chosen = default_;
    }
    requests_.push_back(request);
  }
  changed_.notify_all();
  if (on_request_) on_request_(request);
  return chosen;
}

bool FakeSlack::wait_delay(std::chrono::milliseconds delay) const {
  std::unique_lock lock(mutex_);
  return !changed_.wait_for(lock, delay, [&] { return stopping_; });
}

std::string FakeSlack::next_ts() {
  std::lock_guard lock(mutex_);
  const std::uint64_t n = ++ts_counter_;
  // Slack's ts looks like "1700000000.000100" and is unique per channel.
  std::string micros = std::to_string(n % 1000000);
  return std::to_string(1700000000 + n / 1000000) + "." +
         std::string(6 - micros.size(), '0') + micros;
}

std::string FakeSlack::requests_json() const {
  Poco::JSON::Array list;
  for (const auto& r : requests()) {
    Poco::JSON::Object item;
    item.set("method", r.method);
    item.set("path", r.path);
    item.set("channel", r.channel);
    item.set("body", r.body);
    // The control API is readable by anyone on the port: never echo the token.
    // A hash lets a test check which token delivered without the fake
    // echoing it.
    item.set("authorization_present", !r.authorization.empty());
    item.set("authorization_sha256", r.authorization.empty() ? "" : sha256_hex(r.authorization));
    item.set("at_ms", std::chrono::duration_cast<std::chrono::milliseconds>(r.at - started_at_)
                          .count());
    list.add(item);
  }
  return to_json(list);
}

std::string FakeSlack::stats_json() const {
  std::lock_guard lock(mutex_);
  Poco::JSON::Object stats;
  stats.set("delivered", static_cast<std::uint64_t>(requests_.size()));
  stats.set("rate_limited", static_cast<std::uint64_t>(rate_limited_));
  stats.set("early_after_429", static_cast<std::uint64_t>(early_after_429_locked()));
  return to_json(stats);
}

}  // namespace slack_proxy::testing

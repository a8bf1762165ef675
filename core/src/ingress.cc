// The ingress's admission: the chain of steps from a request to a queued
// message or a refusal (see ingress.h).
#include "ingress.h"

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <future>
#include <random>
#include <sstream>
#include <variant>

#include <Poco/DigestEngine.h>
#include <Poco/JSON/Object.h>
#include <Poco/JSON/Parser.h>
#include <Poco/JSON/Stringifier.h>
#include <Poco/SHA2Engine.h>
#include <Poco/String.h>
#include <spdlog/fmt/fmt.h>

#include "admission/reply_style.h"
#include "chat_message.h"
#include "json_text.h"
#include "log_context.h"
#include "redact.h"

namespace slack_proxy {
namespace {

std::string_view path_only(std::string_view uri) {
  const auto q = uri.find_first_of("?#");
  return q == std::string_view::npos ? uri : uri.substr(0, q);
}

// A path fit for a log line: the first segment only (the rest of a webhook
// style path is often a secret), without control characters.
std::string loggable_path(std::string_view path) {
  const auto second = path.find('/', 1);
  std::string out;
  for (char c : path.substr(0, second)) {
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) c = '?';
    out.push_back(c);
  }
  if (out.size() > 64) out.resize(64);
  if (second != std::string_view::npos) out += "/...";
  return out;
}

}  // namespace

std::string media_type(std::string_view content_type) {
  auto end = content_type.find(';');
  std::string_view mt = content_type.substr(0, end);
  while (!mt.empty() && std::isspace(static_cast<unsigned char>(mt.back()))) mt.remove_suffix(1);
  while (!mt.empty() && std::isspace(static_cast<unsigned char>(mt.front()))) mt.remove_prefix(1);
  std::string out(mt);
  std::transform(out.begin(), out.end(), out.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return out;
}


Ingress::Ingress(Queue& queue, std::vector<std::shared_ptr<Pipeline>> pipelines,
                 CoreMetrics& metrics, const sdk::Clock& clock,
                 std::shared_ptr<spdlog::logger> log, IngressOptions options)
    : queue_(queue),
      routes_(std::make_shared<const Routes>(std::move(pipelines))),
      metrics_(metrics),
      clock_(clock),
      log_(std::move(log)),
      options_(options) {
  // Ids must not collide across restarts (a durable queue keeps old ones).
  std::random_device rd;
  char buf[24];
  std::snprintf(buf, sizeof(buf), "%08x%08x", rd(), rd());
  id_prefix_ = buf;
  tenant_salt_ = options_.tenant_salt;
  if (tenant_salt_.empty()) {
    for (int i = 0; i < 8; ++i) {
      const auto word = rd();
      tenant_salt_.append(reinterpret_cast<const char*>(&word), sizeof(word));
    }
  }
}

std::string Ingress::tenant_of(const std::string& token) const {
  Poco::SHA2Engine sha(Poco::SHA2Engine::SHA_256);
  sha.update(tenant_salt_);
  sha.update(token);
  return sdk::caller_tenant(Poco::DigestEngine::digestToHex(sha.digest()).substr(0, 16));
}

std::string Ingress::dedup_key(const Pipeline& pipeline, const sdk::Message& m,
                               const std::string& key) const {
  // Scoped so that two callers (or workspaces, or pipelines) using the same
  // key never suppress each other's messages, and hashed so that a stored
  // key is small and says nothing about the caller.
  Poco::SHA2Engine sha(Poco::SHA2Engine::SHA_256);
  for (const std::string* part : {&pipeline.name, &m.workspace, &m.caller, &key}) {
    const std::uint64_t n = part->size();
    sha.update(&n, sizeof(n));
    sha.update(*part);
  }
  return Poco::DigestEngine::digestToHex(sha.digest());
}

std::string Ingress::next_id() {
  return id_prefix_ + "-" + std::to_string(counter_.fetch_add(1, std::memory_order_relaxed) + 1);
}

Ingress::Routes::Routes(std::vector<std::shared_ptr<Pipeline>> all) : pipelines(std::move(all)) {
  for (const auto& p : pipelines) {
    for (const auto& path : p->paths) {
      if (path.size() >= 2 && path.compare(path.size() - 2, 2, "/*") == 0)
        by_prefix.emplace_back(path.substr(0, path.size() - 1), p.get());  // keeps the '/'
      else
        by_path[path] = p.get();
    }
  }
  std::sort(by_prefix.begin(), by_prefix.end(),
            [](const auto& a, const auto& b) { return a.first.size() > b.first.size(); });
}

const Pipeline* Ingress::Routes::find(std::string_view path) const {
  if (auto it = by_path.find(std::string(path)); it != by_path.end()) return it->second;
  for (const auto& [prefix, pipeline] : by_prefix)
    if (path.size() > prefix.size() && path.compare(0, prefix.size(), prefix) == 0) return pipeline;
  return nullptr;
}

void Ingress::set_pipelines(std::vector<std::shared_ptr<Pipeline>> pipelines) {
  routes_.store(std::make_shared<const Routes>(std::move(pipelines)));
}

// ---------------------------------------------------------------- admission --

// One request's way through the chain: what the steps so far have learnt,
// for the steps after them.
struct Ingress::Admission {
  explicit Admission(const sdk::RequestView& r) : request(r) {}

  const sdk::RequestView& request;
  // The routes when the request came, held to its end: a reload cannot
  // take its pipeline's stages away from under it.
  std::shared_ptr<const Routes> routes;
  const Pipeline* pipeline = nullptr;  // once the path has found one
  ReplyStyle style = ReplyStyle::root();  // the pipeline's, once found
  std::string caller;                  // the authenticated identity, once known
  BodyFormat format = BodyFormat::Json;
  std::string body;
  ChatMessage chat;
  sdk::Message message;
  Queue::PushOptions push_options;
  // Kept for the reply once the message has gone to the queue.
  std::string id;
  std::string channel;  // as the caller sent it

  // What a line logged for this request is about, as far as it is known.
  LogFields log_fields(std::string_view error = {}) const {
    return LogFields{.pipeline = pipeline != nullptr ? pipeline->name : std::string(),
                     .channel = channel.empty() ? chat.channel : channel,
                     .client = caller,
                     .remote = request.remote_address(),
                     .error = std::string(error)};
  }
};

namespace {

bool is_health(const sdk::RequestView& request) { return path_only(request.path()) == "/health"; }

// A request sent with a body, which a refusal before the body leaves unread.
bool has_body(const sdk::RequestView& request) {
  const auto length = request.header("Content-Length");
  return request.header("Transfer-Encoding").has_value() || (length.has_value() && *length != "0");
}

// The Slack token a caller-token pipeline delivers with, in Slack's own
// precedence: the Authorization header, then the body's field. The scheme is
// case-insensitive (RFC 9110); an empty one says nothing. With an
// authenticator, Authorization holds the key for this proxy, which must never
// travel on to Slack: the Slack token then comes from the body.
std::string slack_token_of(const Pipeline& pipeline, const sdk::RequestView& request,
                           std::string body_token) {
  if (pipeline.authenticator) return body_token;
  if (auto auth = request.header("Authorization");
      auth && auth->size() > 7 && Poco::icompare(auth->substr(0, 7), "bearer ") == 0) {
    std::string bearer = Poco::trim(auth->substr(7));
    if (!bearer.empty()) return bearer;
  }
  return body_token;
}

}  // namespace

void Ingress::count_and_log_refusal(const std::function<std::string()>& subject, int status,
                                    std::string_view error, std::string_view detail) {
  metrics_.rejected(error);
  std::uint64_t suppressed = 0;
  if (!reject_log_.allow(clock_.now(), suppressed)) return;
  log_->warn("{}: {} {} ({}){}", subject(), status, error, redact_secrets(detail),
             suppressed == 0 ? std::string()
                             : fmt::format("; {} similar line(s) suppressed", suppressed));
}

HttpReply Ingress::reject(const Admission& a, int status, std::string_view error,
                          std::string_view detail) {
  const LogScope scope(a.log_fields(error));
  count_and_log_refusal(
      [&] {
        const std::string where = a.pipeline != nullptr
                                      ? "pipeline '" + a.pipeline->name + "'"
                                      : loggable_path(path_only(a.request.path()));
        return fmt::format("{} {} from {}", a.request.method(), where,
                           a.request.remote_address());
      },
      status, error, detail);
  return a.style.error(status, error, detail);
}

HttpReply Ingress::refuse(const Admission& a, int status, std::string_view error,
                          std::string_view detail) {
  if (!a.caller.empty()) metrics_.client_request(a.caller, error);
  return reject(a, status, error, detail);
}

HttpReply Ingress::with_retry_after(HttpReply reply) const {
  reply.headers.emplace_back("Retry-After", std::to_string(options_.retry_after.count()));
  return reply;
}

HttpReply Ingress::refuse_head(const std::string& remote_address, int status,
                               std::string_view error, std::string_view detail) {
  const LogScope scope({.remote = remote_address, .error = std::string(error)});
  count_and_log_refusal([&] { return "request from " + remote_address; }, status, error, detail);
  HttpReply r = ReplyStyle::root().error(status, error, detail);
  r.close = true;
  return r;
}

HttpReply Ingress::health() const {
  if (!draining_.load()) return ReplyStyle::root().accepted();
  HttpReply r;
  r.status = 503;
  r.body = R"({"ok":false,"error":"shutting_down"})";
  return r;
}

// An Admission that passed the head's steps, waiting for its body.
class Ingress::Exchange final : public HttpExchange {
 public:
  Exchange(Ingress& ingress, std::shared_ptr<Admission> a)
      : ingress_(ingress), a_(std::move(a)) {}

  std::size_t max_body_bytes() const noexcept override {
    return ingress_.options_.max_body_bytes;
  }

  void finish(std::string body, ReplySink reply) noexcept override {
    try {
      if (Step refused = ingress_.take_body(*a_, std::move(body))) return reply(std::move(*refused));
    } catch (const std::exception& e) {
      return reply(ingress_.internal_error(*a_, e));
    }
    ingress_.admit_body(std::move(a_), std::move(reply));
  }

  HttpReply refuse_body(int status, std::string_view error,
                        std::string_view detail) noexcept override {
    try {
      HttpReply r = ingress_.refuse(*a_, status, error, detail);
      r.close = true;
      return r;
    } catch (const std::exception& e) {
      return ingress_.internal_error(*a_, e);
    }
  }

 private:
  Ingress& ingress_;
  std::shared_ptr<Admission> a_;
};

HttpHandler::Opened Ingress::open(const sdk::RequestView& request) noexcept {
  auto a = std::make_shared<Admission>(request);
  try {
    if (is_health(request)) {
      // It reads no body: one sent anyway must not be read as the next
      // request (that is how requests are smuggled past a front proxy).
      HttpReply r = health();
      r.close = has_body(request);
      return {std::move(r), nullptr};
    }
    // A refusal leaves the body unread; the transport reads past it or
    // closes the connection.
    if (Step refused = admit_head(*a)) return {std::move(refused), nullptr};
    return {std::nullopt, std::make_unique<Exchange>(*this, std::move(a))};
  } catch (const std::exception& e) {
    return {internal_error(*a, e), nullptr};
  }
}

HttpReply Ingress::admit(const sdk::RequestView& request, std::string body) noexcept {
  Opened opened = open(request);
  if (opened.reply) return std::move(*opened.reply);
  // The reply may come from the queue's writer thread.
  std::promise<HttpReply> answered;
  std::future<HttpReply> reply = answered.get_future();
  opened.exchange->finish(std::move(body),
                          [&answered](HttpReply r) { answered.set_value(std::move(r)); });
  return reply.get();
}

namespace {

HttpReply internal_error_reply() {
  HttpReply r;
  r.status = 500;
  r.body = R"({"ok":false,"error":"internal_error"})";
  return r;
}

}  // namespace

HttpReply Ingress::internal_error(const Admission& a, const std::exception& e) {
  const LogScope scope(a.log_fields("internal_error"));
  log_->error("ingress failed on {} {}: {}", a.request.method(),
              a.pipeline != nullptr ? a.pipeline->name : std::string("(no pipeline)"),
              redact_secrets(e.what()));
  HttpReply r = internal_error_reply();
  r.close = true;
  return r;
}

template <typename Call>
Ingress::Step Ingress::call_stage(const Admission& a, const sdk::Stage* stage,
                                  std::string_view method, Call&& call) {
  const LogScope scope(a.log_fields());  // the stage's own lines too
  std::string what;
  try {
    call();
    return std::nullopt;
  } catch (const std::exception& e) {
    what = e.what();
  } catch (...) {
    what = "an exception that is not a std::exception";
  }
  // A plugin's fault fails this one request; the proxy and the connection
  // carry on (a body left unread is skipped by the transport, as for any
  // refusal before the body).
  const StageLabel label = a.pipeline->label_of(stage);
  metrics_.plugin_exception(a.pipeline->name, label.stage, method);
  metrics_.rejected("internal_error");
  if (!a.caller.empty()) metrics_.client_request(a.caller, "internal_error");
  std::uint64_t suppressed = 0;
  if (fault_log_.allow(clock_.now(), suppressed)) {
    log_->error("pipeline '{}': stage '{}' (plugin {}) threw from {}(): {}; answered 500 "
                "internal_error, the proxy carries on{}",
                a.pipeline->name, label.stage, label.plugin, method, redact_secrets(what),
                suppressed == 0 ? std::string()
                                : fmt::format("; {} similar line(s) suppressed", suppressed));
  }
  return internal_error_reply();
}

Ingress::Step Ingress::admit_head(Admission& a) {
  for (const auto step : {&Ingress::find_pipeline, &Ingress::check_method,
                          &Ingress::check_draining, &Ingress::authenticate,
                          &Ingress::check_media_type}) {
    if (Step reply = (this->*step)(a)) return reply;
  }
  return std::nullopt;
}

void Ingress::admit_body(std::shared_ptr<Admission> a, ReplySink reply) noexcept {
  try {
    for (const auto step : {&Ingress::decode, &Ingress::bind_caller_token,
                            &Ingress::compose_message, &Ingress::route, &Ingress::deduplicate}) {
      if (Step refused = (this->*step)(*a)) return reply(std::move(*refused));
    }
  } catch (const std::exception& e) {
    return reply(internal_error(*a, e));
  }
  enqueue(std::move(a), std::move(reply));
}

Ingress::Step Ingress::find_pipeline(Admission& a) {
  const std::string_view path = path_only(a.request.path());
  a.routes = routes_.load();
  a.pipeline = a.routes->find(path);
  if (a.pipeline == nullptr) return reject(a, 404, "not_found", "no pipeline serves this path");
  a.style = ReplyStyle::of(*a.pipeline, path);
  return std::nullopt;
}

Ingress::Step Ingress::check_method(Admission& a) {
  if (a.request.method() == "POST") return std::nullopt;
  HttpReply r = refuse(a, 405, "method_not_allowed", "use POST");
  r.headers.emplace_back("Allow", "POST");
  return r;
}

Ingress::Step Ingress::check_draining(Admission& a) {
  if (!draining_.load()) return std::nullopt;
  HttpReply r = with_retry_after(
      refuse(a, 503, "shutting_down", "the proxy is draining; try another replica"));
  r.close = true;  // this proxy is going away: reconnect (to another replica)
  return r;
}

Ingress::Step Ingress::authenticate(Admission& a) {
  const auto& authenticator = a.pipeline->authenticator;
  if (!authenticator) return std::nullopt;
  sdk::AuthResult auth;
  if (Step failed = call_stage(a, authenticator.get(), "authenticate",
                               [&] { auth = authenticator->authenticate(a.request); }))
    return failed;
  if (auth.allowed) {
    a.caller = std::move(auth.identity);
    return std::nullopt;
  }
  HttpReply r = refuse(a, auth.status, auth.error, "authentication failed");
  if (auth.status == 401)  // RFC 9110: a 401 names the scheme it wants
    r.headers.emplace_back("WWW-Authenticate", R"(Bearer realm="slack-proxy")");
  return r;
}

Ingress::Step Ingress::check_media_type(Admission& a) {
  const std::string type = media_type(a.request.header("Content-Type").value_or(""));
  if (type == "application/x-www-form-urlencoded") {
    a.format = BodyFormat::Form;  // what the official SDKs send
  } else if (!type.empty() && type != "application/json") {
    return refuse(a, 415, "unsupported_media_type",
                  "send application/json or application/x-www-form-urlencoded (got " + type + ")");
  }
  return std::nullopt;
}

Ingress::Step Ingress::too_large(Admission& a, std::uint64_t size) {
  return refuse(a, 413, "request_too_large",
                "body is " + std::to_string(size) + " bytes; the limit is " +
                    std::to_string(options_.max_body_bytes));
}

Ingress::Step Ingress::take_body(Admission& a, std::string body) {
  if (body.size() > options_.max_body_bytes) return too_large(a, body.size());
  a.body = std::move(body);
  return std::nullopt;
}

Ingress::Step Ingress::decode(Admission& a) {
  DecodeOptions options;
  options.webhook_style = a.pipeline->webhook_style;
  options.default_channel = a.pipeline->default_channel;
  options.max_json_depth = options_.max_json_depth;
  auto decoded = decode_chat_message(std::move(a.body), a.format, options);
  if (auto* error = std::get_if<DecodeError>(&decoded))
    return refuse(a, error->status, error->error, error->detail);
  a.chat = std::move(std::get<ChatMessage>(decoded));
  return std::nullopt;
}

Ingress::Step Ingress::bind_caller_token(Admission& a) {
  if (!a.pipeline->caller_token) return std::nullopt;
  std::string token = slack_token_of(*a.pipeline, a.request, std::move(a.chat.caller_token));
  if (token.empty()) {
    HttpReply r = refuse(a, 401, "not_authed",
                         "this pipeline delivers with the caller's token: send Authorization: Bearer");
    r.headers.emplace_back("WWW-Authenticate", "Bearer");
    return r;
  }
  a.message.workspace = tenant_of(token);
  a.message.delivery_token = std::move(token);
  return std::nullopt;
}

Ingress::Step Ingress::compose_message(Admission& a) {
  sdk::Message& m = a.message;
  m.id = next_id();
  m.pipeline = a.pipeline->name;
  m.channel = std::move(a.chat.channel);
  m.original_channel = m.channel;
  m.content_type = "application/json";
  m.caller = a.caller;
  m.received_at = clock_.wall_now();
  m.enqueued_at = clock_.now();
  m.payload = std::move(a.chat.payload);
  a.id = m.id;
  a.channel = m.original_channel;
  return std::nullopt;
}

Ingress::Step Ingress::route(Admission& a) {
  for (const auto& router : a.pipeline->routers) {
    sdk::RouteResult routed;
    if (Step failed =
            call_stage(a, router.get(), "route", [&] { routed = router->route(a.message); }))
      return failed;
    if (!routed.accepted) return refuse(a, routed.status, routed.error, routed.detail);
  }
  if (a.message.channel != a.message.original_channel)
    a.message.payload = with_channel(std::move(a.message.payload), a.message.channel);
  return std::nullopt;
}

std::string Ingress::with_channel(std::string payload, const std::string& channel) {
  // The payload is always JSON here (a form body was turned into JSON by
  // decode()), it names "channel" at most once (decode() refuses more), and
  // that is the caller's (or the default) one.
  std::string value;
  append_json_string(value, channel);
  if (auto replaced = replace_top_level_member(payload, "channel", value))
    return std::move(*replaced);
  // A top-level key is spelled with escapes (it may be "ch\u0061nnel"), so
  // the text edit cannot be trusted: rewrite through a parser, which decodes
  // every key, keeping the member order.
  Poco::JSON::Parser parser(new Poco::JSON::ParseHandler(true));
  auto object = parser.parse(payload).extract<Poco::JSON::Object::Ptr>();
  object->set("channel", channel);
  std::ostringstream out;
  Poco::JSON::Stringifier::condense(object, out);
  return out.str();
}

Ingress::Step Ingress::deduplicate(Admission& a) {
  // Slack's own dedup field, or the HTTP convention; the header wins.
  std::string key = a.chat.client_msg_id;
  if (auto header = a.request.header("Idempotency-Key"); header && !header->empty())
    key = std::move(*header);
  if (!key.empty()) a.push_options.dedup_key = dedup_key(*a.pipeline, a.message, key);
  return std::nullopt;
}

void Ingress::enqueue(std::shared_ptr<Admission> a, ReplySink reply) {
  sdk::Message message = std::move(a->message);
  const Queue::PushOptions options = std::move(a->push_options);
  // The queue may answer from its writer thread: the reply is built on
  // the connection's thread. The admission lives on in it for the reply's
  // style and the log line.
  queue_.push_async(std::move(message), options,
                    [this, a = std::move(a), reply = std::move(reply)](Queue::PushResult pushed) {
                      reply.build([this, a, pushed = std::move(pushed)]() -> HttpReply {
                        try {
                          return queued(*a, pushed);
                        } catch (const std::exception& e) {
                          return internal_error(*a, e);
                        }
                      });
                    });
}

HttpReply Ingress::queued(const Admission& a, const Queue::PushResult& pushed) {
  LogFields fields = a.log_fields();
  if (pushed.status == Queue::PushStatus::Accepted) fields.message_id = a.id;  // now it is one
  if (pushed.status == Queue::PushStatus::Unavailable) fields.error = "queue_unavailable";
  const LogScope scope(std::move(fields));
  const std::string& channel = a.channel;
  switch (pushed.status) {
    case Queue::PushStatus::Accepted:
      metrics_.received(channel);
      log_->debug("accepted message {} for {}{}{}", a.id, channel, a.caller.empty() ? "" : " from ",
                  a.caller);
      return acknowledge(a, "accepted");
    case Queue::PushStatus::Duplicate:
      // Already queued (or delivered) within the dedup window: the caller
      // is told "done", exactly as the first time.
      metrics_.duplicate(channel);
      log_->info("duplicate request for {} within the dedup window; not queued again", channel);
      return acknowledge(a, "duplicate");
    case Queue::PushStatus::Full:
      return with_retry_after(refuse(a, 503, "queue_full", pushed.detail + "; retry later"));
    case Queue::PushStatus::Unavailable:
    default:
      // The storage's own words go to the log only (paths, errno text),
      // throttled: with Redis away every request is refused.
      if (std::uint64_t suppressed = 0; fault_log_.allow(clock_.now(), suppressed))
        log_->error("queue cannot store message for {}: {}{}", channel, pushed.detail,
                    suppressed == 0
                        ? std::string()
                        : fmt::format("; {} similar line(s) suppressed", suppressed));
      return with_retry_after(refuse(
          a, 503, "queue_unavailable",
          "the queue cannot store messages right now (see the proxy's log); retry later"));
  }
}

HttpReply Ingress::acknowledge(const Admission& a, std::string_view outcome) {
  if (!a.caller.empty()) metrics_.client_request(a.caller, outcome);
  return a.style.accepted();
}

}  // namespace slack_proxy

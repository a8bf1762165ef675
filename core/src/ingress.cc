#include "ingress.h"

#include "chat_message.h"
#include "redact.h"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cstdio>
#include <random>
#include <sstream>

#include <Poco/DigestEngine.h>
#include <Poco/Exception.h>
#include <Poco/SHA2Engine.h>
#include <Poco/String.h>
#include <Poco/JSON/Object.h>
#include <Poco/JSON/ParseHandler.h>
#include <Poco/JSON/Parser.h>
#include <Poco/JSON/Stringifier.h>
#include <Poco/Net/HTTPRequestHandler.h>
#include <Poco/Net/HTTPServerRequest.h>
#include <Poco/Net/HTTPServerResponse.h>
#include <spdlog/fmt/fmt.h>

namespace slack_proxy {
namespace {

std::string_view path_only(std::string_view uri) {
  const auto q = uri.find_first_of("?#");
  return q == std::string_view::npos ? uri : uri.substr(0, q);
}

constexpr std::string_view kOk = R"({"ok":true})";

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

std::string json_escape(std::string_view text) {
  std::string out;
  out.reserve(text.size() + 8);
  for (char c : text) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          char buf[8];
          std::snprintf(buf, sizeof(buf), "\\u%04x", c);
          out += buf;
        } else {
          out.push_back(c);
        }
    }
  }
  return out;
}

Ingress::Ingress(Queue& queue, std::vector<std::shared_ptr<Pipeline>> pipelines,
                 CoreMetrics& metrics, const sdk::Clock& clock,
                 std::shared_ptr<spdlog::logger> log, IngressOptions options)
    : queue_(queue),
      pipelines_(std::move(pipelines)),
      metrics_(metrics),
      clock_(clock),
      log_(std::move(log)),
      options_(options) {
  for (const auto& p : pipelines_) {
    for (const auto& path : p->paths) {
      if (path.size() >= 2 && path.compare(path.size() - 2, 2, "/*") == 0)
        by_prefix_.emplace_back(path.substr(0, path.size() - 1), p.get());  // keeps the '/'
      else
        by_path_[path] = p.get();
    }
  }
  std::sort(by_prefix_.begin(), by_prefix_.end(),
            [](const auto& a, const auto& b) { return a.first.size() > b.first.size(); });
  // Ids must not collide across restarts (a durable queue keeps old ones).
  std::random_device rd;
  char buf[24];
  std::snprintf(buf, sizeof(buf), "%08x%08x", rd(), rd());
  id_prefix_ = buf;
  for (int i = 0; i < 8; ++i) {
    const auto word = rd();
    tenant_salt_.append(reinterpret_cast<const char*>(&word), sizeof(word));
  }
}

std::string Ingress::tenant_of(const std::string& token) const {
  Poco::SHA2Engine sha(Poco::SHA2Engine::SHA_256);
  sha.update(tenant_salt_);
  sha.update(token);
  return "caller-" + Poco::DigestEngine::digestToHex(sha.digest()).substr(0, 16);
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

const Pipeline* Ingress::find(std::string_view path) const {
  if (auto it = by_path_.find(std::string(path)); it != by_path_.end()) return it->second;
  for (const auto& [prefix, pipeline] : by_prefix_)
    if (path.size() > prefix.size() && path.compare(0, prefix.size(), prefix) == 0) return pipeline;
  return nullptr;
}

HttpReply Ingress::reject(const sdk::RequestView& request, const Pipeline* pipeline, int status,
                          std::string_view error, std::string_view detail) {
  metrics_.rejected(error);
  std::uint64_t suppressed = 0;
  if (reject_log_.allow(clock_.now(), suppressed)) {
    const std::string where = pipeline != nullptr ? "pipeline '" + pipeline->name + "'"
                                                  : loggable_path(path_only(request.path()));
    log_->warn("{} {} from {}: {} {} ({}){}", request.method(), where, request.remote_address(),
               status, error, redact_secrets(detail),
               suppressed == 0 ? std::string()
                               : fmt::format("; {} similar line(s) suppressed", suppressed));
  }
  HttpReply r;
  r.status = status;
  // On a Web API path, answer as Slack's Web API does: a message or auth
  // error is HTTP 200 with ok:false. The official SDKs treat any other
  // status as a transport failure and retry it for half an hour.
  if (pipeline != nullptr && !pipeline->webhook_style && (status == 400 || status == 401) &&
      path_only(request.path()).rfind("/api/", 0) == 0) {
    r.status = 200;
  }
  if (pipeline != nullptr && pipeline->webhook_style) {
    // Incoming webhooks answer errors with the bare code as text.
    r.content_type = "text/plain; charset=utf-8";
    r.body = std::string(error);
  } else {
    r.body = "{\"ok\":false,\"error\":\"" + json_escape(error) + "\",\"detail\":\"" +
             json_escape(detail) + "\"}";
  }
  return r;
}

HttpReply Ingress::handle(const sdk::RequestView& request, std::istream& body) noexcept {
  const Pipeline* pipeline = nullptr;
  try {
    const std::string_view path = path_only(request.path());
    if (path == "/health") {
      HttpReply r;
      if (draining_.load()) {
        r.status = 503;
        r.body = R"({"ok":false,"error":"shutting_down"})";
      } else {
        r.body = std::string(kOk);
      }
      return r;
    }
    pipeline = find(path);
    if (pipeline == nullptr) {
      auto r = reject(request, nullptr, 404, "not_found", "no pipeline serves this path");
      r.close = true;
      return r;
    }
    if (request.method() != "POST") {
      auto r = reject(request, pipeline, 405, "method_not_allowed", "use POST");
      r.headers.emplace_back("Allow", "POST");
      r.close = true;
      return r;
    }
    if (draining_.load()) {
      auto r = reject(request, pipeline, 503, "shutting_down",
                      "the proxy is draining; try another replica");
      r.headers.emplace_back("Retry-After", std::to_string(options_.retry_after.count()));
      r.close = true;
      return r;
    }
      const bool chunked = request.header("Transfer-Encoding").has_value();
    HttpReply reply = handle_post(*pipeline, request, body, chunked);
    // Poco 1.11 reads a malformed chunk-size line as the end of the body, so
    // we cannot know where a chunked request really ended: never read
    // another request from that connection (real clients send
    // Content-Length; the cost is a reconnect for the rare one that does not).
    if (chunked) reply.close = true;
    return reply;
  } catch (const Poco::TimeoutException&) {
    // The client stopped sending mid-body; it holds a thread, so let it go.
    auto r = reject(request, pipeline, 408, "request_timeout",
                    "the request body did not arrive in time");
    r.close = true;
    return r;
  } catch (const std::exception& e) {
    log_->error("ingress failed on {} {}: {}", request.method(),
                pipeline != nullptr ? pipeline->name : std::string("(no pipeline)"),
                redact_secrets(e.what()));
    HttpReply r;
    r.status = 500;
    r.body = R"({"ok":false,"error":"internal_error"})";
    r.close = true;
    return r;
  }
}

HttpReply Ingress::handle_post(const Pipeline& pipeline, const sdk::RequestView& request,
                               std::istream& body, bool chunked) {
  auto refuse = [&](int status, std::string_view error, const std::string& detail) {
    return reject(request, &pipeline, status, error, detail);
  };
  // The body was not (fully) read: the connection cannot carry another request.
  auto refuse_and_close = [&](int status, std::string_view error, const std::string& detail) {
    auto r = refuse(status, error, detail);
    r.close = true;
    return r;
  };

  std::string caller;
  if (pipeline.authenticator) {
    sdk::AuthResult auth = pipeline.authenticator->authenticate(request);
    if (!auth.allowed) return refuse_and_close(auth.status, auth.error, "authentication failed");
    caller = std::move(auth.identity);
  }

  const std::string content_type = media_type(request.header("Content-Type").value_or(""));
  BodyFormat format = BodyFormat::Json;
  if (content_type == "application/x-www-form-urlencoded") {
    format = BodyFormat::Form;  // what the official SDKs send
  } else if (!content_type.empty() && content_type != "application/json") {
    return refuse_and_close(415, "unsupported_media_type",
                            "send application/json or application/x-www-form-urlencoded (got " +
                                content_type + ")");
  }

  // Framing. Both headers at once is how requests are smuggled past proxies.
  const auto length_header = request.header("Content-Length");
  if (length_header && chunked) {
    return refuse_and_close(400, "invalid_request",
                            "Content-Length and Transfer-Encoding must not both be set");
  }
  std::optional<std::uint64_t> content_length;
  if (length_header) {
    std::uint64_t n = 0;
    const std::string& v = *length_header;
    auto [end, ec] = std::from_chars(v.data(), v.data() + v.size(), n);
    if (ec != std::errc() || end != v.data() + v.size() || v.empty())
      return refuse_and_close(400, "invalid_request", "Content-Length is not a number");
    content_length = n;
  }

  const std::size_t limit = options_.max_body_bytes;
  if (content_length && *content_length > limit) {
    return refuse_and_close(413, "request_too_large",
                            "body is " + std::to_string(*content_length) + " bytes; the limit is " +
                                std::to_string(limit));
  }
  std::string raw;
  if (content_length) {
    raw.resize(static_cast<std::size_t>(*content_length));
    body.read(raw.data(), static_cast<std::streamsize>(raw.size()));
    if (static_cast<std::uint64_t>(body.gcount()) < *content_length) {
      // istream turns the socket's read timeout (or a hang-up) into a
      // short read; either way the request is incomplete.
      return refuse_and_close(408, "request_timeout",
                              "body ended after " + std::to_string(body.gcount()) + " of " +
                                  std::to_string(*content_length) + " bytes");
    }
  } else {
    // Chunked (or no body): read at most limit+1 bytes, so an oversize body
    // is refused without buffering all of it.
    char buf[8192];
    while (body && raw.size() <= limit) {
      body.read(buf, sizeof(buf));
      raw.append(buf, static_cast<std::size_t>(body.gcount()));
    }
    if (raw.size() > limit) {
      return refuse_and_close(413, "request_too_large",
                              "body exceeds the limit of " + std::to_string(limit) + " bytes");
    }
    if (body.bad()) {
      // A broken chunked encoding that the stream did notice.
      return refuse_and_close(400, "invalid_request", "the chunked body is malformed");
    }
  }

  DecodeOptions decode_options;
  decode_options.webhook_style = pipeline.webhook_style;
  decode_options.default_channel = pipeline.default_channel;
  auto decoded = decode_chat_message(std::move(raw), format, decode_options);
  if (auto* error = std::get_if<DecodeError>(&decoded))
    return refuse(error->status, error->error, error->detail);
  ChatMessage& chat = std::get<ChatMessage>(decoded);

  sdk::Message m;
  if (pipeline.caller_token) {
    // Slack's own precedence: the Authorization header, then the body's
    // field. The scheme is case-insensitive (RFC 9110); an empty one says nothing.
    std::string token = chat.caller_token;
    if (auto auth = request.header("Authorization");
        auth && auth->size() > 7 && Poco::icompare(auth->substr(0, 7), "bearer ") == 0) {
      std::string bearer = Poco::trim(auth->substr(7));
      if (!bearer.empty()) token = std::move(bearer);
    }
    if (token.empty()) {
      auto r = refuse(401, "not_authed",
                      "this pipeline delivers with the caller's token: send Authorization: Bearer");
      r.headers.emplace_back("WWW-Authenticate", "Bearer");
      return r;
    }
    m.workspace = tenant_of(token);
    m.delivery_token = std::move(token);
  }
  m.id = next_id();
  m.pipeline = pipeline.name;
  m.channel = std::move(chat.channel);
  m.original_channel = m.channel;
  m.content_type = "application/json";
  m.caller = std::move(caller);
  m.received_at = clock_.wall_now();
  m.enqueued_at = clock_.now();
  m.payload = std::move(chat.payload);

  for (const auto& router : pipeline.routers) {
    sdk::RouteResult routed = router->route(m);
    if (!routed.accepted) return refuse(routed.status, routed.error, routed.detail);
  }

  // Slack's own dedup field, or the HTTP convention; the header wins.
  Queue::PushOptions push_options;
  std::string idempotency = chat.client_msg_id;
  if (auto header = request.header("Idempotency-Key"); header && !header->empty())
    idempotency = std::move(*header);
  if (!idempotency.empty()) push_options.dedup_key = dedup_key(pipeline, m, idempotency);

  const std::string original = m.original_channel;
  const std::string id = m.id;
  const Queue::PushResult pushed = queue_.push(std::move(m), push_options);
  switch (pushed.status) {
    case Queue::PushStatus::Accepted:
    case Queue::PushStatus::Duplicate: {
      if (pushed.status == Queue::PushStatus::Accepted) {
        metrics_.received(original);
        log_->debug("accepted message {} for {}", id, original);
      } else {
        // Already queued (or delivered) within the dedup window: the caller
        // is told "done", exactly as the first time.
        metrics_.duplicate(original);
        log_->info("duplicate request for {} within the dedup window; not queued again", original);
      }
      HttpReply r;
      if (pipeline.webhook_style) {
        r.content_type = "text/plain; charset=utf-8";
        r.body = "ok";  // exactly what Slack's incoming webhooks answer
      } else {
        r.body = std::string(kOk);
      }
      return r;
    }
    case Queue::PushStatus::Full: {
      auto r = refuse(503, "queue_full", pushed.detail + "; retry later");
      r.headers.emplace_back("Retry-After", std::to_string(options_.retry_after.count()));
      return r;
    }
    case Queue::PushStatus::Unavailable:
    default: {
      // The storage's own words go to the log only (paths, errno text).
      log_->error("queue cannot store message for {}: {}", original, pushed.detail);
      auto r = refuse(503, "queue_unavailable",
                      "the queue cannot store messages right now (see the proxy's log); retry later");
      r.headers.emplace_back("Retry-After", std::to_string(options_.retry_after.count()));
      return r;
    }
  }
}

namespace {

class PocoRequestView final : public sdk::RequestView {
 public:
  explicit PocoRequestView(Poco::Net::HTTPServerRequest& r) : r_(r) {}
  std::string_view method() const noexcept override { return r_.getMethod(); }
  std::string_view path() const noexcept override { return r_.getURI(); }
  std::optional<std::string> header(std::string_view name) const noexcept override {
    try {
      const auto it = r_.find(std::string(name));  // one case-insensitive lookup
      if (it == r_.end()) return std::nullopt;
      return it->second;
    } catch (...) {
      return std::nullopt;
    }
  }
  std::string remote_address() const noexcept override {
    try {
      return r_.clientAddress().toString();
    } catch (...) {
      return "?";
    }
  }

 private:
  Poco::Net::HTTPServerRequest& r_;
};

class IngressHandler final : public Poco::Net::HTTPRequestHandler {
 public:
  explicit IngressHandler(Ingress& ingress) : ingress_(ingress) {}
  void handleRequest(Poco::Net::HTTPServerRequest& request,
                     Poco::Net::HTTPServerResponse& response) override {
    PocoRequestView view(request);
    HttpReply reply = ingress_.handle(view, request.stream());
    response.setStatusAndReason(static_cast<Poco::Net::HTTPResponse::HTTPStatus>(reply.status));
    for (const auto& [k, v] : reply.headers) response.set(k, v);
    response.setContentType(reply.content_type);
    response.setContentLength(static_cast<std::streamsize>(reply.body.size()));
    if (reply.close) response.setKeepAlive(false);
    response.send().write(reply.body.data(), static_cast<std::streamsize>(reply.body.size()));
  }

 private:
  Ingress& ingress_;
};

class IngressFactory final : public Poco::Net::HTTPRequestHandlerFactory {
 public:
  explicit IngressFactory(Ingress& ingress) : ingress_(ingress) {}
  Poco::Net::HTTPRequestHandler* createRequestHandler(
      const Poco::Net::HTTPServerRequest&) override {
    return new IngressHandler(ingress_);
  }

 private:
  Ingress& ingress_;
};

}  // namespace

Poco::Net::HTTPRequestHandlerFactory* Ingress::make_factory() { return new IngressFactory(*this); }

}  // namespace slack_proxy

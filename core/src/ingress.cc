#include "ingress.h"

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <random>
#include <sstream>

#include <Poco/Exception.h>
#include <Poco/JSON/Object.h>
#include <Poco/JSON/Parser.h>
#include <Poco/JSON/Stringifier.h>
#include <Poco/Net/HTTPRequestHandler.h>
#include <Poco/Net/HTTPServerRequest.h>
#include <Poco/Net/HTTPServerResponse.h>

namespace slack_proxy {
namespace {

std::string_view path_only(std::string_view uri) {
  const auto q = uri.find_first_of("?#");
  return q == std::string_view::npos ? uri : uri.substr(0, q);
}

bool non_empty(const Poco::Dynamic::Var& v) {
  if (v.isEmpty()) return false;
  if (v.isString()) return !v.extract<std::string>().empty();
  if (v.type() == typeid(Poco::JSON::Array::Ptr)) {
    auto a = v.extract<Poco::JSON::Array::Ptr>();
    return a && a->size() > 0;
  }
  return false;
}

constexpr std::string_view kOk = R"({"ok":true})";

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
  for (const auto& p : pipelines_)
    for (const auto& path : p->paths) by_path_[path] = p.get();
  // Ids must not collide across restarts (a durable queue keeps old ones).
  std::random_device rd;
  char buf[16];
  std::snprintf(buf, sizeof(buf), "%08x", rd());
  id_prefix_ = buf;
}

std::string Ingress::next_id() {
  return id_prefix_ + "-" + std::to_string(counter_.fetch_add(1, std::memory_order_relaxed) + 1);
}

HttpReply Ingress::reject(const sdk::RequestView& request, int status, std::string_view error,
                          std::string_view detail) {
  metrics_.rejected(error);
  log_->warn("{} {} from {}: {} {} ({})", request.method(), request.path(),
             request.remote_address(), status, error, detail);
  HttpReply r;
  r.status = status;
  r.body = "{\"ok\":false,\"error\":\"" + json_escape(error) + "\",\"detail\":\"" +
           json_escape(detail) + "\"}";
  return r;
}

HttpReply Ingress::handle(const sdk::RequestView& request, std::istream& body,
                          std::optional<std::uint64_t> content_length) noexcept {
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
    auto it = by_path_.find(std::string(path));
    if (it == by_path_.end()) {
      auto r = reject(request, 404, "not_found", "no pipeline serves this path");
      r.close = true;
      return r;
    }
    if (request.method() != "POST") {
      auto r = reject(request, 405, "method_not_allowed", "use POST");
      r.headers.emplace_back("Allow", "POST");
      r.close = true;
      return r;
    }
    if (draining_.load()) {
      auto r = reject(request, 503, "shutting_down", "the proxy is draining; try another replica");
      r.headers.emplace_back("Retry-After", std::to_string(options_.retry_after.count()));
      r.close = true;
      return r;
    }
    return handle_post(*it->second, request, body, content_length);
  } catch (const Poco::TimeoutException&) {
    // The client stopped sending mid-body; it holds a thread, so let it go.
    auto r = reject(request, 408, "request_timeout", "the request body did not arrive in time");
    r.close = true;
    return r;
  } catch (const std::exception& e) {
    log_->error("ingress failed on {} {}: {}", request.method(), request.path(), e.what());
    HttpReply r;
    r.status = 500;
    r.body = R"({"ok":false,"error":"internal_error"})";
    r.close = true;
    return r;
  }
}

HttpReply Ingress::handle_post(const Pipeline& pipeline, const sdk::RequestView& request,
                               std::istream& body, std::optional<std::uint64_t> content_length) {
  std::string caller;
  if (pipeline.authenticator) {
    sdk::AuthResult auth = pipeline.authenticator->authenticate(request);
    if (!auth.allowed) {
      auto r = reject(request, auth.status, auth.error, "authentication failed");
      r.close = true;
      return r;
    }
    caller = std::move(auth.identity);
  }

  const std::string content_type = media_type(request.header("Content-Type").value_or(""));
  if (!content_type.empty() && content_type != "application/json") {
    auto r = reject(request, 415, "unsupported_media_type",
                    "send application/json (got " + content_type + ")");
    r.close = true;
    return r;
  }

  const std::size_t limit = options_.max_body_bytes;
  if (content_length && *content_length > limit) {
    auto r = reject(request, 413, "request_too_large",
                    "body is " + std::to_string(*content_length) + " bytes; the limit is " +
                        std::to_string(limit));
    r.close = true;
    return r;
  }
  // Read at most limit+1 bytes, so an undeclared (chunked) oversize body is
  // refused without buffering all of it.
  std::string raw;
  raw.resize(content_length ? static_cast<std::size_t>(*content_length) : 0);
  if (content_length) {
    body.read(raw.data(), static_cast<std::streamsize>(raw.size()));
    if (static_cast<std::uint64_t>(body.gcount()) < *content_length) {
      // istream turns the socket's read timeout (or a hang-up) into a
      // short read; either way the request is incomplete.
      auto r = reject(request, 408, "request_timeout",
                      "body ended after " + std::to_string(body.gcount()) + " of " +
                          std::to_string(*content_length) + " bytes");
      r.close = true;
      return r;
    }
  } else {
    char buf[8192];
    while (body && raw.size() <= limit) {
      body.read(buf, sizeof(buf));
      raw.append(buf, static_cast<std::size_t>(body.gcount()));
    }
    if (raw.size() > limit) {
      auto r = reject(request, 413, "request_too_large",
                      "body exceeds the limit of " + std::to_string(limit) + " bytes");
      r.close = true;
      return r;
    }
  }

  Poco::JSON::Object::Ptr object;
  try {
    Poco::JSON::Parser parser;
    Poco::Dynamic::Var parsed = parser.parse(raw);
    if (parsed.type() == typeid(Poco::JSON::Object::Ptr))
      object = parsed.extract<Poco::JSON::Object::Ptr>();
  } catch (const std::exception&) {
  }
  if (!object) return reject(request, 400, "invalid_json", "the body must be a JSON object");

  const Poco::Dynamic::Var channel = object->get("channel");
  if (channel.isEmpty() || !channel.isString() || channel.extract<std::string>().empty())
    return reject(request, 400, "channel_not_specified", "the 'channel' field is required");
  if (!non_empty(object->get("text")) && !non_empty(object->get("blocks")) &&
      !non_empty(object->get("attachments"))) {
    return reject(request, 400, "no_text", "one of 'text', 'blocks' or 'attachments' is required");
  }

  sdk::Message m;
  m.id = next_id();
  m.pipeline = pipeline.name;
  m.channel = channel.extract<std::string>();
  m.original_channel = m.channel;
  m.content_type = "application/json";
  m.caller = std::move(caller);
  m.received_at = clock_.wall_now();
  m.enqueued_at = clock_.now();
  if (object->has("token")) {
    // A credential is not message content: it is neither stored nor sent on.
    object->remove("token");
    std::ostringstream out;
    Poco::JSON::Stringifier::condense(object, out);
    m.payload = out.str();
  } else {
    m.payload = std::move(raw);
  }

  for (const auto& router : pipeline.routers) {
    sdk::RouteResult routed = router->route(m);
    if (!routed.accepted) return reject(request, routed.status, routed.error, routed.detail);
  }

  const std::string original = m.original_channel;
  const std::string id = m.id;
  switch (queue_.push(std::move(m))) {
    case Queue::PushStatus::Accepted: {
      metrics_.received(original);
      HttpReply r;
      r.body = std::string(kOk);
      log_->debug("accepted message {} for {}", id, original);
      return r;
    }
    case Queue::PushStatus::Full: {
      auto r = reject(request, 503, "queue_full",
                      "the queue holds " + std::to_string(queue_.capacity()) +
                          " messages; retry later");
      r.headers.emplace_back("Retry-After", std::to_string(options_.retry_after.count()));
      return r;
    }
    case Queue::PushStatus::Unavailable:
    default: {
      auto r = reject(request, 503, "queue_unavailable", "the queue cannot store messages now");
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
      const std::string n(name);
      if (!r_.has(n)) return std::nullopt;
      return r_.get(n);
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
    std::optional<std::uint64_t> length;
    if (request.hasContentLength()) length = static_cast<std::uint64_t>(request.getContentLength64());
    HttpReply reply = ingress_.handle(view, request.stream(), length);
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

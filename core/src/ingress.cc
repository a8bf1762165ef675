#include "ingress.h"

#include "admission/reply_style.h"
#include "chat_message.h"
#include "redact.h"
#include "server_params.h"

#include <sys/socket.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <charconv>
#include <condition_variable>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <mutex>
#include <random>
#include <sstream>
#include <thread>
#include <tuple>
#include <unordered_set>

#include <Poco/DigestEngine.h>
#include <Poco/Exception.h>
#include <Poco/SHA2Engine.h>
#include <Poco/String.h>
#include <Poco/JSON/Object.h>
#include <Poco/JSON/ParseHandler.h>
#include <Poco/JSON/Parser.h>
#include <Poco/JSON/Stringifier.h>
#include <Poco/Net/HTTPChunkedStream.h>
#include <Poco/Net/HTTPFixedLengthStream.h>
#include <Poco/Net/HTTPHeaderStream.h>
#include <Poco/Net/HTTPRequest.h>
#include <Poco/Net/HTTPServerParams.h>
#include <Poco/Net/HTTPServerResponseImpl.h>
#include <Poco/Net/HTTPServerSession.h>
#include <Poco/Net/MessageHeader.h>
#include <Poco/Net/NetException.h>
#include <Poco/Net/NetSSL.h>
#include <Poco/Net/StreamSocket.h>
#include <Poco/Net/TCPServerConnection.h>
#include <Poco/Net/TCPServerConnectionFactory.h>
#include <Poco/Timespan.h>
#include <Poco/Timestamp.h>
#include <openssl/ssl.h>
#include <spdlog/fmt/fmt.h>

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

// ---------------------------------------------------------------- admission --

// One request's way through the chain: what the steps so far have learnt,
// for the steps after them.
struct Ingress::Admission {
  explicit Admission(const sdk::RequestView& r) : request(r) {}

  const sdk::RequestView& request;
  const Pipeline* pipeline = nullptr;  // once the path has found one
  ReplyStyle style = ReplyStyle::root();  // the pipeline's, once found
  std::string caller;                  // the authenticated identity, once known
  BodyFormat format = BodyFormat::Json;
  bool chunked = false;                       // Transfer-Encoding was sent
  std::optional<std::uint64_t> content_length;  // as declared, once checked
  std::string body;
  ChatMessage chat;
  sdk::Message message;
  Queue::PushOptions push_options;
};

namespace {

constexpr std::string_view kLate = "the request did not arrive within read_timeout";

// The connection shuts a late request's socket for reading, which ends the
// body early: whatever was read is not the whole request.
bool late(ReadDeadline* deadline) { return deadline != nullptr && !deadline->stop(); }

// The body was not (fully) read: the connection cannot carry another request.
HttpReply closing(HttpReply reply) {
  reply.close = true;
  return reply;
}

bool is_health(const sdk::RequestView& request) { return path_only(request.path()) == "/health"; }

// A /health request sent with a body, which nothing reads.
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

HttpReply Ingress::reject(const Admission& a, int status, std::string_view error,
                          std::string_view detail) {
  metrics_.rejected(error);
  std::uint64_t suppressed = 0;
  if (reject_log_.allow(clock_.now(), suppressed)) {
    const std::string where = a.pipeline != nullptr ? "pipeline '" + a.pipeline->name + "'"
                                                    : loggable_path(path_only(a.request.path()));
    log_->warn("{} {} from {}: {} {} ({}){}", a.request.method(), where,
               a.request.remote_address(), status, error, redact_secrets(detail),
               suppressed == 0 ? std::string()
                               : fmt::format("; {} similar line(s) suppressed", suppressed));
  }
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
  metrics_.rejected(error);
  std::uint64_t suppressed = 0;
  if (reject_log_.allow(clock_.now(), suppressed)) {
    log_->warn("request from {}: {} {} ({}){}", remote_address, status, error, detail,
               suppressed == 0 ? std::string()
                               : fmt::format("; {} similar line(s) suppressed", suppressed));
  }
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

HttpReply Ingress::handle(const sdk::RequestView& request, std::istream& body,
                          ReadDeadline* deadline) noexcept {
  Admission a(request);
  try {
    if (is_health(request)) {
      // It reads no body: one sent anyway must not be read as the next
      // request (that is how requests are smuggled past a front proxy).
      HttpReply r = health();
      r.close = has_body(request);
      return r;
    }
    // Until the body is read, a refusal leaves it on the connection.
    if (Step refused = admit_head(a)) return closing(std::move(*refused));
    if (Step refused = check_framing(a)) return closing(std::move(*refused));
    if (Step refused = read_body(a, body, deadline)) return closing(std::move(*refused));
    HttpReply reply = admit_body(a);
    // Poco 1.11 reads a malformed chunk-size line as the end of the body, so
    // we cannot know where a chunked request really ended: never read
    // another request from that connection (real clients send
    // Content-Length; the cost is a reconnect for the rare one that does not).
    if (a.chunked) reply.close = true;
    return reply;
  } catch (const Poco::TimeoutException&) {
    // The client stopped sending mid-body; it holds a thread, so let it go.
    return closing(reject(a, 408, "request_timeout", "the request body did not arrive in time"));
  } catch (const std::exception& e) {
    // Cut off mid-body (over TLS that surfaces as an error, not a short read).
    if (late(deadline)) return closing(reject(a, 408, "request_timeout", kLate));
    return internal_error(a, e);
  }
}

HttpReply Ingress::admit(const sdk::RequestView& request, std::string body) noexcept {
  Admission a(request);
  try {
    if (is_health(request)) return health();
    if (Step refused = admit_head(a)) return std::move(*refused);
    if (Step refused = take_body(a, std::move(body))) return std::move(*refused);
    return admit_body(a);
  } catch (const std::exception& e) {
    return internal_error(a, e);
  }
}

HttpReply Ingress::internal_error(const Admission& a, const std::exception& e) {
  log_->error("ingress failed on {} {}: {}", a.request.method(),
              a.pipeline != nullptr ? a.pipeline->name : std::string("(no pipeline)"),
              redact_secrets(e.what()));
  HttpReply r;
  r.status = 500;
  r.body = R"({"ok":false,"error":"internal_error"})";
  r.close = true;
  return r;
}

Ingress::Step Ingress::admit_head(Admission& a) {
  for (const auto step : {&Ingress::find_pipeline, &Ingress::check_method,
                          &Ingress::check_draining, &Ingress::authenticate,
                          &Ingress::check_media_type}) {
    if (Step reply = (this->*step)(a)) return reply;
  }
  return std::nullopt;
}

HttpReply Ingress::admit_body(Admission& a) {
  for (const auto step : {&Ingress::decode, &Ingress::bind_caller_token,
                          &Ingress::compose_message, &Ingress::route, &Ingress::deduplicate}) {
    if (Step reply = (this->*step)(a)) return std::move(*reply);
  }
  return enqueue(a);
}

Ingress::Step Ingress::find_pipeline(Admission& a) {
  const std::string_view path = path_only(a.request.path());
  a.pipeline = find(path);
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
  return with_retry_after(
      refuse(a, 503, "shutting_down", "the proxy is draining; try another replica"));
}

Ingress::Step Ingress::authenticate(Admission& a) {
  if (!a.pipeline->authenticator) return std::nullopt;
  sdk::AuthResult auth = a.pipeline->authenticator->authenticate(a.request);
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

Ingress::Step Ingress::check_framing(Admission& a) {
  a.chunked = a.request.header("Transfer-Encoding").has_value();
  const auto length = a.request.header("Content-Length");
  if (!length) return std::nullopt;
  // Both headers at once is how requests are smuggled past proxies.
  if (a.chunked)
    return refuse(a, 400, "invalid_request",
                  "Content-Length and Transfer-Encoding must not both be set");
  std::uint64_t n = 0;
  const auto [end, ec] = std::from_chars(length->data(), length->data() + length->size(), n);
  if (ec != std::errc() || end != length->data() + length->size() || length->empty())
    return refuse(a, 400, "invalid_request", "Content-Length is not a number");
  a.content_length = n;
  return std::nullopt;
}

Ingress::Step Ingress::too_large(Admission& a, std::uint64_t size) {
  return refuse(a, 413, "request_too_large",
                "body is " + std::to_string(size) + " bytes; the limit is " +
                    std::to_string(options_.max_body_bytes));
}

Ingress::Step Ingress::read_body(Admission& a, std::istream& in, ReadDeadline* deadline) {
  if (!a.content_length) return read_unsized_body(a, in, deadline);
  // Refused before any of it is read.
  if (*a.content_length > options_.max_body_bytes) return too_large(a, *a.content_length);
  a.body.resize(static_cast<std::size_t>(*a.content_length));
  in.read(a.body.data(), static_cast<std::streamsize>(a.body.size()));
  if (late(deadline)) return refuse(a, 408, "request_timeout", kLate);
  if (static_cast<std::uint64_t>(in.gcount()) < *a.content_length) {
    // istream turns the socket's read timeout (or a hang-up) into a short
    // read; either way the request is incomplete.
    return refuse(a, 408, "request_timeout",
                  "body ended after " + std::to_string(in.gcount()) + " of " +
                      std::to_string(*a.content_length) + " bytes");
  }
  return std::nullopt;
}

Ingress::Step Ingress::read_unsized_body(Admission& a, std::istream& in, ReadDeadline* deadline) {
  // Chunked (or no body): read at most limit+1 bytes, so an oversize body is
  // refused without buffering all of it.
  const std::size_t limit = options_.max_body_bytes;
  char buf[8192];
  while (in && a.body.size() <= limit) {
    // No more than the limit needs: istream::read waits for all it asks
    // for, and a client that stops past the limit must still get its 413.
    in.read(buf, static_cast<std::streamsize>(std::min(sizeof(buf), limit + 1 - a.body.size())));
    a.body.append(buf, static_cast<std::size_t>(in.gcount()));
  }
  if (late(deadline)) return refuse(a, 408, "request_timeout", kLate);
  if (a.body.size() > limit) {
    return refuse(a, 413, "request_too_large",
                  "body exceeds the limit of " + std::to_string(limit) + " bytes");
  }
  if (in.bad()) {
    // A broken chunked encoding that the stream did notice.
    return refuse(a, 400, "invalid_request", "the chunked body is malformed");
  }
  return std::nullopt;
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
  return std::nullopt;
}

Ingress::Step Ingress::route(Admission& a) {
  for (const auto& router : a.pipeline->routers) {
    sdk::RouteResult routed = router->route(a.message);
    if (!routed.accepted) return refuse(a, routed.status, routed.error, routed.detail);
  }
  return std::nullopt;
}

Ingress::Step Ingress::deduplicate(Admission& a) {
  // Slack's own dedup field, or the HTTP convention; the header wins.
  std::string key = a.chat.client_msg_id;
  if (auto header = a.request.header("Idempotency-Key"); header && !header->empty())
    key = std::move(*header);
  if (!key.empty()) a.push_options.dedup_key = dedup_key(*a.pipeline, a.message, key);
  return std::nullopt;
}

HttpReply Ingress::enqueue(Admission& a) {
  const std::string channel = a.message.original_channel;
  const std::string id = a.message.id;
  const Queue::PushResult pushed = queue_.push(std::move(a.message), a.push_options);
  switch (pushed.status) {
    case Queue::PushStatus::Accepted:
      metrics_.received(channel);
      log_->debug("accepted message {} for {}{}{}", id, channel, a.caller.empty() ? "" : " from ",
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
      // The storage's own words go to the log only (paths, errno text).
      log_->error("queue cannot store message for {}: {}", channel, pushed.detail);
      return with_retry_after(refuse(
          a, 503, "queue_unavailable",
          "the queue cannot store messages right now (see the proxy's log); retry later"));
  }
}

HttpReply Ingress::acknowledge(const Admission& a, std::string_view outcome) {
  if (!a.caller.empty()) metrics_.client_request(a.caller, outcome);
  return a.style.accepted();
}

namespace {

using SteadyClock = std::chrono::steady_clock;

// A request head as Poco parsed it, seen through the SDK's RequestView.
class HeadView final : public sdk::RequestView {
 public:
  HeadView(const Poco::Net::HTTPRequest& head, const std::string& remote)
      : head_(head), remote_(remote) {}
  std::string_view method() const noexcept override { return head_.getMethod(); }
  std::string_view path() const noexcept override { return head_.getURI(); }
  std::optional<std::string> header(std::string_view name) const noexcept override {
    try {
      const auto it = head_.find(std::string(name));  // one case-insensitive lookup
      if (it == head_.end()) return std::nullopt;
      return it->second;
    } catch (...) {
      return std::nullopt;
    }
  }
  std::string remote_address() const noexcept override { return remote_; }

 private:
  const Poco::Net::HTTPRequest& head_;
  const std::string& remote_;
};

// Hands the request head through to Poco's parser and ends it (EOF) after
// `limit` bytes, so that no head, however it is spread over lines and
// fields, costs more than that. It takes only what Poco's line reader
// (HTTPHeaderInputStream) already holds, a line at most, and that reader
// never reads past the head, so the body stays unread.
class HeadLimitBuf final : public std::streambuf {
 public:
  HeadLimitBuf(std::streambuf& source, std::size_t limit) : source_(source), limit_(limit) {}
  bool exceeded() const { return exceeded_; }
  bool source_ended() const { return source_ended_; }

 protected:
  int_type underflow() override {
    if (gptr() < egptr()) return traits_type::to_int_type(*gptr());
    if (count_ >= limit_) {
      exceeded_ = true;
      return traits_type::eof();
    }
    const auto room = static_cast<std::streamsize>(std::min(sizeof(buffer_), limit_ - count_));
    // One byte makes the source read its next line if it has none.
    const int_type first = source_.sbumpc();
    if (traits_type::eq_int_type(first, traits_type::eof())) {
      source_ended_ = true;
      return first;
    }
    buffer_[0] = traits_type::to_char_type(first);
    std::streamsize n = 1;
    if (const std::streamsize held = source_.in_avail(); held > 0 && room > 1)
      n += source_.sgetn(buffer_ + 1, std::min(held, room - 1));
    count_ += static_cast<std::size_t>(n);
    setg(buffer_, buffer_, buffer_ + n);
    return first;
  }

 private:
  std::streambuf& source_;
  std::size_t limit_;
  std::size_t count_ = 0;
  char buffer_[1024];
  bool exceeded_ = false;
  bool source_ended_ = false;
};

// A non-negative decimal Content-Length, or nullopt.
std::optional<std::uint64_t> content_length_of(const Poco::Net::HTTPRequest& head) {
  const auto it = head.find(Poco::Net::HTTPMessage::CONTENT_LENGTH);
  if (it == head.end()) return std::nullopt;
  std::uint64_t n = 0;
  const std::string& v = it->second;
  const auto [end, ec] = std::from_chars(v.data(), v.data() + v.size(), n);
  if (v.empty() || ec != std::errc() || end != v.data() + v.size()) return std::nullopt;
  return n;
}

// The body as framed by the head. RFC 9112: a request with neither
// Content-Length nor Transfer-Encoding has no body (Poco's server would read
// to the end of the connection). An unusable Content-Length gets an empty
// stream: the ingress refuses it before reading.
std::unique_ptr<std::istream> body_stream(const Poco::Net::HTTPRequest& head,
                                          Poco::Net::HTTPServerSession& session) {
  if (head.getChunkedTransferEncoding())
    return std::make_unique<Poco::Net::HTTPChunkedInputStream>(session);
  const auto length = content_length_of(head);
  return std::make_unique<Poco::Net::HTTPFixedLengthInputStream>(
      session, static_cast<Poco::Net::HTTPFixedLengthStreamBuf::ContentLength>(length.value_or(0)));
}

}  // namespace

// Every open connection, and the one thread that enforces their deadlines.
// A late connection's socket is shut for reading (::shutdown on its
// descriptor, which wakes a blocked read with end-of-stream, plain or TLS)
// so that its own thread notices, answers 408 if it still can, and closes.
// Descriptors are only touched under the mutex, while their connection is
// registered, i.e. before it closes them.
class IngressServer::Connections {
 public:
  struct Live {
    int fd = -1;
    SteadyClock::time_point deadline = SteadyClock::time_point::max();
    bool fired = false;  // its deadline passed and its reading side was shut
  };

  Connections() : watchdog_([this] { watch(); }) {}
  ~Connections() {
    {
      std::lock_guard lock(mutex_);
      quit_ = true;
    }
    changed_.notify_all();
    watchdog_.join();
  }

  // False once the server is stopping: the connection should just close.
  bool add(Live& live) {
    std::lock_guard lock(mutex_);
    if (stopped_) return false;
    live_.insert(&live);
    return true;
  }
  void remove(Live& live) {
    std::lock_guard lock(mutex_);
    live_.erase(&live);
  }
  bool stopped() {
    std::lock_guard lock(mutex_);
    return stopped_;
  }

  void arm(Live& live, SteadyClock::time_point deadline) {
    bool wake = false;
    {
      std::lock_guard lock(mutex_);
      live.deadline = deadline;
      live.fired = false;
      // Under steady load the watchdog already sleeps until an earlier
      // deadline; only an earlier one than that needs it awake.
      wake = deadline < wake_at_;
    }
    if (wake) changed_.notify_one();
  }
  // Stops the clock; false when it had already fired.
  bool disarm(Live& live) {
    std::lock_guard lock(mutex_);
    live.deadline = SteadyClock::time_point::max();
    return !live.fired;
  }
  bool fired(Live& live) {
    std::lock_guard lock(mutex_);
    return live.fired;
  }

  void stop_all() {
    std::lock_guard lock(mutex_);
    stopped_ = true;
    for (Live* live : live_) ::shutdown(live->fd, SHUT_RDWR);
  }

 private:
  void watch() {
    std::unique_lock lock(mutex_);
    while (!quit_) {
      const auto now = SteadyClock::now();
      auto next = SteadyClock::time_point::max();
      for (Live* live : live_) {
        if (live->deadline <= now) {
          ::shutdown(live->fd, SHUT_RD);
          live->fired = true;
          live->deadline = SteadyClock::time_point::max();
        } else {
          next = std::min(next, live->deadline);
        }
      }
      wake_at_ = next;
      if (next == SteadyClock::time_point::max()) {
        changed_.wait(lock);
      } else {
        changed_.wait_until(lock, next);
      }
    }
  }

  std::mutex mutex_;
  std::condition_variable changed_;
  std::unordered_set<Live*> live_;
  SteadyClock::time_point wake_at_ = SteadyClock::time_point::max();
  bool stopped_ = false;
  bool quit_ = false;
  std::thread watchdog_;  // last: it uses everything above
};

namespace {

using Live = IngressServer::Connections::Live;

// Tells the ingress whether the body came in time.
class ConnectionDeadline final : public ReadDeadline {
 public:
  ConnectionDeadline(IngressServer::Connections& connections, Live& live)
      : connections_(connections), live_(live) {}
  bool stop() noexcept override {
    if (!result_) result_ = connections_.disarm(live_);
    return *result_;
  }

 private:
  IngressServer::Connections& connections_;
  Live& live_;
  std::optional<bool> result_;
};

// Poco 1.11's fixed limits on a request head (private in MessageHeader and
// HTTPRequest).
constexpr std::size_t kMaxFieldNameBytes = 256;
constexpr std::size_t kMaxFieldValueBytes = 8192;
constexpr std::size_t kMaxUriBytes = 16384;

// What a head Poco could not read means, as (status, error, detail). The
// texts are Poco's fixed messages; nothing the client sent is repeated.
std::tuple<int, std::string_view, std::string> classify_head_error(
    const Poco::Net::MessageException& e, const ServerOptions& options) {
  const std::string& what = e.message();
  if (what.find("Too many header fields") != std::string::npos) {
    return {431, "headers_too_large",
            "more than " + std::to_string(options.max_header_fields) + " header fields"};
  }
  if (what.find("Field name too long") != std::string::npos) {
    return {431, "headers_too_large",
            "a header field name is longer than " +
                std::to_string(kMaxFieldNameBytes) + " bytes"};
  }
  if (what.find("Field value too long") != std::string::npos) {
    return {431, "headers_too_large",
            "a header field value is longer than " +
                std::to_string(kMaxFieldValueBytes) +
                " bytes (or has a stray CR)"};
  }
  if (what.find("URI invalid or too long") != std::string::npos) {
    return {414, "uri_too_long",
            "the request URI is longer than " +
                std::to_string(kMaxUriBytes) + " bytes"};
  }
  return {400, "invalid_request", "malformed request head: " + what};
}

class IngressConnection final : public Poco::Net::TCPServerConnection {
 public:
  IngressConnection(const Poco::Net::StreamSocket& socket, Ingress& ingress,
                    IngressServer::Connections& connections,
                    const Poco::AutoPtr<Poco::Net::HTTPServerParams>& params,
                    const ServerOptions& options, spdlog::logger& log)
      : TCPServerConnection(socket),
        ingress_(ingress),
        connections_(connections),
        params_(params),
        options_(options),
        log_(log) {}

  void run() override {
    Live live;
    live.fd = socket().impl()->sockfd();
    if (!connections_.add(live)) return;
    // Before the socket closes: the watchdog must never touch a descriptor
    // that may already belong to another connection.
    struct Unregister {
      IngressServer::Connections& connections;
      Live& live;
      ~Unregister() { connections.remove(live); }
    } unregister{connections_, live};
    try {
      serve(live);
    } catch (const Poco::Exception& e) {
      // Resets, timeouts, failed TLS handshakes (a plain-HTTP client on a
      // TLS port): nobody is left to answer.
      log_.debug("connection from {} ended: {}", remote_, e.displayText());
    } catch (const std::exception& e) {
      log_.debug("connection from {} ended: {}", remote_, e.what());
    }
  }

 private:
  void serve(Live& live) {
    Poco::Net::HTTPServerSession session(socket(), params_);
    remote_ = session.clientAddress().toString();
    try {
      serve(session, live);
    } catch (const Poco::Exception&) {
      // Streams turn a socket error into "Error reading ..."; the session
      // kept the real one (a reset, a TLS handshake failure).
      if (session.networkException() != nullptr) session.networkException()->rethrow();
      throw;
    }
  }

  void serve(Poco::Net::HTTPServerSession& session, Live& live) {
    while (!connections_.stopped() && session.hasMoreRequests()) {
      // From the request's first byte (hasMoreRequests saw it) to its last.
      connections_.arm(live, SteadyClock::now() + options_.read_timeout);

      Poco::Net::HTTPRequest head;
      head.setFieldLimit(options_.max_header_fields);
      Poco::Net::HTTPHeaderInputStream lines(session);
      HeadLimitBuf limited(*lines.rdbuf(), options_.max_header_bytes);
      std::istream head_stream(&limited);
      std::optional<HttpReply> refused;
      try {
        head.read(head_stream);
      } catch (const Poco::Net::NoMessageException&) {
        return;  // the client closed before another request
      } catch (const Poco::Net::MessageException& e) {
        const auto [status, error, detail] = classify_head_error(e, options_);
        refused = ingress_.refuse_head(remote_, status, error, detail);
      }
      // In that order: a head cut off by the deadline or the byte limit
      // often parses "fine", short of what was sent.
      if (connections_.fired(live)) {
        refused = ingress_.refuse_head(remote_, 408, "request_timeout",
                                       "the request head did not arrive within read_timeout");
      } else if (limited.exceeded()) {
        refused = ingress_.refuse_head(
            remote_, 431, "headers_too_large",
            "the request head is larger than " + std::to_string(options_.max_header_bytes) +
                " bytes");
      } else if (limited.source_ended()) {
        return;  // the client hung up mid-head: nobody to answer
      }
      if (refused) {
        connections_.disarm(live);
        send_and_close(session, *refused, !connections_.fired(live));
        return;
      }

      auto body = body_stream(head, session);
      Poco::Net::HTTPServerResponseImpl response(session);
      response.setDate(Poco::Timestamp());
      response.setVersion(head.getVersion());
      response.setKeepAlive(params_->getKeepAlive() && head.getKeepAlive() &&
                            session.canKeepAlive());
      // Invite the body only when it may be read (Poco's server always does).
      const auto length = content_length_of(head);
      if (head.getExpectContinue() &&
          (!length || *length <= ingress_.options().max_body_bytes)) {
        response.sendContinue();
      }
      HeadView view(head, remote_);
      ConnectionDeadline deadline(connections_, live);
      HttpReply reply = ingress_.handle(view, *body, &deadline);
      const bool in_time = deadline.stop();
      if (!in_time) reply.close = true;
      write(response, reply, head.getMethod() == Poco::Net::HTTPRequest::HTTP_HEAD);
      if (reply.close) {
        if (in_time && refused_unread(reply)) linger();
        return;
      }
      session.setKeepAlive(response.getKeepAlive());
    }
  }

  static void write(Poco::Net::HTTPServerResponseImpl& response, const HttpReply& reply,
                    bool head_only) {
    response.setStatusAndReason(static_cast<Poco::Net::HTTPResponse::HTTPStatus>(reply.status));
    for (const auto& [k, v] : reply.headers) response.set(k, v);
    response.setContentType(reply.content_type);
    response.setContentLength(static_cast<std::streamsize>(reply.body.size()));
    if (reply.close) response.setKeepAlive(false);
    std::ostream& out = response.send();
    if (!head_only) out.write(reply.body.data(), static_cast<std::streamsize>(reply.body.size()));
    out.flush();
  }

  void send_and_close(Poco::Net::HTTPServerSession& session, const HttpReply& reply,
                      bool linger_after) {
    Poco::Net::HTTPServerResponseImpl response(session);
    response.setDate(Poco::Timestamp());
    response.setVersion(Poco::Net::HTTPMessage::HTTP_1_1);
    write(response, reply, false);
    if (linger_after) linger();
  }

  // Refused for its size before all of it was read: the client is likely
  // still sending.
  static bool refused_unread(const HttpReply& reply) {
    return reply.status == 413 || reply.status == 414 || reply.status == 431;
  }

  // After refusing a request it did not read, the server stops sending and
  // reads (and drops) what is still coming for a moment before closing:
  // closing with unread bytes makes the kernel send a reset, which can
  // destroy the answer before the client has read it. Bounded in time and
  // bytes, so a client cannot hold the thread with it.
  void linger() {
    try {
      auto& socket = this->socket();
      socket.shutdownSend();
      const auto until = SteadyClock::now() + std::min<std::chrono::milliseconds>(
                                                  options_.read_timeout, std::chrono::seconds(2));
      socket.setReceiveTimeout(Poco::Timespan(0, 200'000));
      char sink[16384];
      std::size_t dropped = 0;
      while (dropped < (1u << 20) && SteadyClock::now() < until) {
        const int n = socket.receiveBytes(sink, sizeof(sink));
        if (n <= 0) break;
        dropped += static_cast<std::size_t>(n);
      }
    } catch (...) {
      // A timeout or a reset: either way, done.
    }
  }

  Ingress& ingress_;
  IngressServer::Connections& connections_;
  Poco::AutoPtr<Poco::Net::HTTPServerParams> params_;
  const ServerOptions& options_;
  spdlog::logger& log_;
  std::string remote_ = "?";
};

class IngressConnectionFactory final : public Poco::Net::TCPServerConnectionFactory {
 public:
  IngressConnectionFactory(Ingress& ingress, std::shared_ptr<IngressServer::Connections> connections,
                           Poco::AutoPtr<Poco::Net::HTTPServerParams> params, ServerOptions options,
                           std::shared_ptr<spdlog::logger> log)
      : ingress_(ingress),
        connections_(std::move(connections)),
        params_(std::move(params)),
        options_(options),
        log_(std::move(log)) {}
  Poco::Net::TCPServerConnection* createConnection(const Poco::Net::StreamSocket& socket) override {
    return new IngressConnection(socket, ingress_, *connections_, params_, options_, *log_);
  }

 private:
  Ingress& ingress_;
  std::shared_ptr<IngressServer::Connections> connections_;
  Poco::AutoPtr<Poco::Net::HTTPServerParams> params_;
  ServerOptions options_;
  std::shared_ptr<spdlog::logger> log_;
};

// Reads a whole (small) file; the error names the path and the reason.
std::string read_pem(const std::string& key, const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    throw std::runtime_error("[server] " + key + " \"" + path + "\": cannot read it: " +
                             std::strerror(errno));
  }
  std::ostringstream text;
  text << in.rdbuf();
  if (in.bad()) {
    throw std::runtime_error("[server] " + key + " \"" + path + "\": cannot read it: " +
                             std::strerror(errno));
  }
  return text.str();
}

}  // namespace

IngressServer::IngressServer(Ingress& ingress, Poco::ThreadPool& threads,
                             const Poco::Net::ServerSocket& socket, const ServerOptions& options,
                             std::shared_ptr<spdlog::logger> log)
    : connections_(std::make_shared<Connections>()) {
  Poco::AutoPtr<Poco::Net::HTTPServerParams> params(new Poco::Net::HTTPServerParams);
  params->setMaxThreads(options.threads);
  params->setMaxQueued(options.max_queued);
  params->setKeepAlive(true);
  params->setKeepAliveTimeout(Poco::Timespan(
      std::chrono::duration_cast<std::chrono::microseconds>(options.keep_alive_timeout).count()));
  params->setMaxKeepAliveRequests(options.max_keep_alive_requests);
  // Per read (and the first request's wait); the deadline covers the whole.
  params->setTimeout(Poco::Timespan(
      std::chrono::duration_cast<std::chrono::microseconds>(options.read_timeout).count()));
  params->setServerName("slack-proxy");
  bound_idle_thread_wait(*params);
  server_ = std::make_unique<Poco::Net::TCPServer>(
      new IngressConnectionFactory(ingress, connections_, params, options, std::move(log)), threads,
      socket, params);
}

IngressServer::~IngressServer() {
  // The pool's threads are joined by its owner; stopping here keeps any
  // connection from starting after the ingress is gone.
  stop_all();
}

void IngressServer::start() { server_->start(); }

void IngressServer::stop() { server_->stop(); }

void IngressServer::stop_all() {
  server_->stop();
  connections_->stop_all();
}

Poco::Net::Context::Ptr make_tls_server_context(const std::string& cert, const std::string& key,
                                                const std::string& min_version) {
  // Read first, so that a missing or unreadable file is reported as such
  // (OpenSSL's own error names neither the file nor the reason).
  const std::string cert_text = read_pem("tls_cert", cert);
  const std::string key_text = read_pem("tls_key", key);
  if (cert_text.find("-----BEGIN CERTIFICATE-----") == std::string::npos)
    throw std::runtime_error("[server] tls_cert \"" + cert + "\": no PEM certificate in it");
  if (key_text.find("PRIVATE KEY-----") == std::string::npos)
    throw std::runtime_error("[server] tls_key \"" + key + "\": no PEM private key in it");

  static std::once_flag ssl;
  std::call_once(ssl, [] { Poco::Net::initializeSSL(); });
  Poco::Net::Context::Params params;
  params.privateKeyFile = key;
  params.certificateFile = cert;
  params.verificationMode = Poco::Net::Context::VERIFY_NONE;  // no client certificates
  params.loadDefaultCAs = false;
  // TLS 1.2 suites with forward secrecy and AEAD only (1.3's are all fine).
  params.cipherList = "ECDHE+AESGCM:ECDHE+CHACHA20:DHE+AESGCM:DHE+CHACHA20:!aNULL:!MD5:!DSS";
  Poco::Net::Context::Ptr context;
  try {
    context = new Poco::Net::Context(Poco::Net::Context::TLS_SERVER_USE, params);
  } catch (const Poco::Exception& e) {
    throw std::runtime_error("[server] tls_cert \"" + cert + "\" / tls_key \"" + key +
                             "\": cannot be used: " + e.displayText());
  }
  if (SSL_CTX_check_private_key(context->sslContext()) != 1) {
    throw std::runtime_error("[server] tls_key \"" + key +
                             "\" is not the private key of the certificate in tls_cert \"" + cert +
                             "\"");
  }
  context->requireMinimumProtocol(min_version == "1.3" ? Poco::Net::Context::PROTO_TLSV1_3
                                                       : Poco::Net::Context::PROTO_TLSV1_2);
  context->enableSessionCache(false);
  return context;
}

}  // namespace slack_proxy

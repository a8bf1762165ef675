#include "ingress.h"

#include "json_text.h"

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

// {"ok":false,"error":...,"detail":...}: Slack's shape, always valid JSON.
std::string error_body(std::string_view error, std::string_view detail) {
  std::string body = "{\"ok\":false,\"error\":";
  append_json_string(body, error);
  body += ",\"detail\":";
  append_json_string(body, detail);
  body += "}";
  return body;
}

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
    r.body = error_body(error, detail);
  }
  return r;
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
  HttpReply r;
  r.status = status;
  r.body = error_body(error, detail);
  r.close = true;
  return r;
}

HttpReply Ingress::handle(const sdk::RequestView& request, std::istream& body,
                          ReadDeadline* deadline) noexcept {
  const Pipeline* pipeline = nullptr;
  try {
    const std::string_view path = path_only(request.path());
    if (path == "/health") {
      HttpReply r;
      // It reads no body: one sent anyway must not be read as the next
      // request (that is how requests are smuggled past a front proxy).
      const auto length = request.header("Content-Length");
      r.close = request.header("Transfer-Encoding").has_value() ||
                (length.has_value() && *length != "0");
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
    HttpReply reply = handle_post(*pipeline, request, body, chunked, deadline);
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
    if (deadline != nullptr && !deadline->stop()) {
      // Cut off mid-body (over TLS that surfaces as an error, not a short read).
      auto r = reject(request, pipeline, 408, "request_timeout",
                      "the request did not arrive within read_timeout");
      r.close = true;
      return r;
    }
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
                               std::istream& body, bool chunked, ReadDeadline* deadline) {
  std::string caller;  // the authenticated identity, once known
  auto refuse = [&](int status, std::string_view error, const std::string& detail) {
    if (!caller.empty()) metrics_.client_request(caller, error);
    return reject(request, &pipeline, status, error, detail);
  };
  // The body was not (fully) read: the connection cannot carry another request.
  auto refuse_and_close = [&](int status, std::string_view error, const std::string& detail) {
    auto r = refuse(status, error, detail);
    r.close = true;
    return r;
  };

  if (pipeline.authenticator) {
    sdk::AuthResult auth = pipeline.authenticator->authenticate(request);
    if (!auth.allowed) {
      auto r = refuse_and_close(auth.status, auth.error, "authentication failed");
      if (auth.status == 401)  // RFC 9110: a 401 names the scheme it wants
        r.headers.emplace_back("WWW-Authenticate", R"(Bearer realm="slack-proxy")");
      return r;
    }
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
  // The connection shuts a late request's socket for reading, which ends
  // the body early: whatever was read is not the whole request.
  auto late = [&] { return deadline != nullptr && !deadline->stop(); };
  constexpr std::string_view kLate = "the request did not arrive within read_timeout";
  std::string raw;
  if (content_length) {
    raw.resize(static_cast<std::size_t>(*content_length));
    body.read(raw.data(), static_cast<std::streamsize>(raw.size()));
    if (late()) return refuse_and_close(408, "request_timeout", std::string(kLate));
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
      // No more than the limit needs: istream::read waits for all it asks
      // for, and a client that stops past the limit must still get its 413.
      body.read(buf, static_cast<std::streamsize>(std::min(sizeof(buf), limit + 1 - raw.size())));
      raw.append(buf, static_cast<std::size_t>(body.gcount()));
    }
    if (late()) return refuse_and_close(408, "request_timeout", std::string(kLate));
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
  decode_options.max_json_depth = options_.max_json_depth;
  auto decoded = decode_chat_message(std::move(raw), format, decode_options);
  if (auto* error = std::get_if<DecodeError>(&decoded))
    return refuse(error->status, error->error, error->detail);
  ChatMessage& chat = std::get<ChatMessage>(decoded);

  sdk::Message m;
  if (pipeline.caller_token) {
    // Slack's own precedence: the Authorization header, then the body's
    // field. The scheme is case-insensitive (RFC 9110); an empty one says nothing.
    // With an authenticator, Authorization holds the key for this proxy, which
    // must never travel on to Slack: the Slack token then comes from the body.
    std::string token = chat.caller_token;
    if (auto auth = request.header("Authorization");
        !pipeline.authenticator && auth && auth->size() > 7 &&
        Poco::icompare(auth->substr(0, 7), "bearer ") == 0) {
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
  m.caller = caller;  // a copy: refusals below still count under the caller's name
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
  const std::string m_caller = m.caller;
  const Queue::PushResult pushed = queue_.push(std::move(m), push_options);
  switch (pushed.status) {
    case Queue::PushStatus::Accepted:
    case Queue::PushStatus::Duplicate: {
      if (pushed.status == Queue::PushStatus::Accepted) {
        metrics_.received(original);
        log_->debug("accepted message {} for {}{}{}", id, original, m_caller.empty() ? "" : " from ",
                    m_caller);
      } else {
        // Already queued (or delivered) within the dedup window: the caller
        // is told "done", exactly as the first time.
        metrics_.duplicate(original);
        log_->info("duplicate request for {} within the dedup window; not queued again", original);
      }
      HttpReply r;
      if (!m_caller.empty())
        metrics_.client_request(m_caller, pushed.status == Queue::PushStatus::Accepted
                                              ? std::string_view("accepted")
                                              : std::string_view("duplicate"));
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

// The ingress's event-driven HTTP/1.1 server (see http_server.h).
//
// Each event thread runs its own io_context; the acceptor lives on the first
// and deals accepted sockets to the threads in turn, so a connection's every
// handler runs on one thread and its state needs no lock. A handler may
// answer from another thread (the queue's writer after a group commit): what
// it hands over is posted to the connection's thread, which builds the reply
// there (ReplySink) and writes it, serialized into one buffer.
//
// A connection moves through these phases, each with at most one timer:
//   idle      waiting for a request's first byte: keep_alive_timeout (the
//             first request: read_timeout); on expiry the connection closes
//   reading   head then body, read_timeout from the first byte: 408
//   waiting   the handler has the body; no timer (the queue answers)
//   writing   the reply: read_timeout, then the connection is dropped
//   lingering after refusing an unread body, reading and dropping what
//             still comes for a moment, so the refusal is not destroyed by
//             a reset
#include "transport/http_server.h"

#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <ctime>
#include <future>
#include <limits>
#include <list>
#include <mutex>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include <boost/asio/dispatch.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/ssl/stream.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/stream_traits.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/status.hpp>
#include <openssl/ssl.h>

#include "thread_name.h"
#include "transport/request_head.h"

namespace slack_proxy {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;
using error_code = boost::system::error_code;
using SteadyClock = std::chrono::steady_clock;

using Parser = http::request_parser<http::string_body>;

// The RFC 9110 Date of now, formatted once a second per thread.
const std::string& http_date() {
  thread_local std::time_t cached_at = 0;
  thread_local std::string cached;
  const std::time_t now = std::time(nullptr);
  if (now != cached_at || cached.empty()) {
    std::tm tm{};
    gmtime_r(&now, &tm);
    char buf[64];
    const std::size_t n = std::strftime(buf, sizeof(buf), "%a, %d %b %Y %H:%M:%S GMT", &tm);
    cached.assign(buf, n);
    cached_at = now;
  }
  return cached;
}

// The reply as it goes on the wire, into `out` (its capacity reused): one
// buffer and one write, where Beast's serializer would allocate per field.
// Header names and values are the handler's own; one with a line break
// would split the head, so it is left out rather than sent.
void serialize_reply(const HttpReply& reply, unsigned version, bool with_body, std::string& out) {
  const auto safe = [](std::string_view text) {
    return text.find_first_of("\r\n") == std::string_view::npos;
  };
  out.clear();
  out += version == 10 ? "HTTP/1.0 " : "HTTP/1.1 ";
  out += std::to_string(reply.status);
  out += ' ';
  const auto reason = http::obsolete_reason(static_cast<http::status>(reply.status));
  out.append(reason.data(), reason.size());
  out += "\r\nDate: ";
  out += http_date();
  for (const auto& [name, value] : reply.headers) {
    if (!safe(name) || !safe(value)) continue;
    out.append("\r\n").append(name).append(": ").append(value);
  }
  if (safe(reply.content_type)) out.append("\r\nContent-Type: ").append(reply.content_type);
  out += "\r\nContent-Length: ";
  out += std::to_string(reply.body.size());
  // HTTP/1.1 keeps a connection unless told; HTTP/1.0 closes it unless told.
  if (version >= 11 && reply.close) out += "\r\nConnection: close";
  if (version < 11 && !reply.close) out += "\r\nConnection: keep-alive";
  out += "\r\n\r\n";
  if (with_body) out += reply.body;
}

// What every connection of one server shares.
struct ServerState {
  ServerState(HttpHandler& h, const ServerOptions& o, std::shared_ptr<spdlog::logger> l)
      : handler(h), options(o), log(std::move(l)) {}

  HttpHandler& handler;
  const ServerOptions options;
  const std::shared_ptr<spdlog::logger> log;
  std::atomic<int> open{0};              // connections counted against max_connections
  std::atomic<bool> stopping{false};     // stop_all: no more requests
  // Replies the handler still owes (finish() called, reply not yet come):
  // stop_all waits for them, so no callback outlives the server. Counted
  // without a lock (two event threads would contend on it per request);
  // the lock is taken only to wake stop_all when the count reaches zero.
  std::atomic<int> owed{0};
  std::mutex owed_mutex;
  std::condition_variable owed_cv;

  void owe() { owed.fetch_add(1, std::memory_order_relaxed); }
  void paid() {
    if (owed.fetch_sub(1, std::memory_order_acq_rel) != 1 || !stopping.load()) return;
    std::lock_guard lock(owed_mutex);
    owed_cv.notify_all();
  }
};

// A connection, as its event thread's list of them sees it.
class ConnectionBase {
 public:
  virtual ~ConnectionBase() = default;
  virtual void abort() = 0;  // on the connection's thread
};

// One event thread: its io_context and the connections it serves.
struct EventLoop {
  asio::io_context io{1};
  std::optional<asio::executor_work_guard<asio::io_context::executor_type>> work{
      asio::make_work_guard(io)};
  std::list<std::weak_ptr<ConnectionBase>> connections;  // touched on this thread only
  std::thread thread;
};

using ConnectionSlot = std::list<std::weak_ptr<ConnectionBase>>::iterator;

template <class Stream>
class Connection final : public ConnectionBase,
                         public std::enable_shared_from_this<Connection<Stream>> {
 public:
  // `counted`: whether it holds one of max_connections (a refused one does
  // not).
  Connection(Stream stream, ServerState& server, EventLoop& loop, bool counted)
      : stream_(std::move(stream)),
        server_(server),
        loop_(loop),
        timer_(loop.io),
        counted_(counted) {}

  ~Connection() override {
    if (counted_) server_.open.fetch_sub(1, std::memory_order_relaxed);
  }

  void start() {
    if (server_.stopping.load(std::memory_order_relaxed)) return;  // socket closes with us
    error_code ec;
    const auto peer = socket().remote_endpoint(ec);
    if (!ec) {
      std::ostringstream text;
      text << peer;
      remote_ = text.str();
    }
    socket().set_option(tcp::no_delay(true), ec);
    loop_.connections.push_front(this->weak_from_this());
    slot_ = loop_.connections.begin();
    registered_ = true;
    arm(server_.options.read_timeout);
    if constexpr (std::is_same_v<Stream, tcp::socket>) {
      begin();
    } else {
      stream_.async_handshake(asio::ssl::stream_base::server,
                              [self = this->shared_from_this()](const error_code& e) {
                                self->on_handshake(e);
                              });
    }
  }

  void abort() override { close(); }

 private:
  enum class Phase { Idle, Reading, Waiting, Writing, Lingering, Closed };

  tcp::socket& socket() { return beast::get_lowest_layer(stream_); }

  void on_handshake(const error_code& ec) {
    if (ec) {
      // A plain-HTTP client on a TLS port, a scanner, a timeout: nobody to
      // answer.
      server_.log->debug("connection from {} ended in the TLS handshake: {}", remote_,
                         ec.message());
      return close();
    }
    begin();
  }

  // A new connection: refused when over max_connections, else its first
  // request (within read_timeout, already armed).
  void begin() {
    if (!counted_) return refuse_connection();
    wait_for_request(server_.options.read_timeout);
  }

  void refuse_connection() {
    HttpReply reply = server_.handler.refuse_head(
        remote_, 503, "too_many_connections",
        "the proxy has " + std::to_string(server_.options.max_connections) +
            " connections open (max_connections); retry later");
    reply.headers.emplace_back("Retry-After", std::to_string(server_.options.retry_after.count()));
    reply.close = true;
    linger_after_ = true;  // the client may have sent a request already
    write(std::move(reply), http::verb::unknown, 11);
  }

  // ------------------------------------------------------------- reading --

  void wait_for_request(std::chrono::milliseconds idle_limit) {
    if (server_.stopping.load(std::memory_order_relaxed)) return close();
    phase_ = Phase::Idle;
    if (buffer_.size() > 0) return read_head();  // pipelined: already here
    arm(idle_limit);
    // A read, not a wait for readability: Asio re-arms epoll (one more
    // system call) for every wait, while a read that finds nothing parks in
    // the reactor as it is. An idle connection keeps at most
    // kIdleBufferBytes of read buffer, and a new one kFirstReadBytes.
    if (buffer_.capacity() > kIdleBufferBytes) buffer_.shrink_to_fit();
    stream_.async_read_some(
        buffer_.prepare(std::max(buffer_.capacity(), kFirstReadBytes)),
        [self = this->shared_from_this()](const error_code& ec, std::size_t n) {
          if (ec || self->phase_ != Phase::Idle) return self->close();
          self->buffer_.commit(n);
          self->read_head();
        });
  }

  void read_head() {
    phase_ = Phase::Reading;
    arm(server_.options.read_timeout);  // from the request's first byte
    parser_.emplace();
    parser_->header_limit(static_cast<std::uint32_t>(
        std::min<std::size_t>(server_.options.max_header_bytes, UINT32_MAX)));
    // Set once the handler says how much. Not boost::none: Beast 1.74
    // compares a Content-Length with an empty limit as over it.
    parser_->body_limit(std::numeric_limits<std::uint64_t>::max());
    http::async_read_header(
        stream_, buffer_, *parser_,
        [self = this->shared_from_this()](const error_code& ec, std::size_t) {
          self->on_head(ec);
        });
  }

  void on_head(const error_code& ec) {
    if (phase_ != Phase::Reading) return;  // closed meanwhile
    if (timed_out_) {
      return refuse_head(408, "request_timeout",
                         "the request head did not arrive within read_timeout");
    }
    if (ec) {
      if (is_parse_error(ec)) {
        const std::string_view buffered(static_cast<const char*>(buffer_.data().data()),
                                        buffer_.size());
        const HeadError e =
            head_error(ec, parser_->get().base(), buffered, server_.options.max_header_bytes);
        return refuse_head(e.status, e.error, e.detail);
      }
      // The client hung up (before a request, or mid-head) or reset.
      return close();
    }
    const RequestHead& head = parser_->get().base();
    if (auto bad = check_head(head, server_.options.max_header_fields))
      return refuse_head(bad->status, bad->error, bad->detail);
    view_.emplace(head, remote_);
    HttpHandler::Opened opened = server_.handler.open(*view_);
    if (opened.reply) return answer(std::move(*opened.reply));
    exchange_ = std::move(opened.exchange);
    read_body();
  }

  void read_body() {
    const std::size_t limit = exchange_->max_body_bytes();
    if (const auto length = parser_->content_length(); length && *length > limit) {
      // Refused before any of it is read.
      return answer(exchange_->refuse_body(
          413, "request_too_large",
          "body is " + std::to_string(*length) + " bytes; the limit is " + std::to_string(limit)));
    }
    parser_->body_limit(limit);
    if (parser_->is_done()) return finish();
    if (beast::iequals(parser_->get()[http::field::expect], "100-continue") &&
        parser_->get().version() >= 11) {
      // Invite the body only now that the head passed every check.
      asio::async_write(stream_, asio::buffer(kContinue),
                        [self = this->shared_from_this()](const error_code& ec, std::size_t) {
                          if (ec || self->phase_ != Phase::Reading) return self->close();
                          self->read_rest();
                        });
      return;
    }
    read_rest();
  }

  void read_rest() {
    http::async_read(stream_, buffer_, *parser_,
                     [self = this->shared_from_this()](const error_code& ec, std::size_t) {
                       self->on_body(ec);
                     });
  }

  void on_body(const error_code& ec) {
    if (phase_ != Phase::Reading) return;
    if (timed_out_) {
      return answer(exchange_->refuse_body(408, "request_timeout",
                                           "the request did not arrive within read_timeout"));
    }
    if (ec == http::error::body_limit) {
      return answer(exchange_->refuse_body(
          413, "request_too_large",
          "body exceeds the limit of " + std::to_string(exchange_->max_body_bytes()) + " bytes"));
    }
    if (ec == http::error::partial_message) {
      // The client stopped sending (shut its side) before the body was whole.
      return answer(exchange_->refuse_body(408, "request_timeout",
                                           "the request ended before its body was complete"));
    }
    if (ec && is_parse_error(ec)) {
      return answer(
          exchange_->refuse_body(400, "invalid_request", "the chunked body is malformed"));
    }
    if (ec) return close();
    finish();
  }

  void finish() {
    phase_ = Phase::Waiting;
    disarm();  // the queue answers; no deadline while it does
    server_.owe();
    auto self = this->shared_from_this();
    exchange_->finish(std::move(parser_->get().body()),
                      ReplySink::deferred([self](ReplySink::Builder build) {
                        // Inline when the queue answered at once on this thread.
                        asio::dispatch(self->loop_.io, [self, build = std::move(build)] {
                          self->server_.paid();
                          if (self->phase_ != Phase::Waiting) return;  // aborted meanwhile
                          self->answer(build());
                        });
                      }));
  }

  // ------------------------------------------------------------- writing --

  void refuse_head(int status, std::string_view error, const std::string& detail) {
    answer(server_.handler.refuse_head(remote_, status, error, detail));
  }

  // The reply to the request being read (parser_ holds its head, or what
  // was read of it).
  void answer(HttpReply reply) {
    const auto& head = parser_->get();
    const bool complete = parser_->is_header_done();
    const http::verb method = complete ? head.method() : http::verb::unknown;
    const unsigned version = complete ? head.version() : 11;
    if (!complete) reply.close = true;  // where this request ends is unknown
    const bool unread = complete && !parser_->is_done();
    if (unread && !discardable()) reply.close = true;
    if (complete && !head.keep_alive()) reply.close = true;
    if (++served_ >= server_.options.max_keep_alive_requests) reply.close = true;
    if (server_.stopping.load(std::memory_order_relaxed)) reply.close = true;
    discard_body_ = unread && !reply.close;
    // Closing with some of the request still unread: the client may still
    // be sending it. Not after read_timeout: that client is cut off.
    linger_after_ = reply.close && !parser_->is_done() && !timed_out_;
    write(std::move(reply), method, version);
  }

  // A refused request's unread body may be read past, so that the
  // connection (and requests pipelined behind it) live on: only when it is
  // small, and not when the client waits for 100 Continue (it may never
  // send the body, and what it sends next would be taken for it).
  bool discardable() const {
    const auto& head = parser_->get();
    if (beast::iequals(head[http::field::expect], "100-continue")) return false;
    const auto length = parser_->content_length();
    return length ? *length <= kMaxDiscardBytes : parser_->chunked();
  }

  void discard_body() {
    phase_ = Phase::Reading;
    arm(server_.options.read_timeout);
    parser_->body_limit(kMaxDiscardBytes);
    http::async_read(stream_, buffer_, *parser_,
                     [self = this->shared_from_this()](const error_code& ec, std::size_t) {
                       if (ec || self->phase_ != Phase::Reading) return self->close();
                       self->next_request();
                     });
  }

  void write(HttpReply reply, http::verb method, unsigned version) {
    phase_ = Phase::Writing;
    arm(server_.options.read_timeout);  // a client that does not read its reply
    close_after_ = reply.close;
    // A HEAD reply announces the body's length without sending it.
    serialize_reply(reply, version, method != http::verb::head, out_);
    asio::async_write(stream_, asio::buffer(out_),
                      [self = this->shared_from_this()](const error_code& ec, std::size_t) {
                        self->on_written(ec);
                      });
  }

  void on_written(const error_code& ec) {
    if (phase_ != Phase::Writing) return;
    // A reply's few hundred bytes are kept for the next one; a large one
    // is not kept by an idle connection.
    if (out_.capacity() > kIdleBufferBytes) std::string().swap(out_);
    if (ec || timed_out_) return close();
    if (close_after_) return linger_after_ ? linger() : close();
    if (discard_body_) return discard_body();
    next_request();
  }

  void next_request() {
    exchange_.reset();
    view_.reset();
    parser_.reset();
    discard_body_ = false;
    wait_for_request(server_.options.keep_alive_timeout);
  }

  // Refused a request it did not read: the client is likely still sending.
  // Closing with unread bytes makes the kernel send a reset, which can
  // destroy the answer before the client reads it; so stop sending, read
  // and drop what still comes for a moment (bounded in time and bytes),
  // then close.
  void linger() {
    phase_ = Phase::Lingering;
    exchange_.reset();
    view_.reset();
    error_code ignored;
    if constexpr (std::is_same_v<Stream, tcp::socket>) {
      socket().shutdown(tcp::socket::shutdown_send, ignored);
    }
    arm(std::min<std::chrono::milliseconds>(server_.options.read_timeout,
                                            std::chrono::seconds(2)));
    buffer_.consume(buffer_.size());
    drain();
  }

  void drain() {
    stream_.async_read_some(buffer_.prepare(kReadChunkBytes),
                            [self = this->shared_from_this()](const error_code& ec,
                                                              std::size_t n) {
                              if (ec || self->phase_ != Phase::Lingering) return self->close();
                              self->dropped_ += n;
                              self->buffer_.consume(self->buffer_.size());
                              if (self->dropped_ >= kMaxLingerBytes) return self->close();
                              self->drain();
                            });
  }

  // --------------------------------------------------------------- timer --

  // The connection's one deadline. Arming stores a time; the timer is only
  // re-set when the new deadline is earlier than its pending wait (idle to
  // reading, once per request). A later one, or none, is found when the
  // wait ends and re-checks: so a request costs one timer operation, not
  // one per phase.
  void arm(std::chrono::milliseconds limit) {
    timed_out_ = false;
    deadline_ = SteadyClock::now() + limit;
    schedule();
  }

  void disarm() { deadline_ = SteadyClock::time_point::max(); }

  void schedule() {
    if (timer_waiting_ && timer_.expiry() <= deadline_) return;  // wakes in time, re-checks
    ++timer_generation_;
    timer_waiting_ = true;
    timer_.expires_at(deadline_);  // cancels a later pending wait, now superseded
    timer_.async_wait([self = this->shared_from_this(),
                       generation = timer_generation_](const error_code&) {
      self->on_timer(generation);
    });
  }

  void on_timer(std::uint64_t generation) {
    if (generation != timer_generation_) return;  // superseded by an earlier deadline
    timer_waiting_ = false;
    if (phase_ == Phase::Closed || deadline_ == SteadyClock::time_point::max()) return;
    if (deadline_ > SteadyClock::now()) return schedule();
    on_deadline();
  }

  void on_deadline() {
    switch (phase_) {
      case Phase::Reading:
        // Cancels the read; its handler answers 408.
        timed_out_ = true;
        cancel_io();
        return;
      case Phase::Idle:
      case Phase::Writing:
      case Phase::Lingering:
        timed_out_ = true;
        return close();
      case Phase::Waiting:
      case Phase::Closed:
        return;
    }
  }

  void cancel_io() {
    error_code ignored;
    socket().cancel(ignored);
  }

  void close() {
    if (phase_ == Phase::Closed) return;
    phase_ = Phase::Closed;
    ++timer_generation_;
    timer_.cancel();
    error_code ignored;
    socket().shutdown(tcp::socket::shutdown_both, ignored);
    socket().close(ignored);
    if (registered_) {
      loop_.connections.erase(slot_);
      registered_ = false;
    }
  }

  // Beast's own errors other than "the client went away".
  static bool is_parse_error(const error_code& ec) {
    return ec.category() == http::make_error_code(http::error::end_of_stream).category() &&
           ec != http::error::end_of_stream && ec != http::error::partial_message;
  }

  static constexpr std::size_t kIdleBufferBytes = 4096;
  static constexpr std::size_t kFirstReadBytes = 1024;
  static constexpr std::size_t kReadChunkBytes = 4096;
  static constexpr std::size_t kMaxLingerBytes = 1 << 20;
  static constexpr std::size_t kMaxDiscardBytes = 64 << 10;
  static constexpr std::string_view kContinue = "HTTP/1.1 100 Continue\r\n\r\n";

  Stream stream_;
  ServerState& server_;
  EventLoop& loop_;
  asio::steady_timer timer_;
  const bool counted_;
  std::string remote_ = "?";
  ConnectionSlot slot_;
  bool registered_ = false;

  Phase phase_ = Phase::Idle;
  SteadyClock::time_point deadline_ = SteadyClock::time_point::max();
  bool timer_waiting_ = false;
  std::uint64_t timer_generation_ = 0;
  bool timed_out_ = false;
  int served_ = 0;
  beast::flat_buffer buffer_;
  std::optional<Parser> parser_;
  std::optional<HeadView> view_;
  std::unique_ptr<HttpExchange> exchange_;
  std::string out_;  // the reply being written
  bool close_after_ = false;
  bool linger_after_ = false;
  bool discard_body_ = false;
  std::size_t dropped_ = 0;
};

}  // namespace

std::size_t raise_open_files_limit(std::size_t needed) {
  rlimit limit{};
  if (getrlimit(RLIMIT_NOFILE, &limit) != 0) return 0;
  if (limit.rlim_cur != RLIM_INFINITY && limit.rlim_cur < needed) {
    rlimit raised = limit;
    raised.rlim_cur =
        limit.rlim_max == RLIM_INFINITY ? needed : std::min<rlim_t>(needed, limit.rlim_max);
    if (setrlimit(RLIMIT_NOFILE, &raised) == 0) limit = raised;
  }
  return limit.rlim_cur == RLIM_INFINITY ? SIZE_MAX : static_cast<std::size_t>(limit.rlim_cur);
}

struct IngressServer::Impl {
  Impl(HttpHandler& handler, const Poco::Net::ServerSocket& socket, Poco::Net::Context::Ptr tls,
       const ServerOptions& options, std::shared_ptr<spdlog::logger> log)
      : state(handler, options, std::move(log)),
        loops(static_cast<std::size_t>(std::max(1, options.threads))),
        acceptor(loops.front().io),
        accept_pause(loops.front().io) {
    const int fd = ::dup(socket.impl()->sockfd());
    if (fd < 0) throw std::runtime_error("cannot duplicate the ingress socket");
    const auto local = socket.address();
    acceptor.assign(local.family() == Poco::Net::SocketAddress::IPv6 ? tcp::v6() : tcp::v4(), fd);
    if (tls) {
      // Asio takes ownership of a reference of Poco's configured context
      // (certificate, key, minimum version, ciphers).
      SSL_CTX* native = tls->sslContext();
      SSL_CTX_up_ref(native);
      tls_context.emplace(native);
      poco_tls = std::move(tls);
    }
  }

  void accept() {
    EventLoop& target = loops[next_loop++ % loops.size()];
    acceptor.async_accept(target.io, [this, &target](const error_code& ec, tcp::socket socket) {
      if (ec == asio::error::operation_aborted || !acceptor.is_open()) return;
      if (!ec) {
        hand_over(target, std::move(socket));
        return accept();
      }
      // Out of descriptors (EMFILE) or a connection reset before accept:
      // log, and accept again after a pause, so that the loop does not spin.
      state.log->warn("ingress accept failed: {}", ec.message());
      accept_pause.expires_after(std::chrono::milliseconds(100));
      accept_pause.async_wait([this](const error_code& e) {
        if (!e) accept();
      });
    });
  }

  void hand_over(EventLoop& loop, tcp::socket socket) {
    const bool counted =
        state.open.fetch_add(1, std::memory_order_relaxed) < state.options.max_connections;
    if (!counted) state.open.fetch_sub(1, std::memory_order_relaxed);
    asio::post(loop.io, [this, &loop, counted, socket = std::move(socket)]() mutable {
      if (tls_context) {
        using Tls = asio::ssl::stream<tcp::socket>;
        std::make_shared<Connection<Tls>>(Tls(std::move(socket), *tls_context), state, loop,
                                          counted)
            ->start();
      } else {
        std::make_shared<Connection<tcp::socket>>(std::move(socket), state, loop, counted)
            ->start();
      }
    });
  }

  static void run(EventLoop& loop, spdlog::logger& log) {
    for (;;) {
      try {
        loop.io.run();
        return;
      } catch (const std::exception& e) {
        // A bug in a handler: one connection's loss, not the process's.
        log.error("ingress event thread: {}", e.what());
      }
    }
  }

  ServerState state;
  std::vector<EventLoop> loops;
  tcp::acceptor acceptor;
  asio::steady_timer accept_pause;
  std::size_t next_loop = 0;  // on the first loop's thread
  Poco::Net::Context::Ptr poco_tls;
  std::optional<asio::ssl::context> tls_context;
  bool started = false;
  bool stopped_all = false;
};

IngressServer::IngressServer(HttpHandler& handler, const Poco::Net::ServerSocket& socket,
                             Poco::Net::Context::Ptr tls, const ServerOptions& options,
                             std::shared_ptr<spdlog::logger> log)
    : impl_(std::make_unique<Impl>(handler, socket, std::move(tls), options, std::move(log))) {}

IngressServer::~IngressServer() { stop_all(); }

void IngressServer::start() {
  if (impl_->started) return;
  impl_->started = true;
  asio::post(impl_->loops.front().io, [impl = impl_.get()] { impl->accept(); });
  for (std::size_t i = 0; i < impl_->loops.size(); ++i) {
    EventLoop& loop = impl_->loops[i];
    loop.thread = std::thread([&loop, i, log = impl_->state.log] {
      name_this_thread("sp-ingress-" + std::to_string(i));
      Impl::run(loop, *log);
    });
  }
}

void IngressServer::stop() {
  auto* impl = impl_.get();
  if (!impl->started) {
    error_code ignored;
    impl->acceptor.close(ignored);
    return;
  }
  std::promise<void> closed;
  asio::post(impl->loops.front().io, [impl, &closed] {
    error_code ignored;
    impl->acceptor.close(ignored);
    impl->accept_pause.cancel();
    closed.set_value();
  });
  closed.get_future().wait();
}

void IngressServer::stop_all() {
  auto* impl = impl_.get();
  if (impl->stopped_all) return;
  impl->stopped_all = true;
  impl->state.stopping.store(true);
  stop();
  if (!impl->started) return;
  for (auto& loop : impl->loops) {
    asio::post(loop.io, [&loop] {
      // close() erases from the list: walk a copy.
      const auto open = loop.connections;
      for (const auto& weak : open)
        if (auto c = weak.lock()) c->abort();
    });
  }
  {
    std::unique_lock lock(impl->state.owed_mutex);
    impl->state.owed_cv.wait(lock, [impl] { return impl->state.owed.load() == 0; });
  }
  for (auto& loop : impl->loops) loop.work.reset();
  for (auto& loop : impl->loops)
    if (loop.thread.joinable()) loop.thread.join();
}

std::size_t IngressServer::open_connections() const {
  return static_cast<std::size_t>(std::max(0, impl_->state.open.load()));
}

}  // namespace slack_proxy

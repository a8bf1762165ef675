// libFuzzer target: raw bytes over loopback TCP through the real ingress
// transport (IngressServer: Boost.Asio connections, Boost.Beast's request
// parser) and the real admission (Ingress) into a MemoryQueue. This is what
// reads a request off a socket in production; fuzz_ingress skips it.
//
// Input: two bytes of options, the split points, then the bytes to send.
//
//   byte 0   bit 0 draining (503 shutting_down), bit 1 pause after each
//            piece so the server reads the pieces apart, bit 2 hold
//            max_connections open first (503 too_many_connections)
//   byte 1   low 4 bits: how many split points follow (modulo 9)
//            bits 4-7 of byte 1 and 3-7 of byte 0 all set: keep the sending
//            side open, so the server must close on its own deadlines (408,
//            keep_alive_timeout); rare, as each such input waits for one
//   n bytes  each a split point, as a fraction (b / 256) of what is sent
//   rest     the bytes sent, in pieces, over one connection
//
// Per input it connects, sends the pieces one by one, shuts its sending
// side (unless told not to), and reads until the server closes, within a
// deadline. Besides "no crash, no leak, no undefined behaviour", in the
// server's threads as in this one, it checks what came back: well-formed
// HTTP/1.1 responses framed by Content-Length, no 500, no 5xx but a 503
// with a reason the input could cause, never more responses than request
// heads sent (plus one refusal), nothing after Connection: close, 100
// Continue only for an Expect: 100-continue, and that the connection ends.
// Every 64 inputs a well-formed POST must still get its 200.
//
// The server is started once (starting one per input would cost more than
// the input) with small limits so that each is quick to reach; every input
// leaves it as it found it: no connection open, the queue empty, not
// draining.
#include <sys/socket.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include <Poco/String.h>
#include <Poco/Exception.h>
#include <Poco/Net/ServerSocket.h>
#include <Poco/Net/SocketAddress.h>
#include <Poco/Net/StreamSocket.h>
#include <Poco/Timespan.h>
#include <prometheus/registry.h>
#include <spdlog/logger.h>
#include <spdlog/sinks/null_sink.h>

#include <slack_proxy/sdk/testing/fakes.h>

#include "fuzz_check.h"
#include "fuzz_key_auth.h"
#include "ingress.h"
#include "metrics.h"
#include "pipeline.h"
#include "queue/memory_queue.h"
#include "transport/http_server.h"

namespace {

using namespace slack_proxy;
using namespace std::chrono_literals;
using SteadyClock = std::chrono::steady_clock;

constexpr std::size_t kMaxSplits = 8;
constexpr int kProbeEvery = 64;
constexpr int kMaxConnections = 2;
// Far above every server deadline (read_timeout 200 ms): only a connection
// the server forgot misses it.
constexpr auto kDeadline = 3s;
// Long enough for an event thread to read the piece on its own, so that the
// parser sees the split; nothing depends on it.
constexpr auto kPieceGap = 300us;

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

// One of each reply style and admission path: the root and Web API style,
// a webhook with a default channel, a bearer key, and delivery with the
// caller's token.
std::vector<std::shared_ptr<Pipeline>> make_pipelines() {
  auto make = [](std::string name, std::vector<std::string> paths) {
    auto p = std::make_shared<Pipeline>();
    p->name = std::move(name);
    p->paths = std::move(paths);
    return p;
  };
  auto api = make("api", {"/", "/api/chat.postMessage"});
  auto webhook = make("webhook", {"/services/*"});
  webhook->webhook_style = true;
  webhook->default_channel = "#fuzz-default";
  auto keyed = make("keyed", {"/keyed/api/chat.postMessage", "/keyed/*"});
  keyed->authenticator = std::make_shared<fuzz::KeyAuthenticator>();
  auto caller = make("caller", {"/caller/api/chat.postMessage", "/caller/*"});
  caller->caller_token = true;
  return {api, webhook, keyed, caller};
}

QueueLimits queue_limits() {
  QueueLimits limits;
  // Below max_keep_alive_requests, so that one connection can fill it.
  limits.max_messages = 4;
  return limits;
}

ServerOptions server_options() {
  ServerOptions o;
  o.threads = 2;
  o.max_connections = kMaxConnections;
  o.read_timeout = 200ms;
  o.keep_alive_timeout = 50ms;
  o.max_keep_alive_requests = 8;
  o.max_header_fields = 32;
  // Above the fixed URI limit (16 KiB), so that 414 is reachable too.
  o.max_header_bytes = 20 << 10;
  return o;
}

class TransportUnderTest {
 public:
  TransportUnderTest()
      : queue_(queue_limits(), clock_),
        metrics_(registry_),
        log_(std::make_shared<spdlog::logger>("fuzz",
                                              std::make_shared<spdlog::sinks::null_sink_mt>())),
        ingress_(queue_, make_pipelines(), metrics_, clock_, log_, ingress_options()) {
    log_->set_level(spdlog::level::trace);  // format every line, as a verbose proxy would
    Poco::Net::ServerSocket socket;
    socket.bind(Poco::Net::SocketAddress("127.0.0.1", 0), /*reuseAddress=*/true,
                /*reusePort=*/false);
    socket.listen(64);
    port_ = socket.address().port();
    server_ = std::make_unique<IngressServer>(ingress_, socket, nullptr, server_options(), log_);
    server_->start();
  }
  ~TransportUnderTest() { server_->stop_all(); }

  std::uint16_t port() const { return port_; }
  void set_draining(bool draining) { ingress_.set_draining(draining); }

  // What an input left behind, gone: the queue emptied (so that queue_full
  // stays a matter of one input), dedup keys aged (a second per input, so
  // the index holds at most dedup_window's worth), not draining.
  void reset() {
    ingress_.set_draining(false);
    for (auto taken = queue_.take(64); !taken.empty(); taken = queue_.take(64))
      for (const auto& m : taken) queue_.ack(m);
    clock_.advance(1s);
  }

  // Waits until the server has let go of every connection its clients
  // closed, so that each input meets max_connections free.
  void expect_no_connections() const {
    const auto deadline = SteadyClock::now() + kDeadline;
    while (server_->open_connections() != 0 && SteadyClock::now() < deadline)
      std::this_thread::sleep_for(100us);
    FUZZ_CHECK(server_->open_connections() == 0,
               "the server lets go of every connection once its client has gone");
  }

 private:
  static IngressOptions ingress_options() {
    IngressOptions o;
    o.max_body_bytes = 8192;  // below -max_len, so 413 is reachable
    return o;
  }

  sdk::testing::FakeClock clock_;
  MemoryQueue queue_;
  prometheus::Registry registry_;
  CoreMetrics metrics_;
  std::shared_ptr<spdlog::logger> log_;
  Ingress ingress_;
  std::uint16_t port_ = 0;
  std::unique_ptr<IngressServer> server_;
};

// Started on the first input, stopped at exit: the event threads must be
// joined before static destructors (spdlog's, Poco's) run under them.
TransportUnderTest& transport() {
  static TransportUnderTest* instance = [] {
    auto* t = new TransportUnderTest();
    std::atexit([] { delete &transport(); });
    return t;
  }();
  return *instance;
}

struct Plan {
  bool draining = false;
  bool pause = false;
  bool fill_connections = false;
  bool half_close = true;
  std::string_view stream;               // every byte to send
  std::vector<std::string_view> pieces;  // the stream, cut at the split points
};

Plan make_plan(const std::uint8_t* data, std::size_t size) {
  Plan plan;
  if (size < 2) return plan;
  const std::uint8_t flags = data[0];
  plan.draining = (flags & 0x01) != 0;
  plan.pause = (flags & 0x02) != 0;
  plan.fill_connections = (flags & 0x04) != 0;
  plan.half_close = (flags & 0xF8) != 0xF8 || (data[1] & 0xF0) != 0xF0;
  const std::size_t splits = std::min<std::size_t>((data[1] & 0x0F) % (kMaxSplits + 1), size - 2);
  const std::uint8_t* split = data + 2;
  plan.stream = std::string_view(reinterpret_cast<const char*>(split + splits), size - 2 - splits);

  std::vector<std::size_t> cuts{0, plan.stream.size()};
  for (std::size_t i = 0; i < splits; ++i) cuts.push_back(plan.stream.size() * split[i] / 256);
  std::sort(cuts.begin(), cuts.end());
  for (std::size_t i = 1; i < cuts.size(); ++i)
    if (cuts[i] > cuts[i - 1])
      plan.pieces.push_back(plan.stream.substr(cuts[i - 1], cuts[i] - cuts[i - 1]));
  return plan;
}

// Every place where a request head could end, by any parser's leniency (an
// empty line after CRLF or after a bare LF): no more requests than these
// can be answered, whatever the bodies hold.
std::size_t possible_head_ends(std::string_view s) {
  std::size_t n = 0;
  for (std::size_t i = 0; i + 1 < s.size(); ++i) {
    if (s[i] != '\n') continue;
    if (s[i + 1] == '\n' || (s[i + 1] == '\r' && i + 2 < s.size() && s[i + 2] == '\n')) ++n;
  }
  return n;
}

enum class End { Closed, Reset, StillOpen };

struct Received {
  std::string bytes;
  End end = End::StillOpen;
};

Poco::Net::StreamSocket connect(std::uint16_t port) {
  Poco::Net::StreamSocket socket;
  try {
    socket.connect(Poco::Net::SocketAddress("127.0.0.1", port), Poco::Timespan(3, 0));
  } catch (const Poco::Exception&) {
    FUZZ_CHECK(false, "the server accepts a connection on loopback");
  }
  socket.setNoDelay(true);  // each piece leaves as it is, not merged by Nagle
  socket.setSendTimeout(Poco::Timespan(3, 0));
  socket.setReceiveTimeout(Poco::Timespan(0, 50'000));  // reads wake to check the deadline
  return socket;
}

// False once the server has closed or reset the connection: it may stop
// reading whenever it has answered with a close.
bool send_all(Poco::Net::StreamSocket& socket, std::string_view bytes) {
  try {
    while (!bytes.empty()) {
      const int n = socket.sendBytes(bytes.data(), static_cast<int>(bytes.size()), MSG_NOSIGNAL);
      if (n <= 0) return false;
      bytes.remove_prefix(static_cast<std::size_t>(n));
    }
    return true;
  } catch (const Poco::Exception&) {
    return false;
  }
}

Received read_until_closed(Poco::Net::StreamSocket& socket) {
  Received r;
  const auto deadline = SteadyClock::now() + kDeadline;
  char chunk[8192];
  while (true) {
    try {
      const int n = socket.receiveBytes(chunk, sizeof(chunk));
      if (n <= 0) {
        r.end = End::Closed;
        return r;
      }
      r.bytes.append(chunk, static_cast<std::size_t>(n));
    } catch (const Poco::TimeoutException&) {
      if (SteadyClock::now() >= deadline) return r;
    } catch (const Poco::Exception&) {
      // A reset: the server closed with bytes of ours unread (after a
      // refusal that ends the connection, or before reading anything).
      r.end = End::Reset;
      return r;
    }
  }
}

Received exchange(std::uint16_t port, const Plan& plan) {
  // Idle clients holding every allowed connection, accepted before ours.
  std::vector<Poco::Net::StreamSocket> holders;
  if (plan.fill_connections)
    for (int i = 0; i < kMaxConnections; ++i) holders.push_back(connect(port));

  Poco::Net::StreamSocket socket = connect(port);
  for (const auto piece : plan.pieces) {
    if (!send_all(socket, piece)) break;
    if (plan.pause) std::this_thread::sleep_for(kPieceGap);
  }
  if (plan.half_close) {
    try {
      socket.shutdownSend();
    } catch (const Poco::Exception&) {
      // Already reset by the server: what it sent is still to be read.
    }
  }
  return read_until_closed(socket);
}

struct Response {
  int status = 0;
  bool close = false;  // Connection: close
  bool retry_after = false;
  std::optional<std::string> allow;
  bool head_reply = false;  // to HEAD: Content-Length without the body
  std::string body;
};

// What the server may answer in: HTTP/1.1 (RFC 9110 section 6.2: a sender
// MUST NOT send a version it does not conform to), or HTTP/1.0 to a 1.0
// request, as Poco's server did.
bool allowed_version(std::string_view status_line, const Plan& plan) {
  if (status_line.starts_with("HTTP/1.1 ")) return true;
  return status_line.starts_with("HTTP/1.0 ") &&
         plan.stream.find("HTTP/1.0") != std::string_view::npos;
}

// One response head's status line and fields into `r`; its Content-Length.
std::optional<std::size_t> parse_head(std::string_view head, const Plan& plan, Response& r) {
  const std::size_t line_end = head.find("\r\n");
  const std::string_view status_line = head.substr(0, line_end);
  FUZZ_CHECK(status_line.size() >= 12 && allowed_version(status_line, plan) &&
                 std::isdigit(static_cast<unsigned char>(status_line[9])) &&
                 std::isdigit(static_cast<unsigned char>(status_line[10])) &&
                 std::isdigit(static_cast<unsigned char>(status_line[11])) &&
                 (status_line.size() == 12 || status_line[12] == ' '),
             "every response starts \"HTTP/1.1 <3 digits>\" (or 1.0 to a 1.0 request)");
  FUZZ_CHECK(status_line.find_first_of("\r\n") == std::string_view::npos,
             "no bare CR or LF in a status line");
  r.status = std::stoi(std::string(status_line.substr(9, 3)));

  std::optional<std::size_t> length;
  std::string_view rest = line_end == std::string_view::npos ? "" : head.substr(line_end + 2);
  while (!rest.empty()) {
    const std::size_t end = rest.find("\r\n");
    const std::string_view line = rest.substr(0, end);
    rest = end == std::string_view::npos ? "" : rest.substr(end + 2);
    FUZZ_CHECK(line.find_first_of("\r\n") == std::string_view::npos,
               "no bare CR or LF in a response header (no response splitting)");
    const std::size_t colon = line.find(':');
    FUZZ_CHECK(colon != std::string_view::npos && colon > 0,
               "every response header is Name: value");
    const std::string name = Poco::toLower(std::string(line.substr(0, colon)));
    const std::string_view value = trim(line.substr(colon + 1));
    if (name == "content-length") {
      FUZZ_CHECK(!length, "a response has one Content-Length");
      FUZZ_CHECK(!value.empty() && value.size() <= 9 &&
                     std::all_of(value.begin(), value.end(),
                                 [](char c) { return c >= '0' && c <= '9'; }),
                 "Content-Length is a number");
      length = std::stoul(std::string(value));
    } else if (name == "connection") {
      r.close = r.close || Poco::toLower(std::string(value)) == "close";
    } else if (name == "retry-after") {
      r.retry_after = true;
    } else if (name == "allow") {
      r.allow = std::string(value);
    }
  }
  return length;
}

// Whether the response whose head was just read, announcing `length`
// bytes, is a reply to HEAD: one the input could have asked for, with
// nothing after it or the next response (no reply body starts "HTTP/").
bool is_head_reply(std::string_view rest, std::size_t length, const Plan& plan) {
  return length > 0 && plan.stream.find("HEAD") != std::string_view::npos &&
         (rest.empty() || rest.starts_with("HTTP/"));
}

// Splits what the server sent into responses. Only a connection that ended
// in a reset may stop inside a response (the reset may drop bytes the
// server wrote); that partial response is left out.
std::vector<Response> parse_responses(std::string_view bytes, End end, const Plan& plan) {
  std::vector<Response> out;
  while (!bytes.empty()) {
    const std::size_t head_end = bytes.find("\r\n\r\n");
    if (head_end == std::string_view::npos) {
      FUZZ_CHECK(end == End::Reset, "a response head is whole unless the connection was reset");
      break;
    }
    Response r;
    const std::optional<std::size_t> length = parse_head(bytes.substr(0, head_end), plan, r);
    bytes.remove_prefix(head_end + 4);
    if (r.status >= 100 && r.status < 200) {
      FUZZ_CHECK(!length || *length == 0, "an interim response has no body");
      out.push_back(std::move(r));
      continue;
    }
    FUZZ_CHECK(length.has_value(), "every final response has a Content-Length");
    if (is_head_reply(bytes, *length, plan)) {
      r.head_reply = true;
      out.push_back(std::move(r));
      continue;
    }
    if (bytes.size() < *length) {
      FUZZ_CHECK(end == End::Reset, "a response body is whole unless the connection was reset");
      break;
    }
    r.body = std::string(bytes.substr(0, *length));
    bytes.remove_prefix(*length);
    out.push_back(std::move(r));
  }
  return out;
}

bool contains_nocase(std::string_view haystack, std::string_view needle) {
  return Poco::toLower(std::string(haystack)).find(needle) != std::string::npos;
}

// The 503s this input could have caused; any other 5xx is a bug.
bool expected_503(const Response& r, const Plan& plan) {
  if (r.body.find("queue_full") != std::string::npos) return true;
  if (plan.draining && r.body.find("shutting_down") != std::string::npos) return true;
  return plan.fill_connections && r.body.find("too_many_connections") != std::string::npos;
}

void check_responses(const std::vector<Response>& responses, const Plan& plan) {
  std::size_t finals = 0;
  bool closed = false;
  for (const Response& r : responses) {
    FUZZ_CHECK(!closed, "nothing follows a response that said Connection: close");
    if (r.status < 200) {
      FUZZ_CHECK(r.status == 100, "the only interim response is 100 Continue");
      FUZZ_CHECK(contains_nocase(plan.stream, "100-continue"),
                 "100 Continue answers only an Expect: 100-continue");
      continue;
    }
    ++finals;
    FUZZ_CHECK(r.status < 600, "the status is an HTTP status");
    FUZZ_CHECK(r.status != 500, "client input never earns a 500 internal_error");
    FUZZ_CHECK(r.status < 500 || (r.status == 503 && expected_503(r, plan)),
               "the only 5xx is a 503 queue_full, shutting_down or too_many_connections");
    // GET /health's 503 while draining tells a load balancer to look
    // elsewhere, not when to come back.
    FUZZ_CHECK(r.status != 503 || r.retry_after ||
                   (plan.draining && plan.stream.find("/health") != std::string_view::npos),
               "every 503 but /health's carries Retry-After");
    FUZZ_CHECK(r.status != 405 || r.allow == "POST", "every 405 carries Allow: POST");
    FUZZ_CHECK(!r.body.empty() || r.head_reply, "every reply has a body");
    closed = r.close;
  }
  FUZZ_CHECK(finals <= possible_head_ends(plan.stream) + 1,
             "no more responses than request heads sent, plus one refusal");
  if (plan.fill_connections) {
    FUZZ_CHECK(finals == 1 && responses.back().status == 503,
               "a connection over max_connections gets one answer: 503 too_many_connections");
  }
}

// A well-formed POST on a fresh connection still gets its 200: the server
// is alive, accepting, and admitting after whatever came before.
void probe(std::uint16_t port) {
  const std::string body = R"({"channel":"#alerts","text":"disk full"})";
  Plan plan;
  const std::string request = "POST / HTTP/1.1\r\nHost: fuzz\r\nContent-Type: application/json\r\n"
                              "Content-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body;
  plan.stream = request;
  plan.pieces = {request};
  const Received received = exchange(port, plan);
  FUZZ_CHECK(received.end == End::Closed, "the server closes a finished keep-alive connection");
  const std::vector<Response> responses = parse_responses(received.bytes, received.end, plan);
  FUZZ_CHECK(responses.size() == 1 && responses[0].status == 200,
             "a well-formed POST gets its 200 after any input");
}

// FUZZ_TRANSPORT_SHOW=1 prints each exchange, to see what a reproducer did.
const bool kShow = std::getenv("FUZZ_TRANSPORT_SHOW") != nullptr;

void show(const Plan& plan, const Received& received) {
  std::fprintf(stderr, "--- sent %zu bytes in %zu pieces%s%s%s%s\n", plan.stream.size(),
               plan.pieces.size(), plan.draining ? ", draining" : "", plan.pause ? ", paused" : "",
               plan.fill_connections ? ", max_connections held" : "",
               plan.half_close ? "" : ", sending side kept open");
  std::fprintf(stderr, "--- received (%s):\n%s\n---\n",
               received.end == End::Closed  ? "closed"
               : received.end == End::Reset ? "reset"
                                            : "still open at the deadline",
               received.bytes.c_str());
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static int inputs = 0;
  TransportUnderTest& server = transport();
  const Plan plan = make_plan(data, size);

  server.expect_no_connections();
  server.set_draining(plan.draining);
  const Received received = exchange(server.port(), plan);
  if (kShow) show(plan, received);
  FUZZ_CHECK(received.end != End::StillOpen,
             "the server closes a connection whose client sent all it will (or on its deadlines)");
  check_responses(parse_responses(received.bytes, received.end, plan), plan);
  server.reset();

  if (++inputs % kProbeEvery == 1) {
    server.expect_no_connections();
    probe(server.port());
  }
  return 0;
}

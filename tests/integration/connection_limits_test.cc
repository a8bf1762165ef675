// The ingress's connection limits, end to end and at the socket level:
// keep_alive_timeout, read_timeout on a silent connection,
// max_keep_alive_requests, and the 503 shutting_down answered on a
// keep-alive connection that was open when the drain began. Only what a
// client sees on the wire is checked (bytes, EOF), never the ingress's
// internals, so these hold for any ingress implementation.
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstring>
#include <map>
#include <optional>
#include <stdexcept>
#include <string>

#include "proxy_test.h"

namespace slack_proxy::testing {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

// What a read on a connection came to.
enum class ReadOutcome { Data, Closed, Timeout };

struct RawResponse {
  int status = 0;
  std::map<std::string, std::string> headers;  // lower-cased names
  std::string body;

  std::optional<std::string> header(const std::string& lower_case_name) const {
    const auto it = headers.find(lower_case_name);
    if (it == headers.end()) return std::nullopt;
    return it->second;
  }
};

std::string lower(std::string text) {
  std::transform(text.begin(), text.end(), text.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return text;
}

// A plain TCP connection to the proxy, with every read bounded by a
// deadline, so that "the server closed it" and "it sent nothing" can be told
// apart from "the test gave up".
class RawConnection {
 public:
  explicit RawConnection(std::uint16_t port) {
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd_ < 0) throw std::runtime_error("socket: " + std::string(std::strerror(errno)));
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = htons(port);
    if (::connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
      const std::string why = std::strerror(errno);
      ::close(fd_);
      throw std::runtime_error("connect: " + why);
    }
  }
  ~RawConnection() { ::close(fd_); }
  RawConnection(const RawConnection&) = delete;
  RawConnection& operator=(const RawConnection&) = delete;

  // False when the peer already closed the connection.
  bool send(const std::string& bytes) {
    std::size_t sent = 0;
    while (sent < bytes.size()) {
      const ssize_t n = ::send(fd_, bytes.data() + sent, bytes.size() - sent, MSG_NOSIGNAL);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) return false;
      sent += static_cast<std::size_t>(n);
    }
    return true;
  }

  // One response, or nullopt when the connection closed or `timeout` passed
  // before a whole one arrived (see last_outcome()).
  std::optional<RawResponse> read_response(milliseconds timeout) {
    const auto deadline = Clock::now() + timeout;
    std::size_t head_end;
    while ((head_end = buffer_.find("\r\n\r\n")) == std::string::npos)
      if (read_more(deadline) != ReadOutcome::Data) return std::nullopt;
    RawResponse r = parse_head(buffer_.substr(0, head_end));
    const std::size_t length = std::stoul(r.header("content-length").value_or("0"));
    while (buffer_.size() < head_end + 4 + length)
      if (read_more(deadline) != ReadOutcome::Data) return std::nullopt;
    r.body = buffer_.substr(head_end + 4, length);
    buffer_.erase(0, head_end + 4 + length);
    return r;
  }

  // Waits for the server to close the connection: Closed (EOF or reset),
  // Data when it sent something instead, Timeout when neither happened.
  ReadOutcome wait_closed(milliseconds timeout) {
    if (!buffer_.empty()) return ReadOutcome::Data;
    return read_more(Clock::now() + timeout);
  }

  ReadOutcome last_outcome() const { return last_; }

 private:
  ReadOutcome read_more(Clock::time_point deadline) {
    for (;;) {
      const auto left = std::chrono::duration_cast<milliseconds>(deadline - Clock::now());
      if (left <= 0ms) return last_ = ReadOutcome::Timeout;
      pollfd p{fd_, POLLIN, 0};
      const int ready = ::poll(&p, 1, static_cast<int>(left.count()));
      if (ready < 0 && errno == EINTR) continue;
      if (ready == 0) return last_ = ReadOutcome::Timeout;
      char chunk[4096];
      const ssize_t n = ::recv(fd_, chunk, sizeof(chunk), 0);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) return last_ = ReadOutcome::Closed;  // EOF, or a reset
      buffer_.append(chunk, static_cast<std::size_t>(n));
      return last_ = ReadOutcome::Data;
    }
  }

  static RawResponse parse_head(const std::string& head) {
    RawResponse r;
    std::size_t line_end = head.find("\r\n");
    const std::string status_line = head.substr(0, line_end);
    if (status_line.rfind("HTTP/1.1 ", 0) != 0)
      throw std::runtime_error("not an HTTP/1.1 status line: " + status_line);
    r.status = std::stoi(status_line.substr(9, 3));
    while (line_end != std::string::npos) {
      const std::size_t from = line_end + 2;
      line_end = head.find("\r\n", from);
      const std::string line = head.substr(from, line_end == std::string::npos
                                                     ? std::string::npos
                                                     : line_end - from);
      const std::size_t colon = line.find(':');
      if (colon == std::string::npos) continue;
      const std::size_t value = line.find_first_not_of(' ', colon + 1);
      r.headers[lower(line.substr(0, colon))] =
          value == std::string::npos ? "" : line.substr(value);
    }
    return r;
  }

  int fd_ = -1;
  std::string buffer_;
  ReadOutcome last_ = ReadOutcome::Timeout;
};

const char* name_of(ReadOutcome o) {
  switch (o) {
    case ReadOutcome::Data: return "data";
    case ReadOutcome::Closed: return "closed";
    case ReadOutcome::Timeout: return "nothing (timeout)";
  }
  return "?";
}

// A keep-alive POST of a chat.postMessage body (HTTP/1.1 keeps the
// connection open unless a side says otherwise).
std::string post_request(std::uint16_t port, const std::string& body) {
  return "POST / HTTP/1.1\r\nHost: 127.0.0.1:" + std::to_string(port) +
         "\r\nContent-Type: application/json\r\nContent-Length: " + std::to_string(body.size()) +
         "\r\n\r\n" + body;
}

std::string health_request(std::uint16_t port) {
  return "GET /health HTTP/1.1\r\nHost: 127.0.0.1:" + std::to_string(port) + "\r\n\r\n";
}

bool says_close(const RawResponse& r) {
  return lower(r.header("connection").value_or("")) == "close";
}

// Far longer than any timeout under test, so that a close seen within it is
// the limit under test, not another one.
constexpr const char* kLongTimeout = "30s";
// How long a test waits for a close it expects: generous, so a loaded CI
// machine never fails it, and still well below kLongTimeout.
constexpr milliseconds kCloseDeadline{10'000};

using ConnectionLimitsTest = ProxyTest;

TEST_F(ConnectionLimitsTest, KeepAliveTimeoutClosesAnIdleConnectionThatServedARequest) {
  ProxyConfig c = config();
  c.server_settings = "keep_alive_timeout = \"1s\"\nread_timeout = \"" +
                      std::string(kLongTimeout) + "\"\n";
  auto& p = start(c);
  RawConnection conn(p.listen_port());

  ASSERT_TRUE(conn.send(post_request(p.listen_port(), message("#ka", "first"))));
  const auto first = conn.read_response(kDeadline);
  ASSERT_TRUE(first) << "no reply: " << name_of(conn.last_outcome());
  EXPECT_EQ(first->status, 200) << first->body;
  EXPECT_FALSE(says_close(*first)) << "the first reply closed the connection";

  // Sent at once, well inside keep_alive_timeout: served on the same connection.
  ASSERT_TRUE(conn.send(post_request(p.listen_port(), message("#ka", "second"))));
  const auto second = conn.read_response(kDeadline);
  ASSERT_TRUE(second) << "the connection was not kept alive: " << name_of(conn.last_outcome());
  EXPECT_EQ(second->status, 200) << second->body;
  EXPECT_FALSE(says_close(*second));

  // Idle now: closed by keep_alive_timeout (read_timeout is far longer),
  // without another byte.
  EXPECT_EQ(conn.wait_closed(kCloseDeadline), ReadOutcome::Closed)
      << "an idle keep-alive connection was not closed after keep_alive_timeout = 1s";
  EXPECT_TRUE(p.wait_for_metric(series(kSucceeded, "#ka"), 2));
}

TEST_F(ConnectionLimitsTest, ReadTimeoutClosesASilentNewConnectionWithoutAnAnswer) {
  ProxyConfig c = config();
  c.server_settings = "read_timeout = \"1s\"\nkeep_alive_timeout = \"" +
                      std::string(kLongTimeout) + "\"\n";
  auto& p = start(c);
  RawConnection silent(p.listen_port());

  EXPECT_EQ(silent.wait_closed(kCloseDeadline), ReadOutcome::Closed)
      << "a connection that sent nothing was not closed after read_timeout = 1s";
  // The proxy is unharmed and still serves others.
  EXPECT_EQ(p.get("/health").status, 200);
}

TEST_F(ConnectionLimitsTest, MaxKeepAliveRequestsClosesAfterTheNthRequest) {
  constexpr int kMax = 3;
  ProxyConfig c = config();
  c.server_settings = "max_keep_alive_requests = " + std::to_string(kMax) +
                      "\nkeep_alive_timeout = \"" + kLongTimeout + "\"\nread_timeout = \"" +
                      kLongTimeout + "\"\n";
  auto& p = start(c);
  RawConnection conn(p.listen_port());

  for (int i = 1; i <= kMax; ++i) {
    ASSERT_TRUE(conn.send(health_request(p.listen_port()))) << "request " << i;
    const auto r = conn.read_response(kDeadline);
    ASSERT_TRUE(r) << "no reply to request " << i << ": " << name_of(conn.last_outcome());
    EXPECT_EQ(r->status, 200) << "request " << i;
    EXPECT_EQ(says_close(*r), i == kMax) << "request " << i << " of " << kMax;
  }
  // Closed at once after the Nth reply, not by a timeout (both are 30 s).
  EXPECT_EQ(conn.wait_closed(kCloseDeadline), ReadOutcome::Closed)
      << "still open after max_keep_alive_requests = " << kMax << " requests";
}

// The drain's promise to a client that already holds a keep-alive
// connection: once draining has begun, a request on it gets 503
// shutting_down with Retry-After, never a silent close. Deterministic: Slack
// is down, so the drain waits for shutdown_timeout with a message queued,
// and the second request is sent only after the log says draining began.
TEST_F(ConnectionLimitsTest, DrainAnswers503ShuttingDownOnAnOpenKeepAliveConnection) {
  slack.set_default(Behaviour::http_status(503));
  ProxyConfig c = config();
  c.shutdown_timeout = "20s";
  c.queue_retry_after = "7s";
  c.server_settings = "keep_alive_timeout = \"" + std::string(kLongTimeout) + "\"\n";
  auto& p = start(c);
  RawConnection conn(p.listen_port());

  ASSERT_TRUE(conn.send(post_request(p.listen_port(), message("#drain", "queued"))));
  const auto accepted = conn.read_response(kDeadline);
  ASSERT_TRUE(accepted) << "no reply: " << name_of(conn.last_outcome());
  ASSERT_EQ(accepted->status, 200) << accepted->body;
  ASSERT_FALSE(says_close(*accepted));
  ASSERT_TRUE(slack.wait_for(1, kDeadline));  // attempted and refused: it stays queued

  p.signal(SIGTERM);
  ASSERT_TRUE(p.wait_for_log("draining 1 message(s)"));

  ASSERT_TRUE(conn.send(post_request(p.listen_port(), message("#drain", "too late"))))
      << "the keep-alive connection was closed when the drain began";
  const auto refused = conn.read_response(kDeadline);
  ASSERT_TRUE(refused) << "no answer on the open keep-alive connection while draining: "
                       << name_of(conn.last_outcome()) << "; log:\n"
                       << p.log();
  EXPECT_EQ(refused->status, 503) << refused->body;
  EXPECT_EQ(parse_object(refused->body)->getValue<std::string>("error"), "shutting_down");
  EXPECT_EQ(refused->header("retry-after"), "7");
  EXPECT_TRUE(says_close(*refused));
  EXPECT_EQ(conn.wait_closed(kCloseDeadline), ReadOutcome::Closed);
  EXPECT_EQ(find_metric(p.metrics(), "slackproxy_requests_rejected_total{error=\"shutting_down\"}"),
            1.0);

  // Slack recovers: the queued message is delivered, the refused one never.
  slack.set_default(Behaviour::ok());
  const auto code = p.wait_exit(kDeadline);
  ASSERT_TRUE(code.has_value()) << "still draining after Slack recovered; log:\n" << p.log();
  EXPECT_EQ(*code, 0) << p.log();
  std::vector<std::string> texts;
  for (const auto& r : slack.requests())
    texts.push_back(parse_object(r.body)->getValue<std::string>("text"));
  EXPECT_TRUE(std::find(texts.begin(), texts.end(), "queued") != texts.end());
  EXPECT_TRUE(std::find(texts.begin(), texts.end(), "too late") == texts.end());
}

}  // namespace
}  // namespace slack_proxy::testing

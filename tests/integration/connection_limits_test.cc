// The ingress's connection limits, end to end and at the socket level:
// keep_alive_timeout, read_timeout on a silent connection,
// max_keep_alive_requests, and the 503 shutting_down answered on a
// keep-alive connection that was open when the drain began. Only what a
// client sees on the wire is checked (bytes, EOF), never the ingress's
// internals, so these hold for any ingress implementation.
#include <gtest/gtest.h>
#include <signal.h>

#include <algorithm>
#include <cctype>
#include <string>
#include <vector>

#include "proxy_test.h"
#include "raw_connection.h"

namespace slack_proxy::testing {
namespace {

using namespace std::chrono_literals;
using std::chrono::milliseconds;

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

  conn.send(post_request(p.listen_port(), message("#ka", "first")));
  const auto first = conn.read_response();
  ASSERT_TRUE(first) << "no reply to the first request";
  EXPECT_EQ(first->status, 200) << first->body;
  EXPECT_FALSE(says_close(*first)) << "the first reply closed the connection";

  // Sent at once, well inside keep_alive_timeout: served on the same connection.
  conn.send(post_request(p.listen_port(), message("#ka", "second")));
  const auto second = conn.read_response();
  ASSERT_TRUE(second) << "the connection was not kept alive for a second request";
  EXPECT_EQ(second->status, 200) << second->body;
  EXPECT_FALSE(says_close(*second));

  // Idle now: closed by keep_alive_timeout (read_timeout is far longer),
  // without another byte.
  EXPECT_TRUE(conn.wait_closed(kCloseDeadline))
      << "an idle keep-alive connection was still open " << kCloseDeadline.count()
      << " ms after its last reply, with keep_alive_timeout = 1s";
  EXPECT_EQ(conn.unread(), "");
  EXPECT_TRUE(p.wait_for_metric(series(kSucceeded, "#ka"), 2));
}

TEST_F(ConnectionLimitsTest, ReadTimeoutClosesASilentNewConnectionWithoutAnAnswer) {
  ProxyConfig c = config();
  c.server_settings = "read_timeout = \"1s\"\nkeep_alive_timeout = \"" +
                      std::string(kLongTimeout) + "\"\n";
  auto& p = start(c);
  RawConnection silent(p.listen_port());

  EXPECT_TRUE(silent.wait_closed(kCloseDeadline))
      << "a connection that sent nothing was still open " << kCloseDeadline.count()
      << " ms later, with read_timeout = 1s";
  EXPECT_EQ(silent.unread(), "") << "a connection that sent nothing got an answer";
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
    conn.send(health_request(p.listen_port()));
    const auto r = conn.read_response();
    ASSERT_TRUE(r) << "no reply to request " << i << " of " << kMax;
    EXPECT_EQ(r->status, 200) << "request " << i;
    EXPECT_EQ(says_close(*r), i == kMax) << "request " << i << " of " << kMax;
  }
  // Closed right after the Nth reply, not by a timeout (both are 30 s).
  EXPECT_TRUE(conn.wait_closed(kCloseDeadline))
      << "still open after max_keep_alive_requests = " << kMax << " requests";
  EXPECT_EQ(conn.unread(), "");
}

// The drain's promise to a client that already holds a keep-alive
// connection: once draining has begun, a request on it gets 503
// shutting_down with Retry-After, never a silent close. Deterministic: Slack
// is down, so the drain waits (up to shutdown_timeout) with a message
// queued, and the second request is sent only after the log says that
// draining began.
TEST_F(ConnectionLimitsTest, DrainAnswers503ShuttingDownOnAnOpenKeepAliveConnection) {
  slack.set_default(Behaviour::http_status(503));
  ProxyConfig c = config();
  c.shutdown_timeout = "20s";
  c.queue_retry_after = "7s";
  c.server_settings = "keep_alive_timeout = \"" + std::string(kLongTimeout) + "\"\n";
  auto& p = start(c);
  RawConnection conn(p.listen_port());

  conn.send(post_request(p.listen_port(), message("#drain", "queued")));
  const auto accepted = conn.read_response();
  ASSERT_TRUE(accepted) << "no reply to the first request";
  ASSERT_EQ(accepted->status, 200) << accepted->body;
  ASSERT_FALSE(says_close(*accepted));
  ASSERT_TRUE(slack.wait_for(1, kDeadline));  // attempted and refused: it stays queued

  p.signal(SIGTERM);
  ASSERT_TRUE(p.wait_for_log("draining 1 message(s)"));

  ASSERT_TRUE(conn.open_and_quiet()) << "the keep-alive connection was closed when the drain began";
  conn.send(post_request(p.listen_port(), message("#drain", "too late")));
  const auto refused = conn.read_response();
  ASSERT_TRUE(refused) << "no answer on the open keep-alive connection while draining; log:\n"
                       << p.log();
  EXPECT_EQ(refused->status, 503) << refused->body;
  EXPECT_EQ(parse_object(refused->body)->getValue<std::string>("error"), "shutting_down");
  EXPECT_EQ(refused->header("retry-after"), "7");
  EXPECT_TRUE(says_close(*refused));
  EXPECT_TRUE(conn.wait_closed(kCloseDeadline));
  EXPECT_EQ(find_metric(p.metrics(), rejected("shutting_down")), 1.0);

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

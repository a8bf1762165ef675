// The event-driven ingress's promises (issue #10), end to end on the
// socket: a thousand clients holding a half-sent head do not keep a normal
// caller waiting, max_connections refuses the next connection with 503
// too_many_connections, pipelined requests are answered in order, a request
// refused on its head gets no 100 Continue, and TLS holds under many
// connections. Like connection_limits_test.cc, only what a client sees on
// the wire is checked, never the transport's internals.
//
// Covered elsewhere, and not repeated here: 100 Continue before a body that
// fits and 413 without it for one that does not
// (robustness_test.cc, ExpectContinueIsAnsweredOnlyWhenTheBodyMayBeRead);
// keep-alive, keep_alive_timeout, max_keep_alive_requests and the drain's
// 503 (connection_limits_test.cc).
#include <gtest/gtest.h>
#include <sys/resource.h>

#include <Poco/Exception.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <latch>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "proxy_test.h"
#include "raw_connection.h"
#include "test_certs.h"

namespace slack_proxy::testing {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;
using Connections = std::vector<std::unique_ptr<RawConnection>>;

// Longer than any of these tests runs, so that no client they hold open is
// cut off by a timeout: what they prove is that the proxy serves others
// while those clients are still there.
constexpr const char* kGenerousTimeouts = "read_timeout = \"120s\"\nkeep_alive_timeout = \"120s\"\n";

// A test that holds more sockets than a default soft limit (1024) allows
// raises its own soft RLIMIT_NOFILE to the hard limit; returns the soft
// limit now in force.
rlim_t raise_own_open_files_limit() {
  rlimit limit{};
  if (getrlimit(RLIMIT_NOFILE, &limit) != 0) return 0;
  if (limit.rlim_cur < limit.rlim_max) {
    limit.rlim_cur = limit.rlim_max;
    setrlimit(RLIMIT_NOFILE, &limit);
    getrlimit(RLIMIT_NOFILE, &limit);
  }
  return limit.rlim_cur;
}

// Lowers this process's soft RLIMIT_NOFILE to at most `soft` while it
// lives, so that a child spawned meanwhile inherits the low limit.
class LowOpenFilesLimit {
 public:
  explicit LowOpenFilesLimit(rlim_t soft) {
    getrlimit(RLIMIT_NOFILE, &saved_);
    rlimit low = saved_;
    low.rlim_cur = std::min(saved_.rlim_cur, soft);
    setrlimit(RLIMIT_NOFILE, &low);
  }
  ~LowOpenFilesLimit() { setrlimit(RLIMIT_NOFILE, &saved_); }
  LowOpenFilesLimit(const LowOpenFilesLimit&) = delete;
  LowOpenFilesLimit& operator=(const LowOpenFilesLimit&) = delete;

 private:
  rlimit saved_{};
};

// `count` connections to `port`, each of which has sent `bytes` (and then
// nothing more).
Connections connect_and_send(std::uint16_t port, int count, const std::string& bytes) {
  Connections connections;
  for (int i = 0; i < count; ++i) {
    connections.push_back(std::make_unique<RawConnection>(port));
    if (!bytes.empty()) connections.back()->send(bytes);
  }
  return connections;
}

// The first of `connections` on which the proxy has answered or closed,
// as "<which>: <what it got>"; nullopt when every one is open and quiet.
std::optional<std::string> first_not_open_and_quiet(Connections& connections) {
  for (std::size_t i = 0; i < connections.size(); ++i)
    if (!connections[i]->open_and_quiet())
      return "connection " + std::to_string(i) + " got \"" + connections[i]->unread() +
             "\" or was closed";
  return std::nullopt;
}

// A request sent with http_send; a failure (no answer, reset, timeout) is
// status 0 with the reason as the body, so that a test reports it.
HttpResponse send_or_report(const HttpRequest& request) {
  try {
    return http_send(request);
  } catch (const Poco::Exception& e) {
    HttpResponse failed;
    failed.body = "no answer: " + e.displayText();
    return failed;
  }
}

HttpRequest json_post(const std::string& url, const std::string& body) {
  HttpRequest request;
  request.method = "POST";
  request.url = url;
  request.content_type = "application/json";
  request.body = body;
  request.timeout = kDeadline;
  return request;
}

// Reads one response from each connection; "" when every one is `status`,
// otherwise how many were not and the first of them.
std::string responses_other_than(Connections& connections, int status) {
  int wrong = 0;
  std::string first;
  for (std::size_t i = 0; i < connections.size(); ++i) {
    const auto r = connections[i]->read_response();
    if (r && r->status == status) continue;
    if (wrong++ == 0)
      first = "connection " + std::to_string(i) + ": " +
              (r ? std::to_string(r->status) + " " + r->body : std::string("no answer"));
  }
  if (wrong == 0) return "";
  return std::to_string(wrong) + " of " + std::to_string(connections.size()) +
         " connection(s) did not get " + std::to_string(status) + "; first: " + first;
}

using EventIngressTest = ProxyTest;

// ------------------------------------------------------------ slow clients --

TEST_F(EventIngressTest, AThousandClientsHoldingAHalfSentHeadDoNotKeepANormalCallerWaiting) {
  constexpr int kSlowClients = 1000;
  ProxyConfig c = config();
  c.threads = 2;  // far fewer threads than clients: each connection cannot have its own
  c.queue_capacity = 2 * kSlowClients;
  c.server_settings = kGenerousTimeouts;
  // Spawned with a soft limit of 512 open files: to hold a thousand
  // connections it must raise its own, and say so.
  ProxyProcess& p = [&]() -> ProxyProcess& {
    const LowOpenFilesLimit low(512);
    return start(c);
  }();
  EXPECT_TRUE(p.wait_for_log("open files limit"));
  ASSERT_GE(raise_own_open_files_limit(), static_cast<rlim_t>(kSlowClients + 200))
      << "this test needs a hard RLIMIT_NOFILE above " << kSlowClients + 200;

  const std::string request = post_request(p.listen_port(), message("#slow", "finally whole"));
  // Cut inside "Content-Length": the head is incomplete and its framing unknown.
  const std::size_t cut = request.find("Content-Length") + 7;
  Connections slow = connect_and_send(p.listen_port(), kSlowClients, request.substr(0, cut));

  const HttpResponse normal = send_or_report(json_post(p.url(), message("#normal", "served")));
  ASSERT_EQ(normal.status, 200) << normal.body << "\nlog:\n" << last_lines(p.log(), 20);
  ASSERT_TRUE(wait_for_texts(slack, {"served"}));

  // Every slow client is still connected and unanswered: the proxy served
  // the normal caller while they held their connections, not after it had
  // dropped them. Each now finishes its request on the same socket, and a
  // real answer there is what a closed or reset connection could not give.
  const auto disturbed = first_not_open_and_quiet(slow);
  EXPECT_FALSE(disturbed) << *disturbed;
  for (auto& connection : slow) connection->send(request.substr(cut));
  EXPECT_EQ(responses_other_than(slow, 200), "");
  EXPECT_TRUE(p.wait_for_metric(series(kReceived, "#slow"), kSlowClients));
  EXPECT_TRUE(metric_is_zero(p.metrics(), rejected("request_timeout")));
}

// --------------------------------------------------------- max_connections --

// Opens a connection and asks for /health until the proxy serves one
// instead of refusing it with 503 too_many_connections, which it may do
// until it has read the end of a connection just closed. Returns the
// refusals it got on the way, or nullopt (with the reason in `why`) when
// the deadline passed or an answer was neither.
std::optional<int> refusals_until_served(std::uint16_t port, std::string& why) {
  const auto deadline = Clock::now() + kDeadline;
  int refusals = 0;
  while (Clock::now() < deadline) {
    RawConnection next(port);
    next.send(health_request(port));
    const auto r = next.read_response();
    if (r && r->status == 200) return refusals;
    if (!r || r->status != 503 || r->body.find("too_many_connections") == std::string::npos) {
      why = r ? std::to_string(r->status) + " " + r->body : "no answer";
      return std::nullopt;
    }
    ++refusals;
  }
  why = "still refused after " + std::to_string(refusals) + " attempt(s)";
  return std::nullopt;
}

TEST_F(EventIngressTest, BeyondMaxConnectionsANewConnectionGets503AndIsClosedAndCounted) {
  constexpr int kMax = 4;
  ProxyConfig c = config();
  c.server_settings = "max_connections = " + std::to_string(kMax) + "\n" + kGenerousTimeouts;
  auto& p = start(c);

  // Each served once, so the proxy has certainly taken it, then left idle.
  Connections held;
  for (int i = 0; i < kMax; ++i) {
    held.push_back(std::make_unique<RawConnection>(p.listen_port()));
    held.back()->send(health_request(p.listen_port()));
    const auto r = held.back()->read_response();
    ASSERT_TRUE(r) << "no answer on connection " << i + 1 << " of " << kMax;
    ASSERT_EQ(r->status, 200) << r->body;
    ASSERT_FALSE(says_close(*r));
  }

  RawConnection extra(p.listen_port());
  const auto refused = extra.read_response();
  ASSERT_TRUE(refused) << "no answer to connection " << kMax + 1 << "; log:\n"
                       << last_lines(p.log(), 20);
  EXPECT_EQ(refused->status, 503) << refused->body;
  const auto object = parse_object(refused->body);
  EXPECT_FALSE(object->getValue<bool>("ok"));
  EXPECT_EQ(object->getValue<std::string>("error"), "too_many_connections");
  const std::string retry_after = refused->header("retry-after").value_or("");
  EXPECT_TRUE(!retry_after.empty() &&
              retry_after.find_first_not_of("0123456789") == std::string::npos &&
              std::stoi(retry_after) > 0)
      << "Retry-After: \"" << retry_after << "\"";
  EXPECT_TRUE(extra.wait_closed()) << "the refused connection stayed open";
  EXPECT_EQ(extra.unread(), "");
  EXPECT_TRUE(p.wait_for_metric(rejected("too_many_connections"), 1));
  EXPECT_TRUE(p.wait_for_log("503 too_many_connections"));
  // The refusal cost the connections already open nothing.
  const auto disturbed = first_not_open_and_quiet(held);
  EXPECT_FALSE(disturbed) << *disturbed;

  held.pop_back();
  std::string why;
  const auto more_refusals = refusals_until_served(p.listen_port(), why);
  ASSERT_TRUE(more_refusals) << "no connection was served after one of " << kMax
                             << " closed: " << why;
  EXPECT_TRUE(p.wait_for_metric(rejected("too_many_connections"), 1 + *more_refusals));
}

// -------------------------------------------------------------- pipelining --

// The texts the fake Slack received for `channel`, in arrival order.
std::vector<std::string> texts_to(const FakeSlack& slack, const std::string& channel) {
  std::vector<std::string> texts;
  for (const auto& r : slack.requests())
    if (r.channel == channel) texts.push_back(text_of(r));
  return texts;
}

TEST_F(EventIngressTest, ThreeRequestsInOneWriteAreAnsweredInOrderOnTheSameConnection) {
  ProxyConfig c = config();
  c.server_settings = kGenerousTimeouts;
  auto& p = start(c);
  const std::uint16_t port = p.listen_port();
  // The middle one is refused (unknown path) with a body the proxy must
  // still read past to find the third request.
  const std::string lost = message("#pipe", "to nowhere");
  const std::string unknown_path =
      "POST /nowhere HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
      "Content-Length: " + std::to_string(lost.size()) + "\r\n\r\n" + lost;
  RawConnection conn(port);
  conn.send(post_request(port, message("#pipe", "first")) + unknown_path +
            post_request(port, message("#pipe", "third")));

  const std::vector<std::pair<int, std::string>> expected{
      {200, ""}, {404, "not_found"}, {200, ""}};
  for (std::size_t i = 0; i < expected.size(); ++i) {
    const auto r = conn.read_response();
    ASSERT_TRUE(r) << "no answer to pipelined request " << i + 1 << "; log:\n"
                   << last_lines(p.log(), 20);
    EXPECT_EQ(r->status, expected[i].first) << "request " << i + 1 << ": " << r->body;
    if (!expected[i].second.empty()) {
      EXPECT_EQ(parse_object(r->body)->getValue<std::string>("error"), expected[i].second);
    }
    EXPECT_FALSE(says_close(*r)) << "request " << i + 1;
  }
  EXPECT_TRUE(conn.open_and_quiet()) << "more than three answers: \"" << conn.unread() << '"';
  // One channel is one lane, delivered in the order accepted.
  ASSERT_TRUE(wait_for_texts(slack, {"first", "third"}));
  EXPECT_EQ(texts_to(slack, "#pipe"), (std::vector<std::string>{"first", "third"}));
}

TEST_F(EventIngressTest, APipelinedChunkedRequestThenAContentLengthOneAreBothAnsweredInOrder) {
  ProxyConfig c = config();
  c.server_settings = kGenerousTimeouts;
  auto& p = start(c);
  const std::string second = message("#pipe-chunked", "by length");
  RawConnection conn(p.listen_port());
  conn.send(post_head("Transfer-Encoding: chunked\r\n") +
            chunked(message("#pipe-chunked", "by chunks")) +
            post_head("Content-Length: " + std::to_string(second.size()) + "\r\n") + second);

  for (int i = 1; i <= 2; ++i) {
    const auto r = conn.read_response();
    ASSERT_TRUE(r) << "no answer to pipelined request " << i << "; log:\n"
                   << last_lines(p.log(), 20);
    EXPECT_EQ(r->status, 200) << "request " << i << ": " << r->body;
    EXPECT_TRUE(parse_object(r->body)->getValue<bool>("ok")) << r->body;
  }
  EXPECT_TRUE(conn.open_and_quiet()) << "more than two answers: \"" << conn.unread() << '"';
  ASSERT_TRUE(wait_for_texts(slack, {"by chunks", "by length"}));
  EXPECT_EQ(texts_to(slack, "#pipe-chunked"), (std::vector<std::string>{"by chunks", "by length"}));
}

// ---------------------------------------------------------- 100-continue --

// bearer_auth wants keys of at least 16 characters.
constexpr const char* kCallerKey = "expect-caller-key-3f9a1c77";

TEST_F(EventIngressTest, ARequestRefusedByAuthenticationGets401WithoutAnInvitationToSendItsBody) {
  ProxyConfig c = config();
  c.stages = stage("bearer_auth") + ProxyConfig::fast_retry_stages();
  c.server_settings = kGenerousTimeouts;
  Environment env = default_environment();
  env.push_back(std::string("SLACK_PROXY_CLIENT_KEYS=ci=") + kCallerKey);
  auto& p = start(c.toml(), env);
  const std::string body = message("#expect", "let in");
  const auto head = [&](const std::string& authorization) {
    return post_head(authorization + "Expect: 100-continue\r\nContent-Length: " +
                     std::to_string(body.size()) + "\r\n");
  };

  const std::vector<std::pair<std::string, std::string>> refusals{
      {"", "not_authed"}, {"Authorization: Bearer not-a-known-key-00000000\r\n", "invalid_auth"}};
  for (const auto& [authorization, error] : refusals) {
    RawConnection client(p.listen_port());
    client.send(head(authorization));
    const auto r = client.read_response();
    ASSERT_TRUE(r) << "no answer to a head that fails authentication (" << error
                   << ") while its body waits for 100 Continue; log:\n"
                   << last_lines(p.log(), 20);
    EXPECT_EQ(r->status, 401) << "a 100 Continue invites a body the proxy will refuse: " << r->body;
    if (r->status == 100) continue;
    EXPECT_EQ(parse_object(r->body)->getValue<std::string>("error"), error);
    EXPECT_EQ(r->header("www-authenticate").value_or("").rfind("Bearer", 0), 0u)
        << "WWW-Authenticate: " << r->header("www-authenticate").value_or("(none)");
  }

  // The known key is invited, and its message taken.
  RawConnection client(p.listen_port());
  client.send(head(std::string("Authorization: Bearer ") + kCallerKey + "\r\n"));
  const auto go_on = client.read_response();
  ASSERT_TRUE(go_on);
  EXPECT_EQ(go_on->status, 100);
  client.send(body);
  const auto ok = client.read_response();
  ASSERT_TRUE(ok);
  EXPECT_EQ(ok->status, 200) << ok->body;
  EXPECT_TRUE(wait_for_texts(slack, {"let in"}));
  EXPECT_TRUE(p.wait_for_metric(rejected("not_authed"), 1));
  EXPECT_TRUE(p.wait_for_metric(rejected("invalid_auth"), 1));
}

// ------------------------------------------------------------------- TLS --

TEST_F(EventIngressTest, TwoHundredConcurrentTlsClientsAreAllServedAndEveryMessageArrives) {
  constexpr int kClients = 200;
  TestCertificates certs;
  ProxyConfig c = config();
  c.threads = 2;
  auto& p = start(tls_config(c, certs.localhost(), kGenerousTimeouts));

  std::vector<HttpResponse> answers(kClients);
  std::latch ready(kClients);
  std::vector<std::thread> clients;
  for (int i = 0; i < kClients; ++i) {
    clients.emplace_back([&, i] {
      HttpRequest request = json_post(https_url(p), message("#tls-many", "tls-" + std::to_string(i)));
      request.ca_file = certs.ca_certificate();
      ready.arrive_and_wait();  // every client connects at once
      answers[static_cast<std::size_t>(i)] = send_or_report(request);
    });
  }
  for (auto& client : clients) client.join();

  std::set<std::string> texts;
  int served = 0;
  for (int i = 0; i < kClients; ++i) {
    const auto& answer = answers[static_cast<std::size_t>(i)];
    if (answer.status == 200) {
      ++served;
    } else {
      ADD_FAILURE() << "client " << i << ": " << answer.status << " " << answer.body;
    }
    texts.insert("tls-" + std::to_string(i));
  }
  EXPECT_EQ(served, kClients);
  EXPECT_TRUE(wait_for_texts(slack, texts));
  EXPECT_TRUE(p.wait_for_metric(series(kReceived, "#tls-many"), kClients));
}

// A TLS record header announcing a 512-byte handshake message, and the
// first 38 bytes of it (a ClientHello's type, length, version and random):
// a server must wait for the rest before it can answer.
std::string half_a_client_hello() {
  return std::string("\x16\x03\x01\x02\x00", 5) + std::string("\x01\x00\x01\xfc\x03\x03", 6) +
         std::string(32, '\x5a');
}

TEST_F(EventIngressTest, ATlsClientIsServedWhileTwoHundredOthersStallInTheirHandshake) {
  constexpr int kStalled = 100;  // of each kind
  TestCertificates certs;
  ProxyConfig c = config();
  c.threads = 2;
  auto& p = start(tls_config(c, certs.localhost(), kGenerousTimeouts));

  // Connected over TCP: half say nothing, half stop inside their ClientHello.
  Connections silent = connect_and_send(p.listen_port(), kStalled, "");
  Connections half_hello = connect_and_send(p.listen_port(), kStalled, half_a_client_hello());

  HttpRequest request = json_post(https_url(p), message("#tls-normal", "through"));
  request.ca_file = certs.ca_certificate();
  const HttpResponse normal = send_or_report(request);
  ASSERT_EQ(normal.status, 200) << normal.body << "\nlog:\n" << last_lines(p.log(), 20);
  EXPECT_TRUE(wait_for_texts(slack, {"through"}));

  // Served while they were still there: none of them was answered or dropped.
  const auto silent_disturbed = first_not_open_and_quiet(silent);
  EXPECT_FALSE(silent_disturbed) << "silent: " << *silent_disturbed;
  const auto half_disturbed = first_not_open_and_quiet(half_hello);
  EXPECT_FALSE(half_disturbed) << "half a ClientHello: " << *half_disturbed;
}

// ------------------------------------------------------------- framing --

TEST_F(EventIngressTest, AnHttp10ClientIsAnsweredInHttp10AndKeptOnlyWhenItAsks) {
  auto& p = start(config());
  RawConnection conn(p.listen_port());

  conn.send("GET /health HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
  const auto kept = conn.read_response();
  ASSERT_TRUE(kept) << last_lines(p.log(), 20);
  EXPECT_EQ(kept->status_line, "HTTP/1.0 200 OK");
  EXPECT_EQ(kept->header("connection"), "keep-alive");
  EXPECT_EQ(kept->header("content-length"), std::to_string(kept->body.size()));
  EXPECT_TRUE(kept->header("date").has_value());
  EXPECT_TRUE(kept->header("content-type").has_value());

  // HTTP/1.0 without Connection: keep-alive ends with its reply.
  conn.send("GET /health HTTP/1.0\r\n\r\n");
  const auto last = conn.read_response();
  ASSERT_TRUE(last) << "the kept connection did not serve a second request";
  EXPECT_EQ(last->status_line, "HTTP/1.0 200 OK");
  EXPECT_FALSE(last->header("connection").has_value());
  EXPECT_TRUE(conn.wait_closed());
}

TEST_F(EventIngressTest, AnHttp11ClientThatAsksForCloseIsToldSoAndClosed) {
  auto& p = start(config());
  RawConnection conn(p.listen_port());

  const std::string body = message("#close", "one");
  conn.send("POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
            "Content-Type: application/json\r\nContent-Length: " +
            std::to_string(body.size()) + "\r\n\r\n" + body);
  const auto r = conn.read_response();
  ASSERT_TRUE(r) << last_lines(p.log(), 20);
  EXPECT_EQ(r->status_line, "HTTP/1.1 200 OK");
  EXPECT_TRUE(says_close(*r));
  EXPECT_EQ(r->header("content-length"), std::to_string(r->body.size()));
  EXPECT_TRUE(conn.wait_closed());
  EXPECT_EQ(conn.unread(), "");
}

// ------------------------------------------------------------ operators --

// The names `top -H`, `ps -L`, perf and gdb show, so that an operator sees
// which of the proxy's threads is busy.
std::multiset<std::string> thread_names(pid_t pid) {
  std::multiset<std::string> names;
  const std::filesystem::path tasks = "/proc/" + std::to_string(pid) + "/task";
  for (const auto& task : std::filesystem::directory_iterator(tasks)) {
    std::ifstream comm(task.path() / "comm");
    std::string name;
    if (std::getline(comm, name)) names.insert(name);
  }
  return names;
}

TEST_F(EventIngressTest, TheEventThreadsTheQueueWriterAndTheDispatcherAreNamed) {
  TempDir state;
  ProxyConfig c = config();
  c.threads = 2;
  c.queue_backend = "sqlite";
  c.queue_settings = "path = \"" + (state.path() / "queue.db").string() + "\"\n";
  ProxyProcess& p = start(c);

  const std::multiset<std::string> names = thread_names(p.pid());

  for (const char* expected : {"sp-ingress-0", "sp-ingress-1", "sp-queue-writer", "sp-dispatcher"})
    EXPECT_EQ(names.count(expected), 1u) << expected;
  EXPECT_EQ(names.count("sp-ingress-2"), 0u) << "threads = 2";
}

}  // namespace
}  // namespace slack_proxy::testing

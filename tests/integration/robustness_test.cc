// The proxy end to end where it used to go wrong: secrets in logs, log levels,
// shutdown with idle clients, broken HTTP framing, start-up failures, bounded
// log output, and the cap on sends in flight.
#include <gtest/gtest.h>
#include <signal.h>

#include <Poco/Exception.h>
#include <Poco/Net/NetException.h>
#include <Poco/Net/SocketAddress.h>
#include <Poco/Net/StreamSocket.h>
#include <Poco/Timespan.h>

#include <algorithm>
#include <cctype>
#include <condition_variable>
#include <map>
#include <mutex>
#include <regex>
#include <sstream>

#include "proxy_test.h"

namespace slack_proxy::testing {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

constexpr const char* kRejected = "slackproxy_requests_rejected_total";

std::string rejected(const std::string& error) {
  return std::string(kRejected) + "{error=\"" + error + "\"}";
}

std::size_t count_lines_matching(const std::string& text, const std::regex& pattern) {
  std::size_t n = 0;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);)
    if (std::regex_search(line, pattern)) ++n;
  return n;
}

// ------------------------------------------------------ raw connections --

struct RawResponse {
  int status = 0;
  std::map<std::string, std::string> headers;  // lower-cased names
  std::string body;
};

// A bare TCP connection to the ingress, for what an HTTP client will not do:
// send broken framing, or hold a keep-alive connection open and idle.
class RawConnection {
 public:
  explicit RawConnection(std::uint16_t port)
      : socket_(Poco::Net::SocketAddress("127.0.0.1", port)) {
    // Reads wake this often to check their deadline.
    socket_.setReceiveTimeout(Poco::Timespan(0, 100'000));
  }

  void send(const std::string& bytes) {
    std::size_t sent = 0;
    while (sent < bytes.size()) {
      sent += static_cast<std::size_t>(
          socket_.sendBytes(bytes.data() + sent, static_cast<int>(bytes.size() - sent)));
    }
  }

  // One response framed by Content-Length; nullopt when the connection ended
  // first or `timeout` passed.
  std::optional<RawResponse> read_response(std::chrono::milliseconds timeout = kDeadline) {
    const auto deadline = Clock::now() + timeout;
    std::size_t header_end;
    while ((header_end = buffer_.find("\r\n\r\n")) == std::string::npos) {
      if (!receive_until(deadline)) return std::nullopt;
    }
    RawResponse r;
    std::istringstream head(buffer_.substr(0, header_end));
    std::string line;
    std::getline(head, line);
    if (line.size() < 12 || !line.starts_with("HTTP/1.")) return std::nullopt;
    r.status = std::stoi(line.substr(9, 3));
    while (std::getline(head, line)) {
      if (!line.empty() && line.back() == '\r') line.pop_back();
      const auto colon = line.find(':');
      if (colon == std::string::npos) continue;
      std::string name = line.substr(0, colon);
      std::transform(name.begin(), name.end(), name.begin(),
                     [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
      r.headers[name] = line.substr(line.find_first_not_of(' ', colon + 1));
    }
    const auto length_header = r.headers.find("content-length");
    const std::size_t length =
        length_header == r.headers.end() ? 0 : std::stoul(length_header->second);
    const std::size_t body_start = header_end + 4;
    while (buffer_.size() < body_start + length) {
      if (!receive_until(deadline)) return std::nullopt;
    }
    r.body = buffer_.substr(body_start, length);
    buffer_.erase(0, body_start + length);
    return r;
  }

  // True once the server has closed the connection (end of stream, or a
  // reset when it closed with bytes of ours unread), false when `timeout`
  // passed with the connection still open. Bytes that arrive meanwhile are
  // kept for read_response.
  bool wait_closed(std::chrono::milliseconds timeout = kDeadline) {
    const auto deadline = Clock::now() + timeout;
    while (true) {
      try {
        char chunk[4096];
        const int n = socket_.receiveBytes(chunk, sizeof(chunk));
        if (n <= 0) return true;
        buffer_.append(chunk, static_cast<std::size_t>(n));
      } catch (const Poco::TimeoutException&) {
        if (Clock::now() >= deadline) return false;
      } catch (const Poco::Net::ConnectionResetException&) {
        return true;
      }
    }
  }

  // What arrived after the last response read.
  const std::string& unread() const { return buffer_; }

  // True when the server has neither closed the connection nor sent anything.
  bool open_and_quiet() {
    return buffer_.empty() && !socket_.poll(Poco::Timespan(0), Poco::Net::Socket::SELECT_READ);
  }

 private:
  // Appends what arrives to buffer_; false at end of stream or the deadline.
  bool receive_until(Clock::time_point deadline) {
    while (Clock::now() < deadline) {
      try {
        char chunk[4096];
        const int n = socket_.receiveBytes(chunk, sizeof(chunk));
        if (n <= 0) return false;
        buffer_.append(chunk, static_cast<std::size_t>(n));
        return true;
      } catch (const Poco::TimeoutException&) {
      }
    }
    return false;
  }

  Poco::Net::StreamSocket socket_;
  std::string buffer_;
};

std::string post_head(const std::string& framing_headers) {
  return "POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n" +
         framing_headers + "\r\n";
}

std::string chunked(const std::string& body) {
  std::ostringstream out;
  out << std::hex << body.size() << "\r\n" << body << "\r\n0\r\n\r\n";
  return out.str();
}

// ------------------------------------------------------------- secrets --

TEST_F(ProxyTest, APermanentErrorIsLoggedAndKeptAsADeadLetterButNeverATokenInEither) {
  slack.enqueue(Behaviour::error("invalid_auth"), 1, "#perm");
  ProxyConfig c = config();
  c.log_level = "trace";
  auto& p = start(c);
  const std::string body =
      R"({"channel":"#perm","text":"permanent-payload-7731","token":"xoxb-caller-secret-perm"})";
  HttpRequest request;
  request.method = "POST";
  request.url = p.url();
  request.body = body;
  request.content_type = "application/json";
  request.headers = {{"Authorization", std::string("Bearer ") + kTestToken}};
  ASSERT_EQ(http_send(request).status, 200);
  ASSERT_TRUE(p.wait_for_metric(series(kFailed, "#perm"), 1));
  ASSERT_TRUE(p.wait_for_log("kept as a dead letter"));

  const std::string log = p.log();
  const std::regex failure_line("to #perm failed .*invalid_auth.*kept as a dead letter");
  EXPECT_EQ(count_lines_matching(log, failure_line), 1u) << log;
  EXPECT_EQ(log.find(kTestToken), std::string::npos) << "SLACK_TOKEN in the log";
  EXPECT_EQ(log.find("xoxb-caller-secret-perm"), std::string::npos) << "the caller's token in the log";

  // The request itself is kept for a replay, without the token field.
  HttpRequest list;
  list.url = p.metrics_url("/admin/dead-letters?channel=%23perm");
  const HttpResponse listed = http_send(list);
  ASSERT_EQ(listed.status, 200) << listed.body;
  const std::smatch id = [&] {
    std::smatch m;
    std::regex_search(listed.body, m, std::regex(R"re("id":"([^"]+)")re"));
    return m;
  }();
  ASSERT_FALSE(id.empty()) << listed.body;
  HttpRequest show;
  show.url = p.metrics_url("/admin/dead-letters/" + id[1].str());
  const HttpResponse shown = http_send(show);
  ASSERT_EQ(shown.status, 200) << shown.body;
  EXPECT_NE(shown.body.find("permanent-payload-7731"), std::string::npos) << shown.body;
  EXPECT_NE(shown.body.find("invalid_auth"), std::string::npos) << shown.body;
  EXPECT_EQ(shown.body.find("xoxb-caller-secret-perm"), std::string::npos) << shown.body;
  EXPECT_EQ(shown.body.find(kTestToken), std::string::npos) << shown.body;
}

TEST_F(ProxyTest, NeverLogsAQueryStringOrTheRestOfAnUnknownPath) {
  ProxyConfig c = config();
  c.log_level = "trace";
  auto& p = start(c);
  EXPECT_EQ(p.post("{not json", "/?token=xoxb-query-secret-1").status, 400);
  EXPECT_EQ(p.post(message("#a", "x"), "/hooks/T0/B0/SECRETPATH").status, 404);
  p.signal(SIGTERM);
  ASSERT_TRUE(p.wait_exit(kDeadline).has_value());

  const std::string log = p.log();
  // Both refusals were logged, so their absence below means something.
  EXPECT_NE(log.find("invalid_json"), std::string::npos) << log;
  EXPECT_NE(log.find("not_found"), std::string::npos) << log;
  EXPECT_EQ(log.find("query-secret"), std::string::npos) << log;
  EXPECT_EQ(log.find("SECRETPATH"), std::string::npos) << log;
}

// ---------------------------------------------------------- log levels --

TEST_F(ProxyTest, LogLevelOptionDebugOverridesTheConfigsWarn) {
  ProxyConfig c = config();
  c.log_level = "warn";
  proxy = std::make_unique<ProxyProcess>(c.toml(), default_environment(),
                                         std::vector<std::string>{"--log-level", "debug"});
  ASSERT_TRUE(proxy->start());
  ASSERT_EQ(proxy->post(message("#dbg", "x")).status, 200);
  EXPECT_TRUE(proxy->wait_for_log("accepted message"));
}

TEST_F(ProxyTest, LogLevelOptionWarnHidesTheInfoStartupLine) {
  ProxyConfig c = config();
  c.log_level = "info";
  proxy = std::make_unique<ProxyProcess>(c.toml(), default_environment(),
                                         std::vector<std::string>{"--log-level", "warn"});
  ASSERT_TRUE(proxy->start());
  // A warning, so that the log is shown to be written at this level.
  ASSERT_EQ(proxy->post("{not json").status, 400);
  proxy->signal(SIGTERM);
  ASSERT_TRUE(proxy->wait_exit(kDeadline).has_value());
  const std::string log = proxy->log();
  EXPECT_NE(log.find("invalid_json"), std::string::npos) << log;
  EXPECT_EQ(log.find("listening on"), std::string::npos) << log;
}

TEST_F(ProxyTest, UnknownLogLevelExitsTwoNamingIt) {
  ProxyProcess p(config().toml(), default_environment(), {"--log-level", "loud"});
  p.spawn();
  const auto code = p.wait_exit(kDeadline);
  ASSERT_TRUE(code.has_value());
  EXPECT_EQ(*code, 2);
  EXPECT_NE(p.log().find("'loud'"), std::string::npos) << p.log();
}

// ------------------------------------------------------------ shutdown --

TEST_F(ProxyTest, ExitsPromptlyOnSigtermDespiteAnIdleKeepAliveClient) {
  ProxyConfig c = config();
  c.shutdown_timeout = "2s";
  c.server_settings = "keep_alive_timeout = \"60s\"\n";
  auto& p = start(c);
  RawConnection client(p.listen_port());
  const std::string body = message("#idle", "then silence");
  client.send(post_head("Content-Length: " + std::to_string(body.size()) + "\r\n") + body);
  const auto reply = client.read_response();
  ASSERT_TRUE(reply.has_value());
  ASSERT_EQ(reply->status, 200) << reply->body;
  ASSERT_TRUE(client.open_and_quiet()) << "the proxy did not keep the connection alive";

  p.signal(SIGTERM);
  const auto code = p.wait_exit(5s);
  ASSERT_TRUE(code.has_value()) << "still running 5 s after SIGTERM; log:\n" << p.log();
  EXPECT_EQ(*code, 0) << p.log();
}

// ------------------------------------------------------------- framing --

TEST_F(ProxyTest, AnswersAMalformedChunkedBody400AndClosesTheConnection) {
  auto& p = start(config());
  RawConnection client(p.listen_port());
  // Not a hex chunk size; what follows must not be read as anything.
  client.send(post_head("Transfer-Encoding: chunked\r\n") + "zz\r\n" +
              message("#smuggled", "x") + "\r\n0\r\n\r\n");
  const auto reply = client.read_response();
  ASSERT_TRUE(reply.has_value());
  EXPECT_EQ(reply->status, 400) << reply->body;
  // Poco 1.11 reads the bad size line as the end of the body, so what the
  // proxy sees is an empty (not-JSON) body: 400 invalid_json. What matters
  // is that nothing after it is ever read as a request.
  const std::string error = parse_object(reply->body)->getValue<std::string>("error");
  EXPECT_TRUE(error == "invalid_json" || error == "invalid_request") << reply->body;
  EXPECT_TRUE(client.wait_closed()) << "the connection stayed open";
  EXPECT_EQ(client.unread(), "") << "the rest of the body was answered as a request";

  EXPECT_EQ(p.get("/health").status, 200);
  const std::string m = p.metrics();
  EXPECT_EQ(metric(m, rejected(error)), 1) << m;
  EXPECT_EQ(metric_sum(m, kReceived), 0) << m;
  EXPECT_EQ(metric(m, "slackproxy_queue_size"), 0) << m;
  EXPECT_EQ(slack.count(), 0u);
}

TEST_F(ProxyTest, AnswersContentLengthWithTransferEncoding400AndClosesTheConnection) {
  auto& p = start(config());
  RawConnection client(p.listen_port());
  const std::string body = chunked(message("#smuggled", "x"));
  client.send(post_head("Content-Length: " + std::to_string(body.size()) +
                        "\r\nTransfer-Encoding: chunked\r\n") +
              body);
  const auto reply = client.read_response();
  ASSERT_TRUE(reply.has_value());
  EXPECT_EQ(reply->status, 400) << reply->body;
  EXPECT_EQ(parse_object(reply->body)->getValue<std::string>("error"), "invalid_request");
  EXPECT_TRUE(client.wait_closed()) << "the connection stayed open";
  EXPECT_EQ(client.unread(), "") << "the body was answered as a request";
  EXPECT_EQ(metric_sum(p.metrics(), kReceived), 0);
  EXPECT_EQ(slack.count(), 0u);
}

// ------------------------------------------------------------ start-up --

TEST_F(ProxyTest, StartsAndServesWithOneIngressThread) {
  ProxyConfig c = config();
  c.threads = 1;
  auto& p = start(c);
  ASSERT_EQ(p.post(message("#single", "one thread")).status, 200);
  EXPECT_TRUE(p.wait_for_metric(series(kSucceeded, "#single"), 1));
  EXPECT_EQ(slack.count(), 1u);
}

TEST_F(ProxyTest, ASecondProxyOnATakenPortExitsTwoAndTheFirstKeepsServing) {
  auto& first = start(config());
  std::string text = config().toml();
  text.replace(text.find("@LISTEN@"), 8, "127.0.0.1:" + std::to_string(first.listen_port()));
  ProxyProcess second(text);
  second.spawn();
  const auto code = second.wait_exit(kDeadline);
  ASSERT_TRUE(code.has_value()) << "the second proxy is running; log:\n" << second.log();
  EXPECT_EQ(*code, 2);
  EXPECT_NE(second.log().find("Address already in use"), std::string::npos) << second.log();

  ASSERT_EQ(first.post(message("#first", "still here")).status, 200);
  EXPECT_TRUE(first.wait_for_metric(series(kSucceeded, "#first"), 1));
}

TEST_F(ProxyTest, ValidateRejectsANegativeRateNamingTheRuleAndTheStageLine) {
  ProxyConfig c = config();
  c.stages = stage("token_bucket", "rate = -1.0\nburst = 3\n") + ProxyConfig::fast_retry_stages();
  const std::string text = c.toml();
  const CommandResult r = run_validate(text);
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_NE(r.output.find("rate must be > 0"), std::string::npos) << r.output;
  // Refusals name the [[pipeline.stage]] header that opens the table.
  const auto header_at = text.rfind("[[pipeline.stage]]", text.find("plugin = \"token_bucket\""));
  const int stage_line =
      1 + static_cast<int>(std::count(text.begin(), text.begin() + static_cast<long>(header_at), '\n'));
  EXPECT_NE(r.output.find("slack-proxy.toml:" + std::to_string(stage_line) + ":"),
            std::string::npos)
      << "expected line " << stage_line << " in\n"
      << r.output;
}

TEST_F(ProxyTest, ValidateAcceptsAGoodConfigWithoutSlackToken) {
  const CommandResult r = run_validate(config().toml(), Environment{});
  EXPECT_EQ(r.exit_code, 0) << r.output;
}

// ------------------------------------------------------ bounded logging --

TEST_F(ProxyTest, DrainSummaryListsTenLanesAndCountsTheRest) {
  slack.set_default(Behaviour::slow(20s));
  ProxyConfig c = config();
  c.workers = 2;
  c.shutdown_timeout = "1s";
  auto& p = start(c);
  for (int i = 1; i <= 30; ++i) {
    ASSERT_EQ(p.post(message("#lane-" + std::to_string(i), "stuck")).status, 200);
  }
  ASSERT_TRUE(slack.wait_for(2, kDeadline));
  p.signal(SIGTERM);
  const auto code = p.wait_exit(5s);
  ASSERT_TRUE(code.has_value()) << "still running 5 s after SIGTERM; log:\n" << p.log();
  EXPECT_EQ(*code, 0);
  const std::string log = p.log();
  EXPECT_EQ(count_lines_matching(log, std::regex(R"(#lane-[0-9]+: [0-9]+ message\(s\) left$)")),
            10u)
      << log;
  EXPECT_NE(log.find("... and 20 more channel(s)"), std::string::npos) << log;
}

TEST_F(ProxyTest, ThrottlesRejectionLinesButCountsEveryRejection) {
  auto& p = start(config());
  constexpr int kBurst = 200;
  constexpr int kLinesPerSecond = 20;
  // The proxy's throttle counts per second of the same monotonic clock as
  // ours, so the seconds the burst touched bound the lines it may log.
  const auto first_second = std::chrono::duration_cast<std::chrono::seconds>(
      Clock::now().time_since_epoch());
  for (int i = 0; i < kBurst; ++i) ASSERT_EQ(p.post("{not json").status, 400);
  const auto last_second = std::chrono::duration_cast<std::chrono::seconds>(
      Clock::now().time_since_epoch());
  ASSERT_TRUE(p.wait_for_metric(rejected("invalid_json"), kBurst));

  const auto seconds_touched = (last_second - first_second).count() + 1;
  const std::size_t lines = count_lines_matching(p.log(), std::regex(" 400 invalid_json "));
  EXPECT_GE(lines, static_cast<std::size_t>(kLinesPerSecond)) << p.log();
  EXPECT_LE(lines, static_cast<std::size_t>(kLinesPerSecond * seconds_touched))
      << "over " << seconds_touched << " second(s); log:\n"
      << p.log();
}

// --------------------------------------------------------- concurrency --

// Holds each request inside the fake Slack (on its server thread, before the
// reply) until the test releases it, so the test knows exactly how many
// sends the proxy has in flight.
class ReplyGate {
 public:
  void hold() {
    std::unique_lock lock(mutex_);
    ++held_;
    max_held_ = std::max(max_held_, held_);
    changed_.notify_all();
    changed_.wait(lock, [&] { return open_ || releases_ > 0; });
    if (!open_) --releases_;
    --held_;
  }
  void release_one() {
    std::lock_guard lock(mutex_);
    ++releases_;
    changed_.notify_all();
  }
  void open() {
    std::lock_guard lock(mutex_);
    open_ = true;
    changed_.notify_all();
  }
  bool wait_held(int n, std::chrono::milliseconds timeout) {
    std::unique_lock lock(mutex_);
    return changed_.wait_for(lock, timeout, [&] { return held_ >= n; });
  }
  int held() {
    std::lock_guard lock(mutex_);
    return held_;
  }
  int max_held() {
    std::lock_guard lock(mutex_);
    return max_held_;
  }

 private:
  std::mutex mutex_;
  std::condition_variable changed_;
  int held_ = 0;
  int max_held_ = 0;
  int releases_ = 0;
  bool open_ = false;
};

TEST(InFlightCap, SendsAtMostWorkersMessagesAtOnce) {
  auto gate = std::make_shared<ReplyGate>();
  FakeSlack slack;
  slack.on_request([gate](const RecordedRequest&) { gate->hold(); });
  slack.start();
  // Declared after the fake: let held requests go before it stops.
  struct OpenOnExit {
    std::shared_ptr<ReplyGate> gate;
    ~OpenOnExit() { gate->open(); }
  } open_on_exit{gate};

  ProxyConfig c;
  c.slack_url = slack.url();
  c.workers = 2;
  c.sink_settings = "timeout = \"60s\"\n";  // a held reply must not time out
  ProxyProcess p(c);
  ASSERT_TRUE(p.start());
  const std::vector<std::string> channels{"#c1", "#c2", "#c3", "#c4", "#c5"};
  for (const auto& channel : channels) ASSERT_EQ(p.post(message(channel, "x")).status, 200);

  ASSERT_TRUE(gate->wait_held(2, kDeadline));
  // Five lanes are due and nothing holds them back but the cap: a third send
  // would arrive within this second.
  EXPECT_FALSE(slack.wait_for(3, 1s)) << "a third send while two were held";
  EXPECT_EQ(gate->held(), 2);

  // Each reply frees one worker, which takes the next lane.
  for (std::size_t next = 3; next <= channels.size(); ++next) {
    gate->release_one();
    ASSERT_TRUE(slack.wait_for(next, kDeadline));
  }
  gate->open();
  for (const auto& channel : channels) {
    EXPECT_TRUE(p.wait_for_metric(series(kSucceeded, channel), 1)) << channel;
  }
  EXPECT_EQ(slack.count(), channels.size());
  EXPECT_EQ(gate->max_held(), 2);
}

}  // namespace
}  // namespace slack_proxy::testing

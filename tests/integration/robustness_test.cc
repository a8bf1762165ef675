// The proxy end to end where it used to go wrong: secrets in logs, log levels,
// shutdown with idle clients, broken HTTP framing, hostile input (oversize
// heads and bodies, slow clients, deep JSON, bad UTF-8), TLS, start-up
// failures, bounded log output, and the cap on sends in flight.
#include <gtest/gtest.h>
#include <signal.h>

#include <Poco/String.h>
#include <Poco/Exception.h>
#include <Poco/Net/Context.h>
#include <Poco/Net/HTTPRequest.h>
#include <Poco/Net/HTTPResponse.h>
#include <Poco/Net/HTTPSClientSession.h>
#include <Poco/Net/NetException.h>
#include <Poco/Net/NetSSL.h>
#include <Poco/Net/RejectCertificateHandler.h>
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
#include <thread>

#include "proxy_test.h"
#include "raw_connection.h"
#include "test_certs.h"

namespace slack_proxy::testing {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

std::size_t count_lines_matching(const std::string& text, const std::regex& pattern) {
  std::size_t n = 0;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);)
    if (std::regex_search(line, pattern)) ++n;
  return n;
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
  list.headers = {{"Authorization", std::string("Bearer ") + kAdminKey}};
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
  show.headers = {{"Authorization", std::string("Bearer ") + kAdminKey}};
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
  ASSERT_EQ(p.wait_exit(kDeadline), std::optional<int>(0)) << p.log();

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
  ASSERT_EQ(proxy->wait_exit(kDeadline), std::optional<int>(0)) << proxy->log();
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
  EXPECT_TRUE(family_sums_to_zero(m, kReceived));
  EXPECT_TRUE(metric_is_zero(m, kQueueSize));
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
  EXPECT_TRUE(family_sums_to_zero(p.metrics(), kReceived));
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
  EXPECT_NE(r.output.find("'rate' must be > 0, got -1"), std::string::npos) << r.output;
  // The schema's bound is checked by the host, which names the value's own line.
  const auto rate_at = text.find("rate = -1.0", text.find("plugin = \"token_bucket\""));
  const int stage_line =
      1 + static_cast<int>(std::count(text.begin(), text.begin() + static_cast<long>(rate_at), '\n'));
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

// ------------------------------------------------------- hostile input --

// A POST head with `extra` header lines (each ending in CRLF) before the
// framing, for `body`.
std::string head_with(const std::string& extra, const std::string& body) {
  return "POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n" + extra +
         "Content-Length: " + std::to_string(body.size()) + "\r\n\r\n";
}

// Checks a refusal of the head: status, Slack-style error, Connection:
// close and the connection really closed, a log line, the counter, and
// nothing queued; then that the proxy still serves.
void expect_head_refused(ProxyProcess& p, RawConnection& client, int status,
                         const std::string& error, const std::string& detail_part) {
  const auto reply = client.read_response();
  ASSERT_TRUE(reply.has_value()) << "no answer; log:\n" << p.log();
  EXPECT_EQ(reply->status, status) << reply->body;
  const auto object = parse_object(reply->body);
  EXPECT_FALSE(object->getValue<bool>("ok"));
  EXPECT_EQ(object->getValue<std::string>("error"), error);
  EXPECT_NE(object->getValue<std::string>("detail").find(detail_part), std::string::npos)
      << reply->body;
  // A token, so any case (RFC 9110 section 7.6.1).
  EXPECT_TRUE(Poco::icompare(
                  reply->headers.count("connection") ? reply->headers.at("connection") : "",
                  "close") == 0);
  EXPECT_TRUE(client.wait_closed()) << "the connection stayed open";
  EXPECT_TRUE(p.wait_for_log(std::to_string(status) + " " + error));
  EXPECT_TRUE(p.wait_for_metric(rejected(error), 1));
  EXPECT_TRUE(family_sums_to_zero(p.metrics(), kReceived));
  EXPECT_EQ(p.post(message("#after", "still serving")).status, 200);
}

TEST_F(ProxyTest, TwoHundredHeaderFieldsAre431AndTheConnectionIsClosed) {
  auto& p = start(config());
  RawConnection client(p.listen_port());
  std::string fields;
  for (int i = 0; i < 200; ++i) fields += "X-Field-" + std::to_string(i) + ": v\r\n";
  const std::string body = message("#headers", "x");
  client.send(head_with(fields, body) + body);
  expect_head_refused(p, client, 431, "headers_too_large", "more than 100 header fields");
}

TEST_F(ProxyTest, AHundredKilobyteHeaderIs431AndTheConnectionIsClosed) {
  auto& p = start(config());
  RawConnection client(p.listen_port());
  const std::string body = message("#headers", "x");
  client.send(head_with("X-Big: " + std::string(100'000, 'a') + "\r\n", body) + body);
  expect_head_refused(p, client, 431, "headers_too_large", "longer than 8192 bytes");
}

TEST_F(ProxyTest, MaxHeaderFieldsIsConfigurable) {
  ProxyConfig c = config();
  c.server_settings = "max_header_fields = 10\n";
  auto& p = start(c);
  // Host, Content-Type and Content-Length are three of them.
  std::string seven;
  for (int i = 0; i < 7; ++i) seven += "X-Field-" + std::to_string(i) + ": v\r\n";
  const std::string body = message("#headers", "x");
  RawConnection ten(p.listen_port());
  ten.send(head_with(seven, body) + body);
  const auto ok = ten.read_response();
  ASSERT_TRUE(ok.has_value());
  EXPECT_EQ(ok->status, 200) << ok->body;

  RawConnection eleven(p.listen_port());
  eleven.send(head_with(seven + "X-One-More: v\r\n", body) + body);
  const auto refused = eleven.read_response();
  ASSERT_TRUE(refused.has_value());
  EXPECT_EQ(refused->status, 431) << refused->body;
  EXPECT_NE(refused->body.find("more than 10 header fields"), std::string::npos) << refused->body;
}

TEST_F(ProxyTest, AHeadOverMaxHeaderBytesIs431EvenWhenEachFieldIsSmall) {
  ProxyConfig c = config();
  c.server_settings = "max_header_bytes = 4096\n";
  auto& p = start(c);
  std::string fields;
  for (int i = 0; i < 10; ++i) fields += "X-Field-" + std::to_string(i) + ": " + std::string(1000, 'v') + "\r\n";
  const std::string body = message("#headers", "x");
  RawConnection client(p.listen_port());
  client.send(head_with(fields, body) + body);
  expect_head_refused(p, client, 431, "headers_too_large", "larger than 4096 bytes");
}

TEST_F(ProxyTest, AUriOverPocosLimitIs414) {
  auto& p = start(config());
  const std::string body = message("#uri", "x");
  RawConnection client(p.listen_port());
  client.send("POST /" + std::string(20'000, 'u') +
              " HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: " +
              std::to_string(body.size()) + "\r\n\r\n" + body);
  expect_head_refused(p, client, 414, "uri_too_long", "longer than 16384 bytes");
}

TEST_F(ProxyTest, ABodyOverTheLimitIs413BeforeItIsReadWithContentLengthOrChunked) {
  ProxyConfig c = config();
  c.max_body_bytes = 1024;
  auto& p = start(c);

  // Declared too large: answered on the head alone, while the body is unsent.
  RawConnection declared(p.listen_port());
  declared.send(post_head("Content-Length: 10485760\r\n"));
  const auto by_length = declared.read_response();
  ASSERT_TRUE(by_length.has_value());
  EXPECT_EQ(by_length->status, 413) << by_length->body;
  EXPECT_EQ(parse_object(by_length->body)->getValue<std::string>("error"), "request_too_large");
  EXPECT_TRUE(declared.wait_closed());

  // Chunked: refused once the limit is passed; the rest is never read.
  RawConnection chunks(p.listen_port());
  const std::string text(4000, 'x');
  chunks.send(post_head("Transfer-Encoding: chunked\r\n") +
              chunked(message("#big", text)).substr(0, 3000));
  const auto by_chunks = chunks.read_response();
  ASSERT_TRUE(by_chunks.has_value());
  EXPECT_EQ(by_chunks->status, 413) << by_chunks->body;
  EXPECT_EQ(parse_object(by_chunks->body)->getValue<std::string>("error"), "request_too_large");
  EXPECT_TRUE(chunks.wait_closed());

  EXPECT_TRUE(p.wait_for_metric(rejected("request_too_large"), 2));
  EXPECT_TRUE(family_sums_to_zero(p.metrics(), kReceived));
  EXPECT_EQ(slack.count(), 0u);
}

TEST_F(ProxyTest, APostWithoutContentLengthHasNoBodyAndTheConnectionStaysUsable) {
  auto& p = start(config());
  RawConnection client(p.listen_port());
  // RFC 9112: no Content-Length and no Transfer-Encoding is an empty body,
  // answered at once (not after waiting read_timeout for the connection to end).
  client.send(post_head(""));
  const auto empty = client.read_response(2s);
  ASSERT_TRUE(empty.has_value()) << "no prompt answer";
  EXPECT_EQ(empty->status, 400) << empty->body;
  EXPECT_EQ(parse_object(empty->body)->getValue<std::string>("error"), "invalid_json");

  const std::string body = message("#keepalive", "second request, same connection");
  client.send(post_head("Content-Length: " + std::to_string(body.size()) + "\r\n") + body);
  const auto ok = client.read_response();
  ASSERT_TRUE(ok.has_value());
  EXPECT_EQ(ok->status, 200) << ok->body;
  EXPECT_TRUE(p.wait_for_metric(series(kReceived, "#keepalive"), 1));
}

TEST_F(ProxyTest, ExpectContinueIsAnsweredOnlyWhenTheBodyMayBeRead) {
  ProxyConfig c = config();
  c.max_body_bytes = 1024;
  auto& p = start(c);
  const std::string body = message("#continue", "after 100");
  RawConnection client(p.listen_port());
  client.send(post_head("Expect: 100-continue\r\nContent-Length: " + std::to_string(body.size()) +
                        "\r\n"));
  const auto go_on = client.read_response();
  ASSERT_TRUE(go_on.has_value());
  EXPECT_EQ(go_on->status, 100);
  client.send(body);
  const auto ok = client.read_response();
  ASSERT_TRUE(ok.has_value());
  EXPECT_EQ(ok->status, 200) << ok->body;

  RawConnection too_big(p.listen_port());
  too_big.send(post_head("Expect: 100-continue\r\nContent-Length: 4096\r\n"));
  const auto refused = too_big.read_response();
  ASSERT_TRUE(refused.has_value());
  EXPECT_EQ(refused->status, 413) << "a 100 Continue invites a body that will not be read";
}

TEST_F(ProxyTest, AHundredThousandNestedArraysAre400InvalidJsonAndTheProxyLives) {
  auto& p = start(config());
  const std::string deep = R"({"channel":"#deep","text":"x","d":)" + std::string(100'000, '[') +
                           std::string(100'000, ']') + "}";
  const HttpResponse r = p.post(deep);
  EXPECT_EQ(r.status, 400) << r.body;
  EXPECT_EQ(error_of(r), "invalid_json");
  EXPECT_NE(r.body.find("deeper than 64 levels"), std::string::npos) << r.body;
  EXPECT_EQ(p.get("/health").status, 200);
  EXPECT_EQ(p.post(message("#after", "fine")).status, 200);
}

TEST_F(ProxyTest, InvalidUtf8Is400InvalidUtf8) {
  auto& p = start(config());
  const HttpResponse json = p.post("{\"channel\":\"#u\",\"text\":\"\xC0\xAF\"}");
  EXPECT_EQ(json.status, 400) << json.body;
  EXPECT_EQ(error_of(json), "invalid_utf8");
  const HttpResponse form =
      p.post("channel=%23u&text=%ED%A0%80", "/", "application/x-www-form-urlencoded");
  EXPECT_EQ(form.status, 400) << form.body;
  EXPECT_EQ(error_of(form), "invalid_utf8");
  EXPECT_EQ(p.post(message("#u", "caf\xC3\xA9")).status, 200);
  EXPECT_TRUE(p.wait_for_metric(rejected("invalid_utf8"), 2));
}

// ---------------------------------------------------------- slow clients --

// Sends `bytes` one at a time, `every` apart, until the proxy closes the
// connection; returns how long that took from the first byte (nullopt when
// all was sent and the connection is still open).
std::optional<std::chrono::milliseconds> trickle(RawConnection& client, const std::string& bytes,
                                                 std::chrono::milliseconds every = 100ms) {
  const auto start = Clock::now();
  for (char byte : bytes) {
    try {
      client.send(std::string(1, byte));
    } catch (const Poco::Exception&) {
      // Reset: closed, and then some.
      return std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - start);
    }
    if (client.wait_closed(every))
      return std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - start);
  }
  return std::nullopt;
}

// The proxy cut off a trickling client: after read_timeout (not a moment
// before), not long after it, with a 408.
void expect_cut_off_by_read_timeout(const std::optional<std::chrono::milliseconds>& after,
                                    const RawConnection& client,
                                    std::chrono::milliseconds read_timeout) {
  ASSERT_TRUE(after.has_value()) << "the slow client was never cut off";
  EXPECT_GE(*after, read_timeout - 150ms);
  EXPECT_LT(*after, read_timeout + 2s);
  EXPECT_NE(client.unread().find("HTTP/1.1 408"), std::string::npos) << client.unread();
  EXPECT_NE(client.unread().find("\"request_timeout\""), std::string::npos) << client.unread();
}

TEST_F(ProxyTest, AClientTricklingItsHeadIsCutOffAfterReadTimeout) {
  ProxyConfig c = config();
  c.server_settings = "read_timeout = \"1s\"\n";
  auto& p = start(c);
  const std::string body = message("#slow", "head");
  RawConnection client(p.listen_port());
  // A byte every 100 ms: every read is quick, the head takes ~10 s.
  const auto after = trickle(client, post_head("Content-Length: " + std::to_string(body.size()) +
                                               "\r\nX-Padding: " + std::string(40, 'p') + "\r\n"));
  expect_cut_off_by_read_timeout(after, client, 1s);
  EXPECT_TRUE(p.wait_for_metric(rejected("request_timeout"), 1));
  EXPECT_EQ(slack.count(), 0u);
}

TEST_F(ProxyTest, AClientTricklingItsBodyIsCutOffAfterReadTimeout) {
  ProxyConfig c = config();
  c.server_settings = "read_timeout = \"1s\"\n";
  auto& p = start(c);
  const std::string body = message("#slow", std::string(100, 'b'));
  RawConnection client(p.listen_port());
  client.send(post_head("Content-Length: " + std::to_string(body.size()) + "\r\n"));
  const auto after = trickle(client, body);
  expect_cut_off_by_read_timeout(after, client, 1s);
  EXPECT_TRUE(p.wait_for_metric(rejected("request_timeout"), 1));
  EXPECT_TRUE(family_sums_to_zero(p.metrics(), kReceived));
}

TEST_F(ProxyTest, SlowClientsAreCutOffByReadTimeoutAndNeverMakeAnotherCallerWait) {
  ProxyConfig c = config();
  c.threads = 1;  // one event thread serves them all
  c.server_settings = "read_timeout = \"1s\"\n";
  auto& p = start(c);
  const std::string head = post_head("Content-Length: 100\r\nX-Padding: " +
                                     std::string(60, 'p') + "\r\n");
  // Both connect before the normal client, as they did when each held one
  // of a thread-per-connection server's threads.
  RawConnection slow_a(p.listen_port());
  RawConnection slow_b(p.listen_port());
  std::optional<std::chrono::milliseconds> cut_a, cut_b;
  std::atomic<int> cut_off{0};
  auto run = [&](RawConnection& client, std::optional<std::chrono::milliseconds>& cut) {
    cut = trickle(client, head);
    ++cut_off;
  };
  std::thread a(run, std::ref(slow_a), std::ref(cut_a));
  std::thread b(run, std::ref(slow_b), std::ref(cut_b));

  HttpRequest normal;
  normal.method = "POST";
  normal.url = p.url();
  normal.content_type = "application/json";
  normal.body = message("#normal", "served");
  normal.timeout = 10s;
  const HttpResponse r = http_send(normal);
  // Served while both were still trickling, not when read_timeout freed
  // anything.
  const int cut_before_served = cut_off.load();
  a.join();
  b.join();

  EXPECT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(cut_before_served, 0) << "the normal caller waited for a slow client to be cut off";
  expect_cut_off_by_read_timeout(cut_a, slow_a, 1s);
  expect_cut_off_by_read_timeout(cut_b, slow_b, 1s);
  EXPECT_TRUE(p.wait_for_metric(series(kSucceeded, "#normal"), 1));
}

// ----------------------------------------------------------------- TLS --

TEST_F(ProxyTest, ServesHttpsWithTheConfiguredCertificateAndRefusesPlainHttp) {
  TestCertificates certs;
  auto& p = start(tls_config(config(), certs.localhost()));
  HttpRequest request;
  request.method = "POST";
  request.url = https_url(p);
  request.ca_file = certs.ca_certificate();
  request.content_type = "application/json";
  request.body = message("#tls", "over https");
  const HttpResponse r = http_send(request);
  EXPECT_EQ(r.status, 200) << r.body;
  ASSERT_TRUE(slack.wait_for(1, kDeadline));
  EXPECT_NE(slack.requests().at(0).body.find("over https"), std::string::npos);

  // Plain HTTP to the TLS port: the handshake fails and nothing is answered.
  RawConnection plain(p.listen_port());
  const std::string body = message("#plain", "x");
  plain.send(post_head("Content-Length: " + std::to_string(body.size()) + "\r\n") + body);
  EXPECT_TRUE(plain.wait_closed()) << "the connection stayed open";
  EXPECT_EQ(plain.unread().find("HTTP/1."), std::string::npos) << plain.unread();

  // A client that trusts no such CA is refused too, and HTTPS still works after both.
  HttpRequest untrusted = request;
  untrusted.ca_file = "";
  EXPECT_THROW(http_send(untrusted), Poco::Exception);
  EXPECT_EQ(http_send(request).status, 200);
  EXPECT_TRUE(p.wait_for_metric(series(kSucceeded, "#tls"), 2));
  EXPECT_TRUE(metric_is_zero(p.metrics(), series(kReceived, "#plain")));
}

TEST_F(ProxyTest, TlsMinVersionOneThreeRefusesATlsOneTwoClient) {
  Poco::Net::initializeSSL();
  TestCertificates certs;
  auto& p = start(tls_config(config(), certs.localhost(), "tls_min_version = \"1.3\"\n"));
  auto session_with = [&](bool allow_13) {
    Poco::Net::Context::Ptr context = new Poco::Net::Context(
        Poco::Net::Context::TLS_CLIENT_USE, "", "", certs.ca_certificate(),
        Poco::Net::Context::VERIFY_RELAXED, 9, false);
    context->setInvalidCertificateHandler(new Poco::Net::RejectCertificateHandler(false));
    if (!allow_13) context->disableProtocols(Poco::Net::Context::PROTO_TLSV1_3);
    Poco::Net::HTTPSClientSession session("127.0.0.1", p.listen_port(), context);
    session.setTimeout(Poco::Timespan(5, 0));
    Poco::Net::HTTPRequest request(Poco::Net::HTTPRequest::HTTP_GET, "/health",
                                   Poco::Net::HTTPMessage::HTTP_1_1);
    session.sendRequest(request);
    Poco::Net::HTTPResponse response;
    session.receiveResponse(response);
    return static_cast<int>(response.getStatus());
  };
  EXPECT_EQ(session_with(true), 200);
  EXPECT_THROW(session_with(false), Poco::Exception);
}

TEST_F(ProxyTest, AnUnreadableCertificateOrKeyStopsStartupNamingThePath) {
  TestCertificates certs;
  const std::string missing = (certs.dir() / "missing-cert.pem").string();
  ProxyProcess p(tls_config(config(), {missing, certs.localhost().private_key}).toml());
  p.spawn();
  const auto code = p.wait_exit(kDeadline);
  ASSERT_TRUE(code.has_value()) << "still running; log:\n" << p.log();
  EXPECT_EQ(*code, 2);
  EXPECT_NE(p.log().find("[server] tls_cert \"" + missing + "\": cannot read it: No such file"),
            std::string::npos)
      << p.log();

  // A key that is not the certificate's.
  ProxyProcess mismatch(
      tls_config(config(), {certs.localhost().certificate, certs.wrong_name().private_key}).toml());
  mismatch.spawn();
  const auto mismatch_code = mismatch.wait_exit(kDeadline);
  ASSERT_TRUE(mismatch_code.has_value()) << "still running; log:\n" << mismatch.log();
  EXPECT_EQ(*mismatch_code, 2);
  EXPECT_NE(mismatch.log().find(certs.wrong_name().private_key), std::string::npos)
      << mismatch.log();
  EXPECT_EQ(mismatch.log().find("PRIVATE KEY-----"), std::string::npos) << "key material in the log";
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

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <unistd.h>

#include <Poco/JSON/Object.h>
#include <Poco/JSON/Parser.h>
#include <Poco/Net/AcceptCertificateHandler.h>
#include <Poco/Net/Context.h>
#include <Poco/Net/HTTPRequest.h>
#include <Poco/Net/HTTPResponse.h>
#include <Poco/Net/HTTPSClientSession.h>
#include <Poco/Net/RejectCertificateHandler.h>
#include <Poco/Net/SSLManager.h>
#include <Poco/Net/ServerSocket.h>
#include <Poco/Net/SocketAddress.h>
#include <Poco/Net/StreamSocket.h>
#include <gtest/gtest.h>
#include <slack_proxy/sdk/secret_file.h>
#include <slack_proxy/sdk/testing/fakes.h>
#include <slack_proxy/sdk/testing/http.h>

#include "fake_slack.h"
#include "slack_sink.h"

namespace slack_proxy::plugins::slack_sink {
namespace {

// The proxy's real HTTP client, made from the settings the sink asks with,
// so the sink is tested over real sockets.
using FakeHost = sdk::testing::FakeHostWithRealHttp;

// The settings as the factory sees them (the host's schema defaults aside:
// the configs below set every key).
SinkConfig parse_settings(const sdk::ConfigView& config) {
  return check_settings(kSchema.read(config));
}

}  // namespace
}  // namespace slack_proxy::plugins::slack_sink

namespace slack_proxy::plugins::slack_sink {
namespace {

using namespace std::chrono_literals;
using sdk::testing::MapConfig;
using slack_proxy::testing::Behaviour;
using slack_proxy::testing::FakeSlack;
using slack_proxy::testing::TestCertificates;
using slack_proxy::testing::TlsFiles;
using Value = MapConfig::Value;

constexpr const char* kToken = "xoxb-test-0123456789-secret";

MapConfig config_for(const std::string& url) {
  return MapConfig()
      .set("url", url)
      .set("token_env", "SLACK_TOKEN")
      .set("token_file", "")
      .set("workspace_tokens", Value{std::vector<std::string>{}})
      .set("workspace_token_files", Value{std::vector<std::string>{}})
      .set("timeout", Value{10000ms})
      .set("max_connections", Value{std::int64_t{8}})
      .set("user_agent", "slack-proxy/0.1")
      .set("ca_file", "")
      .set("rate_limit_scope", "workspace");
}

sdk::Message message(const std::string& channel, const std::string& payload) {
  sdk::Message m;
  m.id = "m-1";
  m.channel = channel;
  m.original_channel = channel;
  m.payload = payload;
  m.content_type = "application/json";
  return m;
}

sdk::Message hello(const std::string& channel = "#general") {
  return message(channel, R"({"channel":")" + channel + R"(","text":"hello"})");
}

// A port nothing listens on: bound once to learn a free number, then closed.
std::uint16_t closed_port() {
  Poco::Net::ServerSocket socket(Poco::Net::SocketAddress("127.0.0.1", 0));
  const auto port = socket.address().port();
  socket.close();
  return port;
}

// ------------------------------------------------------------ settings --

TEST(SlackSinkSettings, AcceptsTheDefaults) {
  const auto s = parse_settings(config_for("https://slack.com/api/chat.postMessage"));
  EXPECT_EQ(s.url, "https://slack.com/api/chat.postMessage");
  EXPECT_EQ(s.token_env, "SLACK_TOKEN");
  EXPECT_EQ(s.http.timeout, 10s);
  EXPECT_EQ(s.http.max_connections, 8);
  EXPECT_EQ(s.http.user_agent, "slack-proxy/0.1");
  EXPECT_EQ(s.http.ca_file, "");
  EXPECT_EQ(s.rate_limit_scope, sdk::BackPressure::Scope::Workspace);
}

TEST(SlackSinkSettings, SchemaDeclaresTheSharedHttpSettingsWithOneDefault) {
  std::map<std::string, std::string> defaults;
  for (std::uint32_t i = 0; i < kSchema.size(); ++i) {
    const sp_config_key& key = kSchema.data()[i];
    defaults[key.key] = key.default_value != nullptr ? key.default_value : "(none)";
  }
  EXPECT_EQ(defaults.at("timeout"), "10s");
  EXPECT_EQ(defaults.at("max_connections"), "8");
  EXPECT_EQ(defaults.at("ca_file"), "");
  EXPECT_EQ(defaults.at("user_agent"), "");
  EXPECT_EQ(defaults.at("rate_limit_scope"), "workspace");
  for (const char* kept : {"url", "token_env", "token_file", "workspace_tokens",
                           "workspace_token_files"}) {
    EXPECT_EQ(defaults.count(kept), 1u) << kept;
  }
}

TEST(SlackSinkSettings, AcceptsPlainHttpWithAPortAndAChannelScope) {
  const auto s = parse_settings(config_for("http://127.0.0.1:8099/api/chat.postMessage")
                                    .set("rate_limit_scope", "channel"));
  EXPECT_EQ(s.url, "http://127.0.0.1:8099/api/chat.postMessage");
  EXPECT_EQ(s.rate_limit_scope, sdk::BackPressure::Scope::Channel);
}

TEST(SlackSinkSettings, RejectsOtherSchemesAndNonUrls) {
  EXPECT_THROW(parse_settings(config_for("ftp://slack.com/x")), std::invalid_argument);
  EXPECT_THROW(parse_settings(config_for("slack.com/api")), std::invalid_argument);
  EXPECT_THROW(parse_settings(config_for("https:///api")), std::invalid_argument);
}

TEST(SlackSinkSettings, DoesNotRepeatTheUrlWhichMayHoldAWebhookSecret) {
  try {
    parse_settings(config_for("ftp://hooks.slack.com/services/T0/B0/webhooksecret"));
    FAIL() << "ftp accepted";
  } catch (const std::invalid_argument& e) {
    EXPECT_EQ(std::string(e.what()).find("webhooksecret"), std::string::npos) << e.what();
  }
}

// timeout and max_connections are bounded by the schema (the host refuses
// them before the plugin runs); what is left is judged here or by the client.
TEST(SlackSinkSettings, RejectsMeaninglessValues) {
  const std::string url = "https://slack.com/api/chat.postMessage";
  EXPECT_THROW(parse_settings(config_for(url).set("token_env", "")), std::invalid_argument);
  EXPECT_THROW(parse_settings(config_for(url).set("rate_limit_scope", "global")),
               std::invalid_argument);
  ::setenv("SP_SINK_TEST_UA", kToken, 1);
  FakeHost host;
  EXPECT_THROW(make_slack_sink(sdk::PluginContext{host, config_for(url), "slack", false},
                               kSchema.read(config_for(url)
                                                .set("token_env", "SP_SINK_TEST_UA")
                                                .set("user_agent", "a\r\nX-Evil: 1"))),
               std::runtime_error);
  ::unsetenv("SP_SINK_TEST_UA");
}

TEST(SlackSinkToken, ReadsTheTokenFromTheNamedVariable) {
  ::setenv("SP_SINK_TEST_TOKEN", kToken, 1);
  EXPECT_EQ(read_token("SP_SINK_TEST_TOKEN"), kToken);
  ::unsetenv("SP_SINK_TEST_TOKEN");
}

TEST(SlackSinkToken, RejectsAMissingOrEmptyVariableInOneLine) {
  ::unsetenv("SP_SINK_TEST_UNSET");
  const std::string expected =
      "environment variable SP_SINK_TEST_UNSET is not set: export your Slack bot token "
      "(xoxb-...) or set token_env";
  try {
    read_token("SP_SINK_TEST_UNSET");
    FAIL() << "unset variable accepted";
  } catch (const std::runtime_error& e) {
    EXPECT_EQ(e.what(), expected);
  }
  ::setenv("SP_SINK_TEST_UNSET", "", 1);
  EXPECT_THROW(read_token("SP_SINK_TEST_UNSET"), std::runtime_error);
  ::unsetenv("SP_SINK_TEST_UNSET");
}

TEST(SlackSinkToken, RejectsATokenWithANewlineWithoutShowingIt) {
  ::setenv("SP_SINK_TEST_TOKEN", (std::string(kToken) + "\n").c_str(), 1);
  try {
    read_token("SP_SINK_TEST_TOKEN");
    FAIL() << "token with newline accepted";
  } catch (const std::runtime_error& e) {
    EXPECT_EQ(std::string(e.what()).find(kToken), std::string::npos) << e.what();
  }
  ::unsetenv("SP_SINK_TEST_TOKEN");
}

// ---------------------------------------------------------------- send --

class SlackSinkTest : public ::testing::Test {
 protected:
  void SetUp() override { slack.start(); }

  SlackSink make_sink(MapConfig config) { return SlackSink(host, parse_settings(config), Tokens{kToken, {}}); }
  SlackSink make_sink() { return make_sink(config_for(slack.url())); }

  sdk::SendResult send_with(Behaviour reply, const sdk::Message& m = hello()) {
    slack.set_default(std::move(reply));
    auto sink = make_sink();
    return sink.send(m);
  }

  FakeHost host;
  FakeSlack slack;
};

TEST_F(SlackSinkTest, PostsTheBodyWithTokenAndHeaders) {
  auto sink = make_sink();
  const auto m = hello();
  const auto result = sink.send(m);
  EXPECT_TRUE(result.delivered);
  EXPECT_EQ(result.http_status, 200);
  ASSERT_EQ(slack.count(), 1u);
  const auto request = slack.requests().front();
  EXPECT_EQ(request.method, "POST");
  EXPECT_EQ(request.path, "/api/chat.postMessage");
  EXPECT_EQ(request.body, m.payload);
  EXPECT_EQ(request.authorization, std::string("Bearer ") + kToken);
  EXPECT_EQ(request.content_type, "application/json; charset=utf-8");
  EXPECT_EQ(request.headers.at("user-agent"), "slack-proxy/0.1");
}

// Slack's limits follow the token: the sink names the budget of the token
// send() would use, and never the token itself.
TEST_F(SlackSinkTest, NamesTheBudgetOfTheTokenItWouldSendWith) {
  SlackSink sink(host, parse_settings(config_for(slack.url())),
                 Tokens{kToken, {{"acme", "xoxb-acme-token"}}});
  sdk::Message m = hello();
  EXPECT_EQ(sink.budget_of(m), host.budget_id(kToken));
  m.workspace = "acme";
  EXPECT_EQ(sink.budget_of(m), host.budget_id("xoxb-acme-token"));
  m.workspace = "unknown";
  EXPECT_EQ(sink.budget_of(m), "") << "no token here, so no budget: its own scope";
  m.workspace = sdk::caller_tenant("0123456789abcdef");
  m.delivery_token = "xoxb-the-callers-own";
  EXPECT_EQ(sink.budget_of(m), host.budget_id("xoxb-the-callers-own"));
  for (const char* token : {kToken, "xoxb-acme-token", "xoxb-the-callers-own"})
    EXPECT_EQ(sink.budget_of(m).find(token), std::string::npos);
}

// The host writes the routed channel into the payload (message.h); the
// sink sends the payload byte for byte and never re-serializes it.
TEST_F(SlackSinkTest, SendsThePayloadAsTheHostHandsItOver) {
  auto sink = make_sink();
  const std::string payload =
      "{ \"channel\":\"#override\", \"text\" : \"Gr\u00fc\u00dfe\",\"custom_field\":12 }";
  auto m = message("#override", payload);
  m.original_channel = "#asked-for";
  ASSERT_TRUE(sink.send(m).delivered);
  ASSERT_EQ(slack.count(), 1u);
  EXPECT_EQ(slack.requests().front().body, payload);
}

TEST_F(SlackSinkTest, DeliversWithTheCallersTokenWhenTheMessageCarriesOne) {
  auto m = message("#a", R"({"channel":"#a","text":"hi"})");
  m.delivery_token = "xoxb-the-callers-own";
  const auto result = send_with(Behaviour::ok(), m);
  EXPECT_TRUE(result.delivered);
  ASSERT_EQ(slack.count(), 1u);
  EXPECT_EQ(slack.requests().front().authorization, "Bearer xoxb-the-callers-own");
}

TEST_F(SlackSinkTest, MapsOkFalseToSlacksErrorCode) {
  const auto result = send_with(Behaviour::error("channel_not_found"));
  EXPECT_FALSE(result.delivered);
  EXPECT_EQ(result.http_status, 200);
  EXPECT_EQ(result.error, "channel_not_found");
  EXPECT_FALSE(result.retry_after.has_value());
  EXPECT_NE(result.detail.find("HTTP 200"), std::string::npos) << result.detail;
  EXPECT_NE(result.detail.find("channel_not_found"), std::string::npos) << result.detail;
}

TEST_F(SlackSinkTest, MapsA429ToItsErrorAndRetryAfter) {
  const auto result = send_with(Behaviour::rate_limited(7));
  EXPECT_FALSE(result.delivered);
  EXPECT_EQ(result.http_status, 429);
  EXPECT_EQ(result.error, "ratelimited");
  EXPECT_EQ(result.retry_after, std::chrono::milliseconds(7s));
}

TEST_F(SlackSinkTest, Assumes429WithoutBodyOrHeaderIsRateLimitedForOneSecond) {
  Behaviour reply;
  reply.status = 429;
  reply.body = "";
  const auto result = send_with(reply);
  EXPECT_EQ(result.error, "rate_limited");
  EXPECT_EQ(result.retry_after, std::chrono::milliseconds(1s));
}

TEST_F(SlackSinkTest, A429IsBackPressureOnTheWorkspaceUntilNowPlusRetryAfter) {
  const auto result = send_with(Behaviour::rate_limited(7));
  ASSERT_TRUE(result.back_pressure.has_value());
  EXPECT_EQ(result.back_pressure->scope, sdk::BackPressure::Scope::Workspace);
  // The fake clock stands still, so "now" is exactly the host's now.
  EXPECT_EQ(result.back_pressure->until, host.time.now() + 7s);
}

TEST_F(SlackSinkTest, A429IsBackPressureOnTheChannelWhenConfigured) {
  slack.set_default(Behaviour::rate_limited(30));
  auto sink = make_sink(config_for(slack.url()).set("rate_limit_scope", "channel"));
  host.time.advance(5min);
  const auto result = sink.send(hello());
  ASSERT_TRUE(result.back_pressure.has_value());
  EXPECT_EQ(result.back_pressure->scope, sdk::BackPressure::Scope::Channel);
  EXPECT_EQ(result.back_pressure->until, host.time.now() + 30s);
}

TEST_F(SlackSinkTest, A429WithoutRetryAfterPausesForOneSecond) {
  Behaviour reply;
  reply.status = 429;
  reply.body = "";
  const auto result = send_with(reply);
  ASSERT_TRUE(result.back_pressure.has_value());
  EXPECT_EQ(result.back_pressure->until, host.time.now() + 1s);
}

TEST_F(SlackSinkTest, OnlyA429IsBackPressure) {
  auto unavailable = Behaviour::http_status(503);
  unavailable.retry_after_seconds = 4;
  for (const auto& reply : {Behaviour::ok(), Behaviour::error("channel_not_found"), unavailable}) {
    const auto result = send_with(reply);
    EXPECT_FALSE(result.back_pressure.has_value()) << result.http_status << " " << result.error;
  }
}

TEST_F(SlackSinkTest, Maps503ToItsJsonError) {
  const auto result = send_with(Behaviour::http_status(503));
  EXPECT_FALSE(result.delivered);
  EXPECT_EQ(result.http_status, 503);
  EXPECT_EQ(result.error, "service_unavailable");
  EXPECT_FALSE(result.retry_after.has_value());
}

TEST_F(SlackSinkTest, Keeps503sRetryAfter) {
  auto reply = Behaviour::http_status(503);
  reply.retry_after_seconds = 3;
  EXPECT_EQ(send_with(reply).retry_after, std::chrono::milliseconds(3s));
}

TEST_F(SlackSinkTest, Maps5xxWithoutJsonToHttpStatus) {
  Behaviour reply;
  reply.status = 502;
  reply.body = "<html>Bad Gateway</html>";
  reply.content_type = "text/html";
  const auto result = send_with(reply);
  EXPECT_EQ(result.http_status, 502);
  EXPECT_EQ(result.error, "http_502");
}

TEST_F(SlackSinkTest, MapsOther4xxToTheirCodeOrStatus) {
  Behaviour webhook;
  webhook.status = 404;
  webhook.body = "channel_not_found";
  webhook.content_type = "text/plain";
  EXPECT_EQ(send_with(webhook).error, "channel_not_found");

  Behaviour json;
  json.status = 400;
  json.body = R"({"ok":false,"error":"invalid_arguments"})";
  EXPECT_EQ(send_with(json).error, "invalid_arguments");

  Behaviour html;
  html.status = 403;
  html.body = "<html>Forbidden</html>";
  const auto result = send_with(html);
  EXPECT_EQ(result.http_status, 403);
  EXPECT_EQ(result.error, "http_403");
}

TEST_F(SlackSinkTest, TreatsAPlainOkBodyAsDelivered) {
  Behaviour webhook;
  webhook.body = "ok";
  webhook.content_type = "text/plain";
  EXPECT_TRUE(send_with(webhook).delivered);
}

TEST_F(SlackSinkTest, MapsAnUnparsableReplyToBadResponse) {
  Behaviour garbage;
  garbage.body = "<html>captive portal</html>";
  const auto result = send_with(garbage);
  EXPECT_FALSE(result.delivered);
  EXPECT_EQ(result.error, "bad_response");
}

TEST_F(SlackSinkTest, MapsASlowReplyToTimeout) {
  slack.set_default(Behaviour::slow(5s));
  auto sink = make_sink(config_for(slack.url()).set("timeout", Value{200ms}));
  const auto result = sink.send(hello());
  EXPECT_FALSE(result.delivered);
  EXPECT_EQ(result.http_status, 0);
  EXPECT_EQ(result.error, "timeout");
}

TEST_F(SlackSinkTest, RecoversAfterATimeout) {
  slack.enqueue(Behaviour::slow(5s));
  auto sink = make_sink(config_for(slack.url()).set("timeout", Value{200ms}));
  EXPECT_EQ(sink.send(hello()).error, "timeout");
  EXPECT_TRUE(sink.send(hello()).delivered);
}

TEST_F(SlackSinkTest, MapsARefusedConnectionToConnectionFailed) {
  auto sink = make_sink(
      config_for("http://127.0.0.1:" + std::to_string(closed_port()) + "/api/chat.postMessage"));
  const auto result = sink.send(hello());
  EXPECT_FALSE(result.delivered);
  EXPECT_EQ(result.http_status, 0);
  EXPECT_EQ(result.error, "connection_failed");
  EXPECT_FALSE(result.detail.empty());
}

TEST_F(SlackSinkTest, MapsAFailedTlsHandshakeToTlsError) {
  // A peer that answers the ClientHello with plain HTTP at once and hangs
  // up, so the handshake fails without waiting on any timeout (an HTTP
  // server waiting for a request line can make this a race under a slow,
  // sanitized build).
  Poco::Net::ServerSocket plain(Poco::Net::SocketAddress("127.0.0.1", 0));
  std::thread peer([&plain] {
    try {
      Poco::Net::StreamSocket s = plain.acceptConnection();
      const std::string reply = "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n";
      s.sendBytes(reply.data(), static_cast<int>(reply.size()));
      s.shutdown();
      s.close();
    } catch (...) {
    }
  });
  auto sink = make_sink(config_for("https://127.0.0.1:" + std::to_string(plain.address().port()) +
                                   "/api/chat.postMessage"));
  const auto result = sink.send(hello());
  peer.join();
  EXPECT_FALSE(result.delivered);
  EXPECT_EQ(result.error, "tls_error");
}

TEST_F(SlackSinkTest, NeverPutsTheTokenInDetailsOrLogs) {
  Behaviour echo;
  echo.status = 400;
  echo.body = std::string("invalid token Bearer ") + kToken;
  const auto result = send_with(echo);
  EXPECT_EQ(result.detail.find(kToken), std::string::npos) << result.detail;
  EXPECT_NE(result.detail.find("[redacted]"), std::string::npos) << result.detail;

  auto refused = make_sink(
      config_for("http://127.0.0.1:" + std::to_string(closed_port()) + "/api/chat.postMessage"));
  EXPECT_EQ(refused.send(hello()).detail.find(kToken), std::string::npos);
  EXPECT_FALSE(host.log.contains(kToken));
}

TEST_F(SlackSinkTest, RecordsTheRequestDuration) {
  auto sink = make_sink();
  sink.send(hello());
  EXPECT_TRUE(host.stats.exists(kDurationMetric));
}

TEST_F(SlackSinkTest, DeliversConcurrentSendsFromManyThreads) {
  auto sink = make_sink(config_for(slack.url()).set("max_connections", Value{std::int64_t{2}}));
  constexpr int kThreads = 6;
  constexpr int kPerThread = 10;
  std::vector<int> delivered(kThreads, 0);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kPerThread; ++i) {
        if (sink.send(hello("#c" + std::to_string(t))).delivered) ++delivered[t];
      }
    });
  }
  for (auto& thread : threads) thread.join();
  for (int t = 0; t < kThreads; ++t) EXPECT_EQ(delivered[t], kPerThread) << "thread " << t;
  EXPECT_EQ(slack.count(), static_cast<std::size_t>(kThreads * kPerThread));
}

// ----------------------------------------------------------------- tls --

// What a ca_file error must say: the setting and the path, never the
// content. The host's client judges ca_file when the sink asks for it, in
// check-only mode (`slack-proxy validate`) too.
void expect_names_ca_file(const std::string& path, const std::string& problem) {
  FakeHost host;
  const auto config = config_for("https://slack.com/api/chat.postMessage").set("ca_file", path);
  std::string what;
  try {
    make_slack_sink(sdk::PluginContext{host, config, "slack", /*check_only=*/true},
                    kSchema.read(config));
  } catch (const std::exception& e) {
    what = e.what();
  }
  EXPECT_NE(what.find("ca_file"), std::string::npos) << what;
  EXPECT_NE(what.find(path), std::string::npos) << what;
  EXPECT_NE(what.find(problem), std::string::npos) << what;
  EXPECT_EQ(what.find("PRIVATE KEY"), std::string::npos) << what;
}

TEST(SlackSinkSettings, RejectsAMissingCaFileNamingTheSetting) {
  expect_names_ca_file("/nonexistent/slack-proxy/ca.pem", "does not exist");
}

TEST(SlackSinkSettings, RejectsACaFileThatIsADirectory) {
  expect_names_ca_file(std::filesystem::temp_directory_path().string(), "not a regular file");
}

// Every test gets a fresh HTTPS fake Slack presenting the certificate it
// names; the certificates are made once for the suite.
class SlackSinkTlsTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    try {
      certs_ = std::make_unique<TestCertificates>();
    } catch (const std::exception& e) {
      certs_error_ = e.what();
    }
  }
  static void TearDownTestSuite() { certs_.reset(); }
  void SetUp() override { ASSERT_TRUE(certs_) << "cannot make test certificates: " << certs_error_; }

  static const TestCertificates& certs() { return *certs_; }

  // Starts an HTTPS fake Slack that presents `presented`.
  static std::unique_ptr<FakeSlack> https_slack(TlsFiles presented) {
    auto slack = std::make_unique<FakeSlack>(0, std::move(presented));
    slack->start();
    return slack;
  }
  static std::string url_at(const std::string& host, const FakeSlack& slack) {
    return "https://" + host + ":" + std::to_string(slack.port()) + "/api/chat.postMessage";
  }

  SlackSink sink_trusting(const std::string& ca_file, const std::string& url) {
    return SlackSink(host, parse_settings(config_for(url).set("ca_file", ca_file)), Tokens{kToken, {}});
  }

  // Asserts a refused handshake: no reply, and the request (with its token)
  // never reached the server. The handshake fails before the request is
  // written, so nothing can still be on its way to the fake.
  static void expect_refused(const sdk::SendResult& result, const FakeSlack& slack) {
    EXPECT_FALSE(result.delivered);
    EXPECT_EQ(result.http_status, 0);
    EXPECT_EQ(result.error, "tls_error") << result.detail;
    EXPECT_EQ(result.detail.find(kToken), std::string::npos) << result.detail;
    EXPECT_EQ(slack.count(), 0u);
    EXPECT_EQ(slack.answered(), 0u);
  }

  FakeHost host;
  static inline std::unique_ptr<TestCertificates> certs_;
  static inline std::string certs_error_;
};

TEST_F(SlackSinkTlsTest, RejectsACaFileWithoutCertificatesNamingTheSetting) {
  // A private key is PEM too: the likeliest mix-up.
  expect_names_ca_file(certs().localhost().private_key, "no usable PEM CA certificate");
}

TEST_F(SlackSinkTlsTest, DeliversOverHttpsToAServerThatChainsToTheCaFile) {
  auto slack = https_slack(certs().localhost());
  ASSERT_EQ(slack->url().rfind("https://localhost:", 0), 0u) << slack->url();
  auto sink = sink_trusting(certs().ca_certificate(), slack->url());
  const auto m = hello();
  const auto result = sink.send(m);
  EXPECT_TRUE(result.delivered) << result.error << ": " << result.detail;
  EXPECT_EQ(result.http_status, 200);
  ASSERT_EQ(slack->count(), 1u);
  const auto request = slack->requests().front();
  EXPECT_EQ(request.method, "POST");
  EXPECT_EQ(request.path, "/api/chat.postMessage");
  EXPECT_EQ(request.body, m.payload);
  EXPECT_EQ(request.authorization, std::string("Bearer ") + kToken);
  EXPECT_EQ(request.content_type, "application/json; charset=utf-8");
  EXPECT_EQ(request.headers.at("user-agent"), "slack-proxy/0.1");
}

TEST_F(SlackSinkTlsTest, KeepsDeliveringOnItsPooledTlsConnections) {
  auto slack = https_slack(certs().localhost());
  auto sink = sink_trusting(certs().ca_certificate(), slack->url());
  for (int i = 0; i < 3; ++i) {
    const auto result = sink.send(hello());
    EXPECT_TRUE(result.delivered) << "send " << i << ": " << result.error << ": " << result.detail;
  }
  EXPECT_EQ(slack->count(), 3u);
}

TEST_F(SlackSinkTlsTest, RefusesAServerWhoseCertificateDoesNotChainToTheCaFile) {
  auto slack = https_slack(certs().self_signed_localhost());
  auto sink = sink_trusting(certs().ca_certificate(), slack->url());
  const auto result = sink.send(hello());
  expect_refused(result, *slack);
  EXPECT_NE(result.detail.find("certificate rejected: self-signed"), std::string::npos)
      << result.detail;
}

TEST_F(SlackSinkTlsTest, TrustsOnlyTheSystemStoreWithoutACaFile) {
  auto slack = https_slack(certs().localhost());
  auto sink = sink_trusting("", slack->url());
  expect_refused(sink.send(hello()), *slack);
}

TEST_F(SlackSinkTlsTest, RefusesACertificateForAnotherHostName) {
  // Signed by the trusted CA, for wrong.example: only the name is wrong.
  auto slack = https_slack(certs().wrong_name());
  auto sink = sink_trusting(certs().ca_certificate(), url_at("localhost", *slack));
  const auto result = sink.send(hello());
  expect_refused(result, *slack);
  EXPECT_NE(result.detail.find("certificate rejected: hostname mismatch"), std::string::npos)
      << result.detail;
}

TEST_F(SlackSinkTlsTest, DeliversToAnIpAddressTheCertificateNames) {
  auto slack = https_slack(certs().localhost());  // carries IP:127.0.0.1
  auto sink = sink_trusting(certs().ca_certificate(), url_at("127.0.0.1", *slack));
  const auto result = sink.send(hello());
  EXPECT_TRUE(result.delivered) << result.error << ": " << result.detail;
}

TEST_F(SlackSinkTlsTest, RefusesAnIpAddressTheCertificateDoesNotName) {
  auto slack = https_slack(certs().wrong_name());
  auto sink = sink_trusting(certs().ca_certificate(), url_at("127.0.0.1", *slack));
  const auto result = sink.send(hello());
  expect_refused(result, *slack);
  EXPECT_NE(result.detail.find("certificate rejected: IP address mismatch"), std::string::npos)
      << result.detail;
}

TEST_F(SlackSinkTlsTest, IgnoresAnAcceptAllCertificateHandlerInstalledProcessWide) {
  // Another part of the process may configure Poco's SSLManager to accept
  // any certificate; that must not reach the sink's own connections.
  using Poco::Net::SSLManager;
  SSLManager::instance().initializeClient(
      nullptr, new Poco::Net::AcceptCertificateHandler(/*handleErrorsOnServerSide=*/false),
      nullptr);
  struct Restore {
    ~Restore() {
      SSLManager::instance().initializeClient(
          nullptr, new Poco::Net::RejectCertificateHandler(/*handleErrorsOnServerSide=*/false),
          nullptr);
    }
  } restore;
  auto slack = https_slack(certs().self_signed_localhost());
  auto sink = sink_trusting(certs().ca_certificate(), slack->url());
  expect_refused(sink.send(hello()), *slack);

  // The premise holds: a context without a handler of its own now accepts
  // the same certificate (asked on the control API, which records nothing).
  Poco::Net::Context::Ptr plain =
      new Poco::Net::Context(Poco::Net::Context::TLS_CLIENT_USE, "", "", certs().ca_certificate(),
                             Poco::Net::Context::VERIFY_RELAXED, 9, false);
  Poco::Net::HTTPSClientSession session("localhost", slack->port(), plain);
  Poco::Net::HTTPRequest request(Poco::Net::HTTPRequest::HTTP_GET, "/_fake/requests",
                                 Poco::Net::HTTPMessage::HTTP_1_1);
  session.sendRequest(request);
  Poco::Net::HTTPResponse response;
  session.receiveResponse(response);
  EXPECT_EQ(response.getStatus(), Poco::Net::HTTPResponse::HTTP_OK);
}

}  // namespace
}  // namespace slack_proxy::plugins::slack_sink

// ------------------------------------------------- tokens per workspace --

namespace slack_proxy::plugins::slack_sink {
namespace {

using namespace std::chrono_literals;
using sdk::testing::MapConfig;
using slack_proxy::testing::FakeSlack;
using Value = MapConfig::Value;
using List = std::vector<std::string>;

// Distinctive, so that a leak anywhere is found by a plain search.
constexpr const char* kDefaultToken = "xoxb-default-7f3a9c-secret";
constexpr const char* kAcmeToken = "xoxb-acme-51d2e8-secret";
constexpr const char* kBetaToken = "xoxb-beta-0c94b7-secret";
constexpr const char* kCallerToken = "xoxp-caller-e6a1f0-secret";

MapConfig sink_config(const std::string& url) {
  return MapConfig()
      .set("url", url)
      .set("token_env", "SP_SINK_WS_DEFAULT")
      .set("token_file", "")
      .set("workspace_tokens", Value{List{}})
      .set("workspace_token_files", Value{List{}})
      .set("timeout", Value{10000ms})
      .set("max_connections", Value{std::int64_t{8}})
      .set("user_agent", "slack-proxy/0.1")
      .set("ca_file", "")
      .set("rate_limit_scope", "workspace");
}

MapConfig sink_config() { return sink_config("https://slack.com/api/chat.postMessage"); }

sdk::Message to_workspace(const std::string& workspace, const std::string& channel = "#general") {
  sdk::Message m;
  m.id = "m-" + workspace;
  m.channel = channel;
  m.original_channel = channel;
  m.workspace = workspace;
  m.payload = R"({"channel":")" + channel + R"(","text":"hello"})";
  m.content_type = "application/json";
  return m;
}

// Sets an environment variable for one test and removes it afterwards.
class ScopedEnv {
 public:
  ScopedEnv(std::string name, const std::string& value) : name_(std::move(name)) {
    ::setenv(name_.c_str(), value.c_str(), 1);
  }
  ~ScopedEnv() { ::unsetenv(name_.c_str()); }
  ScopedEnv(const ScopedEnv&) = delete;
  ScopedEnv& operator=(const ScopedEnv&) = delete;

 private:
  std::string name_;
};

// A file with the given content for one test, removed afterwards.
class TempFile {
 public:
  explicit TempFile(const std::string& content) {
    std::string pattern = (std::filesystem::temp_directory_path() / "sp_sink_test_XXXXXX").string();
    const int fd = ::mkstemp(pattern.data());
    if (fd < 0) throw std::runtime_error("mkstemp failed");
    ::close(fd);
    path_ = pattern;
    std::ofstream(path_, std::ios::binary) << content;
  }
  ~TempFile() { std::filesystem::remove(path_); }
  TempFile(const TempFile&) = delete;
  TempFile& operator=(const TempFile&) = delete;
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

std::unique_ptr<sdk::Sink> make(FakeHost& host, const MapConfig& config, bool check_only = false) {
  return make_slack_sink(sdk::PluginContext{host, config, "slack", check_only}, kSchema.read(config));
}

// What the factory refused with; "" when it accepted.
std::string refusal(FakeHost& host, const MapConfig& config, bool check_only = false) {
  try {
    make(host, config, check_only);
    return {};
  } catch (const std::exception& e) {
    return e.what();
  }
}

std::string settings_refusal(const MapConfig& config) {
  try {
    parse_settings(config);
    return {};
  } catch (const std::invalid_argument& e) {
    return e.what();
  }
}

void expect_no_token_in(const std::string& text) {
  for (const char* token : {kDefaultToken, kAcmeToken, kBetaToken, kCallerToken}) {
    EXPECT_EQ(text.find(token), std::string::npos) << text;
  }
  EXPECT_EQ(text.find("xox"), std::string::npos) << text;
}

void expect_no_token_logged(const FakeHost& host) {
  for (const auto& line : host.log.lines()) expect_no_token_in(line.text);
}

// ------------------------------------------------------------ settings --

TEST(SlackSinkWorkspaceSettings, ReadsSourcesFromBothLists) {
  const auto s = parse_settings(sink_config()
                                    .set("workspace_tokens", Value{List{"acme=ACME_TOKEN"}})
                                    .set("workspace_token_files",
                                         Value{List{" beta = /run/secrets/beta "}}));
  ASSERT_EQ(s.workspace_tokens.size(), 2u);
  EXPECT_EQ(s.workspace_tokens[0].workspace, "acme");
  EXPECT_EQ(s.workspace_tokens[0].kind, WorkspaceTokenSource::Kind::Env);
  EXPECT_EQ(s.workspace_tokens[0].source, "ACME_TOKEN");
  EXPECT_EQ(s.workspace_tokens[0].setting, "workspace_tokens[0]");
  EXPECT_EQ(s.workspace_tokens[1].workspace, "beta");
  EXPECT_EQ(s.workspace_tokens[1].kind, WorkspaceTokenSource::Kind::File);
  EXPECT_EQ(s.workspace_tokens[1].source, "/run/secrets/beta");
  EXPECT_EQ(s.workspace_tokens[1].setting, "workspace_token_files[0]");
}

TEST(SlackSinkWorkspaceSettings, RefusesMalformedEntriesNamingTheEntry) {
  struct Case {
    const char* key;
    std::string entry;
    std::string expected;
  };
  const std::vector<Case> cases = {
      {"workspace_tokens", "ACME_TOKEN", "workspace_tokens[1] \"ACME_TOKEN\" has no '='"},
      {"workspace_tokens", "=ACME_TOKEN", "workspace \"\" is not a name"},
      {"workspace_tokens", "ac me=ACME_TOKEN", "workspace \"ac me\" is not a name"},
      {"workspace_tokens", "caller-1=ACME_TOKEN", "prefix reserved"},
      {"workspace_tokens", "acme=", "workspace_tokens[1] must name an environment variable"},
      {"workspace_tokens", "acme=A B", "workspace_tokens[1] must name an environment variable"},
      {"workspace_token_files", "acme=", "workspace_token_files[1] \"acme=\" names no file"},
      {"workspace_token_files", "/run/secrets/acme", "has no '='"},
  };
  for (const auto& c : cases) {
    const List entries = {"other=OTHER_TOKEN", c.entry};
    const std::string why = settings_refusal(sink_config().set(c.key, Value{entries}));
    EXPECT_NE(why.find(c.expected), std::string::npos) << c.entry << " -> " << why;
  }
}

TEST(SlackSinkWorkspaceSettings, RefusesAPastedTokenWithoutRepeatingIt) {
  const std::vector<std::pair<std::string, std::string>> pasted = {
      {"workspace_tokens", std::string("acme=") + kAcmeToken},
      {"workspace_tokens", kAcmeToken},
      {"workspace_token_files", std::string("acme=") + kAcmeToken},
  };
  for (const auto& [key, entry] : pasted) {
    const std::string why = settings_refusal(sink_config().set(key, Value{List{entry}}));
    EXPECT_NE(why.find(key + "[0] looks like it holds a Slack token"), std::string::npos) << why;
    expect_no_token_in(why);
  }
  const std::string why = settings_refusal(sink_config().set("token_env", kDefaultToken));
  EXPECT_NE(why.find("token_env looks like a Slack token"), std::string::npos) << why;
  expect_no_token_in(why);
}

TEST(SlackSinkWorkspaceSettings, RefusesAWorkspaceGivenTwice) {
  EXPECT_EQ(settings_refusal(sink_config()
                                 .set("workspace_tokens", Value{List{"acme=A_TOKEN"}})
                                 .set("workspace_token_files", Value{List{"acme=/x"}})),
            "workspace \"acme\" has two tokens: workspace_tokens[0] and "
            "workspace_token_files[0]");
  EXPECT_NE(settings_refusal(
                sink_config().set("workspace_tokens", Value{List{"acme=A_TOKEN", "acme=B_TOKEN"}}))
                .find("has two tokens"),
            std::string::npos);
}

// ---------------------------------------------------------- token file --

TEST(SlackSinkTokenFile, ReadsTheTokenTrimmed) {
  TempFile file(std::string("\n  ") + kDefaultToken + "\r\n");
  EXPECT_EQ(read_token_file("token_file", file.path()), kDefaultToken);
}

TEST(SlackSinkTokenFile, RefusesMissingEmptyOrDirectoryNamingThePath) {
  const std::string missing = "/nonexistent/slack-proxy/token";
  try {
    read_token_file("token_file", missing);
    FAIL() << "missing file accepted";
  } catch (const std::runtime_error& e) {
    EXPECT_EQ(std::string(e.what()), "token_file \"" + missing + "\" does not exist");
  }
  TempFile blank(" \n\t\n");
  try {
    read_token_file("token_file", blank.path());
    FAIL() << "blank file accepted";
  } catch (const std::runtime_error& e) {
    EXPECT_EQ(std::string(e.what()),
              "token_file \"" + blank.path() +
                  "\" is empty: it must hold the Slack bot token (xoxb-...)");
  }
  const std::string directory = std::filesystem::temp_directory_path().string();
  try {
    read_token_file("token_file", directory);
    FAIL() << "directory accepted";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("is not a regular file"), std::string::npos) << e.what();
  }
}

TEST(SlackSinkTokenFile, RefusesMoreThanATokenWithoutShowingIt) {
  TempFile two_lines(std::string(kDefaultToken) + "\n" + kAcmeToken + "\n");
  try {
    read_token_file("token_file", two_lines.path());
    FAIL() << "two tokens accepted";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("whitespace or control characters inside the token"),
              std::string::npos)
        << e.what();
    expect_no_token_in(e.what());
  }
  TempFile huge(std::string(sdk::kMaxSecretFileBytes + 1, 'x'));
  try {
    read_token_file("token_file", huge.path());
    FAIL() << "huge file accepted";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("is larger than 64 KiB"), std::string::npos) << e.what();
  }
}

// ------------------------------------------------------------- factory --

class SlackSinkFactoryTest : public ::testing::Test {
 protected:
  void SetUp() override { slack.start(); }

  // Posts one message through `sink` and returns the Authorization it carried.
  std::string authorization_of(sdk::Sink& sink, const sdk::Message& m) {
    const std::size_t before = slack.count();
    const auto result = sink.send(m);
    EXPECT_TRUE(result.delivered) << result.error << ": " << result.detail;
    if (slack.count() != before + 1) return "NOT SENT";
    return slack.requests().back().authorization;
  }

  FakeHost host;
  FakeSlack slack;
};

TEST_F(SlackSinkFactoryTest, ReadsTheDefaultTokenFromTokenEnv) {
  ScopedEnv token("SP_SINK_WS_DEFAULT", kDefaultToken);
  auto sink = make(host, sink_config(slack.url()));
  EXPECT_EQ(authorization_of(*sink, to_workspace("")), std::string("Bearer ") + kDefaultToken);
}

TEST_F(SlackSinkFactoryTest, TokenFileWinsOverTokenEnv) {
  TempFile file(std::string(kAcmeToken) + "\n");
  // Set: ignored. Unset: not needed.
  {
    ScopedEnv token("SP_SINK_WS_DEFAULT", kDefaultToken);
    auto sink = make(host, sink_config(slack.url()).set("token_file", file.path()));
    EXPECT_EQ(authorization_of(*sink, to_workspace("")), std::string("Bearer ") + kAcmeToken);
  }
  ::unsetenv("SP_SINK_WS_DEFAULT");
  auto sink = make(host, sink_config(slack.url()).set("token_file", file.path()));
  EXPECT_EQ(authorization_of(*sink, to_workspace("")), std::string("Bearer ") + kAcmeToken);
  EXPECT_TRUE(host.log.contains("default token from token_file \"" + file.path() + "\""));
}

TEST_F(SlackSinkFactoryTest, RefusesAMissingWorkspaceVariableNamingItNotAToken) {
  ScopedEnv token("SP_SINK_WS_DEFAULT", kDefaultToken);
  ScopedEnv acme("SP_SINK_WS_ACME", kAcmeToken);
  ::unsetenv("SP_SINK_WS_BETA");
  const List sources = {"acme=SP_SINK_WS_ACME", "beta=SP_SINK_WS_BETA"};
  const std::string why =
      refusal(host, sink_config(slack.url()).set("workspace_tokens", Value{sources}));
  EXPECT_EQ(why,
            "environment variable SP_SINK_WS_BETA is not set: export workspace beta's Slack bot "
            "token (xoxb-...) or fix workspace_tokens[1]");
}

TEST_F(SlackSinkFactoryTest, RefusesAMissingWorkspaceTokenFileNamingThePath) {
  ScopedEnv token("SP_SINK_WS_DEFAULT", kDefaultToken);
  const std::string missing = "/nonexistent/slack-proxy/beta-token";
  const std::string why =
      refusal(host, sink_config(slack.url())
                        .set("workspace_token_files", Value{List{"beta=" + missing}}));
  EXPECT_EQ(why, "workspace_token_files[0] (workspace beta) \"" + missing + "\" does not exist");
}

TEST_F(SlackSinkFactoryTest, RefusesAMissingDefaultTokenFileNamingThePath) {
  ScopedEnv token("SP_SINK_WS_DEFAULT", kDefaultToken);
  EXPECT_EQ(refusal(host, sink_config(slack.url()).set("token_file", "/nonexistent/sp/token")),
            "token_file \"/nonexistent/sp/token\" does not exist");
}

TEST_F(SlackSinkFactoryTest, CheckOnlyReadsNoEnvironmentAndNoFile) {
  ::unsetenv("SP_SINK_WS_DEFAULT");
  ::unsetenv("SP_SINK_WS_ACME");
  const auto config =
      sink_config(slack.url())
          .set("token_file", "/nonexistent/sp/token")
          .set("workspace_tokens", Value{List{"acme=SP_SINK_WS_ACME"}})
          .set("workspace_token_files", Value{List{"beta=/nonexistent/sp/beta-token"}});
  // The real factory reads them, and fails on the first.
  ASSERT_NE(refusal(host, config), "");
  EXPECT_EQ(refusal(host, config, /*check_only=*/true), "");
  EXPECT_EQ(refusal(host, sink_config(slack.url()), /*check_only=*/true), "");
}

TEST_F(SlackSinkFactoryTest, CheckOnlyStillJudgesTheSettings) {
  EXPECT_NE(refusal(host, sink_config(slack.url()).set("workspace_tokens", Value{List{"acme"}}),
                    /*check_only=*/true),
            "");
  EXPECT_NE(refusal(host, sink_config("ftp://slack.com/x"), /*check_only=*/true), "");
}

// ---------------------------------------------------------------- send --

class SlackSinkWorkspaceTest : public SlackSinkFactoryTest {
 protected:
  void SetUp() override {
    SlackSinkFactoryTest::SetUp();
    beta_file = std::make_unique<TempFile>(std::string(kBetaToken) + "\n");
    sink = make(host, sink_config(slack.url())
                          .set("workspace_tokens", Value{List{"acme=SP_SINK_WS_ACME"}})
                          .set("workspace_token_files", Value{List{"beta=" + beta_file->path()}}));
  }

  ScopedEnv default_token{"SP_SINK_WS_DEFAULT", kDefaultToken};
  ScopedEnv acme_token{"SP_SINK_WS_ACME", kAcmeToken};
  std::unique_ptr<TempFile> beta_file;
  std::unique_ptr<sdk::Sink> sink;
};

TEST_F(SlackSinkWorkspaceTest, DeliversEachWorkspaceWithItsOwnToken) {
  EXPECT_EQ(authorization_of(*sink, to_workspace("acme")), std::string("Bearer ") + kAcmeToken);
  EXPECT_EQ(authorization_of(*sink, to_workspace("beta")), std::string("Bearer ") + kBetaToken);
  EXPECT_EQ(authorization_of(*sink, to_workspace("acme", "#ops")),
            std::string("Bearer ") + kAcmeToken);
  EXPECT_EQ(slack.count(), 3u);
}

TEST_F(SlackSinkWorkspaceTest, UsesTheDefaultTokenWithoutAWorkspace) {
  EXPECT_EQ(authorization_of(*sink, to_workspace("")), std::string("Bearer ") + kDefaultToken);
}

TEST_F(SlackSinkWorkspaceTest, TheCallersTokenWinsOverTheWorkspaceToken) {
  for (const std::string workspace : {"acme", "beta", "", "unmapped", "caller-0123456789abcdef"}) {
    auto m = to_workspace(workspace);
    m.delivery_token = kCallerToken;
    EXPECT_EQ(authorization_of(*sink, m), std::string("Bearer ") + kCallerToken) << workspace;
  }
}

TEST_F(SlackSinkWorkspaceTest, ACallerTenantWithoutItsTokenFallsBackToTheDefault) {
  EXPECT_EQ(authorization_of(*sink, to_workspace("caller-0123456789abcdef")),
            std::string("Bearer ") + kDefaultToken);
}

TEST_F(SlackSinkWorkspaceTest, FailsAnUnknownWorkspaceWithoutSendingAndLogsItOnce) {
  const auto first = sink->send(to_workspace("gamma"));
  const auto again = sink->send(to_workspace("gamma", "#other"));
  for (const auto& result : {first, again}) {
    EXPECT_FALSE(result.delivered);
    EXPECT_EQ(result.http_status, 0);
    EXPECT_EQ(result.error, kNoTokenForWorkspace);
    EXPECT_NE(result.detail.find("workspace \"gamma\""), std::string::npos) << result.detail;
    EXPECT_FALSE(result.retry_after.has_value());
  }
  EXPECT_EQ(slack.count(), 0u);
  EXPECT_EQ(slack.answered(), 0u);
  int warnings = 0;
  for (const auto& line : host.log.lines()) {
    if (line.level == sdk::LogLevel::Warn &&
        line.text.find("workspace \"gamma\" has no token") != std::string::npos) {
      ++warnings;
    }
  }
  EXPECT_EQ(warnings, 1);
}

TEST_F(SlackSinkWorkspaceTest, NeverLogsOrReportsAnyToken) {
  slack_proxy::testing::Behaviour echo;
  echo.status = 400;
  echo.body = std::string("bad tokens ") + kAcmeToken + " " + kBetaToken;
  slack.set_default(echo);
  std::vector<sdk::SendResult> results;
  for (const std::string workspace : {"acme", "beta", "", "gamma"}) {
    results.push_back(sink->send(to_workspace(workspace)));
  }
  for (const auto& result : results) expect_no_token_in(result.detail);
  // The log names where tokens come from, never what they are.
  EXPECT_TRUE(
      host.log.contains("workspace \"acme\" token from environment variable SP_SINK_WS_ACME"));
  EXPECT_TRUE(
      host.log.contains("workspace \"beta\" token from file \"" + beta_file->path() + "\""));
  expect_no_token_logged(host);
}

}  // namespace
}  // namespace slack_proxy::plugins::slack_sink

#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include <unistd.h>

#include <Poco/Net/ServerSocket.h>
#include <Poco/Net/SocketAddress.h>
#include <gtest/gtest.h>
#include <slack_proxy/sdk/testing/fakes.h>
#include <slack_proxy/sdk/testing/http.h>

#include "fake_slack.h"
#include "webhook_sink.h"

namespace slack_proxy::plugins::webhook_sink {
namespace {

// The proxy's real HTTP client, made from the settings the sink asks with,
// so the sink is tested over real sockets.
using FakeHost = sdk::testing::FakeHostWithRealHttp;

// The settings as the factory reads them; throws what check_settings throws.
Settings parse_settings(const sdk::ConfigView& config) {
  Settings s = kSchema.read(config);
  check_settings(s);
  return s;
}

}  // namespace
}  // namespace slack_proxy::plugins::webhook_sink

namespace slack_proxy::plugins::webhook_sink {
namespace {

using namespace std::chrono_literals;
using sdk::testing::MapConfig;
using slack_proxy::testing::Behaviour;
using slack_proxy::testing::FakeSlack;
using slack_proxy::testing::TestCertificates;
using Value = MapConfig::Value;

// Distinctive, so that a leak anywhere is found by a plain search.
constexpr const char* kSecretPath = "/services/T0SECRET1/B0SECRET2/zQ9xWebhookSecretToken";
constexpr const char* kSecretToken = "zQ9xWebhookSecretToken";

MapConfig config_for(const std::string& url, const std::string& url_env = "SP_WEBHOOK_TEST_URL") {
  return MapConfig()
      .set("url", url)
      .set("url_file", "")
      .set("url_env", url_env)
      .set("timeout", Value{10000ms})
      .set("max_connections", Value{std::int64_t{4}})
      .set("ca_file", "")
      .set("user_agent", "slack-proxy/0.1");
}

std::string webhook_url(const FakeSlack& slack) {
  return "http://127.0.0.1:" + std::to_string(slack.port()) + kSecretPath;
}

sdk::Message message(const std::string& payload, const std::string& channel = "#alerts") {
  sdk::Message m;
  m.id = "m-1";
  m.channel = channel;
  m.original_channel = channel;
  m.payload = payload;
  m.content_type = "application/json";
  return m;
}

sdk::Message hello() { return message(R"({"text":"hello"})"); }

Behaviour plain(int status, std::string body) {
  Behaviour reply;
  reply.status = status;
  reply.body = std::move(body);
  reply.content_type = "text/plain";
  return reply;
}

// A port nothing listens on: bound once to learn a free number, then closed.
std::uint16_t closed_port() {
  Poco::Net::ServerSocket socket(Poco::Net::SocketAddress("127.0.0.1", 0));
  const auto port = socket.address().port();
  socket.close();
  return port;
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
    std::string pattern = (std::filesystem::temp_directory_path() / "sp_hook_test_XXXXXX").string();
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
  return make_webhook_sink(sdk::PluginContext{host, config, "webhook", check_only},
                           kSchema.read(config));
}

// What a factory refused with; "" when it accepted.
std::string refusal(FakeHost& host, const MapConfig& config, bool check_only = false) {
  try {
    make(host, config, check_only);
    return {};
  } catch (const std::exception& e) {
    return e.what();
  }
}

// ------------------------------------------------------------ settings --

TEST(WebhookSinkSettings, TakesTheUrlAndTheSharedHttpSettings) {
  const auto s = parse_settings(config_for("https://hooks.slack.com/services/T0/B0/xyz"));
  EXPECT_EQ(s.url, "https://hooks.slack.com/services/T0/B0/xyz");
  EXPECT_EQ(s.http.timeout, 10s);
  EXPECT_EQ(s.http.max_connections, 4);
  EXPECT_EQ(s.http.user_agent, "slack-proxy/0.1");
}

// The four HTTP settings come from the SDK's one fragment: max_connections
// defaults to 8 now (it was 4 here), like every HTTP sink.
TEST(WebhookSinkSettings, SchemaDeclaresTheSharedHttpSettingsWithOneDefault) {
  std::map<std::string, std::string> defaults;
  for (std::uint32_t i = 0; i < kSchema.size(); ++i) {
    const sp_config_key& key = kSchema.data()[i];
    defaults[key.key] = key.default_value != nullptr ? key.default_value : "(none)";
  }
  EXPECT_EQ(defaults.at("max_connections"), "8");
  EXPECT_EQ(defaults.at("timeout"), "10s");
  EXPECT_EQ(defaults.at("url_env"), "SLACK_WEBHOOK_URL");
  for (const char* kept : {"url", "url_file", "ca_file", "user_agent"}) {
    EXPECT_EQ(defaults.count(kept), 1u) << kept;
  }
}

TEST(WebhookSinkSettings, LeavesTheUrlToTheEnvironmentWhenItIsEmpty) {
  const auto s = parse_settings(config_for("", "MY_HOOK"));
  EXPECT_EQ(s.url, "");
  EXPECT_EQ(s.url_env, "MY_HOOK");
}

TEST(WebhookSinkSettings, LeavesTheUrlToUrlFileWhenItIsSet) {
  const auto s = parse_settings(config_for("").set("url_file", "/run/secrets/hook"));
  EXPECT_EQ(s.url, "");
  EXPECT_EQ(s.url_file, "/run/secrets/hook");
}

TEST(WebhookSinkSettings, RefusesUrlAndUrlFileTogether) {
  try {
    parse_settings(config_for(std::string("https://hooks.slack.com") + kSecretPath)
                       .set("url_file", "/run/secrets/hook"));
    FAIL() << "url and url_file accepted together";
  } catch (const std::invalid_argument& e) {
    EXPECT_EQ(std::string(e.what()), "url and url_file are both set: set only one of them");
  }
}

TEST(WebhookSinkSettings, RefusesAUrlPastedAsFileOrVariableWithoutRepeatingIt) {
  const std::string url = std::string("https://hooks.slack.com") + kSecretPath;
  for (const char* key : {"url_file", "url_env"}) {
    try {
      parse_settings(config_for("").set(key, url));
      FAIL() << key << " accepted a URL";
    } catch (const std::invalid_argument& e) {
      EXPECT_EQ(std::string(e.what()).rfind(std::string(key) + " looks like a URL", 0), 0u)
          << e.what();
      EXPECT_EQ(std::string(e.what()).find(kSecretToken), std::string::npos) << e.what();
    }
  }
}

TEST(WebhookSinkSettings, RejectsANonHttpUrlWithoutRepeatingIt) {
  for (const std::string& url : {std::string("ftp://hooks.slack.com") + kSecretPath,
                                std::string("hooks.slack.com") + kSecretPath,
                                std::string("https://hooks.slack.com") + kSecretPath + "\n"}) {
    try {
      parse_settings(config_for(url));
      FAIL() << "accepted a bad url";
    } catch (const std::invalid_argument& e) {
      EXPECT_EQ(std::string(e.what()).find(kSecretToken), std::string::npos) << e.what();
    }
  }
}

TEST(WebhookSinkSettings, RejectsMeaninglessValues) {
  EXPECT_THROW(parse_settings(config_for("", "")), std::invalid_argument);
  EXPECT_THROW(parse_settings(config_for("", "A=B")), std::invalid_argument);
}

// ------------------------------------------------------------- factory --

TEST(WebhookSinkFactory, TakesTheUrlFromTheEnvironmentWhenTheSettingIsEmpty) {
  FakeSlack slack;
  slack.start();
  slack.set_default(plain(200, "ok"));
  ScopedEnv env("SP_WEBHOOK_TEST_FROM_ENV", webhook_url(slack));
  FakeHost host;
  auto sink = make(host, config_for("", "SP_WEBHOOK_TEST_FROM_ENV"));
  EXPECT_TRUE(sink->send(hello()).delivered);
  ASSERT_EQ(slack.count(), 1u);
  EXPECT_EQ(slack.requests().front().path, kSecretPath);
}

TEST(WebhookSinkFactory, PrefersTheUrlSettingOverTheEnvironment) {
  FakeSlack configured;
  FakeSlack from_env;
  configured.start();
  from_env.start();
  configured.set_default(plain(200, "ok"));
  ScopedEnv env("SP_WEBHOOK_TEST_IGNORED", webhook_url(from_env));
  FakeHost host;
  auto sink = make(host, config_for(webhook_url(configured), "SP_WEBHOOK_TEST_IGNORED"));
  EXPECT_TRUE(sink->send(hello()).delivered);
  EXPECT_EQ(configured.count(), 1u);
  EXPECT_EQ(from_env.count(), 0u);
}

TEST(WebhookSinkFactory, RefusesAMissingVariableInOneLineNamingIt) {
  ::unsetenv("SP_WEBHOOK_TEST_UNSET");
  FakeHost host;
  const std::string why = refusal(host, config_for("", "SP_WEBHOOK_TEST_UNSET"));
  EXPECT_EQ(why,
            "environment variable SP_WEBHOOK_TEST_UNSET is not set: export your incoming-webhook "
            "URL (https://hooks.slack.com/services/...) or set url_env");

  ScopedEnv empty("SP_WEBHOOK_TEST_UNSET", "");
  EXPECT_NE(refusal(host, config_for("", "SP_WEBHOOK_TEST_UNSET")).find("SP_WEBHOOK_TEST_UNSET"),
            std::string::npos);
}

TEST(WebhookSinkFactory, RefusesAVariableThatIsNotAWebhookUrlWithoutShowingIt) {
  FakeHost host;
  for (const std::string& value : {std::string("ftp://hooks.slack.com") + kSecretPath,
                                  std::string("https://hooks.slack.com") + kSecretPath + "\n"}) {
    ScopedEnv env("SP_WEBHOOK_TEST_BAD", value);
    const std::string why = refusal(host, config_for("", "SP_WEBHOOK_TEST_BAD"));
    EXPECT_NE(why.find("environment variable SP_WEBHOOK_TEST_BAD"), std::string::npos) << why;
    EXPECT_EQ(why.find(kSecretToken), std::string::npos) << why;
    EXPECT_EQ(why.find('\n'), std::string::npos) << why;
  }
}

TEST(WebhookSinkFactory, TakesTheUrlFromUrlFileTrimmed) {
  FakeSlack slack;
  slack.start();
  slack.set_default(plain(200, "ok"));
  TempFile file(webhook_url(slack) + "\n");
  FakeHost host;
  auto sink = make(host, config_for("").set("url_file", file.path()));
  EXPECT_TRUE(sink->send(hello()).delivered);
  ASSERT_EQ(slack.count(), 1u);
  EXPECT_EQ(slack.requests().front().path, kSecretPath);
  EXPECT_FALSE(host.log.contains(kSecretToken));
  EXPECT_FALSE(host.log.contains("/services/"));
}

TEST(WebhookSinkFactory, UrlFileWinsOverUrlEnv) {
  FakeSlack from_file;
  FakeSlack from_env;
  from_file.start();
  from_env.start();
  from_file.set_default(plain(200, "ok"));
  TempFile file(webhook_url(from_file));
  ScopedEnv env("SP_WEBHOOK_TEST_IGNORED", webhook_url(from_env));
  FakeHost host;
  auto sink =
      make(host, config_for("", "SP_WEBHOOK_TEST_IGNORED").set("url_file", file.path()));
  EXPECT_TRUE(sink->send(hello()).delivered);
  EXPECT_EQ(from_file.count(), 1u);
  EXPECT_EQ(from_env.count(), 0u);
}

TEST(WebhookSinkFactory, RefusesAMissingOrEmptyUrlFileNamingThePath) {
  FakeHost host;
  const std::string missing = "/nonexistent/slack-proxy/hook";
  EXPECT_EQ(refusal(host, config_for("").set("url_file", missing)),
            "url_file \"" + missing + "\" does not exist");
  TempFile blank("\n");
  EXPECT_EQ(refusal(host, config_for("").set("url_file", blank.path())),
            "url_file \"" + blank.path() +
                "\" is empty: it must hold the incoming-webhook URL "
                "(https://hooks.slack.com/services/...)");
}

TEST(WebhookSinkFactory, RefusesAUrlFileThatIsNotAWebhookUrlWithoutShowingIt) {
  FakeHost host;
  for (const std::string& content :
       {std::string("ftp://hooks.slack.com") + kSecretPath,
        std::string("https://hooks.slack.com") + kSecretPath + "\nsecond line " + kSecretToken,
        std::string("hooks.slack.com") + kSecretPath}) {
    TempFile file(content);
    const std::string why = refusal(host, config_for("").set("url_file", file.path()));
    EXPECT_NE(why.find("url_file \"" + file.path() + "\""), std::string::npos) << why;
    EXPECT_EQ(why.find(kSecretToken), std::string::npos) << why;
    EXPECT_EQ(why.find("T0SECRET1"), std::string::npos) << why;
    EXPECT_EQ(why.find('\n'), std::string::npos) << why;
  }
}

TEST(WebhookSinkFactory, CheckOnlyDoesNotReadUrlFile) {
  FakeHost host;
  const auto config = config_for("").set("url_file", "/nonexistent/slack-proxy/hook");
  ASSERT_NE(refusal(host, config), "");
  EXPECT_EQ(refusal(host, config, /*check_only=*/true), "");
}

TEST(WebhookSinkFactory, CheckOnlyDoesNotReadTheEnvironment) {
  FakeHost host;
  ::unsetenv("SP_WEBHOOK_TEST_CHECK");
  EXPECT_EQ(refusal(host, config_for("", "SP_WEBHOOK_TEST_CHECK"), /*check_only=*/true), "");
  // A value the real factory would refuse: accepted only because it is not read.
  ScopedEnv env("SP_WEBHOOK_TEST_CHECK", "not a url");
  ASSERT_NE(refusal(host, config_for("", "SP_WEBHOOK_TEST_CHECK")), "");
  EXPECT_EQ(refusal(host, config_for("", "SP_WEBHOOK_TEST_CHECK"), /*check_only=*/true), "");
}

TEST(WebhookSinkFactory, CheckOnlyStillJudgesTheSettings) {
  FakeHost host;
  EXPECT_NE(refusal(host, config_for("ftp://hooks.slack.com/x"), /*check_only=*/true), "");
  EXPECT_NE(refusal(host, config_for("").set("timeout", Value{0ms}), /*check_only=*/true), "");
  EXPECT_NE(refusal(host, config_for("").set("ca_file", "/nonexistent/ca.pem"),
                    /*check_only=*/true),
            "");
}

// ---------------------------------------------------------------- send --

class WebhookSinkTest : public ::testing::Test {
 protected:
  void SetUp() override { slack.start(); }

  std::unique_ptr<sdk::Sink> make_sink(MapConfig config) { return make(host, config); }
  std::unique_ptr<sdk::Sink> make_sink() { return make_sink(config_for(webhook_url(slack))); }

  sdk::SendResult send_with(Behaviour reply, const sdk::Message& m = hello()) {
    slack.set_default(std::move(reply));
    return make_sink()->send(m);
  }

  FakeHost host;
  FakeSlack slack;
};

// Slack limits each incoming webhook: its URL names the budget, and the
// name does not contain the URL's secret path.
TEST_F(WebhookSinkTest, NamesTheWebhooksBudgetWithoutItsUrl) {
  const std::string url = webhook_url(slack);
  auto sink = make_sink();
  EXPECT_EQ(sink->budget_of(hello()), host.budget_id(url));
  EXPECT_EQ(sink->budget_of(hello()).find(url), std::string::npos);
}

TEST_F(WebhookSinkTest, DeliversOnA200WithPlainOk) {
  const auto result = send_with(plain(200, "ok"));
  EXPECT_TRUE(result.delivered) << result.error << ": " << result.detail;
  EXPECT_EQ(result.http_status, 200);
  EXPECT_EQ(slack.count(), 1u);
}

TEST_F(WebhookSinkTest, ForwardsTheBodyByteForByteWithoutAuthorization) {
  // Odd spacing, non-ASCII text, an unknown field and a channel the sink
  // must not touch even though a router changed the message's.
  const std::string payload =
      "{ \"text\" : \"Grüße \\u2713\",\"channel\":\"#asked\",\n \"x_custom\":[1, 2] }";
  auto m = message(payload, "#asked");
  m.channel = "#override";
  ASSERT_TRUE(send_with(plain(200, "ok"), m).delivered);
  ASSERT_EQ(slack.count(), 1u);
  const auto request = slack.requests().front();
  EXPECT_EQ(request.method, "POST");
  EXPECT_EQ(request.path, kSecretPath);
  EXPECT_EQ(request.body, payload);
  EXPECT_EQ(request.authorization, "");
  EXPECT_EQ(request.headers.count("authorization"), 0u);
  EXPECT_EQ(request.content_type, "application/json; charset=utf-8");
  EXPECT_EQ(request.headers.at("user-agent"), "slack-proxy/0.1");
}

TEST_F(WebhookSinkTest, MapsEachPlainTextErrorCodeToItsCode) {
  struct Case {
    int status;
    const char* code;
  };
  const std::vector<Case> cases = {
      {400, "invalid_payload"},
      {400, "no_text"},
      {400, "too_many_attachments"},
      {400, "user_not_found"},
      {403, "action_prohibited"},
      {403, "invalid_token"},
      {403, "posting_to_general_channel_denied"},
      {404, "channel_not_found"},
      {404, "no_service"},
      {404, "no_active_hooks"},
      {410, "channel_is_archived"},
  };
  auto sink = make_sink();
  for (const auto& c : cases) {
    slack.enqueue(plain(c.status, c.code));
    const auto result = sink->send(hello());
    EXPECT_FALSE(result.delivered) << c.code;
    EXPECT_EQ(result.http_status, c.status) << c.code;
    EXPECT_EQ(result.error, c.code);
    EXPECT_FALSE(result.retry_after.has_value()) << c.code;
  }
  EXPECT_EQ(slack.count(), cases.size());
}

TEST_F(WebhookSinkTest, ReadsACodeFollowedByANewline) {
  EXPECT_EQ(send_with(plain(404, "channel_not_found\n")).error, "channel_not_found");
}

TEST_F(WebhookSinkTest, MapsA429ToRateLimitedWithItsRetryAfter) {
  auto reply = plain(429, "rate_limited");
  reply.retry_after_seconds = 30;
  const auto result = send_with(reply);
  EXPECT_FALSE(result.delivered);
  EXPECT_EQ(result.http_status, 429);
  EXPECT_EQ(result.error, "rate_limited");
  EXPECT_EQ(result.retry_after, std::chrono::milliseconds(30s));
}

TEST_F(WebhookSinkTest, MapsA5xxToItsStatusAndKeepsRetryAfter) {
  const auto rollup = send_with(plain(500, "rollup_error"));
  EXPECT_FALSE(rollup.delivered);
  EXPECT_EQ(rollup.http_status, 500);
  EXPECT_EQ(rollup.error, "rollup_error");

  auto unavailable = plain(503, "<html>Service Unavailable</html>");
  unavailable.retry_after_seconds = 4;
  const auto result = send_with(unavailable);
  EXPECT_EQ(result.http_status, 503);
  EXPECT_EQ(result.error, "http_503");
  EXPECT_EQ(result.retry_after, std::chrono::milliseconds(4s));
}

TEST_F(WebhookSinkTest, MapsA200WithoutOkToBadResponse) {
  const auto result = send_with(plain(200, "<html>captive portal</html>"));
  EXPECT_FALSE(result.delivered);
  EXPECT_EQ(result.error, "bad_response");
}

TEST_F(WebhookSinkTest, A429IsBackPressureOnThePipelineUntilNowPlusRetryAfter) {
  auto reply = plain(429, "rate_limited");
  reply.retry_after_seconds = 30;
  const auto result = send_with(reply);
  ASSERT_TRUE(result.back_pressure.has_value());
  EXPECT_EQ(result.back_pressure->scope, sdk::BackPressure::Scope::Workspace);
  EXPECT_EQ(result.back_pressure->until, host.time.now() + 30s);
  EXPECT_FALSE(send_with(plain(404, "channel_not_found")).back_pressure.has_value());
}

TEST_F(WebhookSinkTest, RecordsTheRequestDuration) {
  send_with(plain(200, "ok"));
  EXPECT_TRUE(host.stats.exists(kDurationMetric));
}

TEST_F(WebhookSinkTest, MapsARefusedConnectionToConnectionFailed) {
  auto sink = make_sink(
      config_for("http://127.0.0.1:" + std::to_string(closed_port()) + kSecretPath));
  const auto result = sink->send(hello());
  EXPECT_FALSE(result.delivered);
  EXPECT_EQ(result.http_status, 0);
  EXPECT_EQ(result.error, "connection_failed");
}

TEST_F(WebhookSinkTest, NeverShowsTheUrlPathInDetailsOrLogs) {
  std::vector<sdk::SendResult> results;
  // A reply quoting the path, and one quoting only its secret last segment.
  results.push_back(send_with(plain(404, std::string("no such hook ") + kSecretPath)));
  results.push_back(send_with(plain(403, std::string("bad token ") + kSecretToken)));
  results.push_back(send_with(plain(200, std::string("not ok: ") + kSecretPath)));
  results.push_back(
      make_sink(config_for("http://127.0.0.1:" + std::to_string(closed_port()) + kSecretPath))
          ->send(hello()));
  slack.set_default(Behaviour::slow(5s));
  results.push_back(make_sink(config_for(webhook_url(slack)).set("timeout", Value{200ms}))
                        ->send(hello()));
  ASSERT_EQ(results.back().error, "timeout");

  for (const auto& result : results) {
    EXPECT_FALSE(result.detail.empty());
    EXPECT_EQ(result.detail.find(kSecretToken), std::string::npos) << result.detail;
    EXPECT_EQ(result.detail.find("T0SECRET1"), std::string::npos) << result.detail;
  }
  EXPECT_NE(results.front().detail.find("[redacted]"), std::string::npos) << results[0].detail;
  EXPECT_NE(results.front().detail.find("127.0.0.1:" + std::to_string(slack.port())),
            std::string::npos)
      << results[0].detail;
  ASSERT_FALSE(host.log.lines().empty());
  EXPECT_TRUE(host.log.contains("delivering to http://127.0.0.1:"));
  EXPECT_FALSE(host.log.contains(kSecretToken));
  EXPECT_FALSE(host.log.contains("/services/"));
}

// The log names scheme, host and port only, even when the URL carries user
// info, and a password holding an '@' of its own.
TEST_F(WebhookSinkTest, LogsOnlySchemeHostAndPortOfAUrlWithUserInfo) {
  const std::string origin = "http://127.0.0.1:" + std::to_string(slack.port());
  for (const char* user_info : {"hook-User:hook-Pass@", "hook-User:p@ss-W0rd@"}) {
    SCOPED_TRACE(user_info);
    FakeHost logged;
    const std::string url = std::string("http://") + user_info + "127.0.0.1:" +
                            std::to_string(slack.port()) + kSecretPath;
    make(logged, config_for(url));
    EXPECT_TRUE(logged.log.contains("delivering to " + origin));
    for (const char* secret : {"hook-User", "hook-Pass", "ss-W0rd", "@", kSecretToken}) {
      EXPECT_FALSE(logged.log.contains(secret)) << secret;
    }
  }
}

TEST_F(WebhookSinkTest, WarnsThatPlainHttpSendsTheSecretUnencrypted) {
  make_sink();
  bool warned = false;
  for (const auto& line : host.log.lines()) {
    warned |= line.level == sdk::LogLevel::Warn &&
              line.text.find("plain http") != std::string::npos;
  }
  EXPECT_TRUE(warned);
}

// ----------------------------------------------------------------- tls --

TEST(WebhookSinkTls, DeliversOverHttpsTrustingTheCaFile) {
  std::unique_ptr<TestCertificates> certs;
  try {
    certs = std::make_unique<TestCertificates>();
  } catch (const std::exception& e) {
    FAIL() << "cannot make test certificates: " << e.what();
  }
  FakeSlack slack(0, certs->localhost());
  slack.start();
  slack.set_default(plain(200, "ok"));
  FakeHost host;
  const std::string url = "https://localhost:" + std::to_string(slack.port()) + kSecretPath;
  auto sink = make(host, config_for(url).set("ca_file", certs->ca_certificate()));
  const auto result = sink->send(hello());
  EXPECT_TRUE(result.delivered) << result.error << ": " << result.detail;
  ASSERT_EQ(slack.count(), 1u);
  EXPECT_EQ(slack.requests().front().path, kSecretPath);
  for (const auto& line : host.log.lines()) {
    EXPECT_FALSE(line.level == sdk::LogLevel::Warn) << line.text;
  }
}

}  // namespace
}  // namespace slack_proxy::plugins::webhook_sink

#include "fake_slack.h"

#include <gtest/gtest.h>

#include <Poco/Exception.h>
#include <Poco/JSON/Array.h>
#include <Poco/JSON/Object.h>
#include <Poco/JSON/Parser.h>
#include <Poco/Net/SSLException.h>

#include <filesystem>
#include <future>
#include <memory>

#include "http_client.h"

namespace slack_proxy::testing {
namespace {

using namespace std::chrono_literals;

// Generous: only reached when something is broken.
constexpr auto kDeadline = 10s;

Poco::JSON::Object::Ptr parse_object(const std::string& text) {
  Poco::JSON::Parser parser;
  return parser.parse(text).extract<Poco::JSON::Object::Ptr>();
}

class FakeSlackTest : public ::testing::Test {
 protected:
  void SetUp() override { slack.start(); }

  HttpResponse post_message(const std::string& channel, const std::string& text = "hi") {
    HttpRequest request;
    request.method = "POST";
    request.url = slack.url();
    request.body = R"({"channel":")" + channel + R"(","text":")" + text + R"("})";
    request.content_type = "application/json; charset=utf-8";
    request.headers = {{"Authorization", "Bearer xoxb-test-secret"}};
    return http_send(request);
  }

  std::string control_url(const std::string& command) const {
    return "http://127.0.0.1:" + std::to_string(slack.port()) + "/_fake/" + command;
  }

  FakeSlack slack;
};

TEST_F(FakeSlackTest, OkRepliesWithTheRequestChannelAndATs) {
  const HttpResponse r = post_message("#general");
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.header("content-type"), "application/json; charset=utf-8");
  auto body = parse_object(r.body);
  EXPECT_TRUE(body->getValue<bool>("ok"));
  EXPECT_EQ(body->getValue<std::string>("channel"), "#general");
  EXPECT_FALSE(body->getValue<std::string>("ts").empty());
}

TEST_F(FakeSlackTest, OkGivesEachMessageADifferentTs) {
  const auto first = parse_object(post_message("#a").body)->getValue<std::string>("ts");
  const auto second = parse_object(post_message("#a").body)->getValue<std::string>("ts");
  EXPECT_NE(first, second);
}

TEST_F(FakeSlackTest, RecordsMethodPathBodyHeadersAndChannel) {
  post_message("#general", "hello");
  ASSERT_EQ(slack.count(), 1u);
  const RecordedRequest r = slack.requests().front();
  EXPECT_EQ(r.method, "POST");
  EXPECT_EQ(r.path, "/api/chat.postMessage");
  EXPECT_EQ(r.body, R"({"channel":"#general","text":"hello"})");
  EXPECT_EQ(r.content_type, "application/json; charset=utf-8");
  EXPECT_EQ(r.authorization, "Bearer xoxb-test-secret");
  EXPECT_EQ(r.headers.at("authorization"), "Bearer xoxb-test-secret");
  EXPECT_EQ(r.headers.at("content-type"), "application/json; charset=utf-8");
  EXPECT_EQ(r.channel, "#general");
}

TEST_F(FakeSlackTest, RecordsEmptyChannelForABodyThatIsNotJson) {
  const HttpResponse r = http_post(slack.url(), "channel=%23a&text=hi",
                                   "application/x-www-form-urlencoded");
  EXPECT_EQ(r.status, 200);
  ASSERT_EQ(slack.count(), 1u);
  EXPECT_EQ(slack.requests().front().channel, "");
  EXPECT_EQ(slack.requests().front().body, "channel=%23a&text=hi");
}

TEST_F(FakeSlackTest, AnswersAnyPostPath) {
  const HttpResponse r = http_post(
      "http://127.0.0.1:" + std::to_string(slack.port()) + "/services/T0/B0/x", R"({"text":"x"})");
  EXPECT_EQ(r.status, 200);
  ASSERT_EQ(slack.count(), 1u);
  EXPECT_EQ(slack.requests().front().path, "/services/T0/B0/x");
}

TEST_F(FakeSlackTest, RecordsRequestsInArrivalOrder) {
  post_message("#a", "1");
  post_message("#b", "2");
  post_message("#a", "3");
  const auto requests = slack.requests();
  ASSERT_EQ(requests.size(), 3u);
  EXPECT_EQ(requests[0].channel, "#a");
  EXPECT_EQ(requests[1].channel, "#b");
  EXPECT_EQ(requests[2].channel, "#a");
  EXPECT_LE(requests[0].at, requests[1].at);
  EXPECT_LE(requests[1].at, requests[2].at);
}

TEST_F(FakeSlackTest, ErrorReplies200WithOkFalseAndTheCode) {
  slack.enqueue(Behaviour::error("channel_not_found"));
  const HttpResponse r = post_message("#gone");
  EXPECT_EQ(r.status, 200);
  auto body = parse_object(r.body);
  EXPECT_FALSE(body->getValue<bool>("ok"));
  EXPECT_EQ(body->getValue<std::string>("error"), "channel_not_found");
}

TEST_F(FakeSlackTest, RateLimitedReplies429WithRetryAfter) {
  slack.enqueue(Behaviour::rate_limited(7));
  const HttpResponse r = post_message("#busy");
  EXPECT_EQ(r.status, 429);
  EXPECT_EQ(r.header("retry-after"), "7");
  auto body = parse_object(r.body);
  EXPECT_FALSE(body->getValue<bool>("ok"));
  EXPECT_EQ(body->getValue<std::string>("error"), "ratelimited");
}

TEST_F(FakeSlackTest, HttpStatusRepliesThatStatusWithASlackStyleError) {
  slack.enqueue(Behaviour::http_status(503));
  const HttpResponse r = post_message("#a");
  EXPECT_EQ(r.status, 503);
  EXPECT_FALSE(r.header("retry-after"));
  auto body = parse_object(r.body);
  EXPECT_FALSE(body->getValue<bool>("ok"));
  EXPECT_EQ(body->getValue<std::string>("error"), "service_unavailable");
}

TEST_F(FakeSlackTest, CustomBehaviourSendsItsStatusBodyAndContentType) {
  Behaviour b;
  b.status = 400;
  b.body = "invalid_payload";
  b.content_type = "text/plain";
  slack.enqueue(b);
  const HttpResponse r = post_message("#a");
  EXPECT_EQ(r.status, 400);
  EXPECT_EQ(r.body, "invalid_payload");
  EXPECT_EQ(r.header("content-type"), "text/plain");
}

// A lower bound that holds by construction: the reply is only written after
// the delay has passed since the request was recorded.
TEST_F(FakeSlackTest, SlowRepliesOkNoSoonerThanTheDelayAfterArrival) {
  slack.enqueue(Behaviour::slow(300ms));
  const HttpResponse r = post_message("#slow");
  const auto answered = std::chrono::steady_clock::now();
  EXPECT_EQ(r.status, 200);
  EXPECT_TRUE(parse_object(r.body)->getValue<bool>("ok"));
  ASSERT_EQ(slack.count(), 1u);
  EXPECT_GE(answered - slack.requests().front().at, 300ms);
}

TEST_F(FakeSlackTest, SlowReplyIsRecordedBeforeItIsAnswered) {
  slack.enqueue(Behaviour::slow(60s));
  auto pending = std::async(std::launch::async, [&] { return post_message("#slow"); });
  ASSERT_TRUE(slack.wait_for(1, kDeadline));
  EXPECT_EQ(slack.requests().front().channel, "#slow");
  EXPECT_EQ(pending.wait_for(0s), std::future_status::timeout);
  slack.stop();
  ASSERT_EQ(pending.wait_for(kDeadline), std::future_status::ready);
}

TEST_F(FakeSlackTest, SlowReplyDoesNotDelayAnotherRequest) {
  slack.enqueue(Behaviour::slow(60s), 1, "#slow");
  auto pending = std::async(std::launch::async, [&] { return post_message("#slow"); });
  ASSERT_TRUE(slack.wait_for(1, kDeadline));
  const HttpResponse fast = post_message("#fast");
  EXPECT_EQ(fast.status, 200);
  EXPECT_EQ(pending.wait_for(0s), std::future_status::timeout);
  slack.stop();
  ASSERT_EQ(pending.wait_for(kDeadline), std::future_status::ready);
}

TEST_F(FakeSlackTest, StopAbandonsAPendingSlowReplyWithoutAnswering) {
  slack.enqueue(Behaviour::slow(60s));
  auto pending = std::async(std::launch::async, [&] { return post_message("#slow"); });
  ASSERT_TRUE(slack.wait_for(1, kDeadline));
  slack.stop();
  ASSERT_EQ(pending.wait_for(kDeadline), std::future_status::ready);
  EXPECT_THROW(pending.get(), Poco::Exception);
  EXPECT_EQ(slack.answered(), 0u);
}

TEST_F(FakeSlackTest, AnsweredCountsRepliesOnceTheyAreSent) {
  slack.enqueue(Behaviour::slow(60s), 1, "#slow");
  auto pending = std::async(std::launch::async, [&] { return post_message("#slow"); });
  ASSERT_TRUE(slack.wait_for(1, kDeadline));
  post_message("#fast");
  EXPECT_TRUE(slack.wait_answered(1, kDeadline));
  EXPECT_EQ(slack.count(), 2u);
  EXPECT_EQ(slack.answered(), 1u);
  EXPECT_FALSE(slack.wait_answered(2, 0ms));
  slack.stop();
  ASSERT_EQ(pending.wait_for(kDeadline), std::future_status::ready);
}

TEST_F(FakeSlackTest, QueuedRulesApplyInOrderThenTheDefault) {
  slack.enqueue(Behaviour::error("invalid_auth"), 2);
  slack.enqueue(Behaviour::rate_limited(1));
  EXPECT_EQ(parse_object(post_message("#a").body)->getValue<std::string>("error"), "invalid_auth");
  EXPECT_EQ(parse_object(post_message("#a").body)->getValue<std::string>("error"), "invalid_auth");
  EXPECT_EQ(post_message("#a").status, 429);
  const HttpResponse fallback = post_message("#a");
  EXPECT_EQ(fallback.status, 200);
  EXPECT_TRUE(parse_object(fallback.body)->getValue<bool>("ok"));
}

TEST_F(FakeSlackTest, ChannelFilteredRuleAppliesOnlyToThatChannel) {
  slack.enqueue(Behaviour::error("channel_not_found"), 1, "#dead");
  EXPECT_TRUE(parse_object(post_message("#live").body)->getValue<bool>("ok"));
  EXPECT_EQ(parse_object(post_message("#dead").body)->getValue<std::string>("error"),
            "channel_not_found");
  EXPECT_TRUE(parse_object(post_message("#dead").body)->getValue<bool>("ok"));
}

TEST_F(FakeSlackTest, ChannelFilteredRuleDoesNotHideALaterUnfilteredRule) {
  slack.enqueue(Behaviour::error("channel_not_found"), 1, "#dead");
  slack.enqueue(Behaviour::http_status(503));
  EXPECT_EQ(post_message("#live").status, 503);
  EXPECT_EQ(parse_object(post_message("#dead").body)->getValue<std::string>("error"),
            "channel_not_found");
}

TEST_F(FakeSlackTest, SetDefaultReplacesTheFallbackReply) {
  slack.set_default(Behaviour::error("invalid_auth"));
  EXPECT_EQ(parse_object(post_message("#a").body)->getValue<std::string>("error"), "invalid_auth");
  EXPECT_EQ(parse_object(post_message("#b").body)->getValue<std::string>("error"), "invalid_auth");
}

TEST_F(FakeSlackTest, WaitForReturnsTrueOnceEnoughRequestsArrived) {
  post_message("#a");
  post_message("#a");
  EXPECT_TRUE(slack.wait_for(2, 0ms));
}

TEST_F(FakeSlackTest, WaitForReturnsFalseWhenTheTimeoutPasses) {
  post_message("#a");
  EXPECT_FALSE(slack.wait_for(2, 50ms));
}

TEST_F(FakeSlackTest, WaitForWakesWhenARequestArrivesFromAnotherThread) {
  auto waiting = std::async(std::launch::async, [&] { return slack.wait_for(1, kDeadline); });
  post_message("#a");
  ASSERT_EQ(waiting.wait_for(kDeadline), std::future_status::ready);
  EXPECT_TRUE(waiting.get());
}

TEST_F(FakeSlackTest, ResetForgetsRequestsRulesAndDefault) {
  slack.set_default(Behaviour::http_status(500));
  slack.enqueue(Behaviour::error("invalid_auth"));
  post_message("#a");
  slack.reset();
  EXPECT_EQ(slack.count(), 0u);
  EXPECT_TRUE(parse_object(post_message("#a").body)->getValue<bool>("ok"));
  EXPECT_EQ(slack.count(), 1u);
}

TEST_F(FakeSlackTest, OnRequestSeesEveryRecordedRequest) {
  FakeSlack observed;
  std::vector<std::string> channels;
  std::mutex mutex;
  observed.on_request([&](const RecordedRequest& r) {
    std::lock_guard lock(mutex);
    channels.push_back(r.channel);
  });
  observed.start();
  http_post(observed.url(), R"({"channel":"#x","text":"t"})");
  std::lock_guard lock(mutex);
  EXPECT_EQ(channels, std::vector<std::string>{"#x"});
}

TEST_F(FakeSlackTest, ControlEnqueueScriptsAnErrorForOneChannel) {
  const HttpResponse c = http_post(control_url("enqueue"),
                                   R"({"error":"channel_not_found","channel":"#dead","times":2})");
  ASSERT_EQ(c.status, 200);
  EXPECT_TRUE(parse_object(post_message("#live").body)->getValue<bool>("ok"));
  EXPECT_EQ(parse_object(post_message("#dead").body)->getValue<std::string>("error"),
            "channel_not_found");
  EXPECT_EQ(parse_object(post_message("#dead").body)->getValue<std::string>("error"),
            "channel_not_found");
  EXPECT_TRUE(parse_object(post_message("#dead").body)->getValue<bool>("ok"));
}

TEST_F(FakeSlackTest, ControlEnqueueScriptsStatusRetryAfterAndBody) {
  ASSERT_EQ(http_post(control_url("enqueue"),
                      R"({"status":429,"retry_after":2,"body":"{\"ok\":false,\"error\":\"rate_limited\"}"})")
                .status,
            200);
  const HttpResponse r = post_message("#a");
  EXPECT_EQ(r.status, 429);
  EXPECT_EQ(r.header("retry-after"), "2");
  EXPECT_EQ(r.body, R"({"ok":false,"error":"rate_limited"})");
}

TEST_F(FakeSlackTest, ControlDefaultReplacesTheFallbackReply) {
  ASSERT_EQ(http_post(control_url("default"), R"({"status":503})").status, 200);
  EXPECT_EQ(post_message("#a").status, 503);
  EXPECT_EQ(post_message("#a").status, 503);
}

TEST_F(FakeSlackTest, ControlRejectsMalformedJson) {
  EXPECT_EQ(http_post(control_url("enqueue"), "not json").status, 400);
}

TEST_F(FakeSlackTest, ControlRequestsListsRequestsWithoutTheToken) {
  post_message("#a", "hello");
  http_post(slack.url(), R"({"channel":"#b","text":"anonymous"})");
  const HttpResponse r = http_get(control_url("requests"));
  ASSERT_EQ(r.status, 200);
  EXPECT_EQ(r.body.find("xoxb-test-secret"), std::string::npos);
  Poco::JSON::Parser parser;
  auto list = parser.parse(r.body).extract<Poco::JSON::Array::Ptr>();
  ASSERT_EQ(list->size(), 2u);
  auto first = list->getObject(0);
  EXPECT_EQ(first->getValue<std::string>("method"), "POST");
  EXPECT_EQ(first->getValue<std::string>("path"), "/api/chat.postMessage");
  EXPECT_EQ(first->getValue<std::string>("channel"), "#a");
  EXPECT_EQ(first->getValue<std::string>("body"), R"({"channel":"#a","text":"hello"})");
  EXPECT_TRUE(first->getValue<bool>("authorization_present"));
  EXPECT_GE(first->getValue<std::int64_t>("at_ms"), 0);
  EXPECT_FALSE(list->getObject(1)->getValue<bool>("authorization_present"));
}

TEST_F(FakeSlackTest, ControlRequestsAreNotRecorded) {
  http_post(control_url("enqueue"), R"({"error":"invalid_auth"})");
  http_get(control_url("requests"));
  EXPECT_EQ(slack.count(), 0u);
}

TEST_F(FakeSlackTest, ControlResetForgetsRequestsAndRules) {
  slack.enqueue(Behaviour::error("invalid_auth"));
  http_post(slack.url(), R"({"channel":"#a","text":"x"})");
  ASSERT_EQ(http_post(control_url("reset"), "").status, 200);
  EXPECT_EQ(slack.count(), 0u);
  EXPECT_TRUE(parse_object(post_message("#a").body)->getValue<bool>("ok"));
}

TEST(FakeSlackLifecycle, ListensOnTheRequestedPortAndReportsItInTheUrl) {
  FakeSlack probe;
  probe.start();
  const std::uint16_t port = probe.port();
  probe.stop();
  FakeSlack fixed(port);
  fixed.start();
  EXPECT_EQ(fixed.port(), port);
  EXPECT_EQ(fixed.url(), "http://127.0.0.1:" + std::to_string(port) + "/api/chat.postMessage");
  EXPECT_EQ(http_post(fixed.url(), R"({"channel":"#a","text":"x"})").status, 200);
}

TEST(FakeSlackLifecycle, RefusesConnectionsAfterStop) {
  FakeSlack slack;
  slack.start();
  const std::string url = slack.url();
  slack.stop();
  EXPECT_THROW(http_post(url, R"({"channel":"#a","text":"x"})"), Poco::Exception);
}

// ------------------------------------------------------------------ tls --

TEST(TestCertificatesTest, WritesEveryFileAndRemovesThemWhenDestroyed) {
  std::filesystem::path dir;
  {
    TestCertificates certs;
    dir = certs.dir();
    for (const TlsFiles& pair :
         {certs.localhost(), certs.wrong_name(), certs.self_signed_localhost()}) {
      EXPECT_TRUE(std::filesystem::is_regular_file(pair.certificate)) << pair.certificate;
      EXPECT_TRUE(std::filesystem::is_regular_file(pair.private_key)) << pair.private_key;
    }
    EXPECT_TRUE(std::filesystem::is_regular_file(certs.ca_certificate()));
  }
  EXPECT_FALSE(std::filesystem::exists(dir)) << dir;
}

class FakeSlackTlsTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    try {
      certs_ = std::make_unique<TestCertificates>();
    } catch (const std::exception& e) {
      certs_error_ = e.what();
    }
  }
  static void TearDownTestSuite() { certs_.reset(); }
  void SetUp() override {
    ASSERT_TRUE(certs_) << "cannot make test certificates: " << certs_error_;
    slack = std::make_unique<FakeSlack>(0, certs_->localhost());
    slack->start();
  }

  HttpRequest post_to(const std::string& url, const std::string& trusted_ca) const {
    HttpRequest request;
    request.method = "POST";
    request.url = url;
    request.body = R"({"channel":"#tls","text":"hi"})";
    request.content_type = "application/json; charset=utf-8";
    request.ca_file = trusted_ca;
    return request;
  }

  static inline std::unique_ptr<TestCertificates> certs_;
  static inline std::string certs_error_;
  std::unique_ptr<FakeSlack> slack;
};

TEST_F(FakeSlackTlsTest, NamesLocalhostInAnHttpsUrl) {
  EXPECT_TRUE(slack->tls());
  EXPECT_EQ(slack->url(),
            "https://localhost:" + std::to_string(slack->port()) + "/api/chat.postMessage");
}

TEST_F(FakeSlackTlsTest, AnswersAndRecordsOverHttps) {
  const HttpResponse r = http_send(post_to(slack->url(), certs_->ca_certificate()));
  EXPECT_EQ(r.status, 200);
  EXPECT_TRUE(parse_object(r.body)->getValue<bool>("ok"));
  ASSERT_EQ(slack->count(), 1u);
  EXPECT_EQ(slack->requests().front().channel, "#tls");
}

TEST_F(FakeSlackTlsTest, ServesTheControlApiOverHttpsToo) {
  HttpRequest request;
  request.url = "https://localhost:" + std::to_string(slack->port()) + "/_fake/requests";
  request.ca_file = certs_->ca_certificate();
  const HttpResponse r = http_send(request);
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.body, "[]");
}

TEST_F(FakeSlackTlsTest, AnswersNoPlainHttp) {
  const std::string plain = "http://127.0.0.1:" + std::to_string(slack->port()) + "/api/x";
  EXPECT_THROW(http_send(post_to(plain, "")), Poco::Exception);
  EXPECT_EQ(slack->count(), 0u);
}

TEST_F(FakeSlackTlsTest, KeepsServingAfterAClientRefusesItsCertificate) {
  // Trusting only an unrelated self-signed certificate, the client refuses.
  const std::string unrelated = certs_->self_signed_localhost().certificate;
  EXPECT_THROW(http_send(post_to(slack->url(), unrelated)), Poco::Net::SSLException);
  EXPECT_EQ(slack->count(), 0u);
  EXPECT_EQ(http_send(post_to(slack->url(), certs_->ca_certificate())).status, 200);
  EXPECT_EQ(slack->count(), 1u);
}

TEST(FakeSlackTlsLifecycle, StartFailsWithoutItsCertificate) {
  FakeSlack slack(0, TlsFiles{"/nonexistent/cert.pem", "/nonexistent/key.pem"});
  EXPECT_THROW(slack.start(), Poco::Exception);
}

}  // namespace
}  // namespace slack_proxy::testing

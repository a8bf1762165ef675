#include "fake_slack.h"

#include <gtest/gtest.h>

#include <Poco/Exception.h>
#include <Poco/JSON/Array.h>
#include <Poco/JSON/Object.h>
#include <Poco/JSON/Parser.h>
#include <Poco/Net/SSLException.h>

#include <atomic>
#include <cmath>
#include <filesystem>
#include <future>
#include <memory>
#include <thread>

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
  // sha256("Bearer xoxb-test-secret"), as `printf %s ... | sha256sum` gives it.
  EXPECT_EQ(first->getValue<std::string>("authorization_sha256"),
            "b543ce282c64dd17b0a8dbce71e685d4c1b348c245446ef79845b1254a032d13");
  EXPECT_GE(first->getValue<std::int64_t>("at_ms"), 0);
  EXPECT_FALSE(list->getObject(1)->getValue<bool>("authorization_present"));
  EXPECT_EQ(list->getObject(1)->getValue<std::string>("authorization_sha256"), "");
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

// ---------------------------------------------------------- rate limits --

// The limiter alone, on a made-up timeline: no clock is read.
class SlackLimiterTest : public ::testing::Test {
 protected:
  static Limits channel_only(double rate, int burst) {
    Limits l;
    l.channel_rate = rate;
    l.channel_burst = burst;
    l.workspace_per_minute = 0;
    return l;
  }
  static Limits workspace_only(double per_minute, int burst) {
    Limits l;
    l.channel_rate = 0;
    l.workspace_per_minute = per_minute;
    l.workspace_burst = burst;
    return l;
  }
  const SlackLimiter::Time t0 = SlackLimiter::Time{} + 1000s;
};

TEST_F(SlackLimiterTest, AdmitsAFullBurstAtOnceThenRefusesTheNext) {
  SlackLimiter limiter(channel_only(1, 3));
  EXPECT_EQ(limiter.admit("#a", t0), std::nullopt);
  EXPECT_EQ(limiter.admit("#a", t0), std::nullopt);
  EXPECT_EQ(limiter.admit("#a", t0), std::nullopt);
  EXPECT_NE(limiter.admit("#a", t0), std::nullopt);
}

TEST_F(SlackLimiterTest, RefillsOneTokenPerIntervalExactlyOnTime) {
  SlackLimiter limiter(channel_only(2, 1));  // one token per 500 ms
  ASSERT_EQ(limiter.admit("#a", t0), std::nullopt);
  EXPECT_NE(limiter.admit("#a", t0 + 499ms), std::nullopt);
  EXPECT_EQ(limiter.admit("#a", t0 + 500ms), std::nullopt);
  EXPECT_NE(limiter.admit("#a", t0 + 999ms), std::nullopt);
  EXPECT_EQ(limiter.admit("#a", t0 + 1000ms), std::nullopt);
}

TEST_F(SlackLimiterTest, ARefusedRequestTakesNoToken) {
  SlackLimiter limiter(channel_only(1, 1));
  ASSERT_EQ(limiter.admit("#a", t0), std::nullopt);
  for (int i = 0; i < 5; ++i) ASSERT_NE(limiter.admit("#a", t0 + 500ms), std::nullopt);
  EXPECT_EQ(limiter.admit("#a", t0 + 1s), std::nullopt);
}

TEST_F(SlackLimiterTest, ABucketRefillsNoFurtherThanItsBurst) {
  SlackLimiter limiter(channel_only(1, 2));
  ASSERT_EQ(limiter.admit("#a", t0), std::nullopt);
  const auto later = t0 + 1h;
  EXPECT_EQ(limiter.admit("#a", later), std::nullopt);
  EXPECT_EQ(limiter.admit("#a", later), std::nullopt);
  EXPECT_NE(limiter.admit("#a", later), std::nullopt);
}

TEST_F(SlackLimiterTest, EachChannelHasItsOwnBucket) {
  SlackLimiter limiter(channel_only(1, 1));
  ASSERT_EQ(limiter.admit("#a", t0), std::nullopt);
  ASSERT_NE(limiter.admit("#a", t0), std::nullopt);
  EXPECT_EQ(limiter.admit("#b", t0), std::nullopt);
}

TEST_F(SlackLimiterTest, TheWorkspaceBucketIsSharedByEveryChannel) {
  SlackLimiter limiter(workspace_only(60, 2));  // one token per second
  ASSERT_EQ(limiter.admit("#a", t0), std::nullopt);
  ASSERT_EQ(limiter.admit("#b", t0), std::nullopt);
  EXPECT_NE(limiter.admit("#c", t0), std::nullopt);
  EXPECT_EQ(limiter.admit("#c", t0 + 1s), std::nullopt);
}

TEST_F(SlackLimiterTest, ARequestNeedsATokenFromBothBucketsAndTakesBoth) {
  Limits limits;
  limits.channel_rate = 1;
  limits.channel_burst = 1;
  limits.workspace_per_minute = 60;
  limits.workspace_burst = 2;
  SlackLimiter limiter(limits);
  ASSERT_EQ(limiter.admit("#a", t0), std::nullopt);
  // #a's bucket is empty: refused although the workspace has a token left...
  ASSERT_NE(limiter.admit("#a", t0), std::nullopt);
  // ...which the refusal did not take: #b gets it.
  ASSERT_EQ(limiter.admit("#b", t0), std::nullopt);
  // Now the workspace is empty, though #c's own bucket is full.
  EXPECT_NE(limiter.admit("#c", t0), std::nullopt);
}

TEST_F(SlackLimiterTest, RetryAfterIsTheWaitForBothTokensRoundedUp) {
  Limits limits;
  limits.channel_rate = 0.4;  // one token per 2.5 s
  limits.channel_burst = 1;
  limits.workspace_per_minute = 60;
  limits.workspace_burst = 1;
  SlackLimiter limiter(limits);
  ASSERT_EQ(limiter.admit("#a", t0), std::nullopt);
  EXPECT_EQ(limiter.wait("#a", t0), 2500ms);
  EXPECT_EQ(limiter.admit("#a", t0), 3);
  // #b waits only for the workspace: 1 s, then 0.2 s.
  EXPECT_EQ(limiter.admit("#b", t0), 1);
  EXPECT_EQ(limiter.admit("#b", t0 + 800ms), 1);  // 200 ms is still 1 s at least
  EXPECT_EQ(limiter.wait("#b", t0 + 1s), 0ns);
}

TEST_F(SlackLimiterTest, AFixedRetryAfterReplacesTheComputedOne) {
  Limits limits = channel_only(1, 1);
  limits.retry_after_seconds = 30;
  SlackLimiter limiter(limits);
  ASSERT_EQ(limiter.admit("#a", t0), std::nullopt);
  EXPECT_EQ(limiter.admit("#a", t0), 30);
}

TEST_F(SlackLimiterTest, JitterToleranceAdmitsSlightlyEarlyRequestsOnly) {
  Limits limits = channel_only(1, 1);
  limits.jitter_tolerance = 50ms;
  SlackLimiter limiter(limits);
  ASSERT_EQ(limiter.admit("#a", t0), std::nullopt);
  EXPECT_NE(limiter.admit("#a", t0 + 949ms), std::nullopt);
  EXPECT_EQ(limiter.admit("#a", t0 + 950ms), std::nullopt);
  // The early request took the token due at t0 + 1 s, so the next is due at
  // t0 + 2 s, not 1 s after it arrived: tolerance never raises the rate.
  EXPECT_NE(limiter.admit("#a", t0 + 1949ms), std::nullopt);
  EXPECT_EQ(limiter.admit("#a", t0 + 1950ms), std::nullopt);
}

TEST_F(SlackLimiterTest, ZeroRatesLiftEveryLimit) {
  SlackLimiter limiter(workspace_only(0, 1));
  for (int i = 0; i < 1000; ++i) ASSERT_EQ(limiter.admit("#a", t0), std::nullopt);
}

TEST_F(SlackLimiterTest, SustainedRateOverAMinuteIsTheConfiguredOne) {
  SlackLimiter limiter(workspace_only(600, 10));
  int admitted = 0;
  // Asking every millisecond for a minute: the burst, then 10 per second.
  for (auto t = t0; t < t0 + 60s; t += 1ms) admitted += limiter.admit("#a", t) ? 0 : 1;
  EXPECT_EQ(admitted, 10 + 600 - 1);  // the 600th refill lands exactly at t0 + 60 s
}

TEST_F(SlackLimiterTest, RejectsLimitsThatMakeNoSense) {
  EXPECT_THROW(SlackLimiter(channel_only(1, 0)), std::invalid_argument);
  EXPECT_THROW(SlackLimiter(workspace_only(600, 0)), std::invalid_argument);
  EXPECT_THROW(SlackLimiter(channel_only(std::nan(""), 1)), std::invalid_argument);
  EXPECT_THROW(SlackLimiter(channel_only(1e-9, 3)), std::invalid_argument);
  Limits fixed = channel_only(1, 1);
  fixed.retry_after_seconds = 0;
  EXPECT_THROW(SlackLimiter{fixed}, std::invalid_argument);
  // A zero rate needs no burst: that limit is off.
  EXPECT_NO_THROW(SlackLimiter(channel_only(0, 0)));
}

// The fake with limits on. Rates so low that no refill can happen during a
// test keep these independent of the real clock they run on.
class FakeSlackLimitsTest : public FakeSlackTest {
 protected:
  static Limits two_per_channel() {
    Limits l;
    l.channel_rate = 0.001;
    l.channel_burst = 2;
    l.workspace_per_minute = 0;
    return l;
  }
};

TEST_F(FakeSlackLimitsTest, OverTheLimitAnswers429RatelimitedWithRetryAfter) {
  slack.enforce_limits(two_per_channel());
  EXPECT_EQ(post_message("#a").status, 200);
  EXPECT_EQ(post_message("#a").status, 200);
  const HttpResponse r = post_message("#a");
  EXPECT_EQ(r.status, 429);
  ASSERT_TRUE(r.header("retry-after"));
  EXPECT_GE(std::stoi(*r.header("retry-after")), 999);  // the time to the next token
  EXPECT_EQ(r.header("content-type"), "application/json; charset=utf-8");
  auto body = parse_object(r.body);
  EXPECT_FALSE(body->getValue<bool>("ok"));
  EXPECT_EQ(body->getValue<std::string>("error"), "ratelimited");
}

TEST_F(FakeSlackLimitsTest, ARateLimitedRequestIsCountedAndNothingElse) {
  std::atomic<int> seen{0};
  FakeSlack observed;
  observed.on_request([&](const RecordedRequest&) { ++seen; });
  observed.start();
  observed.enforce_limits(two_per_channel());
  for (int i = 0; i < 3; ++i) http_post(observed.url(), R"({"channel":"#a","text":"x"})");
  EXPECT_EQ(observed.rate_limited(), 1u);
  EXPECT_EQ(observed.count(), 2u);
  // A reply is counted just after it is written: the client may be faster.
  EXPECT_TRUE(observed.wait_answered(2, kDeadline));
  EXPECT_EQ(observed.answered(), 2u);
  EXPECT_EQ(seen.load(), 2);
}

TEST_F(FakeSlackLimitsTest, LimitsApplyBeforeScriptedRules) {
  slack.enforce_limits(two_per_channel());
  post_message("#a");
  post_message("#a");
  slack.enqueue(Behaviour::error("invalid_auth"));
  EXPECT_EQ(post_message("#a").status, 429);
  // The rule is still there for the next admitted request.
  EXPECT_EQ(parse_object(post_message("#b").body)->getValue<std::string>("error"),
            "invalid_auth");
}

TEST_F(FakeSlackLimitsTest, AnotherChannelIsNotLimitedByABusyOne) {
  slack.enforce_limits(two_per_channel());
  post_message("#busy");
  post_message("#busy");
  ASSERT_EQ(post_message("#busy").status, 429);
  EXPECT_EQ(post_message("#quiet").status, 200);
}

TEST_F(FakeSlackLimitsTest, ResetRefillsTheBucketsAndKeepsTheLimits) {
  slack.enforce_limits(two_per_channel());
  post_message("#a");
  post_message("#a");
  ASSERT_EQ(post_message("#a").status, 429);
  slack.reset();
  EXPECT_EQ(slack.rate_limited(), 0u);
  EXPECT_EQ(post_message("#a").status, 200);
  EXPECT_EQ(post_message("#a").status, 200);
  EXPECT_EQ(post_message("#a").status, 429);
}

TEST_F(FakeSlackLimitsTest, EnforceLimitsRefusesNonsenseAndKeepsServing) {
  Limits bad;
  bad.channel_burst = 0;
  EXPECT_THROW(slack.enforce_limits(bad), std::invalid_argument);
  EXPECT_EQ(post_message("#a").status, 200);
}

TEST_F(FakeSlackLimitsTest, ControlLimitsAndStats) {
  ASSERT_EQ(http_post(control_url("limits"),
                      R"({"channel_rate":0.001,"channel_burst":1,"workspace_per_minute":0,)"
                      R"("retry_after":7})")
                .status,
            200);
  EXPECT_EQ(post_message("#a").status, 200);
  const HttpResponse limited = post_message("#a");
  EXPECT_EQ(limited.status, 429);
  EXPECT_EQ(limited.header("retry-after"), "7");
  const HttpResponse stats = http_get(control_url("stats"));
  ASSERT_EQ(stats.status, 200);
  auto body = parse_object(stats.body);
  EXPECT_EQ(body->getValue<int>("delivered"), 1);
  EXPECT_EQ(body->getValue<int>("rate_limited"), 1);
}

// Waits for the steady clock itself: the fake judges arrivals by it.
void wait_until(std::chrono::steady_clock::time_point when) {
  while (std::chrono::steady_clock::now() < when) std::this_thread::sleep_until(when);
}

class FakeSlackEarlyTest : public FakeSlackLimitsTest {
 protected:
  // #a has one token in a very long while; #b is never limited, so that a
  // request inside the pause is admitted and still counts as early.
  void refuse_one(int retry_after) {
    Limits limits = two_per_channel();
    limits.channel_burst = 1;
    limits.retry_after_seconds = retry_after;
    slack.enforce_limits(limits);
    ASSERT_EQ(post_message("#a").status, 200);
    ASSERT_EQ(post_message("#a").status, 429);
  }
};

TEST_F(FakeSlackEarlyTest, RecordsEach429WithItsWorkspaceAnswerTimeAndRetryAfter) {
  const auto before = std::chrono::steady_clock::now();
  refuse_one(7);
  const auto after = std::chrono::steady_clock::now();
  const auto answers = slack.rate_limit_answers();
  ASSERT_EQ(answers.size(), 1u);
  EXPECT_EQ(answers[0].workspace, kFakeWorkspace);
  EXPECT_EQ(answers[0].retry_after_seconds, 7);
  EXPECT_GE(answers[0].answered_at, before);
  EXPECT_LE(answers[0].answered_at, after);
}

TEST_F(FakeSlackEarlyTest, ARequestArrivingInsideThePauseIsEarlyEvenForAnotherChannel) {
  refuse_one(60);
  wait_until(slack.rate_limit_answers().at(0).answered_at + kInFlightGrace);
  EXPECT_EQ(post_message("#b").status, 200);
  EXPECT_EQ(slack.early_after_429(), 1u);
  const HttpResponse stats = http_get(control_url("stats"));
  EXPECT_EQ(parse_object(stats.body)->getValue<int>("early_after_429"), 1);
}

TEST_F(FakeSlackEarlyTest, ARequestAfterThePauseIsNotEarly) {
  refuse_one(1);
  wait_until(slack.rate_limit_answers().at(0).answered_at + 1s);
  EXPECT_EQ(post_message("#b").status, 200);
  EXPECT_EQ(slack.early_after_429(), 0u);
}

TEST_F(FakeSlackEarlyTest, ResetForgetsThePauses) {
  refuse_one(60);
  slack.reset();
  EXPECT_TRUE(slack.rate_limit_answers().empty());
  wait_until(std::chrono::steady_clock::now() + kInFlightGrace);
  post_message("#b");
  EXPECT_EQ(slack.early_after_429(), 0u);
}

TEST_F(FakeSlackLimitsTest, ControlWorkspaceLimitIsSharedAcrossChannels) {
  ASSERT_EQ(http_post(control_url("limits"),
                      R"({"channel_rate":0,"workspace_per_minute":0.06,"workspace_burst":2})")
                .status,
            200);
  EXPECT_EQ(post_message("#a").status, 200);
  EXPECT_EQ(post_message("#b").status, 200);
  EXPECT_EQ(post_message("#c").status, 429);
}

TEST_F(FakeSlackLimitsTest, ControlLimitsRefusesUnknownKeysAndBadValues) {
  const HttpResponse typo = http_post(control_url("limits"), R"({"chanel_rate":1})");
  EXPECT_EQ(typo.status, 400);
  EXPECT_NE(typo.body.find("chanel_rate"), std::string::npos);
  EXPECT_EQ(http_post(control_url("limits"), R"({"channel_burst":0})").status, 400);
  // Nothing was enforced.
  for (int i = 0; i < 5; ++i) EXPECT_EQ(post_message("#a").status, 200);
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

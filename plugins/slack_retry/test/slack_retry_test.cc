#include <algorithm>
#include <chrono>
#include <limits>
#include <stdexcept>
#include <string>

#include <gtest/gtest.h>
#include <slack_proxy/sdk/testing/fakes.h>

#include "slack_retry.h"

namespace slack_proxy::plugins::slack_retry {
namespace {

using namespace std::chrono_literals;
using Action = sdk::RetryDecision::Action;
using sdk::testing::MapConfig;
// Wrapped explicitly: MapConfig::set's int overload would otherwise capture
// doubles, bools and 64-bit integers by narrowing conversion.
using Value = MapConfig::Value;

Settings exact(std::int64_t max_retries = 3) {
  Settings s;
  s.max_retries = max_retries;
  s.jitter = 0;
  return s;
}

sdk::Message after_attempts(std::uint32_t attempts) {
  sdk::Message m;
  m.channel = "#a";
  m.attempts = attempts;
  return m;
}

sdk::SendResult slack_error(const std::string& code, int status = 200) {
  return sdk::SendResult::failed(status, code);
}

MapConfig defaults() {
  return MapConfig()
      .set("max_retries", Value{std::int64_t{3}})
      .set("initial_backoff", Value{1000ms})
      .set("max_backoff", Value{60000ms})
      .set("multiplier", Value{2.0})
      .set("jitter", Value{0.2})
      .set("retry_internal_error", Value{true});
}

TEST(SlackRetrySettings, AcceptsTheDefaults) {
  const auto s = parse_settings(defaults());
  EXPECT_EQ(s.max_retries, 3);
  EXPECT_EQ(s.initial_backoff, 1s);
  EXPECT_EQ(s.max_backoff, 60s);
  EXPECT_DOUBLE_EQ(s.multiplier, 2.0);
  EXPECT_DOUBLE_EQ(s.jitter, 0.2);
  EXPECT_TRUE(s.retry_internal_error);
}

TEST(SlackRetrySettings, AcceptsZeroRetriesAndNoJitter) {
  const auto s = parse_settings(
      defaults().set("max_retries", Value{std::int64_t{0}}).set("jitter", Value{0.0}));
  EXPECT_EQ(s.max_retries, 0);
  EXPECT_EQ(s.jitter, 0.0);
}

TEST(SlackRetrySettings, RejectsMeaninglessValues) {
  EXPECT_THROW(parse_settings(defaults().set("max_retries", Value{std::int64_t{-1}})),
               std::invalid_argument);
  EXPECT_THROW(parse_settings(defaults().set("initial_backoff", Value{0ms})),
               std::invalid_argument);
  EXPECT_THROW(parse_settings(defaults().set("max_backoff", Value{500ms})), std::invalid_argument);
  EXPECT_THROW(parse_settings(defaults().set("multiplier", Value{0.5})), std::invalid_argument);
  EXPECT_THROW(parse_settings(defaults().set("jitter", Value{-0.1})), std::invalid_argument);
  EXPECT_THROW(parse_settings(defaults().set("jitter", Value{1.5})), std::invalid_argument);
}

TEST(SlackRetrySettings, NamesTheValueInTheRejection) {
  try {
    parse_settings(defaults().set("jitter", Value{1.5}));
    FAIL() << "jitter 1.5 accepted";
  } catch (const std::invalid_argument& e) {
    EXPECT_STREQ(e.what(), "jitter must be between 0 and 1, got 1.5");
  }
}

TEST(SlackRetry, RetriesEverySlackTransientCode) {
  SlackRetry policy(exact(), 1);
  for (const char* code : {"ratelimited", "rate_limited", "message_limit_exceeded",
                           "service_unavailable", "request_timeout", "team_added_to_org"}) {
    const auto d = policy.decide(after_attempts(1), slack_error(code));
    EXPECT_EQ(d.action, Action::Retry) << code;
    EXPECT_EQ(d.delay, 1s) << code;
  }
}

TEST(SlackRetry, RetriesHttp429AndEvery5xx) {
  SlackRetry policy(exact(), 1);
  EXPECT_EQ(policy.decide(after_attempts(1), slack_error("rate_limited", 429)).action,
            Action::Retry);
  for (int status : {500, 502, 503, 504, 599}) {
    EXPECT_EQ(
        policy.decide(after_attempts(1), slack_error("http_" + std::to_string(status), status))
            .action,
        Action::Retry)
        << status;
  }
}

TEST(SlackRetry, RetriesTransportFailuresWithoutAReply) {
  SlackRetry policy(exact(), 1);
  for (const char* code : {"connection_failed", "timeout", "tls_error", "bad_response"}) {
    EXPECT_EQ(policy.decide(after_attempts(1), slack_error(code, 0)).action, Action::Retry) << code;
  }
}

TEST(SlackRetry, GivesUpOnPermanentCodes) {
  SlackRetry policy(exact(), 1);
  for (const char* code :
       {"channel_not_found", "invalid_auth", "not_authed", "token_revoked", "missing_scope",
        "is_archived", "not_in_channel", "msg_too_long", "no_text", "invalid_blocks",
        "too_many_attachments", "some_new_code", "internal_error_in_sink"}) {
    const auto d = policy.decide(after_attempts(1), slack_error(code));
    EXPECT_EQ(d.action, Action::GiveUp) << code;
    EXPECT_EQ(d.reason, std::string("permanent error ") + code);
  }
}

TEST(SlackRetry, GivesUpOnOther4xx) {
  SlackRetry policy(exact(), 1);
  EXPECT_EQ(policy.decide(after_attempts(1), slack_error("http_404", 404)).action, Action::GiveUp);
  EXPECT_EQ(policy.decide(after_attempts(1), slack_error("", 400)).reason,
            "permanent error http_400");
}

TEST(SlackRetry, RetriesInternalErrorsByDefault) {
  SlackRetry policy(exact(), 1);
  EXPECT_EQ(policy.decide(after_attempts(1), slack_error("internal_error")).action, Action::Retry);
  EXPECT_EQ(policy.decide(after_attempts(1), slack_error("fatal_error")).action, Action::Retry);
}

TEST(SlackRetry, GivesUpOnInternalErrorsWhenTheyMayHaveBeenPosted) {
  auto settings = exact();
  settings.retry_internal_error = false;
  SlackRetry policy(settings, 1);
  EXPECT_EQ(policy.decide(after_attempts(1), slack_error("internal_error")).reason,
            "permanent error internal_error");
  EXPECT_EQ(policy.decide(after_attempts(1), slack_error("fatal_error")).action, Action::GiveUp);
  EXPECT_EQ(policy.decide(after_attempts(1), slack_error("internal_error", 500)).action,
            Action::GiveUp);
  // Other transient errors are still retried.
  EXPECT_EQ(policy.decide(after_attempts(1), slack_error("ratelimited")).action, Action::Retry);
}

TEST(SlackRetry, BackoffGrowsByTheMultiplierAndIsCapped) {
  auto settings = exact(20);
  settings.initial_backoff = 1s;
  settings.multiplier = 3;
  settings.max_backoff = 30s;
  SlackRetry policy(settings, 1);
  const auto delay = [&](std::uint32_t attempts) {
    return policy.decide(after_attempts(attempts), slack_error("ratelimited")).delay;
  };
  EXPECT_EQ(delay(1), 1s);
  EXPECT_EQ(delay(2), 3s);
  EXPECT_EQ(delay(3), 9s);
  EXPECT_EQ(delay(4), 27s);
  EXPECT_EQ(delay(5), 30s);
  EXPECT_EQ(delay(20), 30s);
}

TEST(SlackRetry, HugeAttemptCountsStayAtTheCap) {
  auto settings = exact(std::numeric_limits<std::uint32_t>::max());
  SlackRetry policy(settings, 1);
  EXPECT_EQ(policy.decide(after_attempts(5000), slack_error("ratelimited")).delay, 60s);
}

TEST(SlackRetry, NeverRetriesSoonerThanRetryAfter) {
  SlackRetry policy(exact(), 1);
  auto limited = slack_error("rate_limited", 429);
  limited.retry_after = 30s;
  EXPECT_EQ(policy.decide(after_attempts(1), limited).delay, 30s);
}

TEST(SlackRetry, KeepsTheLongerBackoffWhenRetryAfterIsShorter) {
  SlackRetry policy(exact(), 1);
  auto limited = slack_error("rate_limited", 429);
  limited.retry_after = 1s;
  EXPECT_EQ(policy.decide(after_attempts(3), limited).delay, 4s);
}

TEST(SlackRetry, RetryAfterIsAFloorEvenWithJitter) {
  Settings settings;  // jitter 0.2
  SlackRetry policy(settings, 7);
  auto limited = slack_error("rate_limited", 429);
  limited.retry_after = 1s;
  for (int i = 0; i < 1000; ++i) {
    EXPECT_GE(policy.decide(after_attempts(1), limited).delay, 1s);
  }
}

TEST(SlackRetry, RetriesUpToMaxRetriesThenGivesUp) {
  SlackRetry policy(exact(3), 1);
  EXPECT_EQ(policy.decide(after_attempts(3), slack_error("ratelimited")).action, Action::Retry);
  const auto d = policy.decide(after_attempts(4), slack_error("ratelimited"));
  EXPECT_EQ(d.action, Action::GiveUp);
  EXPECT_EQ(d.reason, "retries exhausted after 4 attempts: ratelimited");
}

TEST(SlackRetry, ZeroRetriesGivesUpAfterTheFirstAttempt) {
  SlackRetry policy(exact(0), 1);
  EXPECT_EQ(policy.decide(after_attempts(1), slack_error("timeout", 0)).action, Action::GiveUp);
}

TEST(SlackRetry, JitterStaysWithinItsBoundsAndActuallyVaries) {
  Settings settings;
  settings.initial_backoff = 10s;
  settings.jitter = 0.2;
  SlackRetry policy(settings, 42);
  auto lowest = std::chrono::milliseconds::max();
  auto highest = std::chrono::milliseconds::min();
  for (int i = 0; i < 10'000; ++i) {
    const auto delay = policy.decide(after_attempts(1), slack_error("ratelimited")).delay;
    ASSERT_GE(delay, 8s);
    ASSERT_LE(delay, 12s);
    lowest = std::min(lowest, delay);
    highest = std::max(highest, delay);
  }
  // Over 10,000 uniform samples both ends of the range are approached.
  EXPECT_LT(lowest, 8100ms);
  EXPECT_GT(highest, 11900ms);
}

TEST(SlackRetry, SameSeedGivesTheSameDelays) {
  Settings settings;
  SlackRetry a(settings, 99), b(settings, 99);
  for (int i = 0; i < 100; ++i) {
    EXPECT_EQ(a.decide(after_attempts(2), slack_error("timeout", 0)).delay,
              b.decide(after_attempts(2), slack_error("timeout", 0)).delay);
  }
}

}  // namespace
}  // namespace slack_proxy::plugins::slack_retry

#include <algorithm>
#include <chrono>
#include <limits>
#include <stdexcept>
#include <string>

#include <gtest/gtest.h>
#include <slack_proxy/sdk/outcome.h>
#include <slack_proxy/sdk/testing/fakes.h>
#include <slack_proxy/sdk/testing/plugin_under_test.h>

#include "slack_retry.h"

namespace slack_proxy::plugins::slack_retry {
namespace {

using namespace std::chrono_literals;
using Action = sdk::RetryDecision::Action;
using sdk::testing::FakeClock;
using sdk::testing::MapConfig;
using sdk::testing::PluginRefused;
using sdk::testing::PluginUnderTest;
// Wrapped explicitly: MapConfig::set's int overload would otherwise capture
// doubles, bools and 64-bit integers by narrowing conversion.
using Value = MapConfig::Value;

Settings exact(std::int64_t max_retries = 3) {
  Settings s;
  s.max_retries = max_retries;
  s.jitter = 0;
  return s;
}

// The clock every policy below reads; it never moves unless a test moves it.
const FakeClock& idle_clock() {
  static const FakeClock clock;
  return clock;
}

// A message that arrived just now, by `idle_clock()`.
sdk::Message after_attempts(std::uint32_t attempts) {
  sdk::Message m;
  m.channel = "#a";
  m.attempts = attempts;
  m.received_at = idle_clock().wall_now();
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
      .set("retry_internal_error", Value{true})
      .set("max_age", Value{std::chrono::milliseconds(24h)});
}

TEST(SlackRetrySettings, TheSchemaGivesTheDocumentedDefaults) {
  const Settings s = kSchema.read(defaults());
  EXPECT_EQ(s.max_retries, 3);
  EXPECT_EQ(s.initial_backoff, 1s);
  EXPECT_EQ(s.max_backoff, 60s);
  EXPECT_DOUBLE_EQ(s.multiplier, 2.0);
  EXPECT_DOUBLE_EQ(s.jitter, 0.2);
  EXPECT_TRUE(s.retry_internal_error);
  EXPECT_EQ(s.max_age, 24h);
  EXPECT_NO_THROW(check_settings(s));
}

// Through the ABI, as `slack-proxy validate` does: the host checks the
// schema's bounds, then the check-only factory (which builds nothing).
TEST(SlackRetrySettings, ValidatesTheDefaultsAndZeroRetriesWithoutBuildingAPolicy) {
  PluginUnderTest plugin(SLACK_PROXY_PLUGIN_FILE);
  EXPECT_NO_THROW(plugin.validate());
  EXPECT_NO_THROW(plugin.validate("max_retries = 0\njitter = 0.0"));
}

TEST(SlackRetrySettings, TheHostRefusesValuesOutsideTheSchemasBounds) {
  PluginUnderTest plugin(SLACK_PROXY_PLUGIN_FILE);
  for (const char* bad : {"max_retries = -1", "initial_backoff = \"0ms\"", "multiplier = 0.5",
                          "jitter = -0.1", "jitter = 1.5", "max_age = \"0ms\""}) {
    try {
      plugin.validate(bad);
      ADD_FAILURE() << bad << " accepted";
    } catch (const PluginRefused& e) {
      const std::string key(bad, std::string_view(bad).find(' '));
      EXPECT_NE(std::string(e.what()).find(key), std::string::npos) << e.what();
    }
  }
}

TEST(SlackRetrySettings, RefusesAMaxBackoffBelowInitialBackoffNamingBoth) {
  Settings s = kSchema.read(defaults());
  s.max_backoff = 500ms;
  try {
    check_settings(s);
    FAIL() << "max_backoff below initial_backoff accepted";
  } catch (const std::invalid_argument& e) {
    EXPECT_STREQ(e.what(), "max_backoff (500ms) must be >= initial_backoff (1s)");
  }
  PluginUnderTest plugin(SLACK_PROXY_PLUGIN_FILE);
  EXPECT_THROW(plugin.validate("max_backoff = \"500ms\""), PluginRefused);
}

TEST(SlackRetry, RetriesEverySlackTransientCode) {
  SlackRetry policy(exact(), idle_clock(), 1);
  for (const char* code : {"ratelimited", "rate_limited", "message_limit_exceeded",
                           "service_unavailable", "request_timeout", "team_added_to_org"}) {
    const auto d = policy.decide(after_attempts(1), slack_error(code));
    EXPECT_EQ(d.action, Action::Retry) << code;
    EXPECT_EQ(d.delay, 1s) << code;
  }
}

TEST(SlackRetry, RetriesHttp429AndEvery5xx) {
  SlackRetry policy(exact(), idle_clock(), 1);
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
  SlackRetry policy(exact(), idle_clock(), 1);
  for (const char* code : {"connection_failed", "timeout", "tls_error", "bad_response"}) {
    EXPECT_EQ(policy.decide(after_attempts(1), slack_error(code, 0)).action, Action::Retry) << code;
  }
}

TEST(SlackRetry, UsesTheSdkOutcomeCodes) {
  SlackRetry policy(exact(), idle_clock(), 1);
  namespace outcome = sdk::outcome;
  // Outages, retried until max_age: no reply, or the sink's own I/O failed.
  for (std::string_view code : {outcome::kConnectionFailed, outcome::kTimeout,
                                outcome::kTlsError, outcome::kBadResponse, outcome::kLocalIo}) {
    EXPECT_EQ(classify(sdk::SendResult::failure(code), true), ErrorClass::Outage) << code;
  }
  // A stage threw: transient, bounded by the budget.
  for (std::string_view code : {outcome::kInternalErrorInSink, outcome::kInternalErrorInGuard,
                                outcome::kInternalErrorInRateLimiter}) {
    EXPECT_EQ(classify(sdk::SendResult::failure(code), true), ErrorClass::Transient) << code;
    EXPECT_EQ(policy.decide(after_attempts(3), sdk::SendResult::failure(code)).action,
              Action::Retry)
        << code;
    EXPECT_EQ(policy.decide(after_attempts(4), sdk::SendResult::failure(code)).action,
              Action::GiveUp)
        << code;
  }
  EXPECT_EQ(classify(sdk::SendResult::failure(outcome::kInvalidMessage), true),
            ErrorClass::Permanent);
  // Every code the SDK calls transient is retried.
  for (std::string_view code :
       {outcome::kConnectionFailed, outcome::kTimeout, outcome::kTlsError, outcome::kBadResponse,
        outcome::kLocalIo, outcome::kInternalErrorInSink, outcome::kInternalErrorInGuard,
        outcome::kInternalErrorInRateLimiter}) {
    ASSERT_TRUE(outcome::is_transient(code));
    EXPECT_NE(classify(sdk::SendResult::failure(code), true), ErrorClass::Permanent) << code;
  }
}

TEST(SlackRetry, RetriesBackPressureAfterExactlyRetryAfterWhateverTheBudget) {
  SlackRetry policy(exact(/*max_retries=*/0), idle_clock(), 1);
  sdk::SendResult r = sdk::SendResult::failure("ratelimited");
  r.retry_after = 7s;
  r.back_pressure = sdk::BackPressure{sdk::BackPressure::Scope::Channel, {}};
  const auto d = policy.decide(after_attempts(5), r);
  EXPECT_EQ(d.action, Action::Retry);
  EXPECT_EQ(d.delay, 7s) << "no backoff on top of the receiver's own wait";
}

TEST(SlackRetry, GivesUpOnPermanentCodes) {
  SlackRetry policy(exact(), idle_clock(), 1);
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
  SlackRetry policy(exact(), idle_clock(), 1);
  EXPECT_EQ(policy.decide(after_attempts(1), slack_error("http_404", 404)).action, Action::GiveUp);
  EXPECT_EQ(policy.decide(after_attempts(1), slack_error("", 400)).reason,
            "permanent error http_400");
}

TEST(SlackRetry, RetriesInternalErrorsByDefault) {
  SlackRetry policy(exact(), idle_clock(), 1);
  EXPECT_EQ(policy.decide(after_attempts(1), slack_error("internal_error")).action, Action::Retry);
  EXPECT_EQ(policy.decide(after_attempts(1), slack_error("fatal_error")).action, Action::Retry);
}

TEST(SlackRetry, GivesUpOnInternalErrorsWhenTheyMayHaveBeenPosted) {
  auto settings = exact();
  settings.retry_internal_error = false;
  SlackRetry policy(settings, idle_clock(), 1);
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
  SlackRetry policy(settings, idle_clock(), 1);
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
  SlackRetry policy(settings, idle_clock(), 1);
  EXPECT_EQ(policy.decide(after_attempts(5000), slack_error("ratelimited")).delay, 60s);
}

TEST(SlackRetry, NeverRetriesSoonerThanRetryAfter) {
  SlackRetry policy(exact(), idle_clock(), 1);
  auto limited = slack_error("rate_limited", 429);
  limited.retry_after = 30s;
  EXPECT_EQ(policy.decide(after_attempts(1), limited).delay, 30s);
}

TEST(SlackRetry, KeepsTheLongerBackoffWhenRetryAfterIsShorter) {
  SlackRetry policy(exact(), idle_clock(), 1);
  auto limited = slack_error("rate_limited", 429);
  limited.retry_after = 1s;
  EXPECT_EQ(policy.decide(after_attempts(3), limited).delay, 4s);
}

TEST(SlackRetry, RetryAfterIsAFloorEvenWithJitter) {
  Settings settings;  // jitter 0.2
  SlackRetry policy(settings, idle_clock(), 7);
  auto limited = slack_error("rate_limited", 429);
  limited.retry_after = 1s;
  for (int i = 0; i < 1000; ++i) {
    EXPECT_GE(policy.decide(after_attempts(1), limited).delay, 1s);
  }
}

TEST(SlackRetry, RetriesUpToMaxRetriesThenGivesUp) {
  SlackRetry policy(exact(3), idle_clock(), 1);
  EXPECT_EQ(policy.decide(after_attempts(3), slack_error("ratelimited")).action, Action::Retry);
  const auto d = policy.decide(after_attempts(4), slack_error("ratelimited"));
  EXPECT_EQ(d.action, Action::GiveUp);
  EXPECT_EQ(d.reason, "retries exhausted after 4 attempts: ratelimited");
}

TEST(SlackRetry, ZeroRetriesGivesUpOnATransientErrorAfterTheFirstAttempt) {
  SlackRetry policy(exact(0), idle_clock(), 1);
  EXPECT_EQ(policy.decide(after_attempts(1), slack_error("ratelimited")).action, Action::GiveUp);
}

TEST(SlackRetry, JitterStaysWithinItsBoundsAndActuallyVaries) {
  Settings settings;
  settings.initial_backoff = 10s;
  settings.jitter = 0.2;
  SlackRetry policy(settings, idle_clock(), 42);
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
  SlackRetry a(settings, idle_clock(), 99), b(settings, idle_clock(), 99);
  for (int i = 0; i < 100; ++i) {
    EXPECT_EQ(a.decide(after_attempts(2), slack_error("timeout", 0)).delay,
              b.decide(after_attempts(2), slack_error("timeout", 0)).delay);
  }
}

// ------------------------------------------------ outages and max_age --

sdk::SendResult http_status(int status) { return sdk::SendResult::failed(status, ""); }

TEST(SlackRetryClassify, ServerErrorsAndMissingRepliesAreOutages) {
  for (int status : {500, 502, 503, 504, 599}) {
    EXPECT_EQ(classify(http_status(status), true), ErrorClass::Outage) << status;
    EXPECT_EQ(classify(slack_error("ratelimited", status), true), ErrorClass::Outage) << status;
  }
  for (const char* code : {"connection_failed", "timeout", "tls_error", "bad_response"}) {
    EXPECT_EQ(classify(slack_error(code, 0), true), ErrorClass::Outage) << code;
  }
  EXPECT_EQ(classify(slack_error("service_unavailable"), true), ErrorClass::Outage);
  EXPECT_EQ(classify(slack_error("request_timeout"), true), ErrorClass::Outage);
}

TEST(SlackRetryClassify, InternalErrorsAreOutagesOnlyWhenRetried) {
  for (const char* code : {"internal_error", "fatal_error"}) {
    EXPECT_EQ(classify(slack_error(code), true), ErrorClass::Outage) << code;
    EXPECT_EQ(classify(slack_error(code), false), ErrorClass::Permanent) << code;
    EXPECT_EQ(classify(slack_error(code, 500), false), ErrorClass::Permanent) << code;
  }
}

TEST(SlackRetryClassify, MessageLevelTroubleIsTransientNotAnOutage) {
  for (const char* code :
       {"ratelimited", "rate_limited", "message_limit_exceeded", "team_added_to_org"}) {
    EXPECT_EQ(classify(slack_error(code), true), ErrorClass::Transient) << code;
  }
  EXPECT_EQ(classify(http_status(429), true), ErrorClass::Transient);
}

TEST(SlackRetryClassify, TransportCodesInsideAReplyArePermanent) {
  // A reply did arrive, so "timeout" here is an unknown Slack code, not ours.
  EXPECT_EQ(classify(slack_error("timeout", 200), true), ErrorClass::Permanent);
  EXPECT_EQ(classify(slack_error("channel_not_found"), true), ErrorClass::Permanent);
}

TEST(SlackRetryDurations, UseTheLargestExactUnit) {
  EXPECT_EQ(describe_duration(24h), "24h");
  EXPECT_EQ(describe_duration(90min), "90m");
  EXPECT_EQ(describe_duration(30s), "30s");
  EXPECT_EQ(describe_duration(1500ms), "1500ms");
  EXPECT_EQ(describe_duration(0ms), "0ms");
}

// Policies here read the FakeHost's clock, which each test moves by hand.
class SlackRetryOutage : public ::testing::Test {
 protected:
  SlackRetry make(Settings settings, std::uint64_t seed = 1) {
    return SlackRetry(settings, host.clock(), seed);
  }
  // Arrived now; `attempts` already failed.
  sdk::Message arrived_now(std::uint32_t attempts) {
    sdk::Message m;
    m.channel = "#a";
    m.attempts = attempts;
    m.received_at = host.clock().wall_now();
    return m;
  }
  sdk::testing::FakeHost host;
};

TEST_F(SlackRetryOutage, AtAttempt50StillRetriesWithTheDelayCappedAtMaxBackoff) {
  auto settings = exact(3);
  settings.max_backoff = 45s;
  auto policy = make(settings);
  const sdk::SendResult outages[] = {slack_error("service_unavailable"),
                                     slack_error("connection_failed", 0), http_status(503)};
  for (const auto& result : outages) {
    const auto d = policy.decide(arrived_now(50), result);
    EXPECT_EQ(d.action, Action::Retry) << result.error << result.http_status;
    EXPECT_EQ(d.delay, 45s) << result.error << result.http_status;
  }
}

TEST_F(SlackRetryOutage, JitteredDelaysStayWithinJitterOfMaxBackoff) {
  Settings settings;  // jitter 0.2, max_backoff 60s, max_retries 3
  auto policy = make(settings, 5);
  for (int i = 0; i < 1000; ++i) {
    const auto d = policy.decide(arrived_now(50), slack_error("timeout", 0));
    ASSERT_EQ(d.action, Action::Retry);
    ASSERT_GE(d.delay, 48s);
    ASSERT_LE(d.delay, 72s);
  }
}

TEST_F(SlackRetryOutage, IgnoresAZeroRetryBudget) {
  auto policy = make(exact(0));
  EXPECT_EQ(policy.decide(arrived_now(1), slack_error("timeout", 0)).action, Action::Retry);
  EXPECT_EQ(policy.decide(arrived_now(1000), http_status(502)).action, Action::Retry);
}

TEST_F(SlackRetryOutage, GivesUpOnceOlderThanMaxAgeAndNotBefore) {
  auto policy = make(exact(3));  // max_age 24h
  const auto message = arrived_now(7);
  const auto outage = slack_error("service_unavailable");
  host.time.advance(24h - 1ms);
  EXPECT_EQ(policy.decide(message, outage).action, Action::Retry);
  host.time.advance(1ms);  // exactly max_age: not older yet
  EXPECT_EQ(policy.decide(message, outage).action, Action::Retry);
  host.time.advance(1ms);
  const auto d = policy.decide(message, outage);
  EXPECT_EQ(d.action, Action::GiveUp);
  EXPECT_EQ(d.reason, "outage outlasted max_age (24h); last error: service_unavailable");
}

TEST_F(SlackRetryOutage, HonoursAConfiguredMaxAge) {
  auto settings = exact(3);
  settings.max_age = 90min;
  auto policy = make(settings);
  const auto message = arrived_now(2);
  host.time.advance(90min);
  EXPECT_EQ(policy.decide(message, http_status(500)).action, Action::Retry);
  host.time.advance(1s);
  EXPECT_EQ(policy.decide(message, http_status(500)).reason,
            "outage outlasted max_age (90m); last error: http_500");
}

TEST_F(SlackRetryOutage, GiveUpReasonNamesTheLastError) {
  auto policy = make(exact(3));
  const auto message = arrived_now(400);
  host.time.advance(25h);
  EXPECT_EQ(policy.decide(message, slack_error("connection_failed", 0)).reason,
            "outage outlasted max_age (24h); last error: connection_failed");
  EXPECT_EQ(policy.decide(message, http_status(504)).reason,
            "outage outlasted max_age (24h); last error: http_504");
  EXPECT_EQ(policy.decide(message, slack_error("internal_error")).reason,
            "outage outlasted max_age (24h); last error: internal_error");
}

TEST_F(SlackRetryOutage, RetryReasonSaysTheAgeIsTheLimit) {
  auto policy = make(exact(3));
  EXPECT_EQ(policy.decide(arrived_now(50), slack_error("request_timeout")).reason,
            "outage error request_timeout, retry 50, retried until the message is 24h old");
}

TEST_F(SlackRetryOutage, NonOutageTransientErrorsStillStopAtMaxRetries) {
  auto policy = make(exact(3));
  for (const char* code : {"team_added_to_org", "message_limit_exceeded", "ratelimited"}) {
    EXPECT_EQ(policy.decide(arrived_now(3), slack_error(code)).action, Action::Retry) << code;
    const auto d = policy.decide(arrived_now(4), slack_error(code));
    EXPECT_EQ(d.action, Action::GiveUp) << code;
    EXPECT_EQ(d.reason, std::string("retries exhausted after 4 attempts: ") + code);
  }
}

TEST_F(SlackRetryOutage, PermanentErrorsAreUnchanged) {
  auto policy = make(exact(3));
  const auto d = policy.decide(arrived_now(1), slack_error("channel_not_found"));
  EXPECT_EQ(d.action, Action::GiveUp);
  EXPECT_EQ(d.reason, "permanent error channel_not_found");
}

TEST_F(SlackRetryOutage, RetryAfterIsStillAFloor) {
  auto policy = make(exact(3));  // max_backoff 60s
  auto unavailable = http_status(503);
  unavailable.retry_after = 120s;
  EXPECT_EQ(policy.decide(arrived_now(50), unavailable).delay, 120s);
}

TEST_F(SlackRetryOutage, WithoutAnArrivalTimeTheRetryBudgetApplies) {
  auto policy = make(exact(3));
  auto unknown_age = arrived_now(4);
  unknown_age.received_at = {};
  const auto d = policy.decide(unknown_age, slack_error("service_unavailable"));
  EXPECT_EQ(d.action, Action::GiveUp);
  EXPECT_EQ(d.reason, "retries exhausted after 4 attempts: service_unavailable");
  unknown_age.attempts = 3;
  EXPECT_EQ(policy.decide(unknown_age, slack_error("service_unavailable")).action, Action::Retry);
}

}  // namespace
}  // namespace slack_proxy::plugins::slack_retry

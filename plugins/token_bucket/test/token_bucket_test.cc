#include <chrono>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include <gtest/gtest.h>
#include <slack_proxy/sdk/testing/fakes.h>
#include <slack_proxy/sdk/testing/plugin_under_test.h>

#include "token_bucket.h"

namespace slack_proxy::plugins::token_bucket {
namespace {

using namespace std::chrono_literals;
using sdk::testing::FakeClock;
using sdk::testing::MapConfig;
// Wrapped explicitly: MapConfig::set's int overload would otherwise capture
// doubles and 64-bit integers by narrowing conversion.
using Value = MapConfig::Value;

sdk::Message to(const std::string& channel, const std::string& workspace = "") {
  sdk::Message m;
  m.channel = channel;
  m.workspace = workspace;
  return m;
}

// Sends as soon as the limiter allows and returns when that was.
sdk::SteadyTime send_when_allowed(TokenBucket& bucket, FakeClock& clock, const sdk::Message& m) {
  const auto at = bucket.next_send_time(m, clock.now());
  if (at > clock.now()) clock.advance(at - clock.now());
  bucket.on_send(m, clock.now());
  return at;
}

sdk::Message from(const std::string& caller, const std::string& channel = "#a",
                  const std::string& workspace = "") {
  sdk::Message m = to(channel, workspace);
  m.caller = caller;
  return m;
}

TEST(TokenBucketSettings, SchemaBoundsRateAndBurstAndListsTheKeys) {
  const auto rate = kSchema.row("rate");
  EXPECT_EQ(rate.type, SP_VALUE_NUMBER);
  EXPECT_EQ(rate.flags, SP_KEY_HAS_MIN | SP_KEY_MIN_EXCLUSIVE | SP_KEY_HAS_MAX);
  EXPECT_EQ(rate.min, 0);
  EXPECT_EQ(rate.max, 1e9);
  EXPECT_STREQ(rate.default_value, "1");

  const auto burst = kSchema.row("burst");
  EXPECT_EQ(burst.type, SP_VALUE_INTEGER);
  EXPECT_EQ(burst.flags, SP_KEY_HAS_MIN);
  EXPECT_EQ(burst.min, 1);
  EXPECT_STREQ(burst.default_value, "3");

  const auto key = kSchema.row("key");
  ASSERT_EQ(key.type, SP_VALUE_ENUM);
  std::vector<std::string> allowed(key.allowed, key.allowed + key.allowed_size);
  EXPECT_EQ(allowed, (std::vector<std::string>{"global", "channel", "workspace", "client"}));
  EXPECT_STREQ(key.default_value, "global");
}

TEST(TokenBucketSettings, EveryAllowedKeyBuildsABucket) {
  for (const char* key : {"global", "channel", "workspace", "client"}) {
    const Settings s = kSchema.read(MapConfig()
                                        .set("rate", Value{0.5})
                                        .set("burst", Value{std::int64_t{10}})
                                        .set("key", key));
    EXPECT_DOUBLE_EQ(s.rate, 0.5);
    EXPECT_EQ(s.burst, 10);
    EXPECT_EQ(s.key, key);
    EXPECT_NO_THROW(TokenBucket{s}) << key;
  }
}

TEST(TokenBucketSettings, AcceptsAnIntegerRate) {
  const auto config = MapConfig()
                          .set("rate", Value{std::int64_t{2}})
                          .set("burst", Value{std::int64_t{3}})
                          .set("key", "global");
  EXPECT_DOUBLE_EQ(kSchema.read(config).rate, 2.0);
}

TEST(TokenBucketSettings, RejectsARefillWindowThatWouldOverflow) {
  try {
    TokenBucket bucket({1e-12, 3, "global"});
    FAIL() << "a refill window of 3e12 s accepted";
  } catch (const std::invalid_argument& e) {
    EXPECT_STREQ(e.what(), "burst / rate must be at most one year, got burst 3 at rate 1e-12");
  }
}

TEST(TokenBucket, AllowsABurstImmediatelyThenOnePerInterval) {
  FakeClock clock;
  TokenBucket bucket({1.0, 3, "global"});
  const auto start = clock.now();
  for (int i = 0; i < 3; ++i) EXPECT_EQ(send_when_allowed(bucket, clock, to("#a")), start);
  EXPECT_EQ(bucket.next_send_time(to("#a"), clock.now()), start + 1s);
  EXPECT_EQ(send_when_allowed(bucket, clock, to("#a")), start + 1s);
  EXPECT_EQ(send_when_allowed(bucket, clock, to("#a")), start + 2s);
}

TEST(TokenBucket, AskingDoesNotConsume) {
  FakeClock clock;
  TokenBucket bucket({1.0, 1, "global"});
  for (int i = 0; i < 5; ++i) EXPECT_EQ(bucket.next_send_time(to("#a"), clock.now()), clock.now());
  bucket.on_send(to("#a"), clock.now());
  EXPECT_EQ(bucket.next_send_time(to("#a"), clock.now()), clock.now() + 1s);
}

TEST(TokenBucket, RefillIsCappedAtBurst) {
  FakeClock clock;
  TokenBucket bucket({1.0, 3, "global"});
  for (int i = 0; i < 3; ++i) send_when_allowed(bucket, clock, to("#a"));
  clock.advance(100s);
  const auto rested = clock.now();
  for (int i = 0; i < 3; ++i) EXPECT_EQ(send_when_allowed(bucket, clock, to("#a")), rested);
  EXPECT_EQ(bucket.next_send_time(to("#a"), clock.now()), rested + 1s);
}

TEST(TokenBucket, PartialRefillWaitsOnlyForTheRest) {
  FakeClock clock;
  TokenBucket bucket({1.0, 1, "global"});
  bucket.on_send(to("#a"), clock.now());
  clock.advance(400ms);
  EXPECT_EQ(bucket.next_send_time(to("#a"), clock.now()), clock.now() + 600ms);
}

TEST(TokenBucket, HalfATokenPerSecondSpacesSendsTwoSecondsApart) {
  FakeClock clock;
  TokenBucket bucket({0.5, 1, "global"});
  const auto start = clock.now();
  EXPECT_EQ(send_when_allowed(bucket, clock, to("#a")), start);
  EXPECT_EQ(send_when_allowed(bucket, clock, to("#a")), start + 2s);
  EXPECT_EQ(send_when_allowed(bucket, clock, to("#a")), start + 4s);
}

TEST(TokenBucket, SendingAtTheAnnouncedTimeNeverRunsIntoDebt) {
  // 1/3 s is not a whole number of nanoseconds: a fractional token count
  // would drift below zero here.
  FakeClock clock;
  TokenBucket bucket({3.0, 2, "global"});
  for (int i = 0; i < 2; ++i) send_when_allowed(bucket, clock, to("#a"));
  auto previous = clock.now();
  for (int i = 0; i < 1000; ++i) {
    const auto at = send_when_allowed(bucket, clock, to("#a"));
    EXPECT_EQ(at - previous, std::chrono::nanoseconds(333'333'333)) << "send " << i;
    previous = at;
  }
}

TEST(TokenBucket, GlobalKeySharesOneBucketAcrossChannels) {
  FakeClock clock;
  TokenBucket bucket({1.0, 1, "global"});
  bucket.on_send(to("#a"), clock.now());
  EXPECT_EQ(bucket.next_send_time(to("#b"), clock.now()), clock.now() + 1s);
}

TEST(TokenBucket, ChannelKeysAreIndependent) {
  FakeClock clock;
  TokenBucket bucket({1.0, 1, "channel"});
  bucket.on_send(to("#a"), clock.now());
  EXPECT_EQ(bucket.next_send_time(to("#a"), clock.now()), clock.now() + 1s);
  EXPECT_EQ(bucket.next_send_time(to("#b"), clock.now()), clock.now());
  EXPECT_EQ(bucket.next_send_time(to("#a", "other-team"), clock.now()), clock.now());
}

TEST(TokenBucket, WorkspaceKeySharesABucketAcrossChannelsOfOneWorkspace) {
  FakeClock clock;
  TokenBucket bucket({1.0, 1, "workspace"});
  bucket.on_send(to("#a", "team-1"), clock.now());
  EXPECT_EQ(bucket.next_send_time(to("#b", "team-1"), clock.now()), clock.now() + 1s);
  EXPECT_EQ(bucket.next_send_time(to("#a", "team-2"), clock.now()), clock.now());
}

TEST(TokenBucket, ClientKeyGivesEachCallerItsOwnBucket) {
  FakeClock clock;
  TokenBucket bucket({1.0, 2, "client"});
  const auto start = clock.now();
  // A noisy caller drains its own bucket...
  for (int i = 0; i < 2; ++i) EXPECT_EQ(send_when_allowed(bucket, clock, from("noisy")), start);
  EXPECT_EQ(bucket.next_send_time(from("noisy"), clock.now()), start + 1s);
  // ...and the quiet one still has its whole burst.
  for (int i = 0; i < 2; ++i) EXPECT_EQ(send_when_allowed(bucket, clock, from("quiet")), start);
  EXPECT_EQ(bucket.next_send_time(from("quiet"), clock.now()), start + 1s);
}

TEST(TokenBucket, ClientKeySharesOneBucketAcrossChannelsAndWorkspacesOfACaller) {
  FakeClock clock;
  TokenBucket bucket({1.0, 1, "client"});
  bucket.on_send(from("team-a", "#a", "acme"), clock.now());
  EXPECT_EQ(bucket.next_send_time(from("team-a", "#b", "acme"), clock.now()), clock.now() + 1s);
  EXPECT_EQ(bucket.next_send_time(from("team-a", "#a", "beta"), clock.now()), clock.now() + 1s);
  EXPECT_EQ(bucket.next_send_time(from("team-b", "#a", "acme"), clock.now()), clock.now());
}

TEST(TokenBucket, ClientKeyPutsCallersWithoutAnIdentityInOneSharedBucket) {
  FakeClock clock;
  TokenBucket bucket({1.0, 1, "client"});
  bucket.on_send(from("", "#a"), clock.now());
  EXPECT_EQ(bucket.next_send_time(from("", "#b"), clock.now()), clock.now() + 1s);
  EXPECT_EQ(bucket.next_send_time(from("team-a", "#a"), clock.now()), clock.now());
}

TEST(TokenBucket, ForgetsFullBucketsSoManyChannelsDoNotGrowMemory) {
  FakeClock clock;
  TokenBucket bucket({1.0, 1, "channel"});
  for (int i = 0; i < 50'000; ++i) {
    bucket.on_send(to("#c" + std::to_string(i)), clock.now());
    clock.advance(10ms);  // each bucket is full again 1 s after its send
  }
  EXPECT_LE(bucket.bucket_count(), 2 * TokenBucket::kPruneThreshold);
}

TEST(TokenBucket, KeepsBucketsThatAreNotFull) {
  FakeClock clock;
  TokenBucket bucket({1.0, 1, "channel"});
  const auto busy = static_cast<int>(TokenBucket::kPruneThreshold) + 10;
  for (int i = 0; i < busy; ++i) bucket.on_send(to("#c" + std::to_string(i)), clock.now());
  EXPECT_EQ(bucket.bucket_count(), static_cast<std::size_t>(busy));
  EXPECT_EQ(bucket.next_send_time(to("#c0"), clock.now()), clock.now() + 1s);
}

// The registration, through the C ABI as the proxy loads token_bucket.so: the
// schema's bounds are the host's to enforce, and the factory builds a
// limiter from what the host checked.
TEST(TokenBucketPlugin, TheProxyRefusesWhatTheSchemaForbidsAndBuildsFromTheRest) {
  sdk::testing::PluginUnderTest plugin(SLACK_PROXY_PLUGIN_FILE);
  EXPECT_STREQ(plugin.descriptor().name, "token_bucket");
  auto refusal = [&](std::string_view settings) { return plugin.validation_error(settings); };
  EXPECT_NE(refusal("rate = 0").find("'rate' must be > 0, got 0"), std::string::npos);
  EXPECT_NE(refusal("key = \"user\"").find("'key' must be one of"), std::string::npos);
  EXPECT_NE(refusal("burst = 0").find("'burst' must be >= 1, got 0"), std::string::npos);
  EXPECT_EQ(refusal("rate = 2.0\nburst = 1\nkey = \"channel\""), "");

  sdk::testing::FakeHost host;
  auto limiter = plugin.create<sdk::RateLimiter>(host, "rate = 2.0\nburst = 1\nkey = \"channel\"");
  const sdk::SteadyTime now = host.time.now();
  limiter->on_send(to("#a"), now);
  EXPECT_EQ(limiter->next_send_time(to("#a"), now), now + 500ms);  // 2 per second
  EXPECT_EQ(limiter->next_send_time(to("#b"), now), now);          // its own bucket
}

}  // namespace
}  // namespace slack_proxy::plugins::token_bucket

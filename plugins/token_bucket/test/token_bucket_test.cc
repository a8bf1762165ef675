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

// Times in whole intervals: no arrival jitter is kept free (the jitter tests
// set the default, 20 ms).
Settings exact(Settings s) {
  s.jitter = 0ms;
  return s;
}
// For the tests whose messages name no budget: nothing lands in it.
sdk::LocalSharedBuckets no_sharing;

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

// As the dispatcher hands a message to the limiters once the sink named the
// rate budget its token draws from.
sdk::Message budgeted(const std::string& budget, const std::string& channel = "#a",
                      const std::string& workspace = "") {
  sdk::Message m = to(channel, workspace);
  m.attributes[sdk::kBudgetAttribute] = budget;
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

TEST(TokenBucketSettings, SchemaSharesByDefaultAndBoundsTheJitterToAMinute) {
  const auto shared = kSchema.row("shared");
  EXPECT_EQ(shared.type, SP_VALUE_BOOLEAN);
  EXPECT_EQ(shared.flags, 0u);
  EXPECT_STREQ(shared.default_value, "true");

  const auto jitter = kSchema.row("jitter");
  EXPECT_EQ(jitter.type, SP_VALUE_DURATION);
  EXPECT_EQ(jitter.flags, SP_KEY_HAS_MAX);
  EXPECT_EQ(jitter.max, 60000);  // milliseconds
  EXPECT_STREQ(jitter.default_value, "20ms");
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
    EXPECT_NO_THROW(TokenBucket(s, no_sharing)) << key;
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
    TokenBucket bucket(exact({1e-12, 3, "global"}), no_sharing);
    FAIL() << "a refill window of 3e12 s accepted";
  } catch (const std::invalid_argument& e) {
    EXPECT_STREQ(e.what(), "burst / rate must be at most one year, got burst 3 at rate 1e-12");
  }
}

TEST(TokenBucket, AllowsABurstImmediatelyThenOnePerInterval) {
  FakeClock clock;
  TokenBucket bucket(exact({1.0, 3, "global"}), no_sharing);
  const auto start = clock.now();
  for (int i = 0; i < 3; ++i) EXPECT_EQ(send_when_allowed(bucket, clock, to("#a")), start);
  EXPECT_EQ(bucket.next_send_time(to("#a"), clock.now()), start + 1s);
  EXPECT_EQ(send_when_allowed(bucket, clock, to("#a")), start + 1s);
  EXPECT_EQ(send_when_allowed(bucket, clock, to("#a")), start + 2s);
}

TEST(TokenBucket, AskingDoesNotConsume) {
  FakeClock clock;
  TokenBucket bucket(exact({1.0, 1, "global"}), no_sharing);
  for (int i = 0; i < 5; ++i) EXPECT_EQ(bucket.next_send_time(to("#a"), clock.now()), clock.now());
  bucket.on_send(to("#a"), clock.now());
  EXPECT_EQ(bucket.next_send_time(to("#a"), clock.now()), clock.now() + 1s);
}

TEST(TokenBucket, RefillIsCappedAtBurst) {
  FakeClock clock;
  TokenBucket bucket(exact({1.0, 3, "global"}), no_sharing);
  for (int i = 0; i < 3; ++i) send_when_allowed(bucket, clock, to("#a"));
  clock.advance(100s);
  const auto rested = clock.now();
  for (int i = 0; i < 3; ++i) EXPECT_EQ(send_when_allowed(bucket, clock, to("#a")), rested);
  EXPECT_EQ(bucket.next_send_time(to("#a"), clock.now()), rested + 1s);
}

TEST(TokenBucket, PartialRefillWaitsOnlyForTheRest) {
  FakeClock clock;
  TokenBucket bucket(exact({1.0, 1, "global"}), no_sharing);
  bucket.on_send(to("#a"), clock.now());
  clock.advance(400ms);
  EXPECT_EQ(bucket.next_send_time(to("#a"), clock.now()), clock.now() + 600ms);
}

TEST(TokenBucket, HalfATokenPerSecondSpacesSendsTwoSecondsApart) {
  FakeClock clock;
  TokenBucket bucket(exact({0.5, 1, "global"}), no_sharing);
  const auto start = clock.now();
  EXPECT_EQ(send_when_allowed(bucket, clock, to("#a")), start);
  EXPECT_EQ(send_when_allowed(bucket, clock, to("#a")), start + 2s);
  EXPECT_EQ(send_when_allowed(bucket, clock, to("#a")), start + 4s);
}

TEST(TokenBucket, SendingAtTheAnnouncedTimeNeverRunsIntoDebt) {
  // 1/3 s is not a whole number of nanoseconds: a fractional token count
  // would drift below zero here.
  FakeClock clock;
  TokenBucket bucket(exact({3.0, 2, "global"}), no_sharing);
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
  TokenBucket bucket(exact({1.0, 1, "global"}), no_sharing);
  bucket.on_send(to("#a"), clock.now());
  EXPECT_EQ(bucket.next_send_time(to("#b"), clock.now()), clock.now() + 1s);
}

TEST(TokenBucket, ChannelKeysAreIndependent) {
  FakeClock clock;
  TokenBucket bucket(exact({1.0, 1, "channel"}), no_sharing);
  bucket.on_send(to("#a"), clock.now());
  EXPECT_EQ(bucket.next_send_time(to("#a"), clock.now()), clock.now() + 1s);
  EXPECT_EQ(bucket.next_send_time(to("#b"), clock.now()), clock.now());
  EXPECT_EQ(bucket.next_send_time(to("#a", "other-team"), clock.now()), clock.now());
}

TEST(TokenBucket, WorkspaceKeySharesABucketAcrossChannelsOfOneWorkspace) {
  FakeClock clock;
  TokenBucket bucket(exact({1.0, 1, "workspace"}), no_sharing);
  bucket.on_send(to("#a", "team-1"), clock.now());
  EXPECT_EQ(bucket.next_send_time(to("#b", "team-1"), clock.now()), clock.now() + 1s);
  EXPECT_EQ(bucket.next_send_time(to("#a", "team-2"), clock.now()), clock.now());
}

TEST(TokenBucket, ClientKeyGivesEachCallerItsOwnBucket) {
  FakeClock clock;
  TokenBucket bucket(exact({1.0, 2, "client"}), no_sharing);
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
  TokenBucket bucket(exact({1.0, 1, "client"}), no_sharing);
  bucket.on_send(from("team-a", "#a", "acme"), clock.now());
  EXPECT_EQ(bucket.next_send_time(from("team-a", "#b", "acme"), clock.now()), clock.now() + 1s);
  EXPECT_EQ(bucket.next_send_time(from("team-a", "#a", "beta"), clock.now()), clock.now() + 1s);
  EXPECT_EQ(bucket.next_send_time(from("team-b", "#a", "acme"), clock.now()), clock.now());
}

TEST(TokenBucket, ClientKeyPutsCallersWithoutAnIdentityInOneSharedBucket) {
  FakeClock clock;
  TokenBucket bucket(exact({1.0, 1, "client"}), no_sharing);
  bucket.on_send(from("", "#a"), clock.now());
  EXPECT_EQ(bucket.next_send_time(from("", "#b"), clock.now()), clock.now() + 1s);
  EXPECT_EQ(bucket.next_send_time(from("team-a", "#a"), clock.now()), clock.now());
}

TEST(TokenBucket, ForgetsFullBucketsSoManyChannelsDoNotGrowMemory) {
  FakeClock clock;
  TokenBucket bucket(exact({1.0, 1, "channel"}), no_sharing);
  for (int i = 0; i < 50'000; ++i) {
    bucket.on_send(to("#c" + std::to_string(i)), clock.now());
    clock.advance(10ms);  // each bucket is full again 1 s after its send
  }
  EXPECT_LE(bucket.bucket_count(), 2 * TokenBucket::kPruneThreshold);
}

TEST(TokenBucket, KeepsBucketsThatAreNotFull) {
  FakeClock clock;
  TokenBucket bucket(exact({1.0, 1, "channel"}), no_sharing);
  const auto busy = static_cast<int>(TokenBucket::kPruneThreshold) + 10;
  for (int i = 0; i < busy; ++i) bucket.on_send(to("#c" + std::to_string(i)), clock.now());
  EXPECT_EQ(bucket.bucket_count(), static_cast<std::size_t>(busy));
  EXPECT_EQ(bucket.next_send_time(to("#c0"), clock.now()), clock.now() + 1s);
}

// Arrival jitter: requests that leave exactly on time arrive bunched.

TEST(TokenBucketJitter, IsTakenFromTheBurstNotTheRate) {
  // 10/s with a burst of 10 holds 1 s of sends less 20 ms: nine go at once,
  // the tenth once the 20 ms have refilled, then one every 100 ms.
  FakeClock clock;
  TokenBucket bucket({10.0, 10, "global", true, 20ms}, no_sharing);
  const auto start = clock.now();
  for (int i = 0; i < 9; ++i) EXPECT_EQ(send_when_allowed(bucket, clock, to("#a")), start) << i;
  EXPECT_EQ(send_when_allowed(bucket, clock, to("#a")), start + 20ms);
  EXPECT_EQ(send_when_allowed(bucket, clock, to("#a")), start + 120ms);
  EXPECT_EQ(send_when_allowed(bucket, clock, to("#a")), start + 220ms);
}

TEST(TokenBucketJitter, LeavesTheLongRunRateUnchanged) {
  // Side by side with the same bucket without jitter: from the tenth send on
  // every send is exactly 20 ms later, never further behind.
  FakeClock jittered_clock, exact_clock;
  TokenBucket jittered({10.0, 10, "global", true, 20ms}, no_sharing);
  TokenBucket plain(exact({10.0, 10, "global"}), no_sharing);
  for (int i = 0; i < 9; ++i) {
    send_when_allowed(jittered, jittered_clock, to("#a"));
    send_when_allowed(plain, exact_clock, to("#a"));
  }
  auto previous = jittered_clock.now();
  for (int i = 9; i < 500; ++i) {
    const auto at = send_when_allowed(jittered, jittered_clock, to("#a"));
    EXPECT_EQ(at - send_when_allowed(plain, exact_clock, to("#a")), 20ms) << "send " << i;
    if (i > 9) {
      EXPECT_EQ(at - previous, 100ms) << "send " << i;
    }
    previous = at;
  }
}

TEST(TokenBucketJitter, AnIdleBucketRefillsToTheBurstLessTheJitter) {
  FakeClock clock;
  TokenBucket bucket({10.0, 10, "global", true, 20ms}, no_sharing);
  for (int i = 0; i < 30; ++i) send_when_allowed(bucket, clock, to("#a"));
  clock.advance(1h);
  const auto rested = clock.now();
  for (int i = 0; i < 9; ++i) EXPECT_EQ(send_when_allowed(bucket, clock, to("#a")), rested) << i;
  EXPECT_EQ(send_when_allowed(bucket, clock, to("#a")), rested + 20ms);
}

TEST(TokenBucketJitter, WithABurstOfOneSpacesSendsIntervalPlusJitterApart) {
  FakeClock clock;
  TokenBucket bucket({10.0, 1, "global", true, 20ms}, no_sharing);
  const auto start = clock.now();
  EXPECT_EQ(send_when_allowed(bucket, clock, to("#a")), start);
  EXPECT_EQ(send_when_allowed(bucket, clock, to("#a")), start + 120ms);
  EXPECT_EQ(send_when_allowed(bucket, clock, to("#a")), start + 240ms);
  EXPECT_EQ(send_when_allowed(bucket, clock, to("#a")), start + 360ms);
}

TEST(TokenBucketJitter, LongerThanTheBurstLessOneIntervalItSlowsTheRate) {
  // 100/s with a burst of 2 has 10 ms of burst to spare, not 20: sends go
  // 20 ms apart, 50/s.
  FakeClock clock;
  TokenBucket bucket({100.0, 2, "global", true, 20ms}, no_sharing);
  const auto start = clock.now();
  for (int i = 0; i < 5; ++i) {
    EXPECT_EQ(send_when_allowed(bucket, clock, to("#a")), start + i * 20ms) << "send " << i;
  }
}

// One budget per token: channel and workspace buckets of messages naming the
// same budget are one, whichever stage (pipeline) takes from them.

TEST(TokenBucketSharing, StagesNamingOneBudgetDrawFromOneWorkspaceBucket) {
  // Two pipelines, each its own workspace name, delivering with one token.
  FakeClock clock;
  sdk::LocalSharedBuckets process;
  TokenBucket alerts(exact({1.0, 2, "workspace"}), process);
  TokenBucket ci(exact({1.0, 2, "workspace"}), process);
  const auto start = clock.now();
  EXPECT_EQ(send_when_allowed(alerts, clock, budgeted("b-1", "#a", "alerts")), start);
  EXPECT_EQ(send_when_allowed(ci, clock, budgeted("b-1", "#b", "ci")), start);
  EXPECT_EQ(alerts.next_send_time(budgeted("b-1", "#a", "alerts"), clock.now()), start + 1s);
  EXPECT_EQ(ci.next_send_time(budgeted("b-1", "#b", "ci"), clock.now()), start + 1s);
  EXPECT_EQ(process.size(), 1u);
  EXPECT_EQ(alerts.bucket_count(), 0u);
  EXPECT_EQ(ci.bucket_count(), 0u);
}

TEST(TokenBucketSharing, DifferentBudgetsAreIndependent) {
  FakeClock clock;
  sdk::LocalSharedBuckets process;
  TokenBucket alerts(exact({1.0, 2, "workspace"}), process);
  TokenBucket ci(exact({1.0, 2, "workspace"}), process);
  for (int i = 0; i < 2; ++i) alerts.on_send(budgeted("b-1", "#a", "alerts"), clock.now());
  EXPECT_EQ(alerts.next_send_time(budgeted("b-1", "#a", "alerts"), clock.now()),
            clock.now() + 1s);
  EXPECT_EQ(ci.next_send_time(budgeted("b-2", "#a", "ci"), clock.now()), clock.now());
}

TEST(TokenBucketSharing, AStageThatDoesNotShareKeepsItsOwnBucket) {
  FakeClock clock;
  sdk::LocalSharedBuckets process;
  TokenBucket alerts(exact({1.0, 2, "workspace"}), process);
  Settings own = exact({1.0, 2, "workspace"});
  own.shared = false;
  TokenBucket ci(own, process);
  for (int i = 0; i < 2; ++i) alerts.on_send(budgeted("b-1", "#a", "alerts"), clock.now());
  // The shared bucket is empty; ci's own is full...
  EXPECT_EQ(ci.next_send_time(budgeted("b-1", "#a", "ci"), clock.now()), clock.now());
  // ...and what ci sends is not taken from the shared one.
  for (int i = 0; i < 2; ++i) ci.on_send(budgeted("b-1", "#a", "ci"), clock.now());
  EXPECT_EQ(ci.next_send_time(budgeted("b-1", "#a", "ci"), clock.now()), clock.now() + 1s);
  EXPECT_EQ(ci.bucket_count(), 1u);
  EXPECT_EQ(process.size(), 1u);
  clock.advance(1s);
  EXPECT_EQ(alerts.next_send_time(budgeted("b-1", "#a", "alerts"), clock.now()), clock.now());
}

TEST(TokenBucketSharing, MessagesNamingNoBudgetUseTheStagesOwnWorkspaceBucket) {
  FakeClock clock;
  sdk::LocalSharedBuckets process;
  TokenBucket first(exact({1.0, 1, "workspace"}), process);
  TokenBucket second(exact({1.0, 1, "workspace"}), process);
  first.on_send(to("#a", "team-1"), clock.now());
  EXPECT_EQ(first.next_send_time(to("#b", "team-1"), clock.now()), clock.now() + 1s);
  // The same workspace name in another stage is another bucket.
  EXPECT_EQ(second.next_send_time(to("#a", "team-1"), clock.now()), clock.now());
  // An empty budget name is none.
  first.on_send(budgeted("", "#a", "team-2"), clock.now());
  EXPECT_EQ(first.next_send_time(to("#a", "team-2"), clock.now()), clock.now() + 1s);
  EXPECT_EQ(first.bucket_count(), 2u);
  EXPECT_EQ(process.size(), 0u);
}

TEST(TokenBucketSharing, ChannelBucketsAreSharedPerBudgetAndChannel) {
  FakeClock clock;
  sdk::LocalSharedBuckets process;
  TokenBucket alerts(exact({1.0, 1, "channel"}), process);
  TokenBucket ci(exact({1.0, 1, "channel"}), process);
  alerts.on_send(budgeted("b-1", "#ops", "alerts"), clock.now());
  EXPECT_EQ(ci.next_send_time(budgeted("b-1", "#ops", "ci"), clock.now()), clock.now() + 1s);
  EXPECT_EQ(ci.next_send_time(budgeted("b-1", "#dev", "ci"), clock.now()), clock.now());
  EXPECT_EQ(ci.next_send_time(budgeted("b-2", "#ops", "ci"), clock.now()), clock.now());
}

TEST(TokenBucketSharing, AWorkspaceBucketAndAChannelBucketOfOneBudgetAreApart) {
  FakeClock clock;
  sdk::LocalSharedBuckets process;
  TokenBucket per_workspace(exact({1.0, 1, "workspace"}), process);
  TokenBucket per_channel(exact({1.0, 1, "channel"}), process);
  per_workspace.on_send(budgeted("b-1", "#a"), clock.now());
  EXPECT_EQ(per_channel.next_send_time(budgeted("b-1", "#a"), clock.now()), clock.now());
  per_channel.on_send(budgeted("b-1", "#a"), clock.now());
  EXPECT_EQ(process.size(), 2u);
}

TEST(TokenBucketSharing, GlobalAndClientBucketsAreNeverShared) {
  for (const char* key : {"global", "client"}) {
    FakeClock clock;
    sdk::LocalSharedBuckets process;
    TokenBucket first(exact({1.0, 1, key}), process);
    TokenBucket second(exact({1.0, 1, key}), process);
    first.on_send(budgeted("b-1"), clock.now());
    EXPECT_EQ(first.next_send_time(budgeted("b-1"), clock.now()), clock.now() + 1s) << key;
    EXPECT_EQ(second.next_send_time(budgeted("b-1"), clock.now()), clock.now()) << key;
    EXPECT_EQ(process.size(), 0u) << key;
  }
}

// Only buckets configured alike are one: a pipeline stacking a 5/s and a
// 300/min workspace bucket must not have both take from one, and two
// pipelines with other limits for one token keep theirs apart.
TEST(TokenBucketSharing, StagesWithDifferentRatesOrBurstsKeepSeparateBuckets) {
  FakeClock clock;
  sdk::LocalSharedBuckets process;
  TokenBucket per_second(exact({5.0, 10, "workspace"}), process);
  TokenBucket per_minute(exact({5.0, 300, "workspace"}), process);
  TokenBucket slower(exact({1.0, 10, "workspace"}), process);
  for (int i = 0; i < 10; ++i) per_second.on_send(budgeted("b-1"), clock.now());
  EXPECT_EQ(per_second.next_send_time(budgeted("b-1"), clock.now()), clock.now() + 200ms);
  EXPECT_EQ(per_minute.next_send_time(budgeted("b-1"), clock.now()), clock.now());
  EXPECT_EQ(slower.next_send_time(budgeted("b-1"), clock.now()), clock.now());
  EXPECT_EQ(process.size(), 1u);
}

// Two stages of one pipeline, configured alike and keyed alike, are one
// bucket: each takes from it (configure one).
TEST(TokenBucketSharing, StagesConfiguredAlikeAreOneBucket) {
  FakeClock clock;
  sdk::LocalSharedBuckets process;
  TokenBucket first(exact({1.0, 2, "workspace"}), process);
  TokenBucket second(exact({1.0, 2, "workspace"}), process);
  first.on_send(budgeted("b-1"), clock.now());
  second.on_send(budgeted("b-1"), clock.now());
  EXPECT_EQ(first.next_send_time(budgeted("b-1"), clock.now()), clock.now() + 1s);
  EXPECT_EQ(process.size(), 1u);
}

// A jitter the burst cannot hold lowers the rate; the operator hears so once,
// when the stage is made, and not when it fits.
TEST(TokenBucketPlugin, WarnsWhenTheJitterIsMoreThanTheBurstCanSpare) {
  sdk::testing::PluginUnderTest plugin(SLACK_PROXY_PLUGIN_FILE);
  sdk::testing::FakeHost fits;
  plugin.create<sdk::RateLimiter>(fits, "rate = 1.0\nburst = 3");
  EXPECT_FALSE(fits.log.contains("jitter"));
  sdk::testing::FakeHost too_much;
  plugin.create<sdk::RateLimiter>(too_much, "rate = 100.0\nburst = 1");
  EXPECT_TRUE(too_much.log.contains("jitter 20 ms is more than the burst's 0 spare interval(s)"));
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
  auto limiter = plugin.create<sdk::RateLimiter>(
      host, "rate = 2.0\nburst = 1\nkey = \"channel\"\njitter = \"0ms\"");
  const sdk::SteadyTime now = host.time.now();
  limiter->on_send(to("#a"), now);
  EXPECT_EQ(limiter->next_send_time(to("#a"), now), now + 500ms);  // 2 per second
  EXPECT_EQ(limiter->next_send_time(to("#b"), now), now);          // its own bucket

  // By default 20 ms are kept free for arrival jitter; a burst of 1 has
  // nothing to take them from but the spacing.
  auto spaced = plugin.create<sdk::RateLimiter>(host, "rate = 2.0\nburst = 1\nkey = \"channel\"");
  spaced->on_send(to("#a"), now);
  EXPECT_EQ(spaced->next_send_time(to("#a"), now), now + 520ms);
}

// As the proxy runs two pipelines of one process: every stage's host hands
// out the process's shared buckets. FakeHost keeps its own, so both limiters
// come from one FakeHost here.
TEST(TokenBucketPlugin, LimitersOfOneHostShareTheBudgetsBucketsByDefault) {
  sdk::testing::PluginUnderTest plugin(SLACK_PROXY_PLUGIN_FILE);
  sdk::testing::FakeHost host;
  const std::string settings = "key = \"workspace\"\nburst = 2\njitter = \"0ms\"";
  auto alerts = plugin.create<sdk::RateLimiter>(host, settings);
  auto ci = plugin.create<sdk::RateLimiter>(host, settings);
  auto own = plugin.create<sdk::RateLimiter>(host, settings + "\nshared = false");
  const std::string budget = host.budget_id("xoxb-one-token");
  const sdk::SteadyTime now = host.time.now();

  alerts->on_send(budgeted(budget, "#a", "alerts"), now);
  ci->on_send(budgeted(budget, "#b", "ci"), now);
  EXPECT_EQ(alerts->next_send_time(budgeted(budget, "#a", "alerts"), now), now + 1s);
  EXPECT_EQ(ci->next_send_time(budgeted(budget, "#b", "ci"), now), now + 1s);
  EXPECT_EQ(own->next_send_time(budgeted(budget, "#a", "alerts"), now), now);
  EXPECT_EQ(host.buckets.size(), 1u);
}

}  // namespace
}  // namespace slack_proxy::plugins::token_bucket

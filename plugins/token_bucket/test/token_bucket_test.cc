#include <chrono>
#include <stdexcept>
#include <string>

#include <gtest/gtest.h>
#include <slack_proxy/sdk/testing/fakes.h>

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

MapConfig settings_config(double rate, int burst, const char* key) {
  return MapConfig()
      .set("rate", Value{rate})
      .set("burst", Value{std::int64_t{burst}})
      .set("key", key);
}

TEST(TokenBucketSettings, AcceptsValidValues) {
  const auto s = parse_settings(settings_config(0.5, 10, "channel"));
  EXPECT_DOUBLE_EQ(s.rate, 0.5);
  EXPECT_EQ(s.burst, 10);
  EXPECT_EQ(s.key, BucketKey::Channel);
  EXPECT_EQ(parse_settings(settings_config(1, 1, "global")).key, BucketKey::Global);
  EXPECT_EQ(parse_settings(settings_config(1, 1, "workspace")).key, BucketKey::Workspace);
  EXPECT_EQ(parse_settings(settings_config(1, 1, "client")).key, BucketKey::Client);
}

TEST(TokenBucketSettings, AcceptsAnIntegerRate) {
  const auto config = MapConfig()
                          .set("rate", Value{std::int64_t{2}})
                          .set("burst", Value{std::int64_t{3}})
                          .set("key", "global");
  EXPECT_DOUBLE_EQ(parse_settings(config).rate, 2.0);
}

TEST(TokenBucketSettings, RejectsNonPositiveRate) {
  EXPECT_THROW(parse_settings(settings_config(0, 3, "global")), std::invalid_argument);
  try {
    parse_settings(settings_config(-1, 3, "global"));
    FAIL() << "negative rate accepted";
  } catch (const std::invalid_argument& e) {
    EXPECT_STREQ(e.what(), "rate must be > 0, got -1");
  }
}

TEST(TokenBucketSettings, RejectsBurstBelowOne) {
  EXPECT_THROW(parse_settings(settings_config(1, 0, "global")), std::invalid_argument);
  EXPECT_THROW(parse_settings(settings_config(1, -5, "global")), std::invalid_argument);
}

TEST(TokenBucketSettings, RejectsUnknownKeyNamingTheAllowedOnes) {
  try {
    parse_settings(settings_config(1, 3, "user"));
    FAIL() << "unknown key accepted";
  } catch (const std::invalid_argument& e) {
    EXPECT_STREQ(e.what(), "key must be one of global, channel, workspace, client; got \"user\"");
  }
}

TEST(TokenBucketSettings, RejectsARefillWindowThatWouldOverflow) {
  EXPECT_THROW(parse_settings(settings_config(1e-12, 3, "global")), std::invalid_argument);
}

TEST(TokenBucket, AllowsABurstImmediatelyThenOnePerInterval) {
  FakeClock clock;
  TokenBucket bucket({1.0, 3, BucketKey::Global});
  const auto start = clock.now();
  for (int i = 0; i < 3; ++i) EXPECT_EQ(send_when_allowed(bucket, clock, to("#a")), start);
  EXPECT_EQ(bucket.next_send_time(to("#a"), clock.now()), start + 1s);
  EXPECT_EQ(send_when_allowed(bucket, clock, to("#a")), start + 1s);
  EXPECT_EQ(send_when_allowed(bucket, clock, to("#a")), start + 2s);
}

TEST(TokenBucket, AskingDoesNotConsume) {
  FakeClock clock;
  TokenBucket bucket({1.0, 1, BucketKey::Global});
  for (int i = 0; i < 5; ++i) EXPECT_EQ(bucket.next_send_time(to("#a"), clock.now()), clock.now());
  bucket.on_send(to("#a"), clock.now());
  EXPECT_EQ(bucket.next_send_time(to("#a"), clock.now()), clock.now() + 1s);
}

TEST(TokenBucket, RefillIsCappedAtBurst) {
  FakeClock clock;
  TokenBucket bucket({1.0, 3, BucketKey::Global});
  for (int i = 0; i < 3; ++i) send_when_allowed(bucket, clock, to("#a"));
  clock.advance(100s);
  const auto rested = clock.now();
  for (int i = 0; i < 3; ++i) EXPECT_EQ(send_when_allowed(bucket, clock, to("#a")), rested);
  EXPECT_EQ(bucket.next_send_time(to("#a"), clock.now()), rested + 1s);
}

TEST(TokenBucket, PartialRefillWaitsOnlyForTheRest) {
  FakeClock clock;
  TokenBucket bucket({1.0, 1, BucketKey::Global});
  bucket.on_send(to("#a"), clock.now());
  clock.advance(400ms);
  EXPECT_EQ(bucket.next_send_time(to("#a"), clock.now()), clock.now() + 600ms);
}

TEST(TokenBucket, HalfATokenPerSecondSpacesSendsTwoSecondsApart) {
  FakeClock clock;
  TokenBucket bucket({0.5, 1, BucketKey::Global});
  const auto start = clock.now();
  EXPECT_EQ(send_when_allowed(bucket, clock, to("#a")), start);
  EXPECT_EQ(send_when_allowed(bucket, clock, to("#a")), start + 2s);
  EXPECT_EQ(send_when_allowed(bucket, clock, to("#a")), start + 4s);
}

TEST(TokenBucket, SendingAtTheAnnouncedTimeNeverRunsIntoDebt) {
  // 1/3 s is not a whole number of nanoseconds: a fractional token count
  // would drift below zero here.
  FakeClock clock;
  TokenBucket bucket({3.0, 2, BucketKey::Global});
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
  TokenBucket bucket({1.0, 1, BucketKey::Global});
  bucket.on_send(to("#a"), clock.now());
  EXPECT_EQ(bucket.next_send_time(to("#b"), clock.now()), clock.now() + 1s);
}

TEST(TokenBucket, ChannelKeysAreIndependent) {
  FakeClock clock;
  TokenBucket bucket({1.0, 1, BucketKey::Channel});
  bucket.on_send(to("#a"), clock.now());
  EXPECT_EQ(bucket.next_send_time(to("#a"), clock.now()), clock.now() + 1s);
  EXPECT_EQ(bucket.next_send_time(to("#b"), clock.now()), clock.now());
  EXPECT_EQ(bucket.next_send_time(to("#a", "other-team"), clock.now()), clock.now());
}

TEST(TokenBucket, WorkspaceKeySharesABucketAcrossChannelsOfOneWorkspace) {
  FakeClock clock;
  TokenBucket bucket({1.0, 1, BucketKey::Workspace});
  bucket.on_send(to("#a", "team-1"), clock.now());
  EXPECT_EQ(bucket.next_send_time(to("#b", "team-1"), clock.now()), clock.now() + 1s);
  EXPECT_EQ(bucket.next_send_time(to("#a", "team-2"), clock.now()), clock.now());
}

TEST(TokenBucket, ClientKeyGivesEachCallerItsOwnBucket) {
  FakeClock clock;
  TokenBucket bucket({1.0, 2, BucketKey::Client});
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
  TokenBucket bucket({1.0, 1, BucketKey::Client});
  bucket.on_send(from("team-a", "#a", "acme"), clock.now());
  EXPECT_EQ(bucket.next_send_time(from("team-a", "#b", "acme"), clock.now()), clock.now() + 1s);
  EXPECT_EQ(bucket.next_send_time(from("team-a", "#a", "beta"), clock.now()), clock.now() + 1s);
  EXPECT_EQ(bucket.next_send_time(from("team-b", "#a", "acme"), clock.now()), clock.now());
}

TEST(TokenBucket, ClientKeyPutsCallersWithoutAnIdentityInOneSharedBucket) {
  FakeClock clock;
  TokenBucket bucket({1.0, 1, BucketKey::Client});
  bucket.on_send(from("", "#a"), clock.now());
  EXPECT_EQ(bucket.next_send_time(from("", "#b"), clock.now()), clock.now() + 1s);
  EXPECT_EQ(bucket.next_send_time(from("team-a", "#a"), clock.now()), clock.now());
}

TEST(TokenBucket, ForgetsFullBucketsSoManyChannelsDoNotGrowMemory) {
  FakeClock clock;
  TokenBucket bucket({1.0, 1, BucketKey::Channel});
  for (int i = 0; i < 50'000; ++i) {
    bucket.on_send(to("#c" + std::to_string(i)), clock.now());
    clock.advance(10ms);  // each bucket is full again 1 s after its send
  }
  EXPECT_LE(bucket.bucket_count(), 2 * TokenBucket::kPruneThreshold);
}

TEST(TokenBucket, KeepsBucketsThatAreNotFull) {
  FakeClock clock;
  TokenBucket bucket({1.0, 1, BucketKey::Channel});
  const auto busy = static_cast<int>(TokenBucket::kPruneThreshold) + 10;
  for (int i = 0; i < busy; ++i) bucket.on_send(to("#c" + std::to_string(i)), clock.now());
  EXPECT_EQ(bucket.bucket_count(), static_cast<std::size_t>(busy));
  EXPECT_EQ(bucket.next_send_time(to("#c0"), clock.now()), clock.now() + 1s);
}

}  // namespace
}  // namespace slack_proxy::plugins::token_bucket

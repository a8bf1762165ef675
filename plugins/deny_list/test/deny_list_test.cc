#include <chrono>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include <gtest/gtest.h>
#include <slack_proxy/sdk/testing/fakes.h>

#include "deny_list.h"

namespace slack_proxy::plugins::deny_list {
namespace {

using namespace std::chrono_literals;
using sdk::testing::FakeHost;
using sdk::testing::MapConfig;
// Wrapped explicitly: MapConfig::set's int overload would otherwise capture
// other arithmetic types by narrowing conversion.
using Value = MapConfig::Value;
using Codes = std::vector<std::string>;

sdk::Message to(const std::string& channel, const std::string& workspace = "") {
  sdk::Message m;
  m.channel = channel;
  m.original_channel = channel;
  m.workspace = workspace;
  return m;
}

// As the dead-letter replay leaves it: marked, attempts reset.
sdk::Message replayed_to(const std::string& channel, const std::string& workspace = "") {
  auto m = to(channel, workspace);
  m.id = "m-42";
  m.attributes[sdk::kReplayedAttribute] = "true";
  return m;
}

sdk::SendResult slack_error(const std::string& code) { return sdk::SendResult::failed(200, code); }

bool logged_at(const sdk::testing::RecordingLogger& log, sdk::LogLevel level,
               const std::string& needle) {
  for (const auto& line : log.lines()) {
    if (line.level == level && line.text.find(needle) != std::string::npos) return true;
  }
  return false;
}

class DenyListTest : public ::testing::Test {
 protected:
  DenyList make(Settings settings = {}) { return DenyList(host, settings); }
  sdk::SteadyTime now() { return host.time.now(); }
  FakeHost host;
};

TEST(DenyListSettings, SchemaWantsAPositiveTtlAndAtLeastOneCode) {
  const auto ttl = kSchema.row("ttl");
  EXPECT_EQ(ttl.type, SP_VALUE_DURATION);
  EXPECT_EQ(ttl.flags, SP_KEY_HAS_MIN | SP_KEY_MIN_EXCLUSIVE);
  EXPECT_EQ(ttl.min, 0);
  EXPECT_STREQ(ttl.default_value, "15m");
  const auto errors = kSchema.row("errors");
  EXPECT_EQ(errors.type, SP_VALUE_STRING_LIST);
  EXPECT_EQ(errors.flags, SP_KEY_HAS_MIN);
  EXPECT_EQ(errors.min, 1);
  EXPECT_STREQ(errors.default_value, "[\"channel_not_found\"]");
}

TEST(DenyListSettings, ReadsTtlAndErrors) {
  const auto s = kSchema.read(MapConfig()
                                  .set("ttl", Value{5min})
                                  .set("errors", Value{Codes{"channel_not_found", "is_archived"}}));
  EXPECT_EQ(s.ttl, 5min);
  EXPECT_EQ(s.errors, (Codes{"channel_not_found", "is_archived"}));
}

TEST(DenyListSettings, RefusesABlankErrorCode) {
  FakeHost host;
  try {
    DenyList guard(host, Settings{1s, Codes{"channel_not_found", ""}});
    FAIL() << "an empty code accepted";
  } catch (const std::invalid_argument& e) {
    EXPECT_STREQ(e.what(), "errors must not contain an empty code");
  }
}

TEST_F(DenyListTest, PassesAChannelThatWasNeverParked) {
  auto guard = make();
  EXPECT_TRUE(guard.before_send(to("#a"), now()).allow);
}

TEST_F(DenyListTest, ParksAChannelAfterChannelNotFound) {
  auto guard = make();
  guard.after_result(to("#gone"), slack_error("channel_not_found"), now());
  const auto verdict = guard.before_send(to("#gone"), now());
  EXPECT_FALSE(verdict.allow);
  EXPECT_EQ(verdict.reason, "channel parked after channel_not_found, 900 s left");
  EXPECT_TRUE(
      host.log.contains("parking channel #gone for 900 s after Slack answered channel_not_found"));
}

TEST_F(DenyListTest, ReasonCountsDownTheTimeLeft) {
  auto guard = make({10s, {"channel_not_found"}});
  guard.after_result(to("#gone"), slack_error("channel_not_found"), now());
  host.time.advance(7500ms);
  EXPECT_EQ(guard.before_send(to("#gone"), now()).reason,
            "channel parked after channel_not_found, 3 s left");
}

TEST_F(DenyListTest, DoesNotParkOnOtherErrors) {
  auto guard = make();
  for (const char* code : {"ratelimited", "invalid_auth", "is_archived", "timeout"}) {
    guard.after_result(to("#a"), slack_error(code), now());
  }
  EXPECT_TRUE(guard.before_send(to("#a"), now()).allow);
  EXPECT_EQ(guard.parked_count(now()), 0u);
}

TEST_F(DenyListTest, DoesNotParkOnADeliveredResult) {
  auto guard = make();
  auto delivered = sdk::SendResult::ok();
  delivered.error = "channel_not_found";  // contradictory on purpose: delivered wins
  guard.after_result(to("#a"), delivered, now());
  EXPECT_TRUE(guard.before_send(to("#a"), now()).allow);
}

TEST_F(DenyListTest, ExpiresExactlyAtTtl) {
  auto guard = make({15min, {"channel_not_found"}});
  guard.after_result(to("#gone"), slack_error("channel_not_found"), now());
  host.time.advance(15min - 1ns);
  EXPECT_FALSE(guard.before_send(to("#gone"), now()).allow);
  host.time.advance(1ns);
  EXPECT_TRUE(guard.before_send(to("#gone"), now()).allow);
  EXPECT_EQ(guard.parked_count(now()), 0u);
}

TEST_F(DenyListTest, ParksOnConfiguredErrorCodes) {
  auto guard = make({1min, {"is_archived", "channel_is_archived"}});
  guard.after_result(to("#old"), slack_error("is_archived"), now());
  guard.after_result(to("#hook"), slack_error("channel_is_archived"), now());
  guard.after_result(to("#gone"), slack_error("channel_not_found"), now());
  EXPECT_EQ(guard.before_send(to("#old"), now()).reason,
            "channel parked after is_archived, 60 s left");
  EXPECT_FALSE(guard.before_send(to("#hook"), now()).allow);
  EXPECT_TRUE(guard.before_send(to("#gone"), now()).allow);
}

TEST_F(DenyListTest, OtherChannelsAndWorkspacesAreUnaffected) {
  auto guard = make();
  guard.after_result(to("#gone", "team-1"), slack_error("channel_not_found"), now());
  EXPECT_FALSE(guard.before_send(to("#gone", "team-1"), now()).allow);
  EXPECT_TRUE(guard.before_send(to("#other", "team-1"), now()).allow);
  EXPECT_TRUE(guard.before_send(to("#gone", "team-2"), now()).allow);
}

TEST_F(DenyListTest, ParksTheRoutedChannelNotTheOriginalOne) {
  auto guard = make();
  auto overridden = to("#target");
  overridden.original_channel = "#asked-for";
  guard.after_result(overridden, slack_error("channel_not_found"), now());
  EXPECT_FALSE(guard.before_send(to("#target"), now()).allow);
  EXPECT_TRUE(guard.before_send(to("#asked-for"), now()).allow);
}

TEST_F(DenyListTest, ParkingAgainRestartsTheTtl) {
  auto guard = make({10s, {"channel_not_found"}});
  guard.after_result(to("#gone"), slack_error("channel_not_found"), now());
  host.time.advance(8s);
  guard.after_result(to("#gone"), slack_error("channel_not_found"), now());
  host.time.advance(8s);
  EXPECT_FALSE(guard.before_send(to("#gone"), now()).allow);
  host.time.advance(2s);
  EXPECT_TRUE(guard.before_send(to("#gone"), now()).allow);
}

TEST_F(DenyListTest, GaugeCountsParkedChannelsAndDropsExpiredOnes) {
  auto guard = make({10s, {"channel_not_found"}});
  EXPECT_TRUE(host.stats.exists(kSizeMetric));
  EXPECT_EQ(host.stats.value(kSizeMetric), 0);
  guard.after_result(to("#a"), slack_error("channel_not_found"), now());
  host.time.advance(5s);
  guard.after_result(to("#b"), slack_error("channel_not_found"), now());
  guard.after_result(to("#b"), slack_error("channel_not_found"), now());
  EXPECT_EQ(host.stats.value(kSizeMetric), 2);
  host.time.advance(5s);
  // Any send drops every expired entry, not only the one it asks about.
  guard.before_send(to("#unrelated"), now());
  EXPECT_EQ(host.stats.value(kSizeMetric), 1);
  host.time.advance(5s);
  guard.before_send(to("#unrelated"), now());
  EXPECT_EQ(host.stats.value(kSizeMetric), 0);
}

// ------------------------------------------- operator replays as probes --

TEST_F(DenyListTest, ReplayedMessagePassesAParkedChannelAsAProbe) {
  auto guard = make();
  guard.after_result(to("#gone"), slack_error("channel_not_found"), now());
  EXPECT_TRUE(guard.before_send(replayed_to("#gone"), now()).allow);
  EXPECT_TRUE(logged_at(host.log, sdk::LogLevel::Info,
                        "channel #gone is parked after channel_not_found, but message m-42 was "
                        "replayed by an operator: letting it through as a probe"));
  // Letting the probe through decides nothing yet: its result will.
  EXPECT_EQ(guard.parked_count(now()), 1u);
  EXPECT_FALSE(guard.before_send(to("#gone"), now()).allow);
}

TEST_F(DenyListTest, OnlyAReplayMarkedTrueIsAProbe) {
  auto guard = make();
  guard.after_result(to("#gone"), slack_error("channel_not_found"), now());
  auto not_replayed = replayed_to("#gone");
  not_replayed.attributes[sdk::kReplayedAttribute] = "false";
  EXPECT_FALSE(guard.before_send(not_replayed, now()).allow);
  EXPECT_FALSE(host.log.contains("probe"));
}

TEST_F(DenyListTest, ReplayedMessageToAnUnparkedChannelIsNoProbe) {
  auto guard = make();
  EXPECT_TRUE(guard.before_send(replayed_to("#fine"), now()).allow);
  EXPECT_FALSE(host.log.contains("probe"));
}

TEST_F(DenyListTest, ProbeFailingWithChannelNotFoundParksTheChannelAgain) {
  auto guard = make({10s, {"channel_not_found"}});
  guard.after_result(to("#gone"), slack_error("channel_not_found"), now());
  host.time.advance(8s);
  const auto probe = replayed_to("#gone");
  ASSERT_TRUE(guard.before_send(probe, now()).allow);
  guard.after_result(probe, slack_error("channel_not_found"), now());
  // Parked for a full ttl from the probe's failure, not from the first one.
  host.time.advance(8s);
  EXPECT_EQ(guard.before_send(to("#gone"), now()).reason,
            "channel parked after channel_not_found, 2 s left");
  EXPECT_EQ(host.stats.value(kSizeMetric), 1);
}

TEST_F(DenyListTest, DeliveredProbeUnparksTheChannel) {
  auto guard = make();
  guard.after_result(to("#back", "team-1"), slack_error("channel_not_found"), now());
  ASSERT_EQ(host.stats.value(kSizeMetric), 1);
  const auto probe = replayed_to("#back", "team-1");
  ASSERT_TRUE(guard.before_send(probe, now()).allow);
  guard.after_result(probe, sdk::SendResult::ok(), now());
  EXPECT_EQ(guard.parked_count(now()), 0u);
  EXPECT_EQ(host.stats.value(kSizeMetric), 0);
  EXPECT_TRUE(guard.before_send(to("#back", "team-1"), now()).allow);
  EXPECT_TRUE(logged_at(host.log, sdk::LogLevel::Info,
                        "channel #back (workspace team-1) is no longer parked: a message to it "
                        "was delivered"));
}

TEST_F(DenyListTest, AnyDeliveryToAParkedChannelUnparksIt) {
  auto guard = make();
  guard.after_result(to("#back"), slack_error("channel_not_found"), now());
  guard.after_result(to("#back"), sdk::SendResult::ok(), now());
  EXPECT_TRUE(guard.before_send(to("#back"), now()).allow);
  EXPECT_EQ(guard.parked_count(now()), 0u);
}

TEST_F(DenyListTest, DeliveryElsewhereLeavesAParkedChannelParked) {
  auto guard = make();
  guard.after_result(to("#gone", "team-1"), slack_error("channel_not_found"), now());
  guard.after_result(to("#other", "team-1"), sdk::SendResult::ok(), now());
  guard.after_result(to("#gone", "team-2"), sdk::SendResult::ok(), now());
  EXPECT_FALSE(guard.before_send(to("#gone", "team-1"), now()).allow);
  EXPECT_EQ(host.stats.value(kSizeMetric), 1);
}

// ------------------------------------- several replicas, one set of marks --
// Two stages made from one FakeHost share its marks, as the same stage of
// two replicas shares them through Redis.

TEST_F(DenyListTest, AChannelAnotherReplicaParkedIsDeniedAndSaidOnce) {
  auto here = make();
  auto other = make();
  other.after_result(to("#gone"), slack_error("channel_not_found"), now());
  EXPECT_FALSE(here.before_send(to("#gone"), now()).allow);
  EXPECT_FALSE(here.before_send(to("#gone"), now()).allow);
  std::size_t said = 0;
  for (const auto& line : host.log.lines())
    if (line.level == sdk::LogLevel::Warn &&
        line.text.find("#gone is parked after channel_not_found by another replica (shared "
                       "deny-list), 900 s left") != std::string::npos)
      ++said;
  EXPECT_EQ(said, 1u);
  EXPECT_EQ(here.parked_count(now()), 1u);
  // Its parking ends here when it ends there.
  host.time.advance(900s);
  EXPECT_TRUE(here.before_send(to("#gone"), now()).allow);
  EXPECT_TRUE(logged_at(host.log, sdk::LogLevel::Info, "channel #gone is no longer parked"));
  EXPECT_EQ(host.stats.value(kSizeMetric), 0);
}

TEST_F(DenyListTest, AChannelAnotherReplicaDeliveredToIsUnparkedHereAtOnce) {
  auto here = make();
  auto other = make();
  here.after_result(to("#back"), slack_error("channel_not_found"), now());
  EXPECT_FALSE(here.before_send(to("#back"), now()).allow);
  other.after_result(to("#back"), sdk::SendResult::ok(), now());
  EXPECT_TRUE(here.before_send(to("#back"), now()).allow);
  EXPECT_TRUE(logged_at(host.log, sdk::LogLevel::Info,
                        "channel #back is no longer parked: another replica delivered to it"));
}

}  // namespace
}  // namespace slack_proxy::plugins::deny_list

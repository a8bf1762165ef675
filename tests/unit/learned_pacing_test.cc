// The rules of pacing learned from 429s (core/src/learned_pacing.h), one per
// test, with the figures they give. Times are passed in, built from a fixed
// origin on a whole second: no clock, no sleep.
#include "learned_pacing.h"

#include <algorithm>
#include <chrono>
#include <string>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace slack_proxy {
namespace {

using namespace std::chrono_literals;
using ::testing::ElementsAre;
using ::testing::IsEmpty;

using Pacing = LearnedPacing;

const sdk::SteadyTime kOrigin{std::chrono::hours(1)};

double seconds(sdk::SteadyTime::duration d) { return std::chrono::duration<double>(d).count(); }

void deliver(LearnedPacing& pacing, const std::string& key, sdk::SteadyTime sent_at, int times) {
  for (int i = 0; i < times; ++i) pacing.delivered(key, sent_at);
}

// ---- DeliveryCount ----

TEST(DeliveryCountTest, CountsNothingBeforeTheFirstDelivery) {
  DeliveryCount count;
  EXPECT_EQ(count.last_second(kOrigin + 500ms), 0.0);
}

TEST(DeliveryCountTest, CountsTheCurrentSecondFully) {
  DeliveryCount count;
  count.add(kOrigin + 100ms);
  count.add(kOrigin + 200ms);
  count.add(kOrigin + 300ms);
  EXPECT_EQ(count.last_second(kOrigin + 900ms), 3.0);
}

TEST(DeliveryCountTest, WeighsThePreviousSecondByThePartStillInTheWindow) {
  DeliveryCount count;
  for (int i = 0; i < 4; ++i) count.add(kOrigin + 100ms);
  count.add(kOrigin + 1s + 100ms);
  count.add(kOrigin + 1s + 200ms);
  // At +1.25 s the window [+0.25 s, +1.25 s] holds 3/4 of the previous second.
  EXPECT_EQ(count.last_second(kOrigin + 1s + 250ms), 2 + 4 * 0.75);
}

TEST(DeliveryCountTest, WeighsTheLastSecondWithDeliveriesWhenTheCurrentHasNone) {
  DeliveryCount count;
  for (int i = 0; i < 4; ++i) count.add(kOrigin + 100ms);
  EXPECT_EQ(count.last_second(kOrigin + 1s), 4.0);  // the whole of it is still in the window
  EXPECT_EQ(count.last_second(kOrigin + 1s + 250ms), 4 * 0.75);
}

TEST(DeliveryCountTest, CountsNothingOlderThanThePreviousSecond) {
  DeliveryCount count;
  for (int i = 0; i < 4; ++i) count.add(kOrigin + 900ms);
  EXPECT_EQ(count.last_second(kOrigin + 2s), 0.0);
  count.add(kOrigin + 2s + 100ms);  // two seconds on: the old second is not carried over
  EXPECT_EQ(count.last_second(kOrigin + 2s + 500ms), 1.0);
}

// ---- LearnedPacing: before any 429 ----

TEST(LearnedPacingTest, UnknownKeyIsNotPaced) {
  LearnedPacing pacing;
  EXPECT_EQ(pacing.next_send("T1", kOrigin), kOrigin);
  EXPECT_EQ(pacing.rate("T1", kOrigin), std::nullopt);
  EXPECT_EQ(pacing.paced(), 0u);
}

TEST(LearnedPacingTest, LoggedDeliveriesAloneDoNotPace) {
  LearnedPacing pacing;
  deliver(pacing, "T1", kOrigin, 10);
  pacing.sent("T1", kOrigin);
  EXPECT_EQ(pacing.next_send("T1", kOrigin), kOrigin);
  EXPECT_EQ(pacing.rate("T1", kOrigin), std::nullopt);
  EXPECT_EQ(pacing.paced(), 0u);
  EXPECT_EQ(pacing.logged(), 1u);
}

// ---- The first 429 ----

TEST(LearnedPacingTest, FirstLimitSetsTheRateToTheDeliveriesAroundTheRefusedRequest) {
  LearnedPacing pacing;
  deliver(pacing, "T1", kOrigin, 10);
  const sdk::SteadyTime answered = kOrigin + 5ms;
  EXPECT_TRUE(pacing.limited("T1", kOrigin, answered));
  EXPECT_EQ(pacing.rate("T1", answered), 10.0);
  EXPECT_EQ(pacing.paced(), 1u);
}

TEST(LearnedPacingTest, FirstLimitWithNothingLoggedSetsTheFirstFloor) {
  LearnedPacing pacing;
  const sdk::SteadyTime answered = kOrigin + 5ms;
  EXPECT_TRUE(pacing.limited("C1", kOrigin, answered));
  EXPECT_EQ(pacing.rate("C1", answered), Pacing::kFirstFloor);
}

TEST(LearnedPacingTest, FirstLimitIgnoresDeliveriesOlderThanASecondBeforeTheRefusedRequest) {
  LearnedPacing pacing;
  deliver(pacing, "T1", kOrigin - 1s - 1ns, 7);  // just out of the window
  deliver(pacing, "T1", kOrigin - 1s, 3);        // on its edge
  const sdk::SteadyTime answered = kOrigin + 5ms;
  pacing.limited("T1", kOrigin, answered);
  EXPECT_EQ(pacing.rate("T1", answered), 3.0);
}

TEST(LearnedPacingTest, FirstLimitLearnsOnlyFromItsOwnScope) {
  LearnedPacing pacing;
  deliver(pacing, "T2", kOrigin, 10);
  const sdk::SteadyTime answered = kOrigin + 5ms;
  pacing.limited("T1", kOrigin, answered);
  EXPECT_EQ(pacing.rate("T1", answered), Pacing::kFirstFloor);
  EXPECT_EQ(pacing.rate("T2", answered), std::nullopt);
}

TEST(LearnedPacingTest, DeliveriesInFlightWhenTheLimitCameBackRaiseTheFirstRate) {
  LearnedPacing pacing;
  deliver(pacing, "T1", kOrigin - 100ms, 4);
  const sdk::SteadyTime answered = kOrigin + 50ms;
  pacing.limited("T1", kOrigin, answered);
  ASSERT_EQ(pacing.rate("T1", answered), 4.0);
  pacing.delivered("T1", kOrigin + 10ms);   // sent after the refused one
  EXPECT_EQ(pacing.rate("T1", answered), 5.0);
  pacing.delivered("T1", kOrigin - 200ms);  // sent before it, arrived after the 429
  EXPECT_EQ(pacing.rate("T1", answered), 6.0);
  pacing.delivered("T1", answered);         // sent as the 429 came back: the window's edge
  EXPECT_EQ(pacing.rate("T1", answered), 7.0);
}

TEST(LearnedPacingTest, DeliveriesNoLongerRaiseTheFirstRateOnceTheScopeSendsAgain) {
  LearnedPacing pacing;
  deliver(pacing, "T1", kOrigin - 100ms, 4);
  const sdk::SteadyTime answered = kOrigin + 50ms;
  pacing.limited("T1", kOrigin, answered);
  pacing.sent("T1", answered + 10ms);
  pacing.delivered("T1", kOrigin + 10ms);  // was in flight, but arrives too late
  EXPECT_EQ(pacing.rate("T1", answered), 4.0);
}

TEST(LearnedPacingTest, DeliverySentAfterTheLimitCameBackDoesNotRaiseTheFirstRate) {
  LearnedPacing pacing;
  deliver(pacing, "T1", kOrigin - 100ms, 4);
  const sdk::SteadyTime answered = kOrigin + 50ms;
  pacing.limited("T1", kOrigin, answered);
  pacing.delivered("T1", answered + 1ns);
  EXPECT_EQ(pacing.rate("T1", answered), 4.0);
}

// Each delivery counts as one, up to kLogSize: a receiver that took more in
// that time is credited with kLogSize a second, never with a rate
// extrapolated from deliveries bunched in a few milliseconds.
TEST(LearnedPacingTest, AtMostLogSizeDeliveriesAreCredited) {
  LearnedPacing pacing;
  constexpr int kDeliveries = 2 * int{Pacing::kLogSize};
  const sdk::SteadyTime start = kOrigin - 500ms;
  const auto step = std::chrono::nanoseconds(500ms) / kDeliveries;
  for (int i = 0; i < kDeliveries; ++i) pacing.delivered("T1", start + i * step);
  pacing.limited("T1", kOrigin, kOrigin + 5ms);
  EXPECT_DOUBLE_EQ(pacing.rate("T1", kOrigin + 5ms).value(), double{Pacing::kLogSize});
}

TEST(LearnedPacingTest, DeliveriesBunchedJustBeforeTheRefusedRequestCountOnlyAsThemselves) {
  LearnedPacing pacing;
  for (int i = 0; i < int{Pacing::kLogSize}; ++i) pacing.delivered("T1", kOrigin - 1ms);
  pacing.limited("T1", kOrigin, kOrigin + 5ms);
  EXPECT_DOUBLE_EQ(pacing.rate("T1", kOrigin + 5ms).value(), double{Pacing::kLogSize});
}

// ---- Later 429s ----

TEST(LearnedPacingTest, LimitForARequestSentBeforeTheLastSlowDownChangesNothing) {
  LearnedPacing pacing;
  deliver(pacing, "T1", kOrigin, 10);
  const sdk::SteadyTime slowed = kOrigin + 5ms;
  pacing.limited("T1", kOrigin, slowed);
  // Sent after the refused request, while its 429 was on its way back.
  EXPECT_FALSE(pacing.limited("T1", kOrigin + 1ms, slowed + 20ms));
  EXPECT_EQ(pacing.rate("T1", slowed), 10.0);
  // Nor did it restart the recovery.
  EXPECT_DOUBLE_EQ(pacing.rate("T1", slowed + 1s).value(), 10.0 * (1 + Pacing::kRecovery * 1));
}

TEST(LearnedPacingTest, LimitForARequestSentAfterTheLastSlowDownMultipliesTheRateByDecrease) {
  LearnedPacing pacing;
  deliver(pacing, "T1", kOrigin, 10);
  const sdk::SteadyTime slowed = kOrigin + 5ms;
  pacing.limited("T1", kOrigin, slowed);
  EXPECT_TRUE(pacing.limited("T1", slowed, slowed));  // sent at the slow-down: after it
  EXPECT_DOUBLE_EQ(pacing.rate("T1", slowed).value(), 10.0 * Pacing::kDecrease);
}

TEST(LearnedPacingTest, DecreaseAppliesToTheRateRecoveredSoFarAndRestartsRecovery) {
  LearnedPacing pacing;
  deliver(pacing, "T1", kOrigin, 10);
  const sdk::SteadyTime slowed = kOrigin + 5ms;
  pacing.limited("T1", kOrigin, slowed);
  const sdk::SteadyTime again = slowed + 10s;
  EXPECT_TRUE(pacing.limited("T1", again - 5ms, again));
  const double base = 10.0 * (1 + Pacing::kRecovery * 10) * Pacing::kDecrease;  // 8.4
  EXPECT_DOUBLE_EQ(pacing.rate("T1", again).value(), base);
  EXPECT_DOUBLE_EQ(pacing.rate("T1", again + 10s).value(), base * (1 + Pacing::kRecovery * 10));
}

TEST(LearnedPacingTest, ManyLimitsInARowNeverGoBelowTheFloor) {
  LearnedPacing pacing;
  const sdk::SteadyTime slowed = kOrigin + 5ms;
  pacing.limited("C1", kOrigin, slowed);
  double expected = Pacing::kFirstFloor;
  for (int i = 0; i < 30; ++i) {  // 0.8^19 < 1/60: the floor is reached on the way
    pacing.limited("C1", slowed, slowed);
    expected = std::max(Pacing::kFloor, expected * Pacing::kDecrease);
    EXPECT_DOUBLE_EQ(pacing.rate("C1", slowed).value(), expected) << "after " << i + 1;
  }
  EXPECT_EQ(pacing.rate("C1", slowed), Pacing::kFloor);
}

// ---- Spacing ----

TEST(LearnedPacingTest, SendsAreSpacedOneOverTheRateApart) {
  LearnedPacing pacing;
  deliver(pacing, "T1", kOrigin, 10);
  const sdk::SteadyTime slowed = kOrigin + 5ms;
  pacing.limited("T1", kOrigin, slowed);
  EXPECT_EQ(pacing.next_send("T1", slowed), slowed);  // nothing sent since
  pacing.sent("T1", slowed);
  EXPECT_EQ(pacing.next_send("T1", slowed), slowed + 100ms);  // 1 / (10/s)
  EXPECT_EQ(pacing.next_send("T1", slowed + 60ms), slowed + 100ms);
}

TEST(LearnedPacingTest, IdleScopeMayGoAtOnceButSavesNoBurst) {
  LearnedPacing pacing;
  deliver(pacing, "T1", kOrigin, 10);
  const sdk::SteadyTime slowed = kOrigin + 5ms;
  pacing.limited("T1", kOrigin, slowed);
  pacing.sent("T1", slowed);
  const sdk::SteadyTime later = slowed + 5s;
  EXPECT_EQ(pacing.next_send("T1", later), later);
  pacing.sent("T1", later);
  // Five idle seconds bought one send now, not fifty: the next is a spacing on.
  const double rate = pacing.rate("T1", later).value();  // 10.25/s
  EXPECT_DOUBLE_EQ(rate, 10.0 * (1 + Pacing::kRecovery * 5));
  EXPECT_NEAR(seconds(pacing.next_send("T1", later) - later), 1 / rate, 1e-9);
}

// ---- Recovery ----

TEST(LearnedPacingTest, RateRecoversByRecoveryOfTheBasePerSecond) {
  LearnedPacing pacing;
  deliver(pacing, "T1", kOrigin, 10);
  const sdk::SteadyTime slowed = kOrigin + 5ms;
  pacing.limited("T1", kOrigin, slowed);
  EXPECT_DOUBLE_EQ(pacing.rate("T1", slowed + 10s).value(), 10.0 * (1 + Pacing::kRecovery * 10));
  EXPECT_DOUBLE_EQ(pacing.rate("T1", slowed + 100s).value(), 10.0 * (1 + Pacing::kRecovery * 100));
}

TEST(LearnedPacingTest, ForgetRecoveredDropsThePaceOnlyOnceItHasRecovered) {
  LearnedPacing pacing;
  deliver(pacing, "T1", kOrigin, 10);
  const sdk::SteadyTime slowed = kOrigin + 5ms;
  pacing.limited("T1", kOrigin, slowed);
  const auto recovery = std::chrono::duration_cast<sdk::SteadyTime::duration>(
      std::chrono::duration<double>(1 / Pacing::kRecovery));  // 200 s
  EXPECT_THAT(pacing.forget_recovered(slowed + recovery - 1ns), IsEmpty());
  EXPECT_EQ(pacing.paced(), 1u);
  EXPECT_DOUBLE_EQ(pacing.rate("T1", slowed + recovery).value(), 2 * 10.0);  // doubled
  EXPECT_THAT(pacing.forget_recovered(slowed + recovery), ElementsAre("T1"));
  EXPECT_EQ(pacing.paced(), 0u);
  EXPECT_EQ(pacing.rate("T1", slowed + recovery), std::nullopt);
  EXPECT_EQ(pacing.next_send("T1", slowed + recovery), slowed + recovery);
}

TEST(LearnedPacingTest, ForgetRecoveredCountsFromTheLastSlowDown) {
  LearnedPacing pacing;
  const sdk::SteadyTime slowed = kOrigin + 5ms;
  pacing.limited("C1", kOrigin, slowed);
  const sdk::SteadyTime again = slowed + 50s;
  pacing.limited("C1", again - 5ms, again);
  const auto recovery = std::chrono::duration_cast<sdk::SteadyTime::duration>(
      std::chrono::duration<double>(1 / Pacing::kRecovery));
  EXPECT_THAT(pacing.forget_recovered(slowed + recovery), IsEmpty());
  EXPECT_THAT(pacing.forget_recovered(again + recovery - 1ns), IsEmpty());
  EXPECT_THAT(pacing.forget_recovered(again + recovery), ElementsAre("C1"));
}

TEST(LearnedPacingTest, ForgetRecoveredKeepsAPaceUntilItsNextSendIsDue) {
  LearnedPacing pacing;
  deliver(pacing, "T1", kOrigin, 10);
  const sdk::SteadyTime slowed = kOrigin + 5ms;
  pacing.limited("T1", kOrigin, slowed);
  const auto recovery = std::chrono::duration_cast<sdk::SteadyTime::duration>(
      std::chrono::duration<double>(1 / Pacing::kRecovery));
  pacing.sent("T1", slowed + recovery - 10ms);  // next one about 50 ms later, at ~20/s
  const sdk::SteadyTime due = pacing.next_send("T1", slowed + recovery);
  ASSERT_GT(due, slowed + recovery);
  EXPECT_THAT(pacing.forget_recovered(slowed + recovery), IsEmpty());
  EXPECT_THAT(pacing.forget_recovered(due), ElementsAre("T1"));
}

TEST(LearnedPacingTest, ForgetRecoveredForgetsDeliveryLogsOverASecondOld) {
  LearnedPacing pacing;
  pacing.delivered("T1", kOrigin);
  pacing.delivered("T2", kOrigin + 500ms);
  ASSERT_EQ(pacing.logged(), 2u);
  pacing.forget_recovered(kOrigin + 1s);  // T1's newest is a second old: the edge, kept
  EXPECT_EQ(pacing.logged(), 2u);
  pacing.forget_recovered(kOrigin + 1s + 1ns);
  EXPECT_EQ(pacing.logged(), 1u);
  pacing.forget_recovered(kOrigin + 1s + 500ms + 1ns);
  EXPECT_EQ(pacing.logged(), 0u);
}

}  // namespace
}  // namespace slack_proxy

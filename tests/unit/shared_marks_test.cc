// sdk::LocalSharedMarks, the in-process set every stage gets without Redis
// (and every FakeHost): what a mark holds, for how long, and that a shorter
// one never cuts a longer one short.
#include <gtest/gtest.h>
#include <slack_proxy/sdk/marks.h>
#include <slack_proxy/sdk/testing/fakes.h>

namespace slack_proxy {
namespace {

using namespace std::chrono_literals;

class LocalSharedMarksTest : public ::testing::Test {
 protected:
  sdk::SteadyTime now() const { return clock_.now(); }
  sdk::testing::FakeClock clock_;
  sdk::LocalSharedMarks marks_;
};

TEST_F(LocalSharedMarksTest, AMarkHoldsItsNoteUntilItsTtlAndNotAMomentLonger) {
  EXPECT_FALSE(marks_.find("#gone", now()));
  marks_.set("#gone", 10s, "channel_not_found", now());
  const auto mark = marks_.find("#gone", now());
  ASSERT_TRUE(mark);
  EXPECT_EQ(mark->note, "channel_not_found");
  EXPECT_EQ(mark->until, now() + 10s);
  EXPECT_EQ(marks_.count(now()), 1u);
  clock_.advance(10s - 1ms);
  EXPECT_TRUE(marks_.find("#gone", now()));
  clock_.advance(1ms);
  EXPECT_FALSE(marks_.find("#gone", now()));
  EXPECT_EQ(marks_.count(now()), 0u);
}

TEST_F(LocalSharedMarksTest, AShorterMarkKeepsTheLongerOneAndALongerOneReplacesIt) {
  marks_.set("#x", 10s, "first", now());
  marks_.set("#x", 2s, "shorter", now());
  EXPECT_EQ(marks_.find("#x", now())->note, "first");
  EXPECT_EQ(marks_.find("#x", now())->until, now() + 10s);
  clock_.advance(5s);
  marks_.set("#x", 10s, "later", now());
  EXPECT_EQ(marks_.find("#x", now())->note, "later");
  EXPECT_EQ(marks_.find("#x", now())->until, now() + 10s);
}

TEST_F(LocalSharedMarksTest, ClearRemovesOneKeyOnly) {
  marks_.set("#a", 10s, "e", now());
  marks_.set("#b", 10s, "e", now());
  marks_.clear("#a");
  marks_.clear("#never-set");
  EXPECT_FALSE(marks_.find("#a", now()));
  EXPECT_TRUE(marks_.find("#b", now()));
  EXPECT_EQ(marks_.count(now()), 1u);
}

}  // namespace
}  // namespace slack_proxy

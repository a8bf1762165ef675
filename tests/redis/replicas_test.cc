// Two real proxies delivering with one token to a strict fake Slack: with
// [redis] they share one channel bucket and Slack sees no 429; without it
// each spends the whole budget (the control, so the first test can fail).
#include <gtest/gtest.h>

#include "fake_slack.h"
#include "proxy_test.h"
#include "redis_server.h"

namespace slack_proxy::testing {
namespace {

using namespace std::chrono_literals;

constexpr int kMessages = 16;

class ReplicasTest : public ::testing::Test {
 protected:
  void SetUp() override {
    SP_REQUIRE_TOOL(program, "redis-server", "redis-server");
    redis_ = std::make_unique<RedisServer>(program);
    slack_.start();
    Limits limits;  // strict: no early request admitted
    limits.channel_rate = 5;
    limits.channel_burst = 2;
    limits.workspace_per_minute = 0;
    limits.retry_after_seconds = 1;
    slack_.enforce_limits(limits);
  }

  // The fake's own limits, and the fast retries of every test.
  std::string toml(bool with_redis) const {
    ProxyConfig c;
    c.slack_url = slack_.url();
    // A wide jitter allowance: under the sanitizers two processes' sends may
    // bunch by far more than the default 20 ms, and this test is about
    // sharing, not about jitter.
    c.stages = stage("token_bucket",
                     "key = \"channel\"\nrate = 5.0\nburst = 2\njitter = \"100ms\"\n") +
               ProxyConfig::fast_retry_stages();
    std::string text = c.toml();
    if (with_redis) text += "\n[redis]\nurl = \"" + redis_->url() + "\"\n";
    return text;
  }

  // kMessages to one channel, alternating between the two proxies, then
  // waits until Slack accepted every one.
  void storm(ProxyProcess& a, ProxyProcess& b) {
    for (int i = 0; i < kMessages; ++i) {
      ProxyProcess& p = i % 2 == 0 ? a : b;
      ASSERT_EQ(p.post(message("#shared", "m" + std::to_string(i))).status, 200);
    }
    // 429s are not recorded as requests: this waits for every delivery.
    ASSERT_TRUE(slack_.wait_for(kMessages, 30s))
        << a.log() << b.log();
  }

  std::unique_ptr<RedisServer> redis_;
  FakeSlack slack_;
};

TEST_F(ReplicasTest, TwoReplicasWithRedisShareTheChannelBudget) {
  ProxyProcess a(toml(true));
  ProxyProcess b(toml(true));
  ASSERT_TRUE(a.start());
  ASSERT_TRUE(b.start());
  ASSERT_TRUE(a.wait_for_log("shared token buckets and 429 pauses live in Redis"));
  storm(a, b);
  ASSERT_TRUE(a.wait_for_metric(series(kSucceeded, "#shared"), kMessages / 2));
  ASSERT_TRUE(b.wait_for_metric(series(kSucceeded, "#shared"), kMessages / 2));
  EXPECT_EQ(slack_.rate_limited(), 0u) << a.log() << b.log();
  EXPECT_GT(a.metrics().find("slackproxy_redis_commands_total"), 0u);
}

TEST_F(ReplicasTest, WithoutRedisTwoReplicasSpendTheBudgetTwice) {
  ProxyProcess a(toml(false));
  ProxyProcess b(toml(false));
  ASSERT_TRUE(a.start());
  ASSERT_TRUE(b.start());
  storm(a, b);
  ASSERT_TRUE(a.wait_for_metric(series(kSucceeded, "#shared"), kMessages / 2));
  ASSERT_TRUE(b.wait_for_metric(series(kSucceeded, "#shared"), kMessages / 2));
  EXPECT_GT(slack_.rate_limited(), 0u) << "the control drew no 429: the test above proves nothing";
}

}  // namespace
}  // namespace slack_proxy::testing

// Two real proxies delivering with one token to a strict fake Slack: with
// [redis] they share one channel bucket and Slack sees no 429; without it
// each spends the whole budget (the control, so the first test can fail).
// And a channel one of them parks (deny_list) is parked on the other.
#include <algorithm>
#include <thread>

#include <Poco/Net/SocketAddress.h>
#include <Poco/Redis/Array.h>
#include <Poco/Redis/Client.h>
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

// Whether some scope's marks hash in Redis holds `field`.
bool redis_has_mark(const RedisServer& server, const std::string& field) {
  Poco::Redis::Client client;
  client.connect(Poco::Net::SocketAddress("127.0.0.1", server.port()));
  Poco::Redis::Array keys;
  keys << "KEYS" << "slack-proxy:marks:*";
  const auto found = client.execute<Poco::Redis::Array>(keys);
  // Poco reads an empty reply as a null array, whose size() throws.
  for (std::size_t i = 0; !found.isNull() && i < found.size(); ++i) {
    Poco::Redis::Array exists;
    exists << "HEXISTS" << found.get<Poco::Redis::BulkString>(i).value() << field;
    if (client.execute<Poco::Int64>(exists) == 1) return true;
  }
  return false;
}

// Polls `p`'s /metrics until the series `name` reaches at least `least`.
::testing::AssertionResult metric_reaches(const ProxyProcess& p, const std::string& name,
                                          double least) {
  const auto deadline = std::chrono::steady_clock::now() + kDeadline;
  double seen = 0;
  while (std::chrono::steady_clock::now() < deadline) {
    seen = metric(p.metrics(), name);
    if (seen >= least) return ::testing::AssertionSuccess();
    std::this_thread::sleep_for(20ms);
  }
  return ::testing::AssertionFailure() << name << " stayed at " << seen << ", below " << least;
}

// The shared deny-list: a channel Slack told one replica does not exist is
// parked on the other too, which then sends nothing to it.
TEST_F(ReplicasTest, AChannelOneReplicaParksIsParkedOnTheOtherWhichNeverSendsToIt) {
  slack_.enqueue(Behaviour::error("channel_not_found"), 10, "#gone");
  ProxyProcess a(toml(true));
  ProxyProcess b(toml(true));
  ASSERT_TRUE(a.start());
  ASSERT_TRUE(b.start());
  ASSERT_TRUE(b.wait_for_log("shared marks (the deny-list's parked channels) live in Redis"));

  ASSERT_EQ(a.post(message("#gone", "first")).status, 200);
  ASSERT_TRUE(a.wait_for_log("parking channel #gone")) << a.log();
  const auto deadline = std::chrono::steady_clock::now() + kDeadline;
  while (!redis_has_mark(*redis_, "\n#gone") && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(20ms);
  ASSERT_TRUE(redis_has_mark(*redis_, "\n#gone")) << a.log();
  // b reads the marks back every 250 ms on a connection of their own: TIME
  // and one HGETALL, 2 commands a round, and nothing else while it sets
  // nothing. Four more than now are two rounds, the second one sent after
  // the mark was in Redis.
  const std::string marks_commands = "slackproxy_redis_commands_total{role=\"marks\"}";
  const double before = metric(b.metrics(), marks_commands);
  ASSERT_TRUE(metric_reaches(b, marks_commands, before + 4));

  ASSERT_EQ(b.post(message("#gone", "second")).status, 200);
  ASSERT_TRUE(b.wait_for_metric(series(kNotProcessed, "#gone"), 1)) << b.log();
  EXPECT_NE(b.log().find("channel #gone is parked after channel_not_found by another replica"),
            std::string::npos)
      << b.log();
  const auto seen = slack_.requests();
  EXPECT_EQ(
      std::count_if(seen.begin(), seen.end(), [](const auto& r) { return r.channel == "#gone"; }),
      1)
      << "b sent to the parked channel";
}

}  // namespace
}  // namespace slack_proxy::testing

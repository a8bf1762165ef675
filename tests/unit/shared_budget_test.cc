// One Slack budget per token, across pipelines of one process: the real
// token_bucket and slack_sink plugins, built from TOML as the proxy builds
// them, delivering to an in-process fake Slack; the dispatcher runs on a fake
// clock with sends run inline, so every pacing decision is exact.
#include <cstdlib>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <slack_proxy/sdk/testing/fakes.h>

#include "config/config.h"
#include "dispatcher.h"
#include "executor.h"
#include "fake_slack.h"
#include "host_services.h"
#include "metric_values.h"
#include "pipeline.h"
#include "plugin_host.h"
#include "queue/memory_queue.h"

namespace slack_proxy {
namespace {

using namespace std::chrono_literals;
using test_support::metric_value;

const std::string kDefaultPluginDir = SP_DEFAULT_PLUGIN_DIR;

// A pipeline at /<name> pacing each workspace to `rate` (by default one
// message a minute) with no burst beyond one, delivering with the token in
// `token_env`.
std::string pipeline(const std::string& name, const std::string& token_env,
                     const std::string& url, const std::string& bucket_extra = "",
                     const std::string& rate = "0.0166667") {
  return "[[pipeline]]\nname = \"" + name + "\"\npaths = [\"/" + name + "\"]\n" +
         "[[pipeline.stage]]\nplugin = \"token_bucket\"\nkey = \"workspace\"\n"
         "rate = " + rate + "\nburst = 1\njitter = \"0ms\"\n" + bucket_extra +
         "[[pipeline.stage]]\nplugin = \"slack_sink\"\nurl = \"" + url + "\"\ntoken_env = \"" +
         token_env + "\"\n";
}

class SharedBudgetTest : public ::testing::Test {
 protected:
  SharedBudgetTest() {
    ::setenv("SP_SHARED_BUDGET_TOKEN_A", "xoxb-shared-budget-a", 1);
    ::setenv("SP_SHARED_BUDGET_TOKEN_B", "xoxb-shared-budget-b", 1);
    slack.start();
  }

  void build(const std::string& toml) {
    pipelines = build_pipelines(config::parse_config(toml, "test.toml"), plugins, log,
                                host.stats, host.time);
    dispatcher = std::make_unique<Dispatcher>(queue, pipelines, host.time, metrics, log, executor);
  }

  void push(const std::string& id, const std::string& pipeline_name) {
    sdk::Message m;
    m.id = id;
    m.pipeline = pipeline_name;
    m.channel = "#alerts";
    m.original_channel = "#alerts";
    m.payload = R"({"channel":"#alerts","text":")" + id + R"("})";
    ASSERT_EQ(queue.push(std::move(m)).status, Queue::PushStatus::Accepted);
  }

  // Rounds and sends until nothing is left to do at the current fake time.
  void run_until_quiet() {
    for (int i = 0; i < 100; ++i) {
      dispatcher->run_once();
      if (executor.pending() == 0) return;
      executor.run_all();
    }
    FAIL() << "dispatcher still busy after 100 rounds";
  }

  testing::FakeSlack slack;
  PluginHost plugins{{kDefaultPluginDir}};
  sdk::testing::FakeHost host;
  std::shared_ptr<spdlog::logger> log = test_support::null_logger();
  MemoryQueue queue{100};
  prometheus::Registry registry;
  CoreMetrics metrics{registry};
  ManualExecutor executor;
  std::vector<std::shared_ptr<Pipeline>> pipelines;
  std::unique_ptr<Dispatcher> dispatcher;
};

// The name every replica agrees on for a token's budget, which must not
// give the token away: a fixed-size digest, the same for the same token.
TEST(BudgetIdTest, IsAStableDigestThatDoesNotContainTheCredential) {
  const std::string a = budget_id_of("xoxb-1111-token-a");
  EXPECT_EQ(a, budget_id_of("xoxb-1111-token-a"));
  EXPECT_NE(a, budget_id_of("xoxb-1111-token-b"));
  ASSERT_EQ(a.size(), 2u + 32u);
  EXPECT_EQ(a.substr(0, 2), "b-");
  EXPECT_EQ(a.find_first_not_of("0123456789abcdef", 2), std::string::npos) << a;
  EXPECT_EQ(a.find("xoxb"), std::string::npos);
}

TEST_F(SharedBudgetTest, TwoPipelinesWithOneTokenShareTheWorkspaceBucket) {
  build(pipeline("a", "SP_SHARED_BUDGET_TOKEN_A", slack.url()) +
        pipeline("b", "SP_SHARED_BUDGET_TOKEN_A", slack.url()));
  push("a1", "a");
  push("b1", "b");
  run_until_quiet();
  EXPECT_EQ(slack.count(), 1u) << "one token, one bucket of one";

  host.time.advance(60s);
  run_until_quiet();
  EXPECT_EQ(slack.count(), 2u) << "the next token, a minute later";
}

TEST_F(SharedBudgetTest, PipelinesWithDifferentTokensKeepTheirOwnBuckets) {
  build(pipeline("a", "SP_SHARED_BUDGET_TOKEN_A", slack.url()) +
        pipeline("b", "SP_SHARED_BUDGET_TOKEN_B", slack.url()));
  push("a1", "a");
  push("b1", "b");
  run_until_quiet();
  EXPECT_EQ(slack.count(), 2u);
}

TEST_F(SharedBudgetTest, APipelineMayKeepAPrivateBucket) {
  build(pipeline("a", "SP_SHARED_BUDGET_TOKEN_A", slack.url()) +
        pipeline("b", "SP_SHARED_BUDGET_TOKEN_A", slack.url(), "shared = false\n"));
  push("a1", "a");
  push("b1", "b");
  run_until_quiet();
  EXPECT_EQ(slack.count(), 2u) << "b opted out of the token's bucket";
}

TEST_F(SharedBudgetTest, A429PausesEveryPipelineThatSharesTheToken) {
  // Private buckets that never bind: only the pause can hold b back.
  build(pipeline("a", "SP_SHARED_BUDGET_TOKEN_A", slack.url(), "shared = false\n", "100") +
        pipeline("b", "SP_SHARED_BUDGET_TOKEN_A", slack.url(), "shared = false\n", "100"));
  slack.enqueue(testing::Behaviour::rate_limited(30));
  push("a1", "a");
  run_until_quiet();
  ASSERT_EQ(slack.count(), 1u);  // a1 refused: the token's workspace waits 30 s

  push("b1", "b");
  run_until_quiet();
  EXPECT_EQ(slack.count(), 1u) << "b delivers with the same token: it waits too";
  EXPECT_EQ(metric_value(registry, "slackproxy_rate_limited_total", {{"channel", "#alerts"}}), 1);

  host.time.advance(30s);
  run_until_quiet();
  EXPECT_EQ(slack.count(), 2u) << "a1 again, at the end of the pause";
  // Nothing had got through in the second before the 429: the workspace is
  // held to one message a second for now (LearnedPacing), b1 a second later.
  host.time.advance(1s);
  run_until_quiet();
  EXPECT_EQ(slack.count(), 3u);
}

TEST_F(SharedBudgetTest, TheRateLearnedFromA429IsExportedUntilTheWorkspaceRecovers) {
  build(pipeline("a", "SP_SHARED_BUDGET_TOKEN_A", slack.url(), "shared = false\n"));
  const std::map<std::string, std::string> labels{{"pipeline", "a"}, {"workspace", "default"}};
  EXPECT_FALSE(test_support::has_series(registry, "slackproxy_effective_rate", labels));

  slack.enqueue(testing::Behaviour::rate_limited(1));
  push("a1", "a");
  run_until_quiet();
  ASSERT_TRUE(test_support::has_series(registry, "slackproxy_effective_rate", labels));
  EXPECT_DOUBLE_EQ(metric_value(registry, "slackproxy_effective_rate", labels),
                   LearnedPacing::kFirstFloor);

  // Back to its configured pace once the learned rate has doubled, and the
  // spacing after its last send has passed.
  host.time.advance(std::chrono::seconds(static_cast<int>(1 / LearnedPacing::kRecovery)) + 1s);
  run_until_quiet();
  EXPECT_TRUE(test_support::has_series(registry, "slackproxy_effective_rate", labels));
  host.time.advance(1s);
  run_until_quiet();
  EXPECT_FALSE(test_support::has_series(registry, "slackproxy_effective_rate", labels));
  EXPECT_EQ(slack.count(), 2u) << "a1 delivered after the pause";
}

}  // namespace
}  // namespace slack_proxy

// reload.h's judgements: which changes need a restart, and how a reload
// describes what it changed.
#include "reload.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "config/config.h"

namespace slack_proxy {
namespace {

using ::testing::ElementsAre;
using ::testing::IsEmpty;

config::ProxyConfig parse(const std::string& text) {
  return config::parse_config(text, "test.toml");
}

const std::string kPipeline = R"(
[[pipeline]]
name = "slack"
[[pipeline.stage]]
plugin = "token_bucket"
rate = 1
[[pipeline.stage]]
plugin = "slack_sink"
)";

TEST(ReloadTest, PipelinesLogLevelAdminAndShutdownTimeoutChangeLive) {
  const auto before = parse("[log]\nlevel = \"info\"\n" + kPipeline);
  const auto after = parse(
      "[log]\nlevel = \"debug\"\n[admin]\nkey_file = \"/k\"\n[dispatcher]\n"
      "shutdown_timeout = \"5s\"\n[plugins]\npaths = [\"/p\"]\n" +
      kPipeline + "\n[[pipeline]]\nname = \"more\"\npaths = [\"/more\"]\n"
                  "[[pipeline.stage]]\nplugin = \"slack_sink\"\n");
  EXPECT_THAT(settings_needing_restart(before, after, true), IsEmpty());
  EXPECT_THAT(describe_changes(before, after),
              ElementsAre("pipeline 'more' added", "[log] level info -> debug",
                          "[plugins] paths changed", "[admin] key source changed",
                          "[dispatcher] shutdown_timeout changed"));
}

TEST(ReloadTest, EverySettingThatNeedsARestartIsNamed) {
  const auto before = parse(kPipeline);
  const auto after = parse(R"(
[server]
listen = "127.0.0.1:1"
max_json_depth = 8
[metrics]
max_channel_labels = 5
[queue]
backend = "memory"
capacity = 7
[redis]
url = "redis://127.0.0.1:6379"
[dispatcher]
workers = 3
lane_window = 2
)" + kPipeline);
  EXPECT_THAT(settings_needing_restart(before, after, false),
              ElementsAre("[server] listen", "[server] max_json_depth",
                          "[metrics] max_channel_labels", "[queue] backend", "[queue] capacity",
                          "[redis] url", "[dispatcher] workers", "[dispatcher] lane_window"));
}

// Callers' tokens need a sealing key in a durable queue, set up at start
// only when a pipeline took them then; the memory queue needs none.
TEST(ReloadTest, ACallerTokenPipelineNeedsARestartOnlyWhenTheQueueCannotSealTokens) {
  const auto before = parse(kPipeline);
  auto after = before;
  after.pipelines[0].delivery_token = "caller";
  const auto named = settings_needing_restart(before, after, false);
  ASSERT_EQ(named.size(), 1u);
  EXPECT_THAT(named[0], ::testing::HasSubstr("'slack' delivery_token = \"caller\""));
  EXPECT_THAT(settings_needing_restart(before, after, true), IsEmpty())
      << "a queue that can seal: it applies live";
}

// Of the restart-only sections, [dispatcher] shutdown_timeout alone changes
// live (read when a drain starts); each other setting is named.
TEST(ReloadTest, OfTheRestartOnlySectionsOnlyShutdownTimeoutChangesLive) {
  const auto before = parse(kPipeline);
  auto after = before;
  after.dispatcher.shutdown_timeout = std::chrono::milliseconds(1);  // live: not this
  EXPECT_THAT(settings_needing_restart(before, after, true), IsEmpty());
  after.server.tls_key = "changed";  // listed
  after.server.listen.host = "::1";  // listed
  EXPECT_THAT(settings_needing_restart(before, after, true),
              ElementsAre("[server] listen", "[server] tls_key"));
}

TEST(ReloadTest, StagesAddedRemovedChangedAndReorderedAreDescribedByName) {
  const auto before = parse(R"(
[[pipeline]]
name = "slack"
[[pipeline.stage]]
plugin = "channel_override"
channel = "#a"
[[pipeline.stage]]
plugin = "token_bucket"
[[pipeline.stage]]
plugin = "deny_list"
[[pipeline.stage]]
plugin = "slack_sink"
[[pipeline]]
name = "gone"
paths = ["/gone"]
[[pipeline.stage]]
plugin = "slack_sink"
)");
  const auto after = parse(R"(
[[pipeline]]
name = "slack"
paths = ["/", "/x"]
[[pipeline.stage]]
plugin = "token_bucket"
[[pipeline.stage]]
plugin = "channel_override"
channel = "#b"
[[pipeline.stage]]
plugin = "slack_retry"
[[pipeline.stage]]
plugin = "slack_sink"
)");
  EXPECT_THAT(describe_changes(before, after),
              ElementsAre("pipeline 'slack': paths changed",
                          "pipeline 'slack': stage 'channel_override' settings changed",
                          "pipeline 'slack': stage 'slack_retry' (plugin slack_retry) added",
                          "pipeline 'slack': stage 'deny_list' (plugin deny_list) removed",
                          "pipeline 'slack': stages reordered",
                          "pipeline 'gone' removed (its queued messages become dead letters, "
                          "unknown_pipeline, as they come up)"));
}

TEST(ReloadTest, SettingValuesNeverAppearInTheDescription) {
  const auto before = parse(kPipeline);
  auto text = kPipeline;
  text.replace(text.find("plugin = \"slack_sink\""), 21,
               "plugin = \"slack_sink\"\ntoken_file = \"/secret-path-xyz\"");
  const auto after = parse(text);
  const auto lines = describe_changes(before, after);
  EXPECT_THAT(lines, ElementsAre("pipeline 'slack': stage 'slack_sink' settings changed"));
}

}  // namespace
}  // namespace slack_proxy

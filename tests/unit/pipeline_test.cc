// validate_pipelines / build_pipelines: the shape rules and how problems are
// reported, using the real default plugins from the build tree.
#include "pipeline.h"

#include <cstdlib>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <spdlog/sinks/null_sink.h>
#include <spdlog/spdlog.h>

#include <slack_proxy/sdk/testing/fakes.h>

#include "config/config.h"

namespace slack_proxy {
namespace {

using ::testing::HasSubstr;

const std::string kDefaultPluginDir = SP_DEFAULT_PLUGIN_DIR;
// tests/abi_plugins: secret_router and faulty_sink.
const std::string kAbiTestPluginDir = SP_ABI_TEST_PLUGIN_DIR;

config::ProxyConfig parse(const std::string& pipeline_tables) {
  return config::parse_config("[[pipeline]]\nname = \"p\"\n" + pipeline_tables, "test.toml");
}

std::string validation_error(const config::ProxyConfig& cfg) {
  PluginHost host({kDefaultPluginDir});
  try {
    validate_pipelines(cfg, host);
  } catch (const config::ConfigError& e) {
    return e.what();
  }
  return "(valid)";
}

TEST(PipelineTest, ValidPipelineWithEveryDefaultPluginPasses) {
  auto cfg = parse(R"(
[[pipeline.stage]]
plugin = "channel_override"
channel = "#x"
[[pipeline.stage]]
plugin = "token_bucket"
[[pipeline.stage]]
plugin = "deny_list"
[[pipeline.stage]]
plugin = "slack_retry"
[[pipeline.stage]]
plugin = "slack_sink"
)");
  EXPECT_EQ(validation_error(cfg), "(valid)");
}

TEST(PipelineTest, PipelineWithoutSinkIsRefused) {
  auto cfg = parse("[[pipeline.stage]]\nplugin = \"token_bucket\"\n");
  EXPECT_THAT(validation_error(cfg), HasSubstr("pipeline 'p' needs exactly one sink stage, has 0"));
}

TEST(PipelineTest, TwoSinksAreRefused) {
  auto cfg = parse(R"(
[[pipeline.stage]]
plugin = "slack_sink"
[[pipeline.stage]]
plugin = "slack_sink"
name = "second"
)");
  EXPECT_THAT(validation_error(cfg), HasSubstr("needs exactly one sink stage, has 2"));
}

TEST(PipelineTest, TwoRetryPoliciesAreRefused) {
  auto cfg = parse(R"(
[[pipeline.stage]]
plugin = "slack_retry"
[[pipeline.stage]]
plugin = "slack_retry"
name = "again"
[[pipeline.stage]]
plugin = "slack_sink"
)");
  EXPECT_THAT(validation_error(cfg), HasSubstr("2 retry policies; at most one is allowed"));
}

TEST(PipelineTest, UnknownPluginNamesPositionAndListsAvailable) {
  auto cfg = parse("[[pipeline.stage]]\nplugin = \"no_such_plugin\"\n");
  const std::string err = validation_error(cfg);
  EXPECT_THAT(err, HasSubstr("test.toml:"));
  EXPECT_THAT(err, HasSubstr("plugin 'no_such_plugin' not found"));
  EXPECT_THAT(err, HasSubstr("slack_sink"));  // the list of what does exist
}

TEST(PipelineTest, BadStageSettingsAreReportedWithEveryOtherProblem) {
  auto cfg = parse(R"(
[[pipeline.stage]]
plugin = "token_bucket"
rat = 2
[[pipeline.stage]]
plugin = "slack_sink"
timeout = 5
)");
  const std::string err = validation_error(cfg);
  EXPECT_THAT(err, HasSubstr("unknown key 'rat'"));
  EXPECT_THAT(err, HasSubstr("timeout"));
}

TEST(PipelineTest, FactoryRefusalNamesStageAndPosition) {
  auto cfg = parse(R"(
[[pipeline.stage]]
plugin = "token_bucket"
rate = -1.0
[[pipeline.stage]]
plugin = "slack_sink"
)");
  PluginHost host({kDefaultPluginDir});
  sdk::testing::FakeHost fake;
  auto log = spdlog::null_logger_mt("pipeline_test_factory");
  try {
    build_pipelines(cfg, host, log, fake.stats, fake.time);
    FAIL() << "a negative rate was accepted";
  } catch (const config::ConfigError& e) {
    EXPECT_THAT(e.what(), HasSubstr("test.toml:"));
    EXPECT_THAT(e.what(), HasSubstr("token_bucket"));
    EXPECT_THAT(e.what(), HasSubstr("rate"));
  }
}

TEST(PipelineTest, ValidateRunsEveryFactoryAndCollectsEachRefusal) {
  auto cfg = parse(R"(
[[pipeline.stage]]
plugin = "token_bucket"
rate = -1.0
[[pipeline.stage]]
plugin = "slack_retry"
jitter = 2.0
[[pipeline.stage]]
plugin = "slack_sink"
)");
  const std::string err = validation_error(cfg);
  EXPECT_THAT(err, HasSubstr("'rate' must be > 0, got -1"));
  EXPECT_THAT(err, HasSubstr("jitter"));
}

TEST(PipelineTest, ValidateReadsNoSecrets) {
  ::unsetenv("SP_PIPELINE_TEST_ABSENT_TOKEN");
  auto cfg = parse(R"(
[[pipeline.stage]]
plugin = "slack_sink"
token_env = "SP_PIPELINE_TEST_ABSENT_TOKEN"
)");
  EXPECT_EQ(validation_error(cfg), "(valid)");
  // ... while starting for real needs the token.
  PluginHost host({kDefaultPluginDir});
  sdk::testing::FakeHost fake;
  auto log = spdlog::null_logger_mt("pipeline_test_secrets");
  try {
    build_pipelines(cfg, host, log, fake.stats, fake.time);
    FAIL() << "started without its token";
  } catch (const config::ConfigError& e) {
    EXPECT_THAT(e.what(), HasSubstr("SP_PIPELINE_TEST_ABSENT_TOKEN is not set"));
  }
}

// A secret the schema declares (sdk::Secret, read by the host): validate
// judges its shape only, a start reads it. tests/abi_plugins/secret_router
// refuses to be handed the secret in a check, or built without it.
class SecretSettingTest : public ::testing::Test {
 protected:
  static constexpr const char* kVariable = "SP_PIPELINE_TEST_SDK_SECRET";
  void TearDown() override { ::unsetenv(kVariable); }

  static config::ProxyConfig config() {
    return parse(std::string(R"(
[[pipeline.stage]]
plugin = "secret_router"
secret = { env = ")") + kVariable + R"(" }
[[pipeline.stage]]
plugin = "faulty_sink"
)");
  }
  static std::vector<std::filesystem::path> dirs() {
    return {kDefaultPluginDir, kAbiTestPluginDir};
  }

  static std::string validation_error() {
    PluginHost host(dirs());
    try {
      validate_pipelines(config(), host);
    } catch (const config::ConfigError& e) {
      return e.what();
    }
    return "(valid)";
  }
  static std::string build_error(const std::string& logger) {
    PluginHost host(dirs());
    sdk::testing::FakeHost fake;
    try {
      build_pipelines(config(), host, spdlog::null_logger_mt(logger), fake.stats, fake.time);
    } catch (const config::ConfigError& e) {
      return e.what();
    }
    return "(built)";
  }
};

TEST_F(SecretSettingTest, ValidatePassesWithoutTheSecretWhichStartingNeedsAndNames) {
  ::unsetenv(kVariable);

  EXPECT_EQ(validation_error(), "(valid)");
  const std::string err = build_error("pipeline_test_secret_unset");
  EXPECT_THAT(err, HasSubstr("test.toml:"));
  EXPECT_THAT(err, HasSubstr("'secret'"));
  EXPECT_THAT(err, HasSubstr(kVariable));
}

TEST_F(SecretSettingTest, ValidateDoesNotReadASecretThatIsThereWhileStartingDoes) {
  const std::string value = "sp-pipeline-test-secret-value-7c1e";
  ::setenv(kVariable, value.c_str(), 1);

  // secret_router refuses a check that was handed the secret.
  EXPECT_EQ(validation_error(), "(valid)");
  // ...and a start that was not.
  EXPECT_EQ(build_error("pipeline_test_secret_set"), "(built)");
}

TEST(PipelineTest, BuildPutsEachStageInItsSlotInFileOrder) {
  ::setenv("SP_PIPELINE_TEST_TOKEN", "xoxb-unit-test", 1);
  auto cfg = parse(R"(
paths = ["/a", "/b"]
[[pipeline.stage]]
plugin = "channel_override"
channel = "#first"
[[pipeline.stage]]
plugin = "channel_override"
name = "second"
channel = "#second"
[[pipeline.stage]]
plugin = "token_bucket"
[[pipeline.stage]]
plugin = "deny_list"
[[pipeline.stage]]
plugin = "slack_sink"
token_env = "SP_PIPELINE_TEST_TOKEN"
)");
  PluginHost host({kDefaultPluginDir});
  sdk::testing::FakeHost fake;
  auto log = spdlog::null_logger_mt("pipeline_test_build");
  auto pipelines = build_pipelines(cfg, host, log, fake.stats, fake.time);
  ASSERT_EQ(pipelines.size(), 1u);
  const Pipeline& p = *pipelines[0];
  EXPECT_EQ(p.name, "p");
  EXPECT_EQ(p.paths, (std::vector<std::string>{"/a", "/b"}));
  EXPECT_EQ(p.authenticator, nullptr);
  ASSERT_EQ(p.routers.size(), 2u);
  EXPECT_EQ(p.limiters.size(), 1u);
  EXPECT_EQ(p.guards.size(), 1u);
  EXPECT_NE(p.sink, nullptr);
  EXPECT_EQ(p.retry, nullptr);
  // Routers run in file order: the second override wins.
  sdk::Message m;
  m.channel = "#orig";
  for (const auto& r : p.routers) ASSERT_TRUE(r->route(m).accepted);
  EXPECT_EQ(m.channel, "#second");
}

}  // namespace
}  // namespace slack_proxy

namespace slack_proxy {
namespace {

// A reload's build takes over a limiter or guard that would be made the
// same again, with its state, and makes everything else anew.
class PipelineCarryOverTest : public ::testing::Test {
 protected:
  std::vector<std::shared_ptr<Pipeline>> build(const std::string& limiter_settings,
                                               const CarryOver* previous,
                                               std::vector<std::string>* carried = nullptr) {
    const auto cfg = parse(R"(
[[pipeline.stage]]
plugin = "token_bucket"
name = "per_channel"
key = "global"
)" + limiter_settings + R"(
[[pipeline.stage]]
plugin = "deny_list"
[[pipeline.stage]]
plugin = "slack_sink"
token_env = "SP_PIPELINE_TEST_TOKEN"
)");
    return build_pipelines(cfg, host, log, fake.stats, fake.time, buckets, nullptr, previous,
                           carried);
  }

  PluginHost host{{kDefaultPluginDir}};
  sdk::testing::FakeHost fake;
  std::shared_ptr<spdlog::logger> log = spdlog::null_logger_mt("pipeline_carry_over_test");
  std::shared_ptr<sdk::SharedBuckets> buckets = std::make_shared<sdk::LocalSharedBuckets>();
};

TEST_F(PipelineCarryOverTest, AnUnchangedLimiterIsTakenOverWithItsBucketNothingElseIs) {
  setenv("SP_PIPELINE_TEST_TOKEN", "xoxb-test", 1);
  const auto first = build("rate = 1\nburst = 1\n", nullptr);
  sdk::Message m;
  m.channel = "#a";
  auto& limiter = *first[0]->limiters[0];
  ASSERT_EQ(limiter.next_send_time(m, fake.time.now()), fake.time.now());
  limiter.on_send(m, fake.time.now());  // the one token is taken

  std::vector<std::string> carried;
  const CarryOver previous{first};
  const auto second = build("rate = 1\nburst = 1\n", &previous, &carried);
  EXPECT_EQ(second[0]->limiters[0], first[0]->limiters[0]) << "the same object";
  EXPECT_EQ(second[0]->guards[0], first[0]->guards[0]);
  EXPECT_NE(second[0]->sink, first[0]->sink) << "a sink reads its token again";
  EXPECT_EQ(carried, (std::vector<std::string>{"p/per_channel", "p/deny_list"}));
  EXPECT_GT(second[0]->limiters[0]->next_send_time(m, fake.time.now()), fake.time.now())
      << "no fresh burst after a reload";

  const CarryOver changed{second};
  const auto third = build("rate = 2\nburst = 1\n", &changed);
  EXPECT_NE(third[0]->limiters[0], second[0]->limiters[0]) << "its definition changed";
  EXPECT_EQ(third[0]->guards[0], second[0]->guards[0]);
}

}  // namespace
}  // namespace slack_proxy

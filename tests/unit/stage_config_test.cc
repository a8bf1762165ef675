#include "config/stage_config.h"

#include <string>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace slack_proxy::config {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::SizeIs;

using namespace std::chrono_literals;

constexpr sp_config_key kSchema[] = {
    {"rate", SP_VALUE_NUMBER, "1.0", 0, "messages per second"},
    {"burst", SP_VALUE_INTEGER, "3", 0, "messages allowed at once"},
    {"key", SP_VALUE_STRING, "global", 0, "what the bucket is keyed by"},
    {"ttl", SP_VALUE_DURATION, "15m", 0, "how long a channel stays parked"},
    {"verbose", SP_VALUE_BOOLEAN, "false", 0, "log every decision"},
    {"channels", SP_VALUE_STRING_LIST, R"(["a", "b"])", 0, "channels it applies to"},
    {"token_env", SP_VALUE_STRING, nullptr, 1, "environment variable holding the token"},
    {"label", SP_VALUE_STRING, nullptr, 0, "optional, no default"},
};
constexpr std::uint32_t kSchemaSize = sizeof(kSchema) / sizeof(kSchema[0]);

// A stage as the config loader hands it over: settings parsed from TOML (so
// every value has a position) and the stage table at line 10.
StageSpec stage(std::string_view settings, std::string plugin = "token_bucket", std::string name = {}) {
  StageSpec spec;
  spec.plugin = plugin;
  spec.name = name.empty() ? plugin : name;
  spec.settings = toml::parse(settings, std::string_view("cfg.toml"));
  spec.where = {"cfg.toml", 10, 1};
  return spec;
}

std::vector<std::string> errors_of(const StageSpec& spec, const sp_config_key* schema = kSchema,
                                   std::uint32_t size = kSchemaSize) {
  try {
    StageConfig::from_spec(spec, schema, size);
  } catch (const ConfigError& e) {
    return e.errors();
  }
  ADD_FAILURE() << "expected a ConfigError";
  return {};
}

std::string error_of(const StageSpec& spec, const sp_config_key* schema = kSchema,
                     std::uint32_t size = kSchemaSize) {
  const auto errors = errors_of(spec, schema, size);
  EXPECT_THAT(errors, SizeIs(1)) << ::testing::PrintToString(errors);
  return errors.empty() ? std::string() : errors.front();
}

TEST(StageConfigTest, ReadsEveryTypeFromTheFile) {
  const auto config = StageConfig::from_spec(stage(R"(rate = 2.5
burst = 7
key = "channel"
ttl = "90s"
verbose = true
channels = ["x", "y", "z"]
token_env = "SLACK_TOKEN"
label = "ops"
)"),
                                             kSchema, kSchemaSize);
  EXPECT_DOUBLE_EQ(config.get_number("rate"), 2.5);
  EXPECT_EQ(config.get_integer("burst"), 7);
  EXPECT_EQ(config.get_string("key"), "channel");
  EXPECT_EQ(config.get_duration("ttl"), 90s);
  EXPECT_TRUE(config.get_boolean("verbose"));
  EXPECT_THAT(config.get_string_list("channels"), ElementsAre("x", "y", "z"));
  EXPECT_EQ(config.get_string("token_env"), "SLACK_TOKEN");
  EXPECT_EQ(config.get_string("label"), "ops");
}

TEST(StageConfigTest, SourceOfNamesTheValuePosition) {
  const auto config =
      StageConfig::from_spec(stage("token_env = \"T\"\nrate = 2.0\n"), kSchema, kSchemaSize);
  EXPECT_EQ(config.source_of("token_env"), "cfg.toml:1:13");
  EXPECT_EQ(config.source_of("rate"), "cfg.toml:2:8");
}

TEST(StageConfigTest, FillsDefaultsFromTheSchema) {
  const auto config = StageConfig::from_spec(stage("token_env = \"T\"\n"), kSchema, kSchemaSize);
  EXPECT_DOUBLE_EQ(config.get_number("rate"), 1.0);
  EXPECT_EQ(config.get_integer("burst"), 3);
  // String defaults are plain text, not TOML strings with quotes.
  EXPECT_EQ(config.get_string("key"), "global");
  EXPECT_EQ(config.get_duration("ttl"), 15min);
  EXPECT_FALSE(config.get_boolean("verbose"));
  EXPECT_TRUE(config.has("verbose"));
  EXPECT_THAT(config.get_string_list("channels"), ElementsAre("a", "b"));
  EXPECT_EQ(config.source_of("rate"), "default");
  EXPECT_EQ(config.source_of("channels"), "default");
}

TEST(StageConfigTest, OptionalKeyWithoutDefaultIsAbsent) {
  const auto config = StageConfig::from_spec(stage("token_env = \"T\"\n"), kSchema, kSchemaSize);
  EXPECT_FALSE(config.has("label"));
  EXPECT_EQ(config.get_string("label"), "");
  EXPECT_EQ(config.source_of("label"), "");
}

TEST(StageConfigTest, IntegerIsAcceptedWhereANumberIsExpected) {
  const auto config = StageConfig::from_spec(stage("token_env = \"T\"\nrate = 2\n"), kSchema, kSchemaSize);
  EXPECT_DOUBLE_EQ(config.get_number("rate"), 2.0);
}

TEST(StageConfigTest, NumberIsRejectedWhereAnIntegerIsExpected) {
  EXPECT_EQ(error_of(stage("token_env = \"T\"\nburst = 2.5\n")),
            "cfg.toml:2:9: stage 'token_bucket': 'burst' must be an integer, got float");
}

TEST(StageConfigTest, WrongTypesNameExpectedAndActual) {
  EXPECT_EQ(error_of(stage("token_env = \"T\"\nrate = \"fast\"\n")),
            "cfg.toml:2:8: stage 'token_bucket': 'rate' must be a number, got string");
  EXPECT_EQ(error_of(stage("token_env = \"T\"\nkey = 5\n")),
            "cfg.toml:2:7: stage 'token_bucket': 'key' must be a string, got integer");
  EXPECT_EQ(error_of(stage("token_env = \"T\"\nverbose = \"yes\"\n")),
            "cfg.toml:2:11: stage 'token_bucket': 'verbose' must be a boolean, got string");
  EXPECT_EQ(error_of(stage("token_env = \"T\"\nchannels = \"a\"\n")),
            "cfg.toml:2:12: stage 'token_bucket': 'channels' must be an array of strings, got string");
  EXPECT_EQ(error_of(stage("token_env = \"T\"\nchannels = [\"a\", 1]\n")),
            "cfg.toml:2:12: stage 'token_bucket': 'channels' must be an array of strings, got an "
            "element of type integer");
}

TEST(StageConfigTest, DurationMustBeAValidDurationString) {
  EXPECT_EQ(error_of(stage("token_env = \"T\"\nttl = 15\n")),
            "cfg.toml:2:7: stage 'token_bucket': 'ttl' must be a duration string such as \"1s\", got integer");
  EXPECT_THAT(error_of(stage("token_env = \"T\"\nttl = \"15\"\n")),
              HasSubstr("cfg.toml:2:7: stage 'token_bucket': 'ttl' is not a valid duration: \"15\" has no unit"));
}

TEST(StageConfigTest, MissingRequiredKeyIsReportedWithItsMeaning) {
  EXPECT_EQ(error_of(stage("")),
            "cfg.toml:10:1: stage 'token_bucket': missing required key 'token_env' (environment "
            "variable holding the token)");
}

TEST(StageConfigTest, UnknownKeyListsAllowedKeysSorted) {
  EXPECT_EQ(error_of(stage("token_env = \"T\"\nrat = 1.0\n")),
            "cfg.toml:2:1: stage 'token_bucket': unknown key 'rat'; allowed: burst, channels, key, "
            "label, rate, token_env, ttl, verbose");
}

TEST(StageConfigTest, UnknownKeyForAPluginWithoutSettingsSaysSo) {
  EXPECT_EQ(error_of(stage("channel = \"#ops\"\n", "no_settings"), nullptr, 0),
            "cfg.toml:1:1: stage 'no_settings': unknown key 'channel'; this plugin takes no settings");
  EXPECT_NO_THROW(StageConfig::from_spec(stage("", "no_settings"), nullptr, 0));
}

TEST(StageConfigTest, MessagesNameBothStageAndPluginWhenTheyDiffer) {
  EXPECT_THAT(error_of(stage("", "token_bucket", "pace")),
              HasSubstr("stage 'pace' (plugin token_bucket): missing required key 'token_env'"));
}

TEST(StageConfigTest, CollectsEveryProblem) {
  const auto errors = errors_of(stage("rat = 1\nburst = \"x\"\nttl = \"soon\"\n"));
  ASSERT_THAT(errors, SizeIs(4)) << ::testing::PrintToString(errors);
  EXPECT_THAT(errors[0], HasSubstr("unknown key 'rat'"));
  EXPECT_THAT(errors[1], HasSubstr("'burst' must be an integer"));
  EXPECT_THAT(errors[2], HasSubstr("missing required key 'token_env'"));
  EXPECT_THAT(errors[3], HasSubstr("'ttl' is not a valid duration"));
}

TEST(StageConfigTest, BrokenDefaultIsReportedAsAPluginBug) {
  constexpr sp_config_key kBroken[] = {
      {"rate", SP_VALUE_NUMBER, "fast", 0, ""},
      {"ttl", SP_VALUE_DURATION, "15", 0, ""},
      {"channels", SP_VALUE_STRING_LIST, "[1]", 0, ""},
      {"burst", SP_VALUE_INTEGER, "2.5", 0, ""},
  };
  const auto errors = errors_of(stage(""), kBroken, 4);
  ASSERT_THAT(errors, SizeIs(4)) << ::testing::PrintToString(errors);
  // std::map order: burst, channels, rate, ttl.
  EXPECT_EQ(errors[0],
            "cfg.toml:10:1: stage 'token_bucket': plugin 'token_bucket' has an invalid default for "
            "'burst' (\"2.5\"): it must be an integer, got float (a bug in the plugin)");
  EXPECT_THAT(errors[1], HasSubstr("invalid default for 'channels' (\"[1]\"): it must be an array of strings"));
  EXPECT_THAT(errors[2], HasSubstr("invalid default for 'rate' (\"fast\"): it is not a TOML value"));
  EXPECT_THAT(errors[3], HasSubstr("invalid default for 'ttl' (\"15\"): it is not a valid duration"));
}

TEST(StageConfigTest, BrokenDefaultIsReportedEvenWhenTheKeyIsSet) {
  constexpr sp_config_key kBroken[] = {{"rate", SP_VALUE_NUMBER, "fast", 0, ""}};
  EXPECT_THAT(error_of(stage("rate = 2.0\n"), kBroken, 1),
              HasSubstr("invalid default for 'rate'"));
}

TEST(StageConfigTest, DuplicateSchemaKeyIsAPluginBug) {
  constexpr sp_config_key kTwice[] = {{"rate", SP_VALUE_NUMBER, nullptr, 0, ""},
                                      {"rate", SP_VALUE_INTEGER, nullptr, 0, ""}};
  EXPECT_THAT(error_of(stage(""), kTwice, 2),
              HasSubstr("plugin 'token_bucket' declares the setting 'rate' twice (a bug in the plugin)"));
}

TEST(StageConfigTest, GettersReturnZeroValuesForUnknownKeysAndWrongTypes) {
  const auto config = StageConfig::from_spec(stage("token_env = \"T\"\n"), kSchema, kSchemaSize);
  EXPECT_FALSE(config.has("nope"));
  EXPECT_EQ(config.get_string("nope"), "");
  EXPECT_EQ(config.get_integer("nope"), 0);
  EXPECT_EQ(config.get_number("nope"), 0.0);
  EXPECT_FALSE(config.get_boolean("nope"));
  EXPECT_EQ(config.get_duration("nope"), 0ms);
  EXPECT_TRUE(config.get_string_list("nope").empty());
  EXPECT_EQ(config.source_of("nope"), "");
  // Asking with the wrong type.
  EXPECT_EQ(config.get_integer("key"), 0);
  EXPECT_EQ(config.get_string("burst"), "");
  EXPECT_EQ(config.get_duration("rate"), 0ms);
  EXPECT_TRUE(config.get_string_list("key").empty());
  // An integer setting read as a number widens, as sdk::testing::MapConfig does.
  EXPECT_DOUBLE_EQ(config.get_number("burst"), 3.0);
}

TEST(StageConfigTest, CopiedSpecFallsBackToTheStagePosition) {
  const StageSpec original = stage("token_env = \"T\"\nburst = 2.5\n");
  const StageSpec copy = original;  // toml++ drops positions on copy
  EXPECT_EQ(error_of(copy), "cfg.toml:10:1: stage 'token_bucket': 'burst' must be an integer, got float");
}

TEST(StageConfigTest, WorksOnStagesFromTheConfigLoader) {
  auto config = parse_config(R"([[pipeline]]
name = "slack"
[[pipeline.stage]]
plugin = "token_bucket"
name = "pace"
token_env = "T"
burst = 2.5
)",
                             "proxy.toml");
  EXPECT_EQ(error_of(config.pipelines[0].stages[0]),
            "proxy.toml:7:9: stage 'pace' (plugin token_bucket): 'burst' must be an integer, got float");
}

}  // namespace
}  // namespace slack_proxy::config

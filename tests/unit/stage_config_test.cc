#include "config/stage_config.h"

#include <stdlib.h>
#include <unistd.h>

#include <fstream>
#include <string>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace slack_proxy::config {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::Not;
using ::testing::SizeIs;

using namespace std::chrono_literals;

// A schema row as a 1.0 plugin wrote it: no bounds, no allowed values.
constexpr sp_config_key row(const char* key, sp_value_type type, const char* default_value,
                            int required, const char* doc) {
  sp_config_key k{};
  k.key = key;
  k.type = type;
  k.default_value = default_value;
  k.required = required;
  k.doc = doc;
  return k;
}

constexpr sp_config_key at_least(sp_config_key k, double min) {
  k.flags |= SP_KEY_HAS_MIN;
  k.min = min;
  return k;
}
constexpr sp_config_key above(sp_config_key k, double min) {
  k.flags |= SP_KEY_HAS_MIN | SP_KEY_MIN_EXCLUSIVE;
  k.min = min;
  return k;
}
constexpr sp_config_key at_most(sp_config_key k, double max) {
  k.flags |= SP_KEY_HAS_MAX;
  k.max = max;
  return k;
}
constexpr sp_config_key below(sp_config_key k, double max) {
  k.flags |= SP_KEY_HAS_MAX | SP_KEY_MAX_EXCLUSIVE;
  k.max = max;
  return k;
}

constexpr sp_config_key kSchema[] = {
    row("rate", SP_VALUE_NUMBER, "1.0", 0, "messages per second"),
    row("burst", SP_VALUE_INTEGER, "3", 0, "messages allowed at once"),
    row("key", SP_VALUE_STRING, "global", 0, "what the bucket is keyed by"),
    row("ttl", SP_VALUE_DURATION, "15m", 0, "how long a channel stays parked"),
    row("verbose", SP_VALUE_BOOLEAN, "false", 0, "log every decision"),
    row("channels", SP_VALUE_STRING_LIST, R"(["a", "b"])", 0, "channels it applies to"),
    row("token_env", SP_VALUE_STRING, nullptr, 1, "environment variable holding the token"),
    row("label", SP_VALUE_STRING, nullptr, 0, "optional, no default"),
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
      row("rate", SP_VALUE_NUMBER, "fast", 0, ""),
      row("ttl", SP_VALUE_DURATION, "15", 0, ""),
      row("channels", SP_VALUE_STRING_LIST, "[1]", 0, ""),
      row("burst", SP_VALUE_INTEGER, "2.5", 0, ""),
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
  constexpr sp_config_key kBroken[] = {row("rate", SP_VALUE_NUMBER, "fast", 0, "")};
  EXPECT_THAT(error_of(stage("rate = 2.0\n"), kBroken, 1),
              HasSubstr("invalid default for 'rate'"));
}

TEST(StageConfigTest, DuplicateSchemaKeyIsAPluginBug) {
  constexpr sp_config_key kTwice[] = {row("rate", SP_VALUE_NUMBER, nullptr, 0, ""),
                                      row("rate", SP_VALUE_INTEGER, nullptr, 0, "")};
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


// ------------------------------------------------------------- ABI 1.1 --

constexpr const char* kBucketKeys[] = {"global", "channel", "workspace", "client"};

constexpr sp_config_key enum_row(const char* default_value) {
  sp_config_key k = row("key", SP_VALUE_ENUM, default_value, 0, "one bucket per ...");
  k.allowed = kBucketKeys;
  k.allowed_size = 4;
  return k;
}

TEST(StageConfigTest, EnumAcceptsAListedValueAndReadsAsAString) {
  constexpr sp_config_key kEnum[] = {enum_row("global")};
  EXPECT_EQ(StageConfig::from_spec(stage("key = \"workspace\"\n"), kEnum, 1).get_string("key"),
            "workspace");
  EXPECT_EQ(StageConfig::from_spec(stage(""), kEnum, 1).get_string("key"), "global");
}

TEST(StageConfigTest, EnumRefusesAnUnlistedValueAndListsTheAllowedOnes) {
  constexpr sp_config_key kEnum[] = {enum_row("global")};
  EXPECT_EQ(error_of(stage("key = \"user\"\n"), kEnum, 1),
            "cfg.toml:1:7: stage 'token_bucket': 'key' must be one of \"global\", \"channel\", "
            "\"workspace\" or \"client\", got \"user\"");
  EXPECT_EQ(error_of(stage("key = 1\n"), kEnum, 1),
            "cfg.toml:1:7: stage 'token_bucket': 'key' must be a string, got integer");
}

TEST(StageConfigTest, EnumDefaultOutsideItsValuesOrWithoutValuesIsAPluginBug) {
  constexpr sp_config_key kBadDefault[] = {enum_row("user")};
  EXPECT_THAT(error_of(stage(""), kBadDefault, 1),
              HasSubstr("invalid default for 'key' (\"user\"): it must be one of \"global\""));
  constexpr sp_config_key kNoValues[] = {row("key", SP_VALUE_ENUM, nullptr, 0, "")};
  EXPECT_THAT(error_of(stage(""), kNoValues, 1),
              HasSubstr("declares the enum 'key' without allowed values (a bug in the plugin)"));
}

TEST(StageConfigTest, StringMapReadsATableOfStringsAndItsDefault) {
  constexpr sp_config_key kMap[] = {row("routes", SP_VALUE_STRING_MAP, R"({ "#a" = "#b" })", 0, "")};
  const auto set = StageConfig::from_spec(stage("routes = { \"#x\" = \"#y\", \"#z\" = \"#w\" }\n"), kMap, 1);
  EXPECT_EQ(set.get_string_map("routes"),
            (std::map<std::string, std::string>{{"#x", "#y"}, {"#z", "#w"}}));
  EXPECT_EQ(set.source_of("routes"), "cfg.toml:1:10");
  const auto defaulted = StageConfig::from_spec(stage(""), kMap, 1);
  EXPECT_EQ(defaulted.get_string_map("routes"), (std::map<std::string, std::string>{{"#a", "#b"}}));
  // A map is no list and no string.
  EXPECT_TRUE(defaulted.get_string_list("routes").empty());
  EXPECT_EQ(defaulted.get_string("routes"), "");
}

TEST(StageConfigTest, StringMapWithANonStringValueIsRefusedNamingItsKey) {
  constexpr sp_config_key kMap[] = {row("routes", SP_VALUE_STRING_MAP, nullptr, 0, "")};
  EXPECT_EQ(error_of(stage("[routes]\n\"#a\" = \"#b\"\n\"#c\" = 3\n"), kMap, 1),
            "cfg.toml:1:1: stage 'token_bucket': 'routes' must be a table of strings, got integer "
            "for key \"#c\"");
  EXPECT_EQ(error_of(stage("routes = [\"#a\"]\n"), kMap, 1),
            "cfg.toml:1:10: stage 'token_bucket': 'routes' must be a table of strings, got array");
}

TEST(StageConfigTest, BoundsAreCheckedAndWordedForEachType) {
  constexpr sp_config_key kBounded[] = {
      above(row("rate", SP_VALUE_NUMBER, nullptr, 0, ""), 0),
      at_least(row("burst", SP_VALUE_INTEGER, nullptr, 0, ""), 1),
      at_most(row("pool", SP_VALUE_INTEGER, nullptr, 0, ""), 1024),
      below(row("share", SP_VALUE_NUMBER, nullptr, 0, ""), 1),
      above(row("ttl", SP_VALUE_DURATION, nullptr, 0, ""), 0),
      at_most(row("timeout", SP_VALUE_DURATION, nullptr, 0, ""), 60000),
      at_least(row("routes", SP_VALUE_STRING_MAP, nullptr, 0, ""), 1),
      at_most(row("errors", SP_VALUE_STRING_LIST, nullptr, 0, ""), 1),
      at_least(row("channel", SP_VALUE_STRING, nullptr, 0, ""), 1),
  };
  auto error = [&](std::string_view toml) { return error_of(stage(toml), kBounded, 9); };
  EXPECT_EQ(error("rate = -1\n"), "cfg.toml:1:8: stage 'token_bucket': 'rate' must be > 0, got -1");
  EXPECT_EQ(error("rate = 0.0\n"), "cfg.toml:1:8: stage 'token_bucket': 'rate' must be > 0, got 0");
  EXPECT_EQ(error("burst = 0\n"), "cfg.toml:1:9: stage 'token_bucket': 'burst' must be >= 1, got 0");
  EXPECT_EQ(error("pool = 1025\n"), "cfg.toml:1:8: stage 'token_bucket': 'pool' must be <= 1024, got 1025");
  EXPECT_EQ(error("share = 1\n"), "cfg.toml:1:9: stage 'token_bucket': 'share' must be < 1, got 1");
  EXPECT_EQ(error("ttl = \"0s\"\n"), "cfg.toml:1:7: stage 'token_bucket': 'ttl' must be > 0ms, got 0ms");
  EXPECT_EQ(error("timeout = \"2m\"\n"),
            "cfg.toml:1:11: stage 'token_bucket': 'timeout' must be <= 1m, got 2m");
  EXPECT_EQ(error("routes = {}\n"),
            "cfg.toml:1:10: stage 'token_bucket': 'routes' must have at least 1 entry, got 0");
  EXPECT_EQ(error("errors = [\"a\", \"b\"]\n"),
            "cfg.toml:1:10: stage 'token_bucket': 'errors' must have at most 1 entry, got 2");
  EXPECT_EQ(error("channel = \"\"\n"),
            "cfg.toml:1:11: stage 'token_bucket': 'channel' must be at least 1 byte long, got 0");
  // NaN is within no bound; infinity is above every lower one.
  EXPECT_EQ(error("rate = nan\n"), "cfg.toml:1:8: stage 'token_bucket': 'rate' must be > 0, got nan");
  // The values on the edge pass.
  const auto ok = StageConfig::from_spec(
      stage("rate = 0.001\nburst = 1\npool = 1024\nshare = 0.99\nttl = \"1ms\"\ntimeout = \"1m\"\n"
            "routes = { a = \"b\" }\nerrors = [\"x\"]\nchannel = \"#\"\n"),
      kBounded, 9);
  EXPECT_EQ(ok.get_integer("pool"), 1024);
}

TEST(StageConfigTest, DefaultBreakingItsOwnBoundsIsAPluginBug) {
  constexpr sp_config_key kBroken[] = {at_least(row("burst", SP_VALUE_INTEGER, "0", 0, ""), 1)};
  EXPECT_EQ(error_of(stage("burst = 2\n"), kBroken, 1),
            "cfg.toml:10:1: stage 'token_bucket': plugin 'token_bucket' has an invalid default for "
            "'burst' (\"0\"): it must be >= 1, got 0 (a bug in the plugin)");
}

TEST(StageConfigTest, BoundsOnATypeWithoutThemIsAPluginBug) {
  constexpr sp_config_key kBroken[] = {at_least(row("verbose", SP_VALUE_BOOLEAN, nullptr, 0, ""), 1)};
  EXPECT_THAT(error_of(stage(""), kBroken, 1),
              HasSubstr("declares bounds on 'verbose', whose type has none (a bug in the plugin)"));
}

// ------------------------------------------------------------- secrets --

constexpr sp_config_key kSecret[] = {row("token", SP_VALUE_SECRET, nullptr, 1, "the bot token")};

// An environment variable only this test process uses, unset again on exit.
class ScopedVariable {
 public:
  explicit ScopedVariable(const std::string& value)
      : name_("SP_STAGE_CONFIG_TEST_" + std::to_string(::getpid())) {
    ::setenv(name_.c_str(), value.c_str(), 1);
  }
  ~ScopedVariable() { ::unsetenv(name_.c_str()); }
  const std::string& name() const { return name_; }

 private:
  std::string name_;
};

// A file in the test's temp dir holding `content`, removed on exit.
class ScopedFile {
 public:
  explicit ScopedFile(const std::string& content) {
    path_ = ::testing::TempDir() + "sp_secret_XXXXXX";
    const int fd = ::mkstemp(path_.data());
    EXPECT_GE(fd, 0);
    if (fd >= 0) ::close(fd);
    std::ofstream(path_, std::ios::binary) << content;
  }
  ~ScopedFile() { ::unlink(path_.c_str()); }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

// `token = { env = "..." }` on line 1: the table at column 9, an env value
// at 17, a file value at 18.
StageSpec secret_stage(const std::string& inline_table) {
  return stage("token = " + inline_table + "\n", "slack_sink");
}

TEST(StageConfigTest, SecretIsReadFromTheEnvironment) {
  const ScopedVariable variable("xoxb-from-env");
  const auto config =
      StageConfig::from_spec(secret_stage("{ env = \"" + variable.name() + "\" }"), kSecret, 1);
  EXPECT_TRUE(config.has("token"));
  EXPECT_EQ(config.get_secret("token"), "xoxb-from-env");
  EXPECT_EQ(config.source_of("token"), "cfg.toml:1:17");
  // Only get_secret() hands it out.
  EXPECT_EQ(config.get_string("token"), "");
}

TEST(StageConfigTest, SecretIsReadFromAFileWithoutTrailingWhitespace) {
  const ScopedFile file("xoxb-from-file \n\r\n\t");
  const auto config =
      StageConfig::from_spec(secret_stage("{ file = \"" + file.path() + "\" }"), kSecret, 1);
  EXPECT_EQ(config.get_secret("token"), "xoxb-from-file");
}

TEST(StageConfigTest, CheckOnlyReadsNoSecretAndHandsOutNone) {
  // Neither source exists: only the shape is checked.
  const auto from_env = StageConfig::from_spec(
      secret_stage("{ env = \"SP_STAGE_CONFIG_TEST_NEVER_SET\" }"), kSecret, 1, false);
  EXPECT_TRUE(from_env.has("token"));
  EXPECT_EQ(from_env.get_secret("token"), "");
  const auto from_file = StageConfig::from_spec(
      secret_stage("{ file = \"/nonexistent/sp/secret\" }"), kSecret, 1, false);
  EXPECT_EQ(from_file.get_secret("token"), "");
  // The shape still is checked.
  EXPECT_THAT(errors_of(secret_stage("\"xoxb\""), kSecret, 1), SizeIs(1));
  EXPECT_THROW(StageConfig::from_spec(secret_stage("{}"), kSecret, 1, false), ConfigError);
}

TEST(StageConfigTest, UnreadableSecretNamesKeyVariableOrPathAndPosition) {
  EXPECT_EQ(error_of(secret_stage("{ env = \"SP_STAGE_CONFIG_TEST_NEVER_SET\" }"), kSecret, 1),
            "cfg.toml:1:17: stage 'slack_sink': 'token': environment variable "
            "SP_STAGE_CONFIG_TEST_NEVER_SET is not set");
  const ScopedVariable empty("");
  EXPECT_EQ(error_of(secret_stage("{ env = \"" + empty.name() + "\" }"), kSecret, 1),
            "cfg.toml:1:17: stage 'slack_sink': 'token': environment variable " + empty.name() +
                " is empty");
  EXPECT_EQ(error_of(secret_stage("{ file = \"/nonexistent/sp/secret\" }"), kSecret, 1),
            "cfg.toml:1:18: stage 'slack_sink': 'token': \"/nonexistent/sp/secret\" does not exist");
  const ScopedFile blank(" \n\n");
  EXPECT_EQ(error_of(secret_stage("{ file = \"" + blank.path() + "\" }"), kSecret, 1),
            "cfg.toml:1:18: stage 'slack_sink': 'token': \"" + blank.path() + "\" is empty");
}

TEST(StageConfigTest, SecretMustBeExactlyOneOfEnvOrFile) {
  EXPECT_EQ(error_of(secret_stage("{ env = \"A\", file = \"/b\" }"), kSecret, 1),
            "cfg.toml:1:9: stage 'slack_sink': 'token' must set env or file, not both");
  EXPECT_EQ(error_of(secret_stage("{}"), kSecret, 1),
            "cfg.toml:1:9: stage 'slack_sink': 'token' must set env (an environment variable) or "
            "file (a path)");
  EXPECT_EQ(error_of(secret_stage("{ env = 3 }"), kSecret, 1),
            "cfg.toml:1:9: stage 'slack_sink': 'token' env must be a non-empty string naming an "
            "environment variable, got integer");
  EXPECT_EQ(error_of(stage("", "slack_sink"), kSecret, 1),
            "cfg.toml:10:1: stage 'slack_sink': missing required key 'token' (the bot token)");
}

TEST(StageConfigTest, NoErrorEverShowsASecretValue) {
  const std::string value = "xoxb-1234-never-shown";
  const ScopedVariable variable(value);
  const ScopedFile file(value + "\n");
  // Pasted in place of the table, beside another key, in an unknown key of
  // the table, and read fine while another setting is wrong.
  const std::vector<std::string> configs = {
      "token = \"" + value + "\"\n",
      "token = { value = \"" + value + "\" }\n",
      "token = { env = \"" + variable.name() + "\", value = \"" + value + "\" }\n",
      "token = { env = \"" + variable.name() + "\" }\nrate = -1\n",
      "token = { file = \"" + file.path() + "\" }\nrate = -1\n",
  };
  constexpr sp_config_key kSchemaWithSecret[] = {
      row("token", SP_VALUE_SECRET, nullptr, 1, ""),
      above(row("rate", SP_VALUE_NUMBER, nullptr, 0, ""), 0)};
  for (const auto& toml : configs) {
    const auto errors = errors_of(stage(toml, "slack_sink"), kSchemaWithSecret, 2);
    EXPECT_THAT(errors, Not(IsEmpty())) << toml;
    for (const auto& e : errors) EXPECT_THAT(e, Not(HasSubstr("1234"))) << toml;
  }
}

TEST(StageConfigTest, ADefaultForASecretIsAPluginBug) {
  constexpr sp_config_key kBroken[] = {row("token", SP_VALUE_SECRET, "xoxb-default", 0, "")};
  const auto error = error_of(stage("", "slack_sink"), kBroken, 1);
  EXPECT_EQ(error,
            "cfg.toml:10:1: stage 'slack_sink': plugin 'slack_sink' declares a default for the "
            "secret 'token': secrets come only from an environment variable or a file (a bug in "
            "the plugin)");
}

// --------------------------------------------------- describe_setting --

TEST(DescribeSettingTest, SaysTypeBoundsValuesRequiredAndDefault) {
  EXPECT_EQ(describe_setting(above(at_most(row("rate", SP_VALUE_NUMBER, "1", 0, ""), 1e9), 0)),
            "number, > 0 and <= 1e+09, default 1");
  EXPECT_EQ(describe_setting(at_most(at_least(row("n", SP_VALUE_INTEGER, "8", 0, ""), 1), 1024)),
            "integer, 1..1024, default 8");
  EXPECT_EQ(describe_setting(enum_row("global")),
            "enum, one of: global | channel | workspace | client, default \"global\"");
  EXPECT_EQ(describe_setting(at_least(row("routes", SP_VALUE_STRING_MAP, nullptr, 1, ""), 1)),
            "table of strings, at least 1 entry, required");
  EXPECT_EQ(describe_setting(above(row("ttl", SP_VALUE_DURATION, "15m", 0, ""), 0)),
            "duration, > 0ms, default 15m");
  EXPECT_EQ(describe_setting(row("label", SP_VALUE_STRING, "", 0, "")), "string, default \"\"");
  EXPECT_EQ(describe_setting(kSecret[0]),
            "secret { env = \"VAR\" } or { file = \"/path\" }, required");
}

}  // namespace
}  // namespace slack_proxy::config

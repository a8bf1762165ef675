#include "config/config.h"

#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "config/core_schema.h"
#include "config/stage_config.h"

namespace slack_proxy::config {
namespace {

using ::testing::AllOf;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::StartsWith;

using namespace std::chrono_literals;

// The smallest valid pipeline, appended to texts that test other sections.
constexpr std::string_view kMinimalPipeline = R"(
[[pipeline]]
name = "slack"
[[pipeline.stage]]
plugin = "slack_sink"
)";

ProxyConfig parse(std::string_view text) { return parse_config(text, "cfg.toml"); }

std::string with_pipeline(std::string_view text) {
  return std::string(text) + std::string(kMinimalPipeline);
}

// The errors a text produces; fails the test when it loads cleanly.
std::vector<std::string> errors_of(std::string_view text) {
  try {
    parse(text);
  } catch (const ConfigError& e) {
    return e.errors();
  }
  ADD_FAILURE() << "expected a ConfigError for:\n" << text;
  return {};
}

// The single error a text produces.
std::string error_of(std::string_view text) {
  const auto errors = errors_of(text);
  EXPECT_EQ(errors.size(), 1u) << ::testing::PrintToString(errors);
  return errors.empty() ? std::string() : errors.front();
}

TEST(ConfigTest, FullFileSetsEveryKey) {
  const auto config = parse_config(R"(
[server]
listen = "127.0.0.1:18080"
threads = 16
max_queued = 32
max_body_bytes = 2048
read_timeout = "2s"
keep_alive_timeout = "3s"
max_keep_alive_requests = 50

[metrics]
enabled = false
listen = "[::1]:19090"

[queue]
backend = "memory"
capacity = 500
retry_after = "7s"

[dispatcher]
workers = 4
shutdown_timeout = "1.5m"

[log]
level = "debug"
format = "json"

[plugins]
paths = ["plugins-extra", "/opt/sp/plugins"]

[[pipeline]]
name = "slack"
paths = ["/", "/api/chat.postMessage"]

[[pipeline.stage]]
plugin = "token_bucket"
name = "pace"
rate = 1.0
key = "global"

[[pipeline.stage]]
plugin = "slack_sink"

[[pipeline]]
name = "alerts-2"
paths = ["/alerts"]

[[pipeline.stage]]
plugin = "slack_sink"
)",
                                   "/etc/slack-proxy/proxy.toml");

  EXPECT_EQ(config.file, "/etc/slack-proxy/proxy.toml");
  EXPECT_EQ(config.server.listen.host, "127.0.0.1");
  EXPECT_EQ(config.server.listen.port, 18080);
  EXPECT_EQ(config.server.threads, 16);
  EXPECT_EQ(config.server.max_queued, 32);
  EXPECT_EQ(config.server.max_body_bytes, 2048u);
  EXPECT_EQ(config.server.read_timeout, 2s);
  EXPECT_EQ(config.server.keep_alive_timeout, 3s);
  EXPECT_EQ(config.server.max_keep_alive_requests, 50);
  EXPECT_FALSE(config.metrics.enabled);
  EXPECT_EQ(config.metrics.listen.host, "::1");
  EXPECT_EQ(config.metrics.listen.port, 19090);
  EXPECT_EQ(config.queue.backend, "memory");
  EXPECT_EQ(config.queue.capacity, 500u);
  EXPECT_EQ(config.queue.retry_after, 7s);
  EXPECT_EQ(config.dispatcher.workers, 4);
  EXPECT_EQ(config.dispatcher.shutdown_timeout, 90s);
  EXPECT_EQ(config.log.level, "debug");
  EXPECT_EQ(config.log.format, "json");
  EXPECT_THAT(config.plugins.paths,
              ElementsAre("/etc/slack-proxy/plugins-extra", "/opt/sp/plugins"));

  ASSERT_EQ(config.pipelines.size(), 2u);
  const auto& slack = config.pipelines[0];
  EXPECT_EQ(slack.name, "slack");
  EXPECT_THAT(slack.paths, ElementsAre("/", "/api/chat.postMessage"));
  EXPECT_EQ(slack.where.str(), "/etc/slack-proxy/proxy.toml:31:1");
  ASSERT_EQ(slack.stages.size(), 2u);
  EXPECT_EQ(slack.stages[0].plugin, "token_bucket");
  EXPECT_EQ(slack.stages[0].name, "pace");
  EXPECT_EQ(slack.stages[0].where.str(), "/etc/slack-proxy/proxy.toml:35:1");
  // `plugin` and `name` are the host's; only the plugin's own keys remain.
  EXPECT_EQ(slack.stages[0].settings.size(), 2u);
  EXPECT_EQ(slack.stages[0].settings["rate"].value<double>(), 1.0);
  EXPECT_EQ(slack.stages[0].settings["key"].value<std::string>(), "global");
  EXPECT_EQ(slack.stages[1].name, "slack_sink");
  EXPECT_TRUE(slack.stages[1].settings.empty());
  EXPECT_EQ(config.pipelines[1].name, "alerts-2");
  EXPECT_THAT(config.pipelines[1].paths, ElementsAre("/alerts"));
}

TEST(ConfigTest, MissingSectionsKeepDefaults) {
  const auto config = parse(kMinimalPipeline);
  const ProxyConfig defaults;

  EXPECT_EQ(config.server.listen.str(), "0.0.0.0:8080");
  EXPECT_EQ(config.server.threads, 0);  // one event thread per core
  EXPECT_EQ(config.server.max_queued, 256);
  EXPECT_EQ(config.server.max_connections, 10000);
  EXPECT_EQ(config.server.max_body_bytes, 1048576u);
  EXPECT_EQ(config.server.read_timeout, 10s);
  EXPECT_EQ(config.server.keep_alive_timeout, 15s);
  EXPECT_EQ(config.server.max_keep_alive_requests, 10000);
  EXPECT_TRUE(config.metrics.enabled);
  EXPECT_EQ(config.metrics.listen.str(), "127.0.0.1:9090");
  EXPECT_EQ(config.queue.backend, "sqlite");
  EXPECT_EQ(config.queue.path, "state/queue.db");
  EXPECT_EQ(config.queue.sync, "full");
  EXPECT_EQ(config.queue.capacity, 10000u);
  EXPECT_EQ(config.queue.max_bytes, 64u << 20);
  EXPECT_EQ(config.queue.retry_after, 5s);
  EXPECT_EQ(config.queue.dedup_window, 10min);
  EXPECT_EQ(config.queue.max_dead_letters, 100000u);
  EXPECT_EQ(config.dispatcher.workers, 8);
  EXPECT_EQ(config.dispatcher.shutdown_timeout, 30s);
  EXPECT_EQ(config.log.level, "info");
  EXPECT_EQ(config.log.format, "text");
  EXPECT_TRUE(config.plugins.paths.empty());
  ASSERT_EQ(config.pipelines.size(), 1u);
  EXPECT_THAT(config.pipelines[0].paths, ElementsAre("/"));
  ASSERT_EQ(config.pipelines[0].stages.size(), 1u);
  EXPECT_EQ(config.pipelines[0].stages[0].name, "slack_sink");
  // The struct defaults and the documented defaults are the same thing.
  EXPECT_EQ(config.server.threads, defaults.server.threads);
  EXPECT_EQ(config.queue.capacity, defaults.queue.capacity);
}

TEST(ConfigTest, RedisIsOffByDefaultAndReadsItsSettings) {
  const auto off = parse(kMinimalPipeline);
  EXPECT_EQ(off.redis, RedisConfig{});
  EXPECT_TRUE(off.redis.url.empty());
  const auto on = parse(with_pipeline(
      "[redis]\nurl = \"redis://redis.internal:6380/1\"\nuser = \"proxy\"\n"
      "password_file = \"/run/secrets/redis\"\ncommand_timeout = \"250ms\"\npacing = false\n"));
  EXPECT_EQ(on.redis.url, "redis://redis.internal:6380/1");
  EXPECT_EQ(on.redis.user, "proxy");
  EXPECT_EQ(on.redis.password_file, "/run/secrets/redis");
  EXPECT_EQ(on.redis.password_env, "SLACK_PROXY_REDIS_PASSWORD");
  EXPECT_EQ(on.redis.command_timeout, 250ms);
  EXPECT_FALSE(on.redis.pacing);
}

// The Redis queue lives where [redis] url points: without one it is refused
// at the line that asks for it. Its lease is read, and has a floor.
TEST(ConfigTest, RedisQueueNeedsARedisUrlAndReadsItsLease) {
  const std::string error = error_of(with_pipeline("[queue]\nbackend = \"redis\"\n"));
  EXPECT_NE(error.find("cfg.toml:2:"), std::string::npos) << error;
  EXPECT_NE(error.find("[redis] url"), std::string::npos) << error;
  const auto on = parse(with_pipeline("[queue]\nbackend = \"redis\"\nlease = \"3s\"\n"
                                      "[redis]\nurl = \"redis://127.0.0.1:6379\"\n"));
  EXPECT_EQ(on.queue.backend, "redis");
  EXPECT_EQ(on.queue.lease, 3s);
  EXPECT_EQ(parse(kMinimalPipeline).queue.lease, 8s);
  EXPECT_NE(error_of(with_pipeline("[queue]\nlease = \"10ms\"\n")).find("lease"),
            std::string::npos);
  // WAIT must give up before the connection does.
  const std::string wait = error_of(with_pipeline(
      "[queue]\nbackend = \"redis\"\nwait_replicas = 1\nwait_timeout = \"2s\"\n"
      "[redis]\nurl = \"redis://127.0.0.1:6379\"\n"));
  EXPECT_NE(wait.find("cfg.toml:4:"), std::string::npos) << wait;
  EXPECT_NE(wait.find("below [redis] command_timeout (1000 ms)"), std::string::npos) << wait;
}

// A password belongs in password_env or password_file; one put in the URL
// by mistake is refused without being repeated.
TEST(ConfigTest, RedisUrlWithAPasswordIsRefusedWithoutRepeatingIt) {
  const std::string error =
      error_of(with_pipeline("[redis]\nurl = \"redis://u:s3cret-redis-pw@h:6379\"\n"));
  EXPECT_NE(error.find("cfg.toml:2:"), std::string::npos) << error;
  EXPECT_NE(error.find("password_env"), std::string::npos) << error;
  EXPECT_EQ(error.find("s3cret-redis-pw"), std::string::npos) << error;
  EXPECT_NE(error_of(with_pipeline("[redis]\nurl = \"redis://h:99999\"\n")).find("port"),
            std::string::npos);
}

TEST(ConfigTest, EmptySectionsKeepDefaults) {
  const auto config = parse(with_pipeline("[server]\n[metrics]\n[queue]\n[dispatcher]\n[log]\n[plugins]\n"));
  EXPECT_EQ(config.server.threads, 0);
  EXPECT_TRUE(config.metrics.enabled);
  EXPECT_EQ(config.queue.capacity, 10000u);
  EXPECT_EQ(config.log.level, "info");
  EXPECT_EQ(config.log.format, "text");
}

TEST(ConfigTest, UnknownKeyNamesPositionAndAllowedKeys) {
  EXPECT_EQ(error_of(with_pipeline("[server]\nthread = 4\n")),
            "cfg.toml:2:1: [server]: unknown key 'thread'; allowed: keep_alive_timeout, listen, "
            "max_body_bytes, max_connections, max_header_bytes, max_header_fields, max_json_depth, "
            "max_keep_alive_requests, max_queued, read_timeout, threads, tls_cert, tls_key, "
            "tls_min_version");
}

TEST(ConfigTest, CoreSectionBoundIsWordedAsAStageBound) {
  EXPECT_EQ(error_of(with_pipeline("[server]\nthreads = 2000\n")),
            "cfg.toml:2:11: [server]: 'threads' must be <= 1024, got 2000");
}

// The single-source guard: every schema default (applied to an empty
// section, and to an absent one) equals the default-constructed struct.
TEST(ConfigTest, CoreSchemaDefaultsEqualTheStructDefaults) {
  for (const std::string_view sections :
       {std::string_view(""), std::string_view("[server]\n[metrics]\n[admin]\n[queue]\n[redis]\n"
                                               "[dispatcher]\n[log]\n[plugins]\n")}) {
    SCOPED_TRACE(sections);
    const auto config = parse(with_pipeline(sections));
    EXPECT_EQ(config.server, ServerConfig{});
    EXPECT_EQ(config.metrics, MetricsConfig{});
    EXPECT_EQ(config.admin, AdminConfig{});
    EXPECT_EQ(config.queue, QueueConfig{});
    EXPECT_EQ(config.redis, RedisConfig{});
    EXPECT_EQ(config.dispatcher, DispatcherConfig{});
    EXPECT_EQ(config.log, LogConfig{});
    EXPECT_EQ(config.plugins, PluginsConfig{});
  }
  const PipelineSpec defaults;
  const auto config = parse(kMinimalPipeline);
  const auto& pipeline = config.pipelines.at(0);
  EXPECT_EQ(pipeline.paths, defaults.paths);
  EXPECT_EQ(pipeline.style, defaults.style);
  EXPECT_EQ(pipeline.default_channel, defaults.default_channel);
  EXPECT_EQ(pipeline.delivery_token, defaults.delivery_token);
}

// What `slack-proxy plugins` prints for a core key: describe_setting() of
// its schema row, as for a plugin's key.
std::map<std::string, std::string> described(const std::string& section) {
  std::map<std::string, std::string> rows;
  for (const auto& s : core_sections()) {
    if (s.name != section) continue;
    for (std::uint32_t i = 0; i < s.size; ++i) rows[s.keys[i].key] = describe_setting(s.keys[i]);
  }
  return rows;
}

TEST(ConfigTest, CoreSectionsAreListedWithTheirBoundsAndDefaults) {
  std::vector<std::string> names;
  for (const auto& s : core_sections()) names.push_back(s.name);
  EXPECT_THAT(names, ElementsAre("[server]", "[metrics]", "[admin]", "[queue]", "[redis]",
                                 "[dispatcher]", "[log]", "[plugins]", "[[pipeline]]"));
  EXPECT_EQ(described("[redis]").at("command_timeout"), "duration, >= 1ms, default 1s");
  EXPECT_EQ(described("[server]").at("threads"), "integer, 0..1024, default 0");
  EXPECT_EQ(described("[server]").at("read_timeout"), "duration, >= 1ms, default 10s");
  EXPECT_EQ(described("[server]").at("tls_min_version"), "enum, one of: 1.2 | 1.3, default \"1.2\"");
  EXPECT_EQ(described("[server]").at("tls_cert"), "string, at least 1 byte long");
  EXPECT_EQ(described("[metrics]").at("public"), "boolean, default false");
  EXPECT_EQ(described("[admin]").at("key_env"), "string, default \"SLACK_PROXY_ADMIN_KEY\"");
  EXPECT_EQ(described("[queue]").at("retry_after"), "duration, >= 1s, default 5s");
  EXPECT_EQ(described("[dispatcher]").at("workers"), "integer, 1..2147483647, default 8");
  EXPECT_EQ(described("[log]").at("level"),
            "enum, one of: trace | debug | info | warn | error, default \"info\"");
  EXPECT_EQ(described("[log]").at("format"), "enum, one of: text | json, default \"text\"");
  EXPECT_EQ(described("[plugins]").at("paths"), "string list, default []");
  EXPECT_EQ(described("[[pipeline]]").at("name"), "string, required");
  EXPECT_EQ(described("[[pipeline]]").at("paths"), "string list, at least 1 entry, default [\"/\"]");
  EXPECT_EQ(described("[[pipeline]]").count("stage"), 0u);  // tables of their own, not a setting
}

TEST(ConfigTest, UnknownTopLevelTableNamesAllowedTables) {
  EXPECT_THAT(error_of(with_pipeline("[serverr]\nthreads = 4\n")),
              AllOf(StartsWith("cfg.toml:1:"),
                    HasSubstr("unknown key 'serverr' at the top level; allowed: server, metrics, "
                              "admin, queue, redis, dispatcher, log, plugins, pipeline")));
}

struct UnknownKeyCase {
  std::string table;  // names the case in the test's name
  std::string text;
  std::string expected;
};

class UnknownKeyInHostTable : public ::testing::TestWithParam<UnknownKeyCase> {};

TEST_P(UnknownKeyInHostTable, IsRejectedWithAllowedKeys) {
  EXPECT_THAT(error_of(GetParam().text), HasSubstr(GetParam().expected));
}

INSTANTIATE_TEST_SUITE_P(
    EveryHostTable, UnknownKeyInHostTable,
    ::testing::Values(
        UnknownKeyCase{"metrics", with_pipeline("[metrics]\nbogus = 1\n"),
                       "[metrics]: unknown key 'bogus'; allowed: enabled, listen, max_channel_labels, public"},
        UnknownKeyCase{"admin", with_pipeline("[admin]\nbogus = 1\n"),
                       "[admin]: unknown key 'bogus'; allowed: key_env, key_file"},
        UnknownKeyCase{"queue", with_pipeline("[queue]\nbogus = 1\n"),
                       "[queue]: unknown key 'bogus'; allowed: backend, capacity, dedup_window, lease, max_bytes, "
                       "max_dead_letters, path, retry_after, sync, token_key_env, wait_replicas, "
                       "wait_timeout"},
        UnknownKeyCase{"dispatcher", with_pipeline("[dispatcher]\nbogus = 1\n"),
                       "[dispatcher]: unknown key 'bogus'; allowed: lane_window, shutdown_timeout, window_bytes, workers"},
        UnknownKeyCase{"log", with_pipeline("[log]\nbogus = 1\n"),
                       "[log]: unknown key 'bogus'; allowed: format, level"},
        UnknownKeyCase{"plugins", with_pipeline("[plugins]\nbogus = 1\n"),
                       "[plugins]: unknown key 'bogus'; allowed: paths"},
        UnknownKeyCase{"pipeline", "[[pipeline]]\nname = \"p\"\nbogus = 1\n[[pipeline.stage]]\nplugin = \"x\"\n",
                       "cfg.toml:3:1: pipeline 'p': unknown key 'bogus'; allowed: default_channel, "
                       "delivery_token, name, paths, stage, style"}),
    [](const ::testing::TestParamInfo<UnknownKeyCase>& info) { return info.param.table; });

TEST(ConfigTest, WrongTypeNamesExpectedAndActualType) {
  EXPECT_EQ(error_of(with_pipeline("[server]\nthreads = \"64\"\n")),
            "cfg.toml:2:11: [server]: 'threads' must be an integer, got string");
  EXPECT_EQ(error_of(with_pipeline("[metrics]\nenabled = \"yes\"\n")),
            "cfg.toml:2:11: [metrics]: 'enabled' must be a boolean, got string");
  EXPECT_EQ(error_of(with_pipeline("[log]\nlevel = 3\n")),
            "cfg.toml:2:9: [log]: 'level' must be a string, got integer");
  EXPECT_EQ(error_of(with_pipeline("[server]\nthreads = 1.5\n")),
            "cfg.toml:2:11: [server]: 'threads' must be an integer, got float");
  EXPECT_EQ(error_of(with_pipeline("[plugins]\npaths = \"dir\"\n")),
            "cfg.toml:2:9: [plugins]: 'paths' must be an array of strings, got string");
  EXPECT_EQ(error_of(with_pipeline("[plugins]\npaths = [\"a\", 2]\n")),
            "cfg.toml:2:9: [plugins]: 'paths' must be an array of strings, got an element of type "
            "integer");
  EXPECT_THAT(error_of(with_pipeline("server = 1\n")),
              HasSubstr("server must be a table ([server]), got integer"));
}

TEST(ConfigTest, OutOfRangeValuesSayTheRange) {
  EXPECT_EQ(error_of(with_pipeline("[server]\nthreads = -1\n")),
            "cfg.toml:2:11: [server]: 'threads' must be >= 0, got -1");
  EXPECT_EQ(error_of(with_pipeline("[server]\nmax_connections = 0\n")),
            "cfg.toml:2:19: [server]: 'max_connections' must be >= 1, got 0");
  EXPECT_EQ(error_of(with_pipeline("[server]\nmax_body_bytes = 1023\n")),
            "cfg.toml:2:18: [server]: 'max_body_bytes' must be >= 1024, got 1023");
  EXPECT_THAT(error_of(with_pipeline("[server]\nmax_queued = -1\n")),
              HasSubstr("[server]: 'max_queued' must be >= 1, got -1"));
  EXPECT_THAT(error_of(with_pipeline("[server]\nmax_keep_alive_requests = 0\n")),
              HasSubstr("[server]: 'max_keep_alive_requests' must be >= 1, got 0"));
  EXPECT_THAT(error_of(with_pipeline("[server]\nread_timeout = \"0s\"\n")),
              HasSubstr("[server]: 'read_timeout' must be >= 1ms, got 0ms"));
  EXPECT_EQ(error_of(with_pipeline("[queue]\ncapacity = 0\n")),
            "cfg.toml:2:12: [queue]: 'capacity' must be >= 1, got 0");
  EXPECT_THAT(error_of(with_pipeline("[queue]\nretry_after = \"500ms\"\n")),
              HasSubstr("[queue]: 'retry_after' must be >= 1s, got 500ms"));
  EXPECT_THAT(error_of(with_pipeline("[dispatcher]\nworkers = 0\n")),
              HasSubstr("[dispatcher]: 'workers' must be >= 1, got 0"));
  EXPECT_THAT(error_of(with_pipeline("[server]\nlisten = \"0.0.0.0:70000\"\n")),
              HasSubstr("[server]: 'listen' must be \"host:port\" or \"[ipv6]:port\" with port 0..65535, "
                        "got \"0.0.0.0:70000\""));
}

TEST(ConfigTest, ServerLimitsAndTlsHaveTheirDocumentedDefaults) {
  const auto config = parse(kMinimalPipeline);
  EXPECT_EQ(config.server.max_header_fields, 100);
  EXPECT_EQ(config.server.max_header_bytes, 65536u);
  EXPECT_EQ(config.server.max_json_depth, 64u);
  EXPECT_EQ(config.server.tls_cert, "");
  EXPECT_EQ(config.server.tls_key, "");
  EXPECT_EQ(config.server.tls_min_version, "1.2");
}

TEST(ConfigTest, ServerLimitsAndTlsKeysAreRead) {
  const auto config = parse(with_pipeline(R"([server]
max_header_fields = 20
max_header_bytes = 8192
max_json_depth = 16
tls_cert = "certs/proxy.pem"
tls_key = "/etc/slack-proxy/proxy.key"
tls_min_version = "1.3"
)"));
  EXPECT_EQ(config.server.max_header_fields, 20);
  EXPECT_EQ(config.server.max_header_bytes, 8192u);
  EXPECT_EQ(config.server.max_json_depth, 16u);
  // Kept as written: relative to the working directory, like [queue] path.
  EXPECT_EQ(config.server.tls_cert, "certs/proxy.pem");
  EXPECT_EQ(config.server.tls_key, "/etc/slack-proxy/proxy.key");
  EXPECT_EQ(config.server.tls_min_version, "1.3");
}

TEST(ConfigTest, TlsCertAndKeyAreBothSetOrNeither) {
  EXPECT_EQ(error_of(with_pipeline("[server]\ntls_cert = \"c.pem\"\n")),
            "cfg.toml:2:12: [server]: 'tls_cert' needs tls_key too: TLS takes a certificate and its "
            "private key (set both, or neither for plain HTTP)");
  EXPECT_EQ(error_of(with_pipeline("[server]\ntls_key = \"k.pem\"\n")),
            "cfg.toml:2:11: [server]: 'tls_key' needs tls_cert too: TLS takes a certificate and its "
            "private key (set both, or neither for plain HTTP)");
  EXPECT_NO_THROW(parse(with_pipeline("[server]\ntls_cert = \"c.pem\"\ntls_key = \"k.pem\"\n")));
  EXPECT_NO_THROW(parse(with_pipeline("[server]\n")));
}

TEST(ConfigTest, TlsMinVersionIsOneTwoOrOneThreeAndOnlyWithTls) {
  EXPECT_EQ(error_of(with_pipeline(
                "[server]\ntls_cert = \"c.pem\"\ntls_key = \"k.pem\"\ntls_min_version = \"1.1\"\n")),
            "cfg.toml:4:19: [server]: 'tls_min_version' must be one of \"1.2\" or \"1.3\", got \"1.1\"");
  EXPECT_EQ(error_of(with_pipeline("[server]\ntls_min_version = \"1.3\"\n")),
            "cfg.toml:2:19: [server]: 'tls_min_version' is set but TLS is off: set tls_cert and "
            "tls_key, or remove it");
}

TEST(ConfigTest, EmptyTlsPathsAreRejected) {
  EXPECT_EQ(errors_of(with_pipeline("[server]\ntls_cert = \"\"\ntls_key = \"\"\n")),
            (std::vector<std::string>{
                "cfg.toml:2:12: [server]: 'tls_cert' must be at least 1 byte long, got 0",
                "cfg.toml:3:11: [server]: 'tls_key' must be at least 1 byte long, got 0"}));
}

TEST(ConfigTest, ServerLimitRangesAreChecked) {
  EXPECT_EQ(error_of(with_pipeline("[server]\nmax_header_fields = 0\n")),
            "cfg.toml:2:21: [server]: 'max_header_fields' must be >= 1, got 0");
  EXPECT_EQ(error_of(with_pipeline("[server]\nmax_header_bytes = 1000\n")),
            "cfg.toml:2:20: [server]: 'max_header_bytes' must be >= 1024, got 1000");
  EXPECT_EQ(error_of(with_pipeline("[server]\nmax_json_depth = 0\n")),
            "cfg.toml:2:18: [server]: 'max_json_depth' must be >= 1, got 0");
  EXPECT_EQ(error_of(with_pipeline("[server]\nmax_json_depth = 513\n")),
            "cfg.toml:2:18: [server]: 'max_json_depth' must be <= 512, got 513");
}

TEST(ConfigTest, ShippedDefaultConfigStatesTheServerDefaults) {
  const auto config = load_config(SLACK_PROXY_SOURCE_DIR "/config/slack-proxy.toml");
  const ServerConfig defaults;
  EXPECT_EQ(config.server.threads, defaults.threads);
  EXPECT_EQ(config.server.max_queued, defaults.max_queued);
  EXPECT_EQ(config.server.max_body_bytes, defaults.max_body_bytes);
  EXPECT_EQ(config.server.read_timeout, defaults.read_timeout);
  EXPECT_EQ(config.server.keep_alive_timeout, defaults.keep_alive_timeout);
  EXPECT_EQ(config.server.max_keep_alive_requests, defaults.max_keep_alive_requests);
  EXPECT_EQ(config.server.max_header_fields, defaults.max_header_fields);
  EXPECT_EQ(config.server.max_header_bytes, defaults.max_header_bytes);
  EXPECT_EQ(config.server.max_json_depth, defaults.max_json_depth);
  EXPECT_EQ(config.server.tls_cert, "");  // plain HTTP unless configured
}

TEST(ConfigTest, ZeroShutdownTimeoutIsAllowed) {
  EXPECT_EQ(parse(with_pipeline("[dispatcher]\nshutdown_timeout = \"0s\"\n")).dispatcher.shutdown_timeout,
            0ms);
}

TEST(ConfigTest, UnsupportedChoiceNamesAllowedValues) {
  EXPECT_EQ(error_of(with_pipeline("[queue]\nbackend = \"postgres\"\n")),
            "cfg.toml:2:11: [queue]: 'backend' must be one of \"sqlite\", \"memory\" or "
            "\"redis\", got \"postgres\"");
  EXPECT_EQ(error_of(with_pipeline("[log]\nlevel = \"verbose\"\n")),
            "cfg.toml:2:9: [log]: 'level' must be one of \"trace\", \"debug\", \"info\", \"warn\" or "
            "\"error\", got \"verbose\"");
  EXPECT_EQ(error_of(with_pipeline("[log]\nformat = \"logfmt\"\n")),
            "cfg.toml:2:10: [log]: 'format' must be one of \"text\" or \"json\", got \"logfmt\"");
}

TEST(ConfigTest, InvalidDurationNamesAcceptedForms) {
  EXPECT_THAT(error_of(with_pipeline("[server]\nread_timeout = \"10\"\n")),
              AllOf(StartsWith("cfg.toml:2:16: [server]: 'read_timeout' is not a valid duration: \"10\" has no unit"),
                    HasSubstr("(ms, s, m, h)")));
  EXPECT_EQ(error_of(with_pipeline("[server]\nread_timeout = 10\n")),
            "cfg.toml:2:16: [server]: 'read_timeout' must be a duration string such as \"1s\", got integer");
}

TEST(ConfigTest, MetricsListenerMustNotCollideWithServer) {
  EXPECT_THAT(error_of(with_pipeline("[server]\nlisten = \"0.0.0.0:9000\"\n[metrics]\nlisten = \"127.0.0.1:9000\"\n")),
              HasSubstr("[metrics] listen 127.0.0.1:9000 conflicts with [server] listen 0.0.0.0:9000"));
  // Port 0 picks a free port for each, and a disabled listener binds nothing.
  EXPECT_NO_THROW(parse(with_pipeline("[server]\nlisten = \"127.0.0.1:0\"\n[metrics]\nlisten = \"127.0.0.1:0\"\n")));
  EXPECT_NO_THROW(parse(with_pipeline(
      "[server]\nlisten = \"127.0.0.1:9000\"\n[metrics]\nenabled = false\nlisten = \"127.0.0.1:9000\"\n")));
}

TEST(ConfigTest, CollectsEveryErrorBeforeThrowing) {
  const std::string text = with_pipeline(R"(
[server]
threads = "many"
colour = "blue"
[queue]
capacity = 0
)");
  try {
    parse(text);
    FAIL() << "expected ConfigError";
  } catch (const ConfigError& e) {
    ASSERT_EQ(e.errors().size(), 3u) << e.what();
    EXPECT_THAT(e.errors()[0], HasSubstr("unknown key 'colour'"));
    EXPECT_THAT(e.errors()[1], HasSubstr("'threads' must be an integer"));
    EXPECT_THAT(e.errors()[2], HasSubstr("'capacity' must be >= 1"));
    EXPECT_EQ(std::string(e.what()), e.errors()[0] + "\n" + e.errors()[1] + "\n" + e.errors()[2]);
  }
}

TEST(ConfigTest, TomlSyntaxErrorHasPositionAndDescription) {
  const auto error = error_of("[server]\nthreads = \n");
  EXPECT_THAT(error, StartsWith("cfg.toml:2:"));
  // Whatever toml++ says, it is said after the position and is not empty.
  EXPECT_GT(error.size(), std::string("cfg.toml:2:11: ").size());
}

TEST(ConfigTest, LoadConfigReportsUnreadableFile) {
  const std::string path = "/nonexistent/slack-proxy.toml";
  try {
    load_config(path);
    FAIL() << "expected ConfigError";
  } catch (const ConfigError& e) {
    ASSERT_EQ(e.errors().size(), 1u);
    EXPECT_THAT(e.errors()[0], StartsWith(path + ": cannot read: "));
  }
}

// ------------------------------------------------------------- durations --

struct DurationCase {
  std::string text;
  std::chrono::milliseconds expected;
};

class ValidDuration : public ::testing::TestWithParam<DurationCase> {};

TEST_P(ValidDuration, Parses) { EXPECT_EQ(parse_duration(GetParam().text), GetParam().expected); }

INSTANTIATE_TEST_SUITE_P(Table, ValidDuration,
                         ::testing::Values(DurationCase{"0s", 0ms}, DurationCase{"250ms", 250ms},
                                           DurationCase{"1s", 1s}, DurationCase{"1.5s", 1500ms},
                                           DurationCase{"0.25s", 250ms}, DurationCase{"1.5m", 90s},
                                           DurationCase{"15m", 15min}, DurationCase{"2h", 2h},
                                           DurationCase{"0.5h", 30min}, DurationCase{"007s", 7s},
                                           DurationCase{"1.000s", 1s},
                                           DurationCase{"8760h", 8760h}));

class InvalidDuration : public ::testing::TestWithParam<std::string> {};

TEST_P(InvalidDuration, IsRejectedNamingAcceptedForms) {
  try {
    parse_duration(GetParam());
    FAIL() << "accepted \"" << GetParam() << "\"";
  } catch (const std::invalid_argument& e) {
    EXPECT_THAT(e.what(), HasSubstr("\"" + GetParam() + "\""));
    EXPECT_THAT(e.what(), HasSubstr("(ms, s, m, h)"));
  }
}

INSTANTIATE_TEST_SUITE_P(Table, InvalidDuration,
                         ::testing::Values("", "10", "1.5", "s", "ms", "-1s", "+1s", "1 s", " 1s",
                                           "1s ", "1m30s", "1d", "1S", "1sec", ".5s", "1.s",
                                           "1..5s", "1.5ms", "0.0001s", "99999999999999999999h",
                                           "9999999999999999h", "8761h", "3000000h"));

// ---------------------------------------------------------------- listen --

struct ListenCase {
  std::string text;
  std::string host;
  std::uint16_t port;
  std::string str;
};

class ValidListen : public ::testing::TestWithParam<ListenCase> {};

TEST_P(ValidListen, Parses) {
  const auto config = parse(with_pipeline("[server]\nlisten = \"" + GetParam().text + "\"\n"));
  EXPECT_EQ(config.server.listen.host, GetParam().host);
  EXPECT_EQ(config.server.listen.port, GetParam().port);
  EXPECT_EQ(config.server.listen.str(), GetParam().str);
}

INSTANTIATE_TEST_SUITE_P(Table, ValidListen,
                         ::testing::Values(ListenCase{"0.0.0.0:8080", "0.0.0.0", 8080, "0.0.0.0:8080"},
                                           ListenCase{"localhost:0", "localhost", 0, "localhost:0"},
                                           ListenCase{"127.0.0.1:65535", "127.0.0.1", 65535, "127.0.0.1:65535"},
                                           ListenCase{"[::1]:9090", "::1", 9090, "[::1]:9090"},
                                           ListenCase{"[::]:80", "::", 80, "[::]:80"}));

class InvalidListen : public ::testing::TestWithParam<std::string> {};

TEST_P(InvalidListen, IsRejectedNamingTheForm) {
  EXPECT_THAT(error_of(with_pipeline("[server]\nlisten = \"" + GetParam() + "\"\n")),
              HasSubstr("[server]: 'listen' must be \"host:port\" or \"[ipv6]:port\""));
}

INSTANTIATE_TEST_SUITE_P(Table, InvalidListen,
                         ::testing::Values("8080", ":8080", "host:", "host:65536", "host:-1",
                                           "host:8a", "::1:80", "[::1]80", "[::1]", "[::1]:",
                                           "[]:80", "host:123456"));

// --------------------------------------------------------------- plugins --

TEST(ConfigTest, RelativePluginPathsResolveAgainstTheConfigDirectory) {
  const auto config = parse_config(
      with_pipeline(R"([plugins]
paths = ["plugins-extra", "../common/plugins/", "/opt/sp/./plugins", "."]
)"),
      "/etc/slack-proxy/proxy.toml");
  EXPECT_THAT(config.plugins.paths,
              ElementsAre("/etc/slack-proxy/plugins-extra", "/etc/common/plugins", "/opt/sp/plugins",
                          "/etc/slack-proxy"));
}

TEST(ConfigTest, PluginPathsOfARelativeConfigFileBecomeAbsolute) {
  const auto config =
      parse_config(with_pipeline("[plugins]\npaths = [\"plugins-extra\"]\n"), "conf/proxy.toml");
  const auto expected = (std::filesystem::current_path() / "conf/plugins-extra").lexically_normal();
  EXPECT_THAT(config.plugins.paths, ElementsAre(expected.string()));
}

TEST(ConfigTest, EmptyPluginPathIsRejected) {
  EXPECT_THAT(error_of(with_pipeline("[plugins]\npaths = [\"\"]\n")),
              HasSubstr("[plugins]: 'paths' entries must not be empty"));
}

// ------------------------------------------------------------- pipelines --

TEST(ConfigTest, AtLeastOnePipelineIsRequired) {
  EXPECT_EQ(error_of("[server]\nthreads = 4\n"),
            "cfg.toml: at least one [[pipeline]] with at least one [[pipeline.stage]] is required");
  EXPECT_THAT(error_of("[pipeline]\nname = \"slack\"\n"),
              HasSubstr("pipeline must be an array of tables ([[pipeline]]), got table"));
}

TEST(ConfigTest, PipelineWithoutNameIsRejected) {
  EXPECT_EQ(error_of("[[pipeline]]\npaths = [\"/\"]\n[[pipeline.stage]]\nplugin = \"slack_sink\"\n"),
            "cfg.toml:1:1: pipeline #1: missing required key 'name' (unique name of the pipeline, "
            "[A-Za-z0-9_-]+)");
}

TEST(ConfigTest, PipelineLevelRateLimitScopeSaysItMovedToTheSlackSinkStage) {
  EXPECT_THAT(error_of("[[pipeline]]\nname = \"slack\"\nrate_limit_scope = \"channel\"\n"
                       "[[pipeline.stage]]\nplugin = \"slack_sink\"\n"),
              AllOf(HasSubstr("cfg.toml:3:"), HasSubstr("'rate_limit_scope' is no longer a pipeline"),
                    HasSubstr("set rate_limit_scope on the slack_sink stage")));
}

TEST(ConfigTest, PipelineNameMustBeAnIdentifier) {
  EXPECT_THAT(error_of("[[pipeline]]\nname = \"my pipeline\"\n[[pipeline.stage]]\nplugin = \"x\"\n"),
              HasSubstr("name 'my pipeline' is not a valid pipeline name; use [A-Za-z0-9_-]+"));
}

TEST(ConfigTest, DuplicatePipelineNamesPointAtTheFirst) {
  EXPECT_EQ(error_of(R"([[pipeline]]
name = "slack"
[[pipeline.stage]]
plugin = "slack_sink"
[[pipeline]]
name = "slack"
paths = ["/other"]
[[pipeline.stage]]
plugin = "slack_sink"
)"),
            "cfg.toml:6:8: duplicate pipeline name 'slack', first defined at cfg.toml:2:8");
}

TEST(ConfigTest, DuplicatePathsAcrossPipelinesAreRejected) {
  EXPECT_EQ(error_of(R"([[pipeline]]
name = "a"
paths = ["/hook", "/"]
[[pipeline.stage]]
plugin = "slack_sink"
[[pipeline]]
name = "b"
paths = ["/hook"]
[[pipeline.stage]]
plugin = "slack_sink"
)"),
            "cfg.toml:8:10: pipeline 'b': path \"/hook\" is already served by pipeline 'a'");
}

TEST(ConfigTest, DefaultPathCountsAsServed) {
  EXPECT_THAT(error_of(R"([[pipeline]]
name = "a"
paths = ["/"]
[[pipeline.stage]]
plugin = "slack_sink"
[[pipeline]]
name = "b"
[[pipeline.stage]]
plugin = "slack_sink"
)"),
              HasSubstr("pipeline 'b': path \"/\" is already served by pipeline 'a'"));
}

TEST(ConfigTest, PathsMustStartWithSlashAndNotBeEmpty) {
  EXPECT_EQ(error_of("[[pipeline]]\nname = \"a\"\npaths = [\"hook\"]\n[[pipeline.stage]]\nplugin = \"x\"\n"),
            "cfg.toml:3:10: pipeline 'a': path \"hook\" must start with \"/\"");
  EXPECT_EQ(error_of("[[pipeline]]\nname = \"a\"\npaths = []\n[[pipeline.stage]]\nplugin = \"x\"\n"),
            "cfg.toml:3:9: pipeline 'a': 'paths' must have at least 1 entry, got 0");
}

TEST(ConfigTest, PipelineWithoutStagesIsRejected) {
  EXPECT_EQ(error_of("[[pipeline]]\nname = \"slack\"\n"),
            "cfg.toml:1:1: pipeline 'slack' has no stages; add at least one [[pipeline.stage]]");
  EXPECT_THAT(error_of("[[pipeline]]\nname = \"slack\"\nstage = \"slack_sink\"\n"),
              HasSubstr("pipeline 'slack': stage must be an array of tables ([[pipeline.stage]]), got string"));
}

TEST(ConfigTest, StageWithoutPluginIsRejected) {
  EXPECT_EQ(error_of("[[pipeline]]\nname = \"slack\"\n[[pipeline.stage]]\nname = \"pace\"\nrate = 1.0\n"),
            "cfg.toml:3:1: pipeline 'slack' stage #1: missing required key 'plugin'");
}

TEST(ConfigTest, StagePluginAndNameMustBeIdentifiers) {
  EXPECT_THAT(error_of("[[pipeline]]\nname = \"p\"\n[[pipeline.stage]]\nplugin = \"Token-Bucket\"\n"),
              HasSubstr("plugin 'Token-Bucket' is not a valid plugin name; use [a-z0-9_]+"));
  EXPECT_THAT(error_of("[[pipeline]]\nname = \"p\"\n[[pipeline.stage]]\nplugin = 3\n"),
              HasSubstr("pipeline 'p' stage #1: plugin must be a string, got integer"));
  EXPECT_THAT(error_of("[[pipeline]]\nname = \"p\"\n[[pipeline.stage]]\nplugin = \"x\"\nname = \"a b\"\n"),
              HasSubstr("name 'a b' is not a valid stage name"));
}

TEST(ConfigTest, StageNamesAreUniqueWithinAPipeline) {
  EXPECT_EQ(error_of(R"([[pipeline]]
name = "slack"
[[pipeline.stage]]
plugin = "token_bucket"
[[pipeline.stage]]
plugin = "token_bucket"
)"),
            "cfg.toml:5:1: pipeline 'slack': duplicate stage name 'token_bucket', first defined at "
            "cfg.toml:3:1; give one of them a distinct name");

  // The same plugin twice is fine once the stages have their own names.
  const auto config = parse(R"([[pipeline]]
name = "slack"
[[pipeline.stage]]
plugin = "token_bucket"
name = "per-channel"
[[pipeline.stage]]
plugin = "token_bucket"
name = "workspace"
)");
  ASSERT_EQ(config.pipelines[0].stages.size(), 2u);
  EXPECT_EQ(config.pipelines[0].stages[1].name, "workspace");
}

TEST(ConfigTest, StageSettingsKeepTheirPositions) {
  const auto config = parse("[[pipeline]]\nname = \"p\"\n[[pipeline.stage]]\nplugin = \"x\"\nrate = 2.0\n");
  const auto* rate = config.pipelines[0].stages[0].settings.get("rate");
  ASSERT_NE(rate, nullptr);
  EXPECT_EQ(rate->source().begin.line, 5u);
  EXPECT_EQ(rate->source().begin.column, 8u);
}

// ------------------------------------------------------ shipped examples --

TEST(ConfigTest, ShippedDefaultConfigLoads) {
  const auto config = load_config(SLACK_PROXY_SOURCE_DIR "/config/slack-proxy.toml");
  EXPECT_EQ(config.server.listen.str(), "0.0.0.0:8080");
  EXPECT_EQ(config.metrics.listen.str(), "127.0.0.1:9090");
  // The shipped file states every [queue] default, and states it right.
  const config::ProxyConfig defaults;
  EXPECT_EQ(config.queue.backend, "sqlite");
  EXPECT_EQ(config.queue.backend, defaults.queue.backend);
  EXPECT_EQ(config.queue.path, defaults.queue.path);
  EXPECT_EQ(config.queue.sync, defaults.queue.sync);
  EXPECT_EQ(config.queue.capacity, defaults.queue.capacity);
  EXPECT_EQ(config.queue.max_bytes, defaults.queue.max_bytes);
  EXPECT_EQ(config.queue.retry_after, defaults.queue.retry_after);
  EXPECT_EQ(config.queue.dedup_window, defaults.queue.dedup_window);
  EXPECT_EQ(config.queue.max_dead_letters, defaults.queue.max_dead_letters);
  EXPECT_EQ(config.queue.token_key_env, defaults.queue.token_key_env);
  // And every [admin] default.
  EXPECT_EQ(config.admin, defaults.admin);
  EXPECT_TRUE(config.admin.status_public);
  ASSERT_EQ(config.pipelines.size(), 1u);
  const auto& slack = config.pipelines[0];
  EXPECT_EQ(slack.name, "slack");
  EXPECT_THAT(slack.paths, ElementsAre("/", "/api/chat.postMessage"));
  EXPECT_EQ(slack.style, "api");
  EXPECT_EQ(slack.delivery_token, "proxy");
  ASSERT_EQ(slack.stages.size(), 5u);
  EXPECT_EQ(slack.stages[0].plugin, "token_bucket");
  EXPECT_EQ(slack.stages[0].settings["key"].value<std::string>(), "channel");
  EXPECT_EQ(slack.stages[1].plugin, "token_bucket");
  EXPECT_EQ(slack.stages[1].settings["key"].value<std::string>(), "workspace");
  EXPECT_EQ(slack.stages[2].plugin, "deny_list");
  EXPECT_EQ(slack.stages[2].settings["ttl"].value<std::string>(), "15m");
  EXPECT_EQ(slack.stages[3].plugin, "slack_retry");
  EXPECT_EQ(slack.stages[3].settings["initial_backoff"].value<std::string>(), "1s");
  EXPECT_EQ(slack.stages[4].plugin, "slack_sink");
  EXPECT_EQ(slack.stages[4].settings["url"].value<std::string>(),
            "https://slack.com/api/chat.postMessage");
  EXPECT_EQ(slack.stages[4].settings["token_env"].value<std::string>(), "SLACK_TOKEN");
  EXPECT_EQ(slack.stages[4].settings["rate_limit_scope"].value<std::string>(), "workspace");
}

TEST(ConfigTest, ShippedDemoConfigLoads) {
  const auto config = load_config(SLACK_PROXY_SOURCE_DIR "/config/demo.toml");
  ASSERT_EQ(config.pipelines.size(), 1u);
  const auto& slack = config.pipelines[0];
  EXPECT_EQ(slack.name, "slack");
  ASSERT_EQ(slack.stages.size(), 5u);
  EXPECT_EQ(slack.stages[0].settings["key"].value<std::string>(), "channel");
  EXPECT_EQ(slack.stages[1].settings["key"].value<std::string>(), "workspace");
  EXPECT_EQ(slack.stages[3].settings["initial_backoff"].value<std::string>(), "500ms");
  EXPECT_EQ(slack.stages[4].settings["url"].value<std::string>(),
            "http://127.0.0.1:8099/api/chat.postMessage");
  EXPECT_EQ(slack.stages[4].settings["token_env"].value<std::string>(), "SLACK_TOKEN");
}

}  // namespace

// ---------------------------------------------- admin and listener exposure --

TEST(ConfigTest, AdminKeySourcesDefaultToTheEnvironment) {
  const auto config = parse(with_pipeline(""));
  EXPECT_EQ(config.admin.key_env, "SLACK_PROXY_ADMIN_KEY");
  EXPECT_EQ(config.admin.key_file, "");
  const auto set = parse(with_pipeline("[admin]\nkey_file = \"/run/secrets/admin\"\n"));
  EXPECT_EQ(set.admin.key_file, "/run/secrets/admin");
}

TEST(ConfigTest, APublicMetricsListenerMustBeAskedFor) {
  EXPECT_THAT(error_of(with_pipeline("[metrics]\nlisten = \"0.0.0.0:9090\"\n")),
              HasSubstr("is not a loopback address"));
  const auto config =
      parse(with_pipeline("[metrics]\nlisten = \"0.0.0.0:9090\"\npublic = true\n"));
  EXPECT_TRUE(config.metrics.public_listener);
  for (const char* loopback : {"127.0.0.1:9090", "127.0.0.2:1", "localhost:9090", "[::1]:9090"}) {
    EXPECT_NO_THROW(parse(with_pipeline(std::string("[metrics]\nlisten = \"") + loopback + "\"\n")))
        << loopback;
  }
  // A disabled listener exposes nothing.
  EXPECT_NO_THROW(
      parse(with_pipeline("[metrics]\nenabled = false\nlisten = \"0.0.0.0:9090\"\n")));
}

}  // namespace slack_proxy::config

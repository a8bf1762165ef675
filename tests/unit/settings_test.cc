// sdk::Schema (settings.h): the C rows a typed settings struct declares, and
// how read() fills the struct from a view the host has checked.
#include <slack_proxy/sdk/settings.h>

#include <chrono>
#include <cstdint>
#include <limits>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <slack_proxy/sdk/testing/fakes.h>

#include "config/stage_config.h"

namespace slack_proxy::sdk {
namespace {

using namespace std::chrono_literals;
using ::testing::ElementsAre;
using testing::MapConfig;

struct Every {
  std::string text;
  bool flag = false;
  std::int64_t count = 0;
  double ratio = 0;
  std::chrono::milliseconds wait{};
  std::vector<std::string> list;
  std::map<std::string, std::string> table;
  Secret token;
};

const Schema<Every> kEvery{
    setting("text", &Every::text, "a string"),
    setting("flag", &Every::flag, "a boolean"),
    setting("count", &Every::count, "an integer"),
    setting("ratio", &Every::ratio, "a number"),
    setting("wait", &Every::wait, "a duration"),
    setting("list", &Every::list, "a list"),
    setting("table", &Every::table, "a table"),
    setting("token", &Every::token, "a secret"),
};


TEST(SettingsTest, EachMemberTypeMapsToItsSettingType) {
  ASSERT_EQ(kEvery.size(), 8u);
  const sp_value_type expected[] = {SP_VALUE_STRING,   SP_VALUE_BOOLEAN,     SP_VALUE_INTEGER,
                                    SP_VALUE_NUMBER,   SP_VALUE_DURATION,    SP_VALUE_STRING_LIST,
                                    SP_VALUE_STRING_MAP, SP_VALUE_SECRET};
  for (std::uint32_t i = 0; i < kEvery.size(); ++i) {
    EXPECT_EQ(kEvery.data()[i].type, expected[i]) << kEvery.data()[i].key;
    // Nothing chained: no bounds, no default, not required.
    EXPECT_EQ(kEvery.data()[i].flags, 0u) << kEvery.data()[i].key;
    EXPECT_EQ(kEvery.data()[i].default_value, nullptr) << kEvery.data()[i].key;
    EXPECT_EQ(kEvery.data()[i].required, 0) << kEvery.data()[i].key;
  }
  EXPECT_STREQ(kEvery.row("ratio").doc, "a number");
}

struct Bucket {
  double rate = 1;
  std::int64_t burst = 3;
  std::string key;
  std::map<std::string, std::string> routes;
  std::chrono::milliseconds ttl{};
};

const Schema<Bucket> kBucket{
    setting("rate", &Bucket::rate, "tokens per second").above(0).at_most(1e9).default_to("1"),
    setting("burst", &Bucket::burst, "capacity").at_least(1).below(100).default_to("3"),
    setting("key", &Bucket::key, "one bucket per").one_of({"global", "channel"}).default_to("global"),
    setting("routes", &Bucket::routes, "channel -> channel").at_least(1).required(),
    setting("ttl", &Bucket::ttl, "how long").above(0),
};

TEST(SettingsTest, ChainedBoundsValuesAndDefaultsLandInTheRows) {
  const auto rate = kBucket.row("rate");
  EXPECT_EQ(rate.flags, SP_KEY_HAS_MIN | SP_KEY_MIN_EXCLUSIVE | SP_KEY_HAS_MAX);
  EXPECT_EQ(rate.min, 0);
  EXPECT_EQ(rate.max, 1e9);
  EXPECT_STREQ(rate.default_value, "1");

  const auto burst = kBucket.row("burst");
  EXPECT_EQ(burst.flags, SP_KEY_HAS_MIN | SP_KEY_HAS_MAX | SP_KEY_MAX_EXCLUSIVE);
  EXPECT_EQ(burst.min, 1);
  EXPECT_EQ(burst.max, 100);

  const auto key = kBucket.row("key");
  EXPECT_EQ(key.type, SP_VALUE_ENUM);  // one_of() turns a string into an enum
  ASSERT_EQ(key.allowed_size, 2u);
  EXPECT_STREQ(key.allowed[0], "global");
  EXPECT_STREQ(key.allowed[1], "channel");
  EXPECT_STREQ(key.default_value, "global");

  const auto routes = kBucket.row("routes");
  EXPECT_EQ(routes.required, 1);
  EXPECT_EQ(routes.flags, SP_KEY_HAS_MIN);
  EXPECT_EQ(routes.min, 1);
}

struct Narrow {
  std::int32_t small = 0;
  std::uint16_t port = 0;
  std::int64_t wide = 0;
  std::uint8_t percent = 0;
};

const Schema<Narrow> kNarrow{
    setting("small", &Narrow::small, ""),
    setting("port", &Narrow::port, ""),
    setting("wide", &Narrow::wide, ""),
    setting("percent", &Narrow::percent, "").at_most(100),
};

// Bounds wider than the member can hold are cut to what it holds, so the
// host never hands the member a value it would truncate.
const Schema<Narrow> kTooWide{
    setting("small", &Narrow::small, "").at_most(1e10),
    setting("port", &Narrow::port, "").above(-1),
};

TEST(SettingsTest, NarrowIntegerMembersAreBoundedToTheirTypesRange) {
  const auto small = kNarrow.row("small");
  EXPECT_EQ(small.type, SP_VALUE_INTEGER);
  EXPECT_EQ(small.flags, SP_KEY_HAS_MIN | SP_KEY_HAS_MAX);
  EXPECT_EQ(small.min, std::numeric_limits<std::int32_t>::min());
  EXPECT_EQ(small.max, std::numeric_limits<std::int32_t>::max());
  const auto port = kNarrow.row("port");
  EXPECT_EQ(port.min, 0);
  EXPECT_EQ(port.max, 65535);
  // A 64-bit member holds every TOML integer: no bound of its own.
  EXPECT_EQ(kNarrow.row("wide").flags, 0u);
  // A chained bound narrows the type's own.
  const auto percent = kNarrow.row("percent");
  EXPECT_EQ(percent.min, 0);
  EXPECT_EQ(percent.max, 100);
}

TEST(SettingsTest, AnAuthorsBoundNeverWidensANarrowMembersRange) {
  const auto small = kTooWide.row("small");
  EXPECT_EQ(small.max, std::numeric_limits<std::int32_t>::max());
  EXPECT_EQ(small.flags & SP_KEY_MAX_EXCLUSIVE, 0u);
  const auto port = kTooWide.row("port");
  EXPECT_EQ(port.min, 0);
  EXPECT_EQ(port.flags & SP_KEY_MIN_EXCLUSIVE, 0u) << "above(-1) on an unsigned is >= 0";
}

TEST(SettingsTest, ReadFillsEveryMemberFromTheView) {
  MapConfig view;
  view.set("text", "hello")
      .set("flag", true)
      .set("count", std::int64_t{42})
      .set("ratio", 0.25)
      .set("wait", MapConfig::Value{1500ms})
      .set("list", MapConfig::Value{std::vector<std::string>{"a", "b"}})
      .set("table", MapConfig::Value{MapConfig::StringMap{{"#a", "#b"}}})
      .set("token", MapConfig::Value{Secret{"s3cret"}});
  const Every e = kEvery.read(view);
  EXPECT_EQ(e.text, "hello");
  EXPECT_TRUE(e.flag);
  EXPECT_EQ(e.count, 42);
  EXPECT_DOUBLE_EQ(e.ratio, 0.25);
  EXPECT_EQ(e.wait, 1500ms);
  EXPECT_THAT(e.list, ElementsAre("a", "b"));
  EXPECT_EQ(e.table, (std::map<std::string, std::string>{{"#a", "#b"}}));
  EXPECT_EQ(e.token.value, "s3cret");
}

TEST(SettingsTest, ReadLeavesAbsentOptionalSettingsAsTheStructInitialisedThem) {
  const Bucket b = kBucket.read(MapConfig().set("key", "channel"));
  EXPECT_EQ(b.key, "channel");
  EXPECT_DOUBLE_EQ(b.rate, 1);  // Bucket's initialiser, not a zero
  EXPECT_EQ(b.burst, 3);
}

TEST(SettingsTest, ReadThroughTheHostsCheckedViewGetsTheSchemaDefaults) {
  config::StageSpec stage;
  stage.plugin = stage.name = "bucket";
  stage.settings = toml::parse("routes = { \"#a\" = \"#b\" }\nburst = 7\nttl = \"2s\"\n");
  const auto view = config::StageConfig::from_spec(stage, kBucket.data(), kBucket.size());
  const Bucket b = kBucket.read(view);
  EXPECT_DOUBLE_EQ(b.rate, 1);
  EXPECT_EQ(b.burst, 7);
  EXPECT_EQ(b.key, "global");
  EXPECT_EQ(b.routes, (std::map<std::string, std::string>{{"#a", "#b"}}));
  EXPECT_EQ(b.ttl, 2s);
}

struct Sink {
  std::string url;
  HttpClientSettings http;
};

const Schema<Sink> kSink{
    setting("url", &Sink::url, "where to post").required(),
    http_client_settings(&Sink::http),
};

TEST(SettingsTest, HttpClientSettingsBindIntoTheNestedStruct) {
  ASSERT_EQ(kSink.size(), 5u);
  EXPECT_EQ(kSink.row("timeout").type, SP_VALUE_DURATION);
  EXPECT_STREQ(kSink.row("timeout").default_value, "10s");
  EXPECT_EQ(kSink.row("max_connections").flags, SP_KEY_HAS_MIN | SP_KEY_HAS_MAX);

  const Sink s = kSink.read(MapConfig()
                                .set("url", "https://example.test/hook")
                                .set("timeout", MapConfig::Value{3s})
                                .set("max_connections", std::int64_t{2})
                                .set("user_agent", "probe/1")
                                .set("ca_file", "/etc/ca.pem"));
  EXPECT_EQ(s.url, "https://example.test/hook");
  EXPECT_EQ(s.http.timeout, 3s);
  EXPECT_EQ(s.http.max_connections, 2);
  EXPECT_EQ(s.http.user_agent, "probe/1");
  EXPECT_EQ(s.http.ca_file, "/etc/ca.pem");
}

}  // namespace
}  // namespace slack_proxy::sdk

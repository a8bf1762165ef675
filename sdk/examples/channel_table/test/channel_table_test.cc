// channel_table through the C ABI, as the proxy loads it: the registration
// (descriptor and schema), the settings check, the factory and the router.
#include <gtest/gtest.h>

#include <string>

#include <slack_proxy/sdk/testing/fakes.h>
#include <slack_proxy/sdk/testing/plugin_under_test.h>

namespace {

namespace sdk = slack_proxy::sdk;
using sdk::testing::FakeHost;
using sdk::testing::PluginRefused;
using sdk::testing::PluginUnderTest;

// The proxy's message when `body` is refused, "" otherwise.
template <typename Body>
std::string refusal(Body&& body) {
  try {
    body();
  } catch (const PluginRefused& e) {
    return e.what();
  }
  return {};
}

TEST(ChannelTable, RegistersAsARouterWithATableOfRoutesAndAnEnum) {
  PluginUnderTest plugin(SLACK_PROXY_PLUGIN_FILE);
  EXPECT_STREQ(plugin.descriptor().name, "channel_table");
  EXPECT_EQ(plugin.descriptor().kind, SP_STAGE_ROUTER);

  const sp_config_key routes = plugin.row("routes");
  EXPECT_EQ(routes.type, SP_VALUE_STRING_MAP);
  EXPECT_NE(routes.required, 0);
  EXPECT_TRUE(routes.flags & SP_KEY_HAS_MIN);
  EXPECT_EQ(routes.min, 1);

  const sp_config_key unrouted = plugin.row("unrouted");
  EXPECT_EQ(unrouted.type, SP_VALUE_ENUM);
  ASSERT_EQ(unrouted.allowed_size, 2u);
  EXPECT_STREQ(unrouted.allowed[0], "keep");
  EXPECT_STREQ(unrouted.allowed[1], "reject");
  EXPECT_STREQ(unrouted.default_value, "keep");
}

TEST(ChannelTable, TheProxyRefusesSettingsTheSchemaForbids) {
  PluginUnderTest plugin(SLACK_PROXY_PLUGIN_FILE);
  EXPECT_NE(plugin.validation_error("").find("missing required key 'routes'"), std::string::npos);
  EXPECT_NE(plugin.validation_error("routes = {}").find("'routes' must have at least 1"),
            std::string::npos);
  const std::string bad_enum =
      plugin.validation_error("routes = { \"#a\" = \"#b\" }\nunrouted = \"drop\"");
  EXPECT_NE(bad_enum.find("'unrouted' must be one of"), std::string::npos) << bad_enum;
  EXPECT_NE(bad_enum.find("keep"), std::string::npos) << bad_enum;
  EXPECT_NE(plugin.validation_error("routes = { \"#a\" = 1 }").find("#a"), std::string::npos);
  EXPECT_NE(plugin.validation_error("routes = { \"#a\" = \"#b\" }\nroute = 1")
                .find("unknown key 'route'"),
            std::string::npos);
}

TEST(ChannelTable, TheFactoryRefusesARouteToNoChannel) {
  PluginUnderTest plugin(SLACK_PROXY_PLUGIN_FILE);
  const std::string why = plugin.validation_error("routes = { \"#a\" = \" \" }");
  EXPECT_NE(why.find("'#a' is routed to an empty channel"), std::string::npos) << why;
  EXPECT_EQ(plugin.validation_error("routes = { \"#a\" = \"#b\" }"), "");
}

TEST(ChannelTable, RoutesATabledChannelAndKeepsAnUntabledOne) {
  PluginUnderTest plugin(SLACK_PROXY_PLUGIN_FILE);
  FakeHost host;
  auto router = plugin.create<sdk::Router>(host, "routes = { \"#alerts\" = \"#ops-alerts\" }");

  sdk::Message tabled;
  tabled.channel = "#alerts";
  EXPECT_TRUE(router->route(tabled).accepted);
  EXPECT_EQ(tabled.channel, "#ops-alerts");

  sdk::Message other;
  other.channel = "#random";
  EXPECT_TRUE(router->route(other).accepted);
  EXPECT_EQ(other.channel, "#random");
}

TEST(ChannelTable, RejectsAnUntabledChannelWhenToldTo) {
  PluginUnderTest plugin(SLACK_PROXY_PLUGIN_FILE);
  FakeHost host;
  auto router = plugin.create<sdk::Router>(
      host, "routes = { \"#alerts\" = \"#ops-alerts\" }\nunrouted = \"reject\"");
  sdk::Message other;
  other.channel = "#random";
  const sdk::RouteResult result = router->route(other);
  EXPECT_FALSE(result.accepted);
  EXPECT_EQ(result.status, 400);
  EXPECT_EQ(result.error, "channel_not_routed");
}

TEST(ChannelTable, IsNotASink) {
  PluginUnderTest plugin(SLACK_PROXY_PLUGIN_FILE);
  FakeHost host;
  const std::string why =
      refusal([&] { plugin.create<sdk::Sink>(host, "routes = { \"#a\" = \"#b\" }"); });
  EXPECT_NE(why.find("is a router, not a sink"), std::string::npos) << why;
}

}  // namespace

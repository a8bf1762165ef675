#include <gtest/gtest.h>
#include <slack_proxy/sdk/testing/fakes.h>

#include "channel_override.h"

namespace slack_proxy::plugins::channel_override {
namespace {

using sdk::testing::MapConfig;

sdk::Message message_for(const std::string& channel) {
  sdk::Message m;
  m.channel = channel;
  m.original_channel = channel;
  m.payload = R"({"channel":")" + channel + R"(","text":"hi"})";
  return m;
}

TEST(ChannelOverrideSettings, SchemaRequiresANonEmptyChannel) {
  ASSERT_EQ(kSchema.size(), 1u);
  const sp_config_key& channel = kSchema.data()[0];
  EXPECT_STREQ(channel.key, "channel");
  EXPECT_EQ(channel.type, SP_VALUE_STRING);
  EXPECT_EQ(channel.required, 1);
  // At least one byte: the host refuses "" before the plugin is made.
  EXPECT_EQ(channel.flags, SP_KEY_HAS_MIN);
  EXPECT_EQ(channel.min, 1);
}

TEST(ChannelOverrideSettings, ReadsTheChannel) {
  EXPECT_EQ(kSchema.read(MapConfig().set("channel", "#ops")).channel, "#ops");
}

TEST(ChannelOverride, SetsEveryMessageToTheConfiguredChannel) {
  ChannelOverride router({"#ops"});
  for (const char* channel : {"#general", "C0123", "#ops"}) {
    auto m = message_for(channel);
    EXPECT_TRUE(router.route(m).accepted);
    EXPECT_EQ(m.channel, "#ops");
  }
}

TEST(ChannelOverride, KeepsTheOriginalChannelAndPayload) {
  ChannelOverride router({"#ops"});
  auto m = message_for("#general");
  const auto payload = m.payload;
  router.route(m);
  EXPECT_EQ(m.original_channel, "#general");
  EXPECT_EQ(m.payload, payload);
}

}  // namespace
}  // namespace slack_proxy::plugins::channel_override

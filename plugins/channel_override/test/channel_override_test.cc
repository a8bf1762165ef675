#include <stdexcept>

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

TEST(ChannelOverrideSettings, AcceptsAChannel) {
  EXPECT_EQ(parse_settings(MapConfig().set("channel", "#ops")).channel, "#ops");
}

TEST(ChannelOverrideSettings, RejectsAnEmptyChannel) {
  EXPECT_THROW(parse_settings(MapConfig().set("channel", "")), std::invalid_argument);
  EXPECT_THROW(parse_settings(MapConfig()), std::invalid_argument);
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

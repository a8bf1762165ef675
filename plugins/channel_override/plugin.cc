#include <memory>

#include <slack_proxy/sdk/plugin.h>

#include "channel_override.h"

namespace {

using slack_proxy::plugins::channel_override::ChannelOverride;
using slack_proxy::plugins::channel_override::parse_settings;

constexpr sp_config_key kSchema[] = {
    {"channel", SP_VALUE_STRING, nullptr, 1,
     "channel every message is sent to, e.g. \"#alerts-test\""},
};

std::unique_ptr<slack_proxy::sdk::Router> make(const slack_proxy::sdk::PluginContext& ctx) {
  return std::make_unique<ChannelOverride>(parse_settings(ctx.config));
}

}  // namespace

SLACK_PROXY_PLUGIN(slack_proxy::sdk::Router, "channel_override",
                   "Sends every message to one configured channel", kSchema, make)

#include <memory>

#include <slack_proxy/sdk/plugin.h>

#include "channel_override.h"

namespace {

using slack_proxy::plugins::channel_override::ChannelOverride;
using slack_proxy::plugins::channel_override::kSchema;
using slack_proxy::plugins::channel_override::Settings;

std::unique_ptr<slack_proxy::sdk::Router> make(const slack_proxy::sdk::PluginContext&,
                                               const Settings& settings) {
  return std::make_unique<ChannelOverride>(settings);
}

}  // namespace

SLACK_PROXY_PLUGIN(slack_proxy::sdk::Router, "channel_override",
                   "Sends every message to one configured channel", kSchema, make)

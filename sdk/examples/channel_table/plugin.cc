// Registration: the descriptor the proxy reads through the C ABI.
#include <memory>

#include <slack_proxy/sdk/plugin.h>

#include "channel_table.h"

namespace {

using example::channel_table::ChannelTable;
using example::channel_table::Settings;

std::unique_ptr<slack_proxy::sdk::Router> make(const slack_proxy::sdk::PluginContext&,
                                               const Settings& settings) {
  return std::make_unique<ChannelTable>(settings);
}

}  // namespace

SLACK_PROXY_PLUGIN(slack_proxy::sdk::Router, "channel_table",
                   "Routes each message to the channel a table names for the one asked for",
                   example::channel_table::kSchema, make)

#include <memory>

#include <slack_proxy/sdk/plugin.h>

#include "deny_list.h"

namespace {

using slack_proxy::plugins::deny_list::DenyList;
using slack_proxy::plugins::deny_list::parse_settings;

constexpr sp_config_key kSchema[] = {
    {"ttl", SP_VALUE_DURATION, "15m", 0, "how long a channel stays parked"},
    {"errors", SP_VALUE_STRING_LIST, "[\"channel_not_found\"]", 0,
     "Slack error codes that park a channel, e.g. add \"is_archived\""},
};

std::unique_ptr<slack_proxy::sdk::Guard> make(const slack_proxy::sdk::PluginContext& ctx) {
  return std::make_unique<DenyList>(ctx.host, parse_settings(ctx.config));
}

}  // namespace

SLACK_PROXY_PLUGIN(slack_proxy::sdk::Guard, "deny_list",
                   "Parks channels Slack says do not exist, for a while", kSchema, make)

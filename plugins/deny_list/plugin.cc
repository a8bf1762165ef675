#include <memory>

#include <slack_proxy/sdk/plugin.h>

#include "deny_list.h"

namespace {

using slack_proxy::plugins::deny_list::DenyList;
using slack_proxy::plugins::deny_list::kSchema;
using slack_proxy::plugins::deny_list::Settings;

std::unique_ptr<slack_proxy::sdk::Guard> make(const slack_proxy::sdk::PluginContext& ctx,
                                              const Settings& settings) {
  return std::make_unique<DenyList>(ctx.host, settings);
}

}  // namespace

SLACK_PROXY_PLUGIN(slack_proxy::sdk::Guard, "deny_list",
                   "Parks channels Slack says do not exist, for a while", kSchema, make)

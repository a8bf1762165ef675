#include <memory>

#include <slack_proxy/sdk/plugin.h>

#include "identity_router.h"

namespace {

using slack_proxy::plugins::identity_router::IdentityRouter;
using slack_proxy::plugins::identity_router::parse_settings;

constexpr sp_config_key kSchema[] = {
    {"routes", SP_VALUE_STRING_LIST, nullptr, 1,
     "\"<client> [<channel-glob>] -> <workspace>\" entries, first match wins; client * = anyone"},
    {"default_workspace", SP_VALUE_STRING, "", 0,
     "workspace for messages no route matches; empty refuses them (403 not_allowed)"},
};

std::unique_ptr<slack_proxy::sdk::Router> make(const slack_proxy::sdk::PluginContext& ctx) {
  return std::make_unique<IdentityRouter>(parse_settings(ctx.config));
}

}  // namespace

SLACK_PROXY_PLUGIN(slack_proxy::sdk::Router, "identity_router",
                   "Picks each message's Slack workspace from its caller and channel", kSchema,
                   make)

#include <memory>

#include <slack_proxy/sdk/plugin.h>

#include "identity_router.h"

namespace {

using slack_proxy::plugins::identity_router::IdentityRouter;
using slack_proxy::plugins::identity_router::kSchema;
using slack_proxy::plugins::identity_router::Settings;

std::unique_ptr<slack_proxy::sdk::Router> make(const slack_proxy::sdk::PluginContext&,
                                               const Settings& settings) {
  return std::make_unique<IdentityRouter>(settings);
}

}  // namespace

SLACK_PROXY_PLUGIN(slack_proxy::sdk::Router, "identity_router",
                   "Picks each message's Slack workspace from its caller and channel", kSchema,
                   make)

// Registration: the schema (slack_retry.h) and the factory.
#include <memory>

#include <slack_proxy/sdk/plugin.h>

#include "slack_retry.h"

namespace {

using slack_proxy::plugins::slack_retry::kSchema;
using slack_proxy::plugins::slack_retry::Settings;
using slack_proxy::plugins::slack_retry::SlackRetry;

std::unique_ptr<slack_proxy::sdk::RetryPolicy> make(const slack_proxy::sdk::PluginContext& ctx,
                                                    const Settings& settings) {
  slack_proxy::plugins::slack_retry::check_settings(settings);
  if (ctx.check_only) return nullptr;  // valid, nothing to build
  return std::make_unique<SlackRetry>(settings, ctx.host.clock());
}

}  // namespace

SLACK_PROXY_PLUGIN(
    slack_proxy::sdk::RetryPolicy, "slack_retry",
    "Retries transient Slack errors with exponential backoff (outages until max_age), gives up "
    "on permanent ones",
    kSchema, make)

#include <memory>

#include <slack_proxy/sdk/plugin.h>

#include "slack_retry.h"

namespace {

using slack_proxy::plugins::slack_retry::parse_settings;
using slack_proxy::plugins::slack_retry::SlackRetry;

constexpr sp_config_key kSchema[] = {
    {"max_retries", SP_VALUE_INTEGER, "3", 0, "retries after the first attempt (>= 0)"},
    {"initial_backoff", SP_VALUE_DURATION, "1s", 0, "delay before the first retry"},
    {"max_backoff", SP_VALUE_DURATION, "60s", 0, "cap on the delay between retries"},
    {"multiplier", SP_VALUE_NUMBER, "2", 0, "delay growth per retry (>= 1)"},
    {"jitter", SP_VALUE_NUMBER, "0.2", 0, "random spread of each delay, 0..1 (0.2 = +/-20%)"},
    {"retry_internal_error", SP_VALUE_BOOLEAN, "true", 0,
     "retry Slack internal_error/fatal_error; may post duplicates, Slack may have succeeded"},
    {"max_age", SP_VALUE_DURATION, "24h", 0,
     "outage errors (no reply, 5xx, service_unavailable, ...) ignore max_retries and are "
     "retried until the message is this old"},
};

std::unique_ptr<slack_proxy::sdk::RetryPolicy> make(const slack_proxy::sdk::PluginContext& ctx) {
  return std::make_unique<SlackRetry>(parse_settings(ctx.config), ctx.host.clock());
}

}  // namespace

SLACK_PROXY_PLUGIN(
    slack_proxy::sdk::RetryPolicy, "slack_retry",
    "Retries transient Slack errors with exponential backoff (outages until max_age), gives up "
    "on permanent ones",
    kSchema, make)

#include <memory>

#include <slack_proxy/sdk/plugin.h>

#include "token_bucket.h"

namespace {

using slack_proxy::plugins::token_bucket::parse_settings;
using slack_proxy::plugins::token_bucket::TokenBucket;

constexpr sp_config_key kSchema[] = {
    {"rate", SP_VALUE_NUMBER, "1", 0, "tokens added per second (> 0)"},
    {"burst", SP_VALUE_INTEGER, "3", 0, "bucket capacity: messages that may go at once (>= 1)"},
    {"key", SP_VALUE_STRING, "global", 0,
     "one bucket for: global | channel (workspace+channel) | workspace | client (caller)"},
};

std::unique_ptr<slack_proxy::sdk::RateLimiter> make(const slack_proxy::sdk::PluginContext& ctx) {
  return std::make_unique<TokenBucket>(parse_settings(ctx.config));
}

}  // namespace

SLACK_PROXY_PLUGIN(slack_proxy::sdk::RateLimiter, "token_bucket",
                   "Paces delivery with a token bucket (rate per second, burst)", kSchema, make)

#include <memory>

#include <slack_proxy/sdk/plugin.h>

#include "token_bucket.h"

namespace {

using slack_proxy::plugins::token_bucket::kSchema;
using slack_proxy::plugins::token_bucket::Settings;
using slack_proxy::plugins::token_bucket::TokenBucket;

std::unique_ptr<slack_proxy::sdk::RateLimiter> make(const slack_proxy::sdk::PluginContext& ctx,
                                                    const Settings& settings) {
  return std::make_unique<TokenBucket>(settings, ctx.host.shared_buckets());
}

}  // namespace

SLACK_PROXY_PLUGIN(slack_proxy::sdk::RateLimiter, "token_bucket",
                   "Paces delivery with a token bucket (rate per second, burst)", kSchema, make)

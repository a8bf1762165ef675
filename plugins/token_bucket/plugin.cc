#include <memory>

#include <slack_proxy/sdk/plugin.h>

#include "token_bucket.h"

namespace {

using slack_proxy::plugins::token_bucket::kSchema;
using slack_proxy::plugins::token_bucket::Settings;
using slack_proxy::plugins::token_bucket::TokenBucket;

std::unique_ptr<slack_proxy::sdk::RateLimiter> make(const slack_proxy::sdk::PluginContext& ctx,
                                                    const Settings& settings) {
  auto limiter = std::make_unique<TokenBucket>(settings, ctx.host.shared_buckets());
  if (settings.jitter > (settings.burst - 1) * limiter->interval()) {
    // Kept free in the burst, jitter then eats into the rate itself.
    ctx.host.logger().warn(
        "jitter " + std::to_string(settings.jitter.count()) + " ms is more than the burst's " +
        std::to_string(settings.burst - 1) +
        " spare interval(s): messages go one interval plus the excess apart, below the "
        "configured rate; lower jitter or raise burst");
  }
  return limiter;
}

}  // namespace

SLACK_PROXY_PLUGIN(slack_proxy::sdk::RateLimiter, "token_bucket",
                   "Paces delivery with a token bucket (rate per second, burst)", kSchema, make)

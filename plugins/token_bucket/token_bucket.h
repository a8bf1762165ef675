// Paces delivery with a token bucket: up to `burst` messages at once, then
// `rate` per second, per key (everything, a channel, a workspace, or a
// caller). Channel and workspace buckets belong to the token, not the
// pipeline.
#ifndef SLACK_PROXY_PLUGINS_TOKEN_BUCKET_H
#define SLACK_PROXY_PLUGINS_TOKEN_BUCKET_H

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string>

#include <slack_proxy/sdk/host.h>
#include <slack_proxy/sdk/pacing.h>
#include <slack_proxy/sdk/settings.h>
#include <slack_proxy/sdk/stages.h>

namespace slack_proxy::plugins::token_bucket {

enum class BucketKey { Global, Channel, Workspace, Client };

struct Settings {
  double rate = 1.0;             // tokens per second
  std::int64_t burst = 3;        // bucket capacity
  std::string key = "global";    // one of kSchema's values for `key`
  // channel and workspace buckets: one per token, whichever pipeline sends
  bool shared = true;
  std::chrono::milliseconds jitter{20};  // taken from the burst (BucketShape::of)
};

// The host checks every bound here before the plugin is created. 1e9/s is
// one token per nanosecond, the clock's resolution.
inline const sdk::Schema<Settings> kSchema{
    sdk::setting("rate", &Settings::rate, "tokens added per second")
        .above(0)
        .at_most(1e9)
        .default_to("1"),
    sdk::setting("burst", &Settings::burst, "bucket capacity: messages that may go at once")
        .at_least(1)
        .default_to("3"),
    sdk::setting("key", &Settings::key,
                 "one bucket for: global | channel (workspace+channel) | workspace | client "
                 "(caller)")
        .one_of({"global", "channel", "workspace", "client"})
        .default_to("global"),
    sdk::setting("shared", &Settings::shared,
                 "channel and workspace buckets are the token's: shared with every pipeline "
                 "that delivers with the same token (false: this stage's own)")
        .default_to("true"),
    sdk::setting("jitter", &Settings::jitter,
                 "how much closer together requests may arrive than they left; kept free in "
                 "the burst so that a strict receiver never sees one early")
        .at_most(60000)
        .default_to("20ms"),
};

// The buckets themselves are sdk::BucketMap's (pacing.h). Channel and
// workspace buckets of a message whose sink names its budget live in the
// host's shared buckets instead, keyed by that budget and the bucket's
// shape, unless `shared` is false: so two pipelines delivering with one
// token, with buckets configured alike, draw from one bucket.
class TokenBucket final : public sdk::RateLimiter {
 public:
  // Throws std::invalid_argument when burst / rate is over a year (the
  // refill window would overflow the clock), or `key` is none of kSchema's.
  // `shared` outlives the stage (the host's).
  TokenBucket(const Settings& settings, sdk::SharedBuckets& shared);

  sdk::SteadyTime next_send_time(const sdk::Message& message,
                                 sdk::SteadyTime now) noexcept override;
  void on_send(const sdk::Message& message, sdk::SteadyTime now) noexcept override;

  // Time to refill one token.
  std::chrono::nanoseconds interval() const noexcept { return shape_.interval; }

  // This stage's own buckets currently remembered; full ones may have been
  // forgotten.
  std::size_t bucket_count() const noexcept { return own_.size(); }

  static constexpr std::size_t kPruneThreshold = sdk::BucketMap::kPruneThreshold;

 private:
  // Where the message's bucket lives and its key there.
  struct Place {
    bool shared;
    std::string key;
  };
  Place place_of(const sdk::Message& message) const;

  BucketKey key_;
  bool share_;
  sdk::BucketShape shape_;
  std::string shared_prefix_;  // this shape's part of its shared keys
  sdk::BucketMap own_;
  sdk::SharedBuckets& shared_;
};

}  // namespace slack_proxy::plugins::token_bucket

#endif  // SLACK_PROXY_PLUGINS_TOKEN_BUCKET_H

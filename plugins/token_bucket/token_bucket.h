// Paces delivery with a token bucket: up to `burst` messages at once, then
// `rate` per second, per key (everything, a channel, a workspace, or a
// caller).
#ifndef SLACK_PROXY_PLUGINS_TOKEN_BUCKET_H
#define SLACK_PROXY_PLUGINS_TOKEN_BUCKET_H

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string>
#include <unordered_map>

#include <slack_proxy/sdk/host.h>
#include <slack_proxy/sdk/settings.h>
#include <slack_proxy/sdk/stages.h>

namespace slack_proxy::plugins::token_bucket {

enum class BucketKey { Global, Channel, Workspace, Client };

struct Settings {
  double rate = 1.0;             // tokens per second
  std::int64_t burst = 3;        // bucket capacity
  std::string key = "global";    // one of kSchema's values for `key`
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
};

// The fill level of each bucket is stored as the time at which it was (or
// will be) empty rather than as a fractional token count. All arithmetic is
// then in whole nanoseconds, so a send at exactly next_send_time() leaves the
// bucket at exactly zero instead of a rounding error below it.
class TokenBucket final : public sdk::RateLimiter {
 public:
  // Throws std::invalid_argument when burst / rate is over a year (the
  // refill window would overflow the clock), or `key` is none of kSchema's.
  explicit TokenBucket(const Settings& settings);

  sdk::SteadyTime next_send_time(const sdk::Message& message,
                                 sdk::SteadyTime now) noexcept override;
  void on_send(const sdk::Message& message, sdk::SteadyTime now) noexcept override;

  // Buckets currently remembered; full ones may have been forgotten.
  std::size_t bucket_count() const noexcept { return empty_at_.size(); }

  // Above this many buckets, full ones are forgotten: a full bucket behaves
  // exactly like one never seen, so nothing changes but the memory used.
  static constexpr std::size_t kPruneThreshold = 1024;

 private:
  std::string key_of(const sdk::Message& message) const;
  void prune(sdk::SteadyTime now);

  BucketKey key_;
  std::chrono::nanoseconds interval_;  // time to refill one token
  std::chrono::nanoseconds capacity_;  // time to refill from empty to full
  std::unordered_map<std::string, sdk::SteadyTime> empty_at_;
  std::size_t prune_at_ = kPruneThreshold;
};

}  // namespace slack_proxy::plugins::token_bucket

#endif  // SLACK_PROXY_PLUGINS_TOKEN_BUCKET_H

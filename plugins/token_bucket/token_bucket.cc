#include "token_bucket.h"

#include <algorithm>
#include <cmath>
#include <sstream>
#include <stdexcept>
#include <string>

namespace slack_proxy::plugins::token_bucket {

namespace {

constexpr double kNanosPerSecond = 1e9;
// Keeps interval * burst far from overflowing 64-bit nanoseconds (~292 years).
constexpr double kMaxRefillSeconds = 365.0 * 24 * 3600;

std::chrono::nanoseconds interval_for(double rate) {
  return std::chrono::nanoseconds(std::llround(kNanosPerSecond / rate));
}

// "0.5" and "-1" rather than std::to_string's "0.500000".
std::string shortest(double value) {
  std::ostringstream out;
  out << value;
  return out.str();
}

// The schema bounds rate and burst one by one; their ratio is up to us.
std::chrono::nanoseconds checked_interval(const Settings& settings) {
  if (static_cast<double>(settings.burst) / settings.rate > kMaxRefillSeconds) {
    throw std::invalid_argument("burst / rate must be at most one year, got burst " +
                                std::to_string(settings.burst) + " at rate " +
                                shortest(settings.rate));
  }
  return interval_for(settings.rate);
}

BucketKey bucket_key(const std::string& key) {
  if (key == "global") return BucketKey::Global;
  if (key == "channel") return BucketKey::Channel;
  if (key == "workspace") return BucketKey::Workspace;
  if (key == "client") return BucketKey::Client;
  // Only a caller bypassing the host's schema check gets here.
  throw std::invalid_argument("key \"" + key + "\" is not one the schema allows");
}

}  // namespace

TokenBucket::TokenBucket(const Settings& settings)
    : key_(bucket_key(settings.key)),
      interval_(checked_interval(settings)),
      capacity_(interval_ * settings.burst) {}

std::string TokenBucket::key_of(const sdk::Message& message) const {
  switch (key_) {
    case BucketKey::Global:
      return {};
    case BucketKey::Workspace:
      return message.workspace;
    case BucketKey::Channel:
      return sdk::channel_key(message);
    case BucketKey::Client:
      // The authenticator's identity; callers without one share a bucket.
      return message.caller;
  }
  return {};
}

sdk::SteadyTime TokenBucket::next_send_time(const sdk::Message& message,
                                            sdk::SteadyTime now) noexcept {
  return sdk::guarded(
      [&] {
        auto it = empty_at_.find(key_of(message));
        if (it == empty_at_.end()) return now;
        // One token has accumulated one interval after the bucket was empty.
        return std::max(now, it->second + interval_);
      },
      // Pacing must not fail open into a flood, nor stop delivery for good.
      [&](std::string_view) { return now + interval_; });
}

void TokenBucket::on_send(const sdk::Message& message, sdk::SteadyTime now) noexcept {
  sdk::guarded(
      [&] {
        auto [it, inserted] = empty_at_.try_emplace(key_of(message), now - capacity_);
        // A bucket cannot hold more than `burst` tokens however long it idled.
        it->second = std::max(it->second, now - capacity_) + interval_;
        if (inserted && empty_at_.size() >= prune_at_) prune(now);
      },
      [](std::string_view) {});
}

void TokenBucket::prune(sdk::SteadyTime now) {
  std::erase_if(empty_at_, [&](const auto& entry) { return entry.second <= now - capacity_; });
  // Pruning is O(n); doubling the threshold keeps it amortised O(1) per send
  // while most buckets are busy.
  prune_at_ = std::max(kPruneThreshold, 2 * empty_at_.size());
}

}  // namespace slack_proxy::plugins::token_bucket

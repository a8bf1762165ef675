#include "slack_limits.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>

namespace slack_proxy::testing {

namespace {

using std::chrono::nanoseconds;

constexpr double kNanosPerSecond = 1e9;
constexpr int kMaxBurst = 1'000'000;
// Keeps every bucket's nanosecond arithmetic, and a Retry-After in seconds,
// far from overflowing.
constexpr double kMaxRefillSeconds = 365.0 * 24 * 3600;

nanoseconds interval_for(double per_second) {
  if (per_second <= 0) return nanoseconds(0);
  return nanoseconds(std::llround(kNanosPerSecond / per_second));
}

}  // namespace

void Limits::validate() const {
  if (!std::isfinite(channel_rate) || channel_rate > kNanosPerSecond) {
    throw std::invalid_argument("channel_rate must be finite and at most 1e9");
  }
  if (!std::isfinite(workspace_per_minute) || workspace_per_minute > 60 * kNanosPerSecond) {
    throw std::invalid_argument("workspace_per_minute must be finite and at most 6e10");
  }
  if (channel_rate > 0 && (channel_burst < 1 || channel_burst > kMaxBurst)) {
    throw std::invalid_argument("channel_burst must be 1..1000000");
  }
  if (workspace_per_minute > 0 && (workspace_burst < 1 || workspace_burst > kMaxBurst)) {
    throw std::invalid_argument("workspace_burst must be 1..1000000");
  }
  if ((channel_rate > 0 && channel_burst / channel_rate > kMaxRefillSeconds) ||
      (workspace_per_minute > 0 && workspace_burst * 60 / workspace_per_minute > kMaxRefillSeconds)) {
    throw std::invalid_argument("a bucket must refill from empty within a year");
  }
  if (retry_after_seconds && *retry_after_seconds < 1) {
    throw std::invalid_argument("retry_after must be at least 1 second");
  }
  if (jitter_tolerance.count() < 0) {
    throw std::invalid_argument("jitter_tolerance must not be negative");
  }
}

SlackLimiter::SlackLimiter(const Limits& limits) : limits_(limits) {
  limits_.validate();
  channel_.interval = interval_for(limits_.channel_rate);
  channel_.capacity = channel_.interval * limits_.channel_burst;
  workspace_.interval = interval_for(limits_.workspace_per_minute / 60.0);
  workspace_.capacity = workspace_.interval * limits_.workspace_burst;
}

nanoseconds SlackLimiter::wait_in(const Bucket& bucket, std::optional<Time> empty_at, Time now) {
  if (bucket.interval.count() == 0) return nanoseconds(0);
  return std::max(nanoseconds(0), take_from(bucket, empty_at, now) - now);
}

// A bucket never seen, or not used for a while, is full: it cannot have been
// empty earlier than `capacity` ago.
SlackLimiter::Time SlackLimiter::take_from(const Bucket& bucket, std::optional<Time> empty_at,
                                           Time now) {
  const Time full_since = now - bucket.capacity;
  return std::max(empty_at.value_or(full_since), full_since) + bucket.interval;
}

std::optional<SlackLimiter::Time> SlackLimiter::channel_empty_at(
    const std::string& channel) const {
  auto it = channel_empty_at_.find(channel);
  if (it == channel_empty_at_.end()) return std::nullopt;
  return it->second;
}

nanoseconds SlackLimiter::wait(const std::string& channel, Time now) const {
  return std::max(wait_in(channel_, channel_empty_at(channel), now),
                  wait_in(workspace_, workspace_empty_at_, now));
}

std::optional<int> SlackLimiter::admit(const std::string& channel, Time now) {
  const nanoseconds needed = wait(channel, now);
  if (needed > limits_.jitter_tolerance) {
    if (limits_.retry_after_seconds) return limits_.retry_after_seconds;
    const auto seconds = std::chrono::ceil<std::chrono::seconds>(needed).count();
    return static_cast<int>(std::max<std::chrono::seconds::rep>(1, seconds));
  }
  if (channel_.interval.count() > 0) {
    channel_empty_at_[channel] = take_from(channel_, channel_empty_at(channel), now);
  }
  if (workspace_.interval.count() > 0) {
    workspace_empty_at_ = take_from(workspace_, workspace_empty_at_, now);
  }
  return std::nullopt;
}

}  // namespace slack_proxy::testing

#include "token_bucket.h"

#include <algorithm>
#include <cmath>
#include <sstream>
#include <stdexcept>
#include <string>

namespace slack_proxy::plugins::token_bucket {

namespace {

// Keeps interval * burst far from overflowing 64-bit nanoseconds (~292 years).
constexpr double kMaxRefillSeconds = 365.0 * 24 * 3600;

// "0.5" and "-1" rather than std::to_string's "0.500000".
std::string shortest(double value) {
  std::ostringstream out;
  out << value;
  return out.str();
}

// The schema bounds rate and burst one by one; their ratio is up to us.
sdk::BucketShape checked_shape(const Settings& settings) {
  if (static_cast<double>(settings.burst) / settings.rate > kMaxRefillSeconds) {
    throw std::invalid_argument("burst / rate must be at most one year, got burst " +
                                std::to_string(settings.burst) + " at rate " +
                                shortest(settings.rate));
  }
  return sdk::BucketShape::of(settings.rate, settings.burst, settings.jitter);
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

TokenBucket::TokenBucket(const Settings& settings, sdk::SharedBuckets& shared)
    : key_(bucket_key(settings.key)),
      share_(settings.shared),
      shape_(checked_shape(settings)),
      // Stages share a token's bucket only when configured alike: two
      // stages of one pipeline with other rates (5/s and 300/min, say) each
      // keep theirs, rather than both taking from one.
      shared_prefix_("token_bucket\n" + std::to_string(shape_.interval.count()) + "/" +
                     std::to_string(shape_.capacity.count()) + "\n"),
      shared_(shared) {}

TokenBucket::Place TokenBucket::place_of(const sdk::Message& message) const {
  const bool per_token = key_ == BucketKey::Workspace || key_ == BucketKey::Channel;
  if (share_ && per_token) {
    auto it = message.attributes.find(sdk::kBudgetAttribute);
    if (it != message.attributes.end() && !it->second.empty()) {
      // "w" or "c" keeps a workspace bucket and a channel bucket of one
      // token apart; a newline cannot occur in a budget name.
      if (key_ == BucketKey::Workspace) return {true, shared_prefix_ + "w\n" + it->second};
      return {true, shared_prefix_ + "c\n" + it->second + "\n" + message.channel};
    }
  }
  switch (key_) {
    case BucketKey::Global:
      return {false, {}};
    case BucketKey::Workspace:
      return {false, message.workspace};
    case BucketKey::Channel:
      return {false, sdk::channel_key(message)};
    case BucketKey::Client:
      // The authenticator's identity; callers without one share a bucket.
      return {false, message.caller};
  }
  return {false, {}};
}

sdk::SteadyTime TokenBucket::next_send_time(const sdk::Message& message,
                                            sdk::SteadyTime now) noexcept {
  return sdk::guarded(
      [&] {
        const Place place = place_of(message);
        return place.shared ? shared_.next_token(place.key, shape_, now)
                            : own_.next_token(place.key, shape_, now);
      },
      // Pacing must not fail open into a flood, nor stop delivery for good.
      [&](std::string_view) { return now + shape_.interval; });
}

void TokenBucket::on_send(const sdk::Message& message, sdk::SteadyTime now) noexcept {
  sdk::guarded(
      [&] {
        const Place place = place_of(message);
        if (place.shared) {
          shared_.take(place.key, shape_, now);
        } else {
          own_.take(place.key, shape_, now);
        }
      },
      [](std::string_view) {});
}

}  // namespace slack_proxy::plugins::token_bucket

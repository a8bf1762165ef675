#include "deny_list.h"

#include <algorithm>
#include <stdexcept>
#include <string>

namespace slack_proxy::plugins::deny_list {

namespace {

bool replayed_by_operator(const sdk::Message& message) {
  auto it = message.attributes.find(sdk::kReplayedAttribute);
  return it != message.attributes.end() && it->second == "true";
}

std::string describe_channel(const sdk::Message& message) {
  if (message.workspace.empty()) return message.channel;
  return message.channel + " (workspace " + message.workspace + ")";
}

long long seconds_rounded_up(std::chrono::nanoseconds d) {
  return std::chrono::ceil<std::chrono::seconds>(d).count();
}

// How often the size gauge is read again while nothing here changes it:
// another replica's parkings change it too.
constexpr std::chrono::seconds kSizeRefresh{1};

}  // namespace

DenyList::DenyList(sdk::HostServices& host, const Settings& settings)
    : log_(host.logger()),
      size_(host.metrics().gauge(kSizeMetric, "Channels currently parked by the deny-list")),
      marks_(host.shared_marks()),
      ttl_(settings.ttl),
      errors_(settings.errors.begin(), settings.errors.end()) {
  // The schema counts the codes; what each one is remains ours to judge.
  if (errors_.count("") != 0) throw std::invalid_argument("errors must not contain an empty code");
  publish_size(host.clock().now());
}

sdk::GuardVerdict DenyList::before_send(const sdk::Message& message, sdk::SteadyTime now) noexcept {
  return sdk::guarded(
      [&] {
        note_ended(now);
        if (now - size_published_at_ >= kSizeRefresh) publish_size(now);
        const std::string key = sdk::channel_key(message);
        const auto parked = marks_.find(key, now);
        const auto seen = seen_.find(key);
        if (!parked) {
          if (seen != seen_.end()) {
            // Un-parked before its time: another replica delivered to it.
            log_.info("channel " + seen->second.channel +
                      " is no longer parked: another replica delivered to it");
            seen_.erase(seen);
            publish_size(now);
          }
          return sdk::GuardVerdict::pass();
        }
        if (seen == seen_.end()) {
          // Not parked here: another replica did (or this stage before a restart).
          log_.warn("channel " + describe_channel(message) + " is parked after " + parked->note +
                    " by another replica (shared deny-list), " +
                    std::to_string(seconds_rounded_up(parked->until - now)) + " s left");
          seen_.insert_or_assign(key, Seen{parked->until, describe_channel(message)});
          next_expiry_ = std::min(next_expiry_, parked->until);
          publish_size(now);
        }
        // The operator who replayed it says the channel exists now; its
        // result parks the channel again or clears it (after_result).
        if (replayed_by_operator(message)) {
          log_.info("channel " + describe_channel(message) + " is parked after " + parked->note +
                    ", but message " + message.id +
                    " was replayed by an operator: letting it through as a probe");
          return sdk::GuardVerdict::pass();
        }
        return sdk::GuardVerdict::deny("channel parked after " + parked->note + ", " +
                                       std::to_string(seconds_rounded_up(parked->until - now)) +
                                       " s left");
      },
      // Failing open costs one doomed request; failing closed would drop
      // every message for the channel.
      [](std::string_view) { return sdk::GuardVerdict::pass(); });
}

void DenyList::after_result(const sdk::Message& message, const sdk::SendResult& result,
                            sdk::SteadyTime now) noexcept {
  sdk::guarded(
      [&] {
        const std::string key = sdk::channel_key(message);
        if (result.delivered) {
          // Slack took it, so the channel exists: whatever parked it is over,
          // on every replica.
          const bool was_parked = marks_.find(key, now).has_value();
          seen_.erase(key);
          if (was_parked) {
            marks_.clear(key);
            publish_size(now);
            log_.info("channel " + describe_channel(message) +
                      " is no longer parked: a message to it was delivered");
          }
          return;
        }
        if (errors_.find(result.error) == errors_.end()) return;
        const auto until = now + ttl_;
        marks_.set(key, ttl_, result.error, now);
        seen_.insert_or_assign(key, Seen{until, describe_channel(message)});
        next_expiry_ = std::min(next_expiry_, until);
        publish_size(now);
        log_.warn("parking channel " + describe_channel(message) + " for " +
                  std::to_string(seconds_rounded_up(ttl_)) + " s after Slack answered " +
                  result.error);
      },
      [](std::string_view) {});
}

void DenyList::note_ended(sdk::SteadyTime now) {
  if (now < next_expiry_) return;
  next_expiry_ = sdk::SteadyTime::max();
  for (auto it = seen_.begin(); it != seen_.end();) {
    // Another replica may have parked it again for longer, or un-parked it.
    const auto parked = marks_.find(it->first, now);
    if (!parked) {
      log_.info("channel " + it->second.channel + " is no longer parked");
      it = seen_.erase(it);
    } else {
      it->second.until = parked->until;
      next_expiry_ = std::min(next_expiry_, parked->until);
      ++it;
    }
  }
  publish_size(now);
}

void DenyList::publish_size(sdk::SteadyTime now) noexcept {
  size_.set(static_cast<double>(marks_.count(now)));
  size_published_at_ = now;
}

}  // namespace slack_proxy::plugins::deny_list

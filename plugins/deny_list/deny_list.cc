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

}  // namespace

DenyList::DenyList(sdk::HostServices& host, const Settings& settings)
    : log_(host.logger()),
      size_(host.metrics().gauge(kSizeMetric, "Channels currently parked by the deny-list")),
      ttl_(settings.ttl),
      errors_(settings.errors.begin(), settings.errors.end()) {
  // The schema counts the codes; what each one is remains ours to judge.
  if (errors_.count("") != 0) throw std::invalid_argument("errors must not contain an empty code");
  publish_size();
}

sdk::GuardVerdict DenyList::before_send(const sdk::Message& message, sdk::SteadyTime now) noexcept {
  return sdk::guarded(
      [&] {
        drop_expired(now);
        auto it = parked_.find(sdk::channel_key(message));
        if (it == parked_.end()) return sdk::GuardVerdict::pass();
        // The operator who replayed it says the channel exists now; its
        // result parks the channel again or clears it (after_result).
        if (replayed_by_operator(message)) {
          log_.info("channel " + it->second.channel + " is parked after " + it->second.error +
                    ", but message " + message.id +
                    " was replayed by an operator: letting it through as a probe");
          return sdk::GuardVerdict::pass();
        }
        return sdk::GuardVerdict::deny("channel parked after " + it->second.error + ", " +
                                       std::to_string(seconds_rounded_up(it->second.until - now)) +
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
        if (result.delivered) {
          // Slack took it, so the channel exists: whatever parked it is over.
          if (parked_.erase(sdk::channel_key(message)) != 0) {
            publish_size();
            log_.info("channel " + describe_channel(message) +
                      " is no longer parked: a message to it was delivered");
          }
          return;
        }
        if (errors_.find(result.error) == errors_.end()) return;
        const auto until = now + ttl_;
        parked_.insert_or_assign(sdk::channel_key(message),
                                 Parked{until, result.error, describe_channel(message)});
        next_expiry_ = std::min(next_expiry_, until);
        publish_size();
        log_.warn("parking channel " + describe_channel(message) + " for " +
                  std::to_string(seconds_rounded_up(ttl_)) + " s after Slack answered " +
                  result.error);
      },
      [](std::string_view) {});
}

void DenyList::drop_expired(sdk::SteadyTime now) {
  if (now < next_expiry_) return;
  next_expiry_ = sdk::SteadyTime::max();
  for (auto it = parked_.begin(); it != parked_.end();) {
    if (it->second.until <= now) {
      log_.info("channel " + it->second.channel + " is no longer parked");
      it = parked_.erase(it);
    } else {
      next_expiry_ = std::min(next_expiry_, it->second.until);
      ++it;
    }
  }
  publish_size();
}

void DenyList::publish_size() noexcept { size_.set(static_cast<double>(parked_.size())); }

}  // namespace slack_proxy::plugins::deny_list

// Pacing the dispatcher learns from 429s, per scope: a token's workspace, or
// one channel of it.
//
// A receiver that answers 429 is telling us our configured pace is too fast
// for it (or that someone else shares its budget). The pause it asks for
// (Retry-After) is honoured elsewhere; this slows the scope down for longer,
// so that the next burst does not hit the same wall:
//   - the first 429 sets the scope's rate to what the receiver accepted
//     around the refused request: the deliveries logged with delivered()
//     whose requests left from a second before it until its 429 came back,
//     including those still in flight then (they are added as they arrive,
//     until the scope sends again). At least kFirstFloor per second, which is also
//     the rate of a scope nothing is logged for (a channel: Slack documents
//     about one message a second per channel);
//   - a 429 for a request sent after that multiplies the rate by kDecrease
//     (one sent before it was refused at the old pace and tells nothing new);
//   - the rate then returns additively, by kRecovery of it per second without
//     a 429, and the scope is forgotten once the rate has doubled (after
//     1 / kRecovery seconds): by then the configured limiters bound it again.
// Sends are spaced 1 / rate apart, without a burst.
//
// Not thread-safe: the dispatcher's scheduling thread owns it. Time is passed
// in, so the rules are tested without a clock.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include <slack_proxy/sdk/message.h>
#include <slack_proxy/sdk/pacing.h>

namespace slack_proxy {

// Deliveries in about the last second, in 16 bytes: the current and the
// previous whole second, the previous weighed by how much of it is still in
// the window. Enough for one channel, which has one send at a time.
class DeliveryCount {
 public:
  void add(sdk::SteadyTime now);
  double last_second(sdk::SteadyTime now) const;

 private:
  std::int64_t second_ = 0;
  std::uint32_t current_ = 0;
  std::uint32_t previous_ = 0;
};

class LearnedPacing {
 public:
  static constexpr double kDecrease = 0.8;
  static constexpr double kRecovery = 0.005;  // of the rate set at the last 429, per second
  static constexpr double kFirstFloor = 1.0;  // per second
  static constexpr double kFloor = 1.0 / 60;  // per second, however many 429s
  // Deliveries remembered per logged scope (2 KiB each): a scope that
  // delivered more in the window is credited with this many a second, not
  // with a rate extrapolated from a few bunched milliseconds. Slack's
  // workspace budgets are a few hundred a minute.
  static constexpr std::size_t kLogSize = 256;

  // A request to `key` that left at `sent_at` was delivered. Logged for the
  // scopes whose first 429 should learn from what got through (workspaces).
  void delivered(std::string_view key, sdk::SteadyTime sent_at);

  // The receiver answered 429 for `key` to a request sent at `sent_at`.
  // Returns true when it counted: it set or lowered the rate, or (at the
  // floor) restarted its recovery.
  bool limited(std::string_view key, sdk::SteadyTime sent_at, sdk::SteadyTime now);

  // Earliest time the next message to `key` may go; `now` when not paced.
  sdk::SteadyTime next_send(std::string_view key, sdk::SteadyTime now) const;
  // A message to `key` goes at `now`.
  void sent(std::string_view key, sdk::SteadyTime now);

  // The rate `key` is held to now, per second; nullopt when not paced.
  std::optional<double> rate(std::string_view key, sdk::SteadyTime now) const;

  // Forgets scopes that have recovered (returning their keys) and delivery
  // logs over a second old. Called now and then: until then a recovered
  // scope is paced at twice its last rate.
  std::vector<std::string> forget_recovered(sdk::SteadyTime now);

  std::size_t paced() const noexcept { return paces_.size(); }
  std::size_t logged() const noexcept { return logs_.size(); }

 private:
  struct Pace {
    double base = 0;                // per second, set by the last 429
    sdk::SteadyTime decreased_at;   // when
    sdk::SteadyTime next_at;        // earliest next send
    // Until the scope sends again, deliveries of requests that left in the
    // second up to `refused_at` still raise the first rate.
    bool forming = false;
    sdk::SteadyTime refused_at;
    double accepted = 0;
  };
  // The send times of a scope's last kLogSize delivered requests.
  struct Log {
    std::array<sdk::SteadyTime, kLogSize> sent{};
    std::size_t next = 0;
    std::size_t count = 0;
    sdk::SteadyTime last{};
    // Deliveries of requests that left from a second before `t` (a refused
    // one) until `answered_at` (its 429 came back).
    double accepted_around(sdk::SteadyTime t, sdk::SteadyTime answered_at) const;
  };
  static double rate_of(const Pace& pace, sdk::SteadyTime now);

  std::unordered_map<std::string, Pace, sdk::StringKeyHash, std::equal_to<>> paces_;
  std::unordered_map<std::string, Log, sdk::StringKeyHash, std::equal_to<>> logs_;
};

}  // namespace slack_proxy

#include "learned_pacing.h"

#include <algorithm>
#include <chrono>

namespace slack_proxy {
namespace {

constexpr auto kWindow = std::chrono::seconds(1);

std::int64_t second_of(sdk::SteadyTime t) {
  return std::chrono::duration_cast<std::chrono::seconds>(t.time_since_epoch()).count();
}

double seconds_between(sdk::SteadyTime from, sdk::SteadyTime to) {
  return std::chrono::duration<double>(to - from).count();
}

sdk::SteadyTime::duration spacing(double rate) {
  return std::chrono::duration_cast<sdk::SteadyTime::duration>(
      std::chrono::duration<double>(1.0 / rate));
}

// The second up to the refused request, and on until its 429 came back:
// requests that left in that time and got through show what the receiver
// takes, whatever order they reached it in.
bool in_window(sdk::SteadyTime sent_at, sdk::SteadyTime refused_at, sdk::SteadyTime answered_at) {
  return sent_at >= refused_at - kWindow && sent_at <= answered_at;
}

}  // namespace

void DeliveryCount::add(sdk::SteadyTime now) {
  const std::int64_t second = second_of(now);
  if (second_ != second) {
    previous_ = second_ == second - 1 ? current_ : 0;
    current_ = 0;
    second_ = second;
  }
  ++current_;
}

double DeliveryCount::last_second(sdk::SteadyTime now) const {
  const std::int64_t second = second_of(now);
  // The window [now - 1 s, now] holds the rest of the previous second.
  const double rest = 1.0 - seconds_between(sdk::SteadyTime(std::chrono::seconds(second)), now);
  if (second_ == second) return current_ + previous_ * rest;
  if (second_ == second - 1) return current_ * rest;
  return 0;
}

double LearnedPacing::Log::accepted_around(sdk::SteadyTime t, sdk::SteadyTime answered_at) const {
  std::size_t n = 0;
  for (std::size_t i = 0; i < count; ++i) n += in_window(sent[i], t, answered_at) ? 1 : 0;
  return static_cast<double>(n);
}

double LearnedPacing::rate_of(const Pace& pace, sdk::SteadyTime now) {
  const double quiet = std::max(0.0, seconds_between(pace.decreased_at, now));
  return pace.base * (1.0 + kRecovery * quiet);
}

void LearnedPacing::delivered(std::string_view key, sdk::SteadyTime sent_at) {
  if (auto it = paces_.find(key); it != paces_.end()) {
    Pace& pace = it->second;
    if (pace.forming && in_window(sent_at, pace.refused_at, pace.decreased_at)) {
      // In flight when the 429 came back, but the receiver took it.
      pace.accepted += 1;
      pace.base = std::max(kFirstFloor, pace.accepted);
    }
  }
  auto it = logs_.find(key);
  if (it == logs_.end()) it = logs_.emplace(std::string(key), Log{}).first;
  Log& log = it->second;
  log.sent[log.next] = sent_at;
  log.next = (log.next + 1) % kLogSize;
  log.count = std::min(log.count + 1, kLogSize);
  log.last = std::max(log.last, sent_at);
}

bool LearnedPacing::limited(std::string_view key, sdk::SteadyTime sent_at, sdk::SteadyTime now) {
  auto it = paces_.find(key);
  if (it == paces_.end()) {
    auto log = logs_.find(key);
    const double accepted = log == logs_.end() ? 0 : log->second.accepted_around(sent_at, now);
    paces_.emplace(std::string(key),
                   Pace{std::max(kFirstFloor, accepted), now, now, true, sent_at, accepted});
    return true;
  }
  Pace& pace = it->second;
  if (sent_at < pace.decreased_at) return false;
  pace.base = std::max(kFloor, rate_of(pace, now) * kDecrease);
  pace.decreased_at = now;
  pace.forming = false;
  return true;
}

sdk::SteadyTime LearnedPacing::next_send(std::string_view key, sdk::SteadyTime now) const {
  auto it = paces_.find(key);
  if (it == paces_.end()) return now;
  return std::max(now, it->second.next_at);
}

void LearnedPacing::sent(std::string_view key, sdk::SteadyTime now) {
  auto it = paces_.find(key);
  if (it == paces_.end()) return;
  Pace& pace = it->second;
  pace.forming = false;
  // No burst: a scope that idled may go now, then one spacing later.
  pace.next_at = std::max(pace.next_at, now) + spacing(rate_of(pace, now));
}

std::optional<double> LearnedPacing::rate(std::string_view key, sdk::SteadyTime now) const {
  auto it = paces_.find(key);
  if (it == paces_.end()) return std::nullopt;
  return rate_of(it->second, now);
}

std::vector<std::string> LearnedPacing::forget_recovered(sdk::SteadyTime now) {
  std::vector<std::string> gone;
  for (auto it = paces_.begin(); it != paces_.end();) {
    const bool recovered = seconds_between(it->second.decreased_at, now) >= 1.0 / kRecovery;
    if (recovered && it->second.next_at <= now) {
      gone.push_back(it->first);
      it = paces_.erase(it);
    } else {
      ++it;
    }
  }
  std::erase_if(logs_, [&](const auto& log) { return log.second.last < now - kWindow; });
  return gone;
}

}  // namespace slack_proxy

// Bounds how many lines a noisy event may log: during an alert storm every
// request can be refused (queue_full), and one log line each would turn the
// proxy's own log into the next outage. The counters still count them all.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>

namespace slack_proxy {

class LogThrottle {
 public:
  explicit LogThrottle(std::uint32_t lines_per_second) : limit_(lines_per_second) {}

  // True when an event at `now` may be logged. When it may, `suppressed` is
  // set to how many events were not logged since the last one that was.
  bool allow(std::chrono::steady_clock::time_point now, std::uint64_t& suppressed) noexcept {
    const std::int64_t second =
        std::chrono::duration_cast<std::chrono::seconds>(now.time_since_epoch()).count();
    std::int64_t current = window_.load(std::memory_order_relaxed);
    if (second != current && window_.compare_exchange_strong(current, second))
      count_.store(0, std::memory_order_relaxed);
    if (count_.fetch_add(1, std::memory_order_relaxed) < limit_) {
      suppressed = suppressed_.exchange(0, std::memory_order_relaxed);
      return true;
    }
    suppressed_.fetch_add(1, std::memory_order_relaxed);
    return false;
  }

 private:
  const std::uint32_t limit_;
  std::atomic<std::int64_t> window_{0};
  std::atomic<std::uint32_t> count_{0};
  std::atomic<std::uint64_t> suppressed_{0};
};

}  // namespace slack_proxy

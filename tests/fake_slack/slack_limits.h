// Slack's chat.postMessage rate limits, as the fake Slack enforces them: a
// token bucket per channel plus one for the whole workspace. A request is
// admitted only when both buckets hold a token, and then takes one from each;
// a refused request takes nothing.
//
// Time is passed in rather than read, so the rules are tested without a
// clock; the fake hands it the steady clock.
#ifndef SLACK_PROXY_TESTS_SLACK_LIMITS_H
#define SLACK_PROXY_TESTS_SLACK_LIMITS_H

#include <chrono>
#include <optional>
#include <string>
#include <unordered_map>

namespace slack_proxy::testing {

struct Limits {
  double channel_rate = 1.0;  // tokens per second, per channel; <= 0: no channel limit
  int channel_burst = 3;
  double workspace_per_minute = 600;  // <= 0: no workspace limit
  int workspace_burst = 10;
  // What a 429's Retry-After says. Default: the time until both buckets hold
  // a token, rounded up to whole seconds, at least 1.
  std::optional<int> retry_after_seconds;
  // A request this much earlier than its token is still admitted (and takes
  // it), as a real limiter tolerates network jitter between a sender that
  // paces exactly and the receiver: the sender's send times, delayed by
  // different latencies, arrive bunched. 0 = strict.
  std::chrono::milliseconds jitter_tolerance{0};

  // Throws std::invalid_argument naming the first value that makes no sense.
  void validate() const;
};

class SlackLimiter {
 public:
  using Time = std::chrono::steady_clock::time_point;

  explicit SlackLimiter(const Limits& limits);  // validates

  // nullopt: admitted, one token taken from each bucket. Otherwise refused,
  // nothing taken, and the value is the Retry-After (seconds) to answer.
  std::optional<int> admit(const std::string& channel, Time now);

  // How long until a request for `channel` would get both tokens (0 if now).
  std::chrono::nanoseconds wait(const std::string& channel, Time now) const;

  const Limits& limits() const { return limits_; }

 private:
  // A bucket is stored as the time it is (or will be) empty: exact in whole
  // nanoseconds, so a request exactly on time is never refused by rounding.
  struct Bucket {
    std::chrono::nanoseconds interval{0};  // 0: unlimited
    std::chrono::nanoseconds capacity{0};
  };
  static std::chrono::nanoseconds wait_in(const Bucket& bucket, std::optional<Time> empty_at,
                                          Time now);
  static Time take_from(const Bucket& bucket, std::optional<Time> empty_at, Time now);
  std::optional<Time> channel_empty_at(const std::string& channel) const;

  Limits limits_;
  Bucket channel_;
  Bucket workspace_;
  std::unordered_map<std::string, Time> channel_empty_at_;
  std::optional<Time> workspace_empty_at_;
};

}  // namespace slack_proxy::testing

#endif  // SLACK_PROXY_TESTS_SLACK_LIMITS_H

// Token-bucket arithmetic shared by rate limiters and the host's shared
// buckets, so that a bucket behaves the same wherever it is kept.
//
// A bucket is stored as the time at which it was (or will be) empty rather
// than as a fractional token count: all arithmetic is in whole nanoseconds, so
// a send at exactly next_token() leaves the bucket at exactly zero instead of
// a rounding error below it.
#ifndef SLACK_PROXY_SDK_PACING_H
#define SLACK_PROXY_SDK_PACING_H

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <unordered_map>

#include <slack_proxy/sdk/message.h>
#include <slack_proxy/sdk/stages.h>

namespace slack_proxy::sdk {

struct BucketShape {
  std::chrono::nanoseconds interval{0};  // time to refill one token
  // How far back an idle bucket's empty time may lie: `burst` intervals,
  // minus the arrival jitter allowed for (see of()).
  std::chrono::nanoseconds capacity{0};

  // `rate` tokens per second, up to `burst` at once. `jitter` is how much
  // closer together requests may arrive at the receiver than they left (the
  // network and the proxy's workers delay each a little differently). It is
  // taken from the burst, not the rate: a receiver that tolerates no early
  // request then never sees one, and while jitter is at most burst - 1
  // intervals the long-run rate is unchanged. Beyond that it slows the rate:
  // with a burst of 1 requests go interval + jitter apart, which is what such
  // a receiver needs. The caller checks that rate > 0 and burst >= 1.
  static BucketShape of(double rate, std::int64_t burst, std::chrono::nanoseconds jitter) {
    const std::chrono::nanoseconds interval(std::llround(1e9 / rate));
    return {interval, interval * burst - jitter};
  }
};

// Earliest time a token may be taken from a bucket empty at `empty_at`.
inline SteadyTime next_token(SteadyTime empty_at, const BucketShape& shape, SteadyTime now) {
  return std::max(now, empty_at + shape.interval);
}

// The bucket's empty time after a token is taken at `now`. A bucket holds at
// most its capacity however long it idled.
inline SteadyTime take_token(SteadyTime empty_at, const BucketShape& shape, SteadyTime now) {
  return std::max(empty_at, now - shape.capacity) + shape.interval;
}

// A bucket never taken from: full.
inline SteadyTime full_bucket(const BucketShape& shape, SteadyTime now) {
  return now - shape.capacity;
}

// Hashes std::string keys and looks them up by std::string_view without
// building a string: for std::unordered_map<std::string, T, StringKeyHash,
// std::equal_to<>>.
struct StringKeyHash {
  using is_transparent = void;
  std::size_t operator()(std::string_view key) const noexcept {
    return std::hash<std::string_view>{}(key);
  }
};

// Buckets by key, as a limiter or the host keeps them. Full buckets are
// forgotten once there are many: a full bucket behaves exactly like one
// never seen, so nothing changes but the memory used. Not thread-safe.
class BucketMap {
 public:
  static constexpr std::size_t kPruneThreshold = 1024;

  SteadyTime next_token(std::string_view key, const BucketShape& shape, SteadyTime now) const {
    auto it = buckets_.find(key);
    return it == buckets_.end() ? now : sdk::next_token(it->second.empty_at, shape, now);
  }

  void take(std::string_view key, const BucketShape& shape, SteadyTime now) {
    auto it = buckets_.find(key);
    const bool inserted = it == buckets_.end();
    if (inserted)
      it = buckets_.emplace(std::string(key), Entry{full_bucket(shape, now), {}}).first;
    Entry& e = it->second;
    e.empty_at = take_token(e.empty_at, shape, now);
    e.horizon = std::max({e.horizon, shape.capacity, shape.interval});
    if (inserted && buckets_.size() >= prune_at_) prune(now);
  }

  // Buckets currently remembered; full ones may have been forgotten.
  std::size_t size() const noexcept { return buckets_.size(); }

 private:
  struct Entry {
    SteadyTime empty_at;
    // The longest memory any shape that took from it needs: a bucket shared
    // by stages configured differently is full only by the slowest's measure.
    std::chrono::nanoseconds horizon;
  };
  // O(n); doubling the threshold keeps it amortised O(1) per take while most
  // buckets are busy.
  void prune(SteadyTime now) {
    // Full: a token is there and taking it would not look at the empty time.
    std::erase_if(buckets_,
                  [&](const auto& b) { return b.second.empty_at <= now - b.second.horizon; });
    prune_at_ = std::max(kPruneThreshold, 2 * buckets_.size());
  }

  std::unordered_map<std::string, Entry, StringKeyHash, std::equal_to<>> buckets_;
  std::size_t prune_at_ = kPruneThreshold;
};


// ABI 1.2. Token buckets that belong to the host rather than to one stage, so
// that every stage naming the same key draws from the same bucket: two
// pipelines that deliver with one Slack token share that token's budget. Keys
// are the stage's own choice; a rate budget named by a sink (see
// kBudgetAttribute in message.h) is the usual part of one. Each call brings
// its own BucketShape (above): stages configured differently share the
// bucket's level and each enforces its own rate against it.
// Called from the dispatcher's scheduling thread only, like rate limiters.
class SharedBuckets {
 public:
  virtual ~SharedBuckets() = default;
  // Earliest time a token may be taken from `key`'s bucket; <= now means now.
  // Takes nothing.
  virtual SteadyTime next_token(std::string_view key, const BucketShape& shape,
                                SteadyTime now) noexcept = 0;
  // Takes one token from `key`'s bucket at `now`.
  virtual void take(std::string_view key, const BucketShape& shape, SteadyTime now) noexcept = 0;
};

// The host's SharedBuckets within one process (and a test's).
class LocalSharedBuckets final : public SharedBuckets {
 public:
  // Only allocation can fail here. Pacing must not fail open into a flood,
  // nor stop delivery for good: then the next token is one interval away.
  SteadyTime next_token(std::string_view key, const BucketShape& shape,
                        SteadyTime now) noexcept override {
    return guarded([&] { return buckets_.next_token(key, shape, now); },
                   [&](std::string_view) { return now + shape.interval; });
  }
  void take(std::string_view key, const BucketShape& shape, SteadyTime now) noexcept override {
    guarded([&] { buckets_.take(key, shape, now); }, [](std::string_view) {});
  }
  std::size_t size() const noexcept { return buckets_.size(); }

 private:
  BucketMap buckets_;
};

}  // namespace slack_proxy::sdk

#endif  // SLACK_PROXY_SDK_PACING_H

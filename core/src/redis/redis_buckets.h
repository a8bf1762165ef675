// SharedBuckets kept in Redis, so that every replica draws from one bucket
// per key: one Slack budget, however many proxies deliver with the token.
//
// A bucket is the same arithmetic as sdk::BucketMap (pacing.h), evaluated
// atomically by a Lua script on Redis' own clock (TIME), so replicas'
// clocks need not agree. The dispatcher's scheduling thread never waits on
// Redis: next_token() answers from what this replica already knows and asks
// a background thread to claim a token; the thread pipelines every pending
// claim in one round trip. A claimed token is this replica's to take for a
// short while (kGrantLifetime) and is dropped after, unused: a token Redis
// counted as taken long ago must not be spent in a later burst.
//
// Redis unreachable: nothing is granted, so delivery through a shared bucket
// pauses (next_token() answers one interval or more ahead, again and again)
// until Redis is back; the connection retries with backoff.
//
// It also shares 429 pauses (SharedPauses): a pause is a key with a TTL,
// written when a replica is told to wait and read back, for every workspace
// this replica asked about in the last minute, every kPausePoll.
#ifndef SLACK_PROXY_CORE_REDIS_REDIS_BUCKETS_H
#define SLACK_PROXY_CORE_REDIS_REDIS_BUCKETS_H

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <unordered_map>

#include <slack_proxy/sdk/host.h>
#include <slack_proxy/sdk/pacing.h>

#include "redis/redis_connection.h"
#include "shared_pauses.h"

namespace slack_proxy {

class RedisSharedBuckets final : public sdk::SharedBuckets, public SharedPauses {
 public:
  // How often the pauses of the workspaces in use are read back.
  static constexpr std::chrono::milliseconds kPausePoll{20};
  // How long a claimed token may wait to be taken before it is dropped.
  static constexpr std::chrono::milliseconds kGrantLifetime{50};
  // While a claim is in flight, next_token() says to ask again this soon.
  static constexpr std::chrono::milliseconds kPoll{2};

  // `redis_clock`: the script reads Redis' TIME (production). Tests pass
  // false to have it use `clock`'s now instead, so that they are exact.
  RedisSharedBuckets(std::unique_ptr<RedisConnection> connection, const sdk::Clock& clock,
                     std::shared_ptr<spdlog::logger> log, bool redis_clock = true);
  ~RedisSharedBuckets() override;

  sdk::SteadyTime next_token(std::string_view key, const sdk::BucketShape& shape,
                             sdk::SteadyTime now) noexcept override;
  void take(std::string_view key, const sdk::BucketShape& shape,
            sdk::SteadyTime now) noexcept override;

  void pause(std::string_view key, sdk::SteadyTime until, sdk::SteadyTime now) noexcept override;
  sdk::SteadyTime paused_until(std::string_view key, sdk::SteadyTime now) noexcept override;

  // Tests: waits until no claim is pending or in flight; false at the deadline.
  bool wait_settled(std::chrono::milliseconds deadline);
  // Tests and metrics: tokens claimed from Redis, and claims it refused.
  std::uint64_t granted() const;
  std::uint64_t refused() const;

  // The Lua script (exposed for its own tests).
  static const char* script();

 private:
  struct Entry {
    sdk::BucketShape shape;
    int granted = 0;            // claimed and not yet taken
    sdk::SteadyTime granted_at{};
    sdk::SteadyTime retry_at{};  // Redis said: no token before then
    int forced = 0;             // taken without a claim: to record in Redis
    bool queued = false;        // in pending_ or in flight
    bool wanted = false;        // next_token() asked for a claim
    sdk::SteadyTime used_at{};
  };

  // Under mutex_: the entry for `key`, noted as asked at `now` with `shape`.
  Entry& touch(std::string_view key, const sdk::BucketShape& shape, sdk::SteadyTime now);
  static bool holds_grant(const Entry& e, sdk::SteadyTime now);  // claimed, not yet stale
  void enqueue(Entry& e, std::string_view key);                  // under mutex_
  void run();
  // The pause commands of one batch: writes, then a read of every watched
  // key when a poll is due.
  struct PauseOp {
    std::string key;
    bool write;
  };
  std::vector<PauseOp> pause_ops(std::vector<Poco::Redis::Array>& commands, bool poll);
  // Under mutex_: what the pause commands, from reply `first` on, said.
  void read_pauses(const Poco::Redis::Array& replies, std::size_t first,
                   const std::vector<PauseOp>& pauses, sdk::SteadyTime now);
  void claim(std::deque<std::string> keys, bool poll);
  std::string redis_key(std::string_view key) const;
  void forget_idle(sdk::SteadyTime now);

  std::unique_ptr<RedisConnection> connection_;
  const std::size_t bucket_script_;  // connection_'s handles of the two scripts
  const std::size_t pause_script_;
  const sdk::Clock& clock_;
  std::shared_ptr<spdlog::logger> log_;
  const bool redis_clock_;

  mutable std::mutex mutex_;
  std::condition_variable wake_;
  std::condition_variable settled_;
  std::unordered_map<std::string, Entry, sdk::StringKeyHash, std::equal_to<>> entries_;
  std::deque<std::string> pending_;
  struct Watched {
    sdk::SteadyTime until{};      // paused until (this replica's clock)
    sdk::SteadyTime asked_at{};
    std::chrono::milliseconds write{0};  // a pause to write, 0: none
  };
  std::unordered_map<std::string, Watched, sdk::StringKeyHash, std::equal_to<>> pauses_;
  bool pause_written_ = false;  // a write waits in pauses_
  std::chrono::steady_clock::time_point polled_at_{};
  std::size_t in_flight_ = 0;
  std::uint64_t granted_total_ = 0;
  std::uint64_t refused_total_ = 0;
  sdk::SteadyTime swept_at_{};
  bool stopping_ = false;
  std::thread thread_;
};

}  // namespace slack_proxy

#endif  // SLACK_PROXY_CORE_REDIS_REDIS_BUCKETS_H

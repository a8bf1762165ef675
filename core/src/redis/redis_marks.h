// The stages' shared marks (sdk/marks.h) kept in Redis, so that every
// replica sees what one learned: a channel the deny-list parked on one
// replica is parked on all of them.
//
// One Redis hash per scope ("<prefix>marks:<pipeline>/<stage>"): field the
// stage's key, value "<until, Redis' clock in ms> <note>". A Lua script sets
// a mark on Redis' own clock and keeps a longer one; the hash expires with
// its longest mark, and fields that have expired are pruned when seen.
//
// Stages never wait on Redis. set() and clear() apply to this replica's copy
// at once and are sent by a background thread, which also reads every scope
// in use back (TIME and one HGETALL per scope, pipelined) every
// sdk::kSharedMarksPoll, and at once after a change. find() and count()
// answer from the copy. A change stays queued until Redis has taken it: one
// it refused (NOPERM, OOM, NOSCRIPT) or never got is sent again next round,
// and every change still queued is applied again on top of what a read-back
// returned, so it never flickers away. A set goes with the time it has
// left, so one held back by an outage never outlives its ttl.
//
// Redis unreachable: this replica keeps its own marks (set and cleared
// locally, expiring on time) and sends what changed once Redis is back;
// the connection retries with backoff and logs each change of state once.
// The queue holds at most a clear and a set per key (a later change
// replaces one not yet sent), and kMaxUnsent changes in all.
#ifndef SLACK_PROXY_CORE_REDIS_REDIS_MARKS_H
#define SLACK_PROXY_CORE_REDIS_REDIS_MARKS_H

#include <slack_proxy/sdk/host.h>
#include <slack_proxy/sdk/marks.h>

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <thread>
#include <unordered_map>

#include "redis/redis_connection.h"
#include "shared_marks.h"

namespace slack_proxy {

class RedisSharedMarks final : public MarkScopes,
                               public std::enable_shared_from_this<RedisSharedMarks> {
 public:
  // Changes waiting for Redis beyond this many (that many different keys)
  // are dropped, oldest first, and logged: a Redis away for long must not
  // grow memory without bound. A dropped change never reaches the other
  // replicas, and this one forgets it at its next read-back.
  static constexpr std::size_t kMaxUnsent = 10'000;
  // Changes sent in one round at most; a backlog goes over several.
  static constexpr std::size_t kMaxPerRound = 500;

  // Make it with std::make_shared: scope() hands out views that keep it alive.
  RedisSharedMarks(std::unique_ptr<RedisConnection> connection, const sdk::Clock& clock,
                   std::shared_ptr<spdlog::logger> log);
  ~RedisSharedMarks() override;

  std::shared_ptr<sdk::SharedMarks> scope(const std::string& scope) override;
  std::vector<std::pair<std::string, sdk::Mark>> list(const std::string& scope,
                                                     sdk::SteadyTime now,
                                                     std::size_t limit) override;

  void set(const std::string& scope, std::string_view key, std::chrono::milliseconds ttl,
           std::string_view note, sdk::SteadyTime now) noexcept;
  void clear(const std::string& scope, std::string_view key) noexcept;
  std::optional<sdk::Mark> find(const std::string& scope, std::string_view key,
                                sdk::SteadyTime now) noexcept;
  std::size_t count(const std::string& scope, sdk::SteadyTime now) noexcept;

  // Tests: waits until a round that started after this call (so it sent
  // every change made before it, and read every scope in use back) has come
  // back from Redis; false at the deadline (Redis away). A change Redis
  // refused in that round is still queued then.
  bool wait_synced(std::chrono::milliseconds deadline);

 private:
  using MarkMap = std::unordered_map<std::string, sdk::Mark, sdk::StringKeyHash, std::equal_to<>>;
  struct Change {
    std::uint64_t seq = 0;  // rising: changes_ is ordered by it
    std::string scope;
    std::string key;
    bool set = false;  // false: clear
    std::string note;
    sdk::SteadyTime until{};  // of a set, on this replica's clock
    bool in_flight = false;   // sent, no reply yet
    bool refused = false;     // Redis refused it at least once
  };

  void run();
  // One round: every change not in flight, prunes, then TIME and every
  // scope's hash. Entered and left with `lock` held.
  void sync(std::unique_lock<std::mutex>& lock);
  void queue(Change change);         // under mutex_
  void apply(const Change& change);  // under mutex_, to copy_
  // Under mutex_: the queued change `seq`, or changes_.end().
  std::deque<Change>::iterator queued(std::uint64_t seq);
  // Under mutex_: the copy of `scope`, read back from now on.
  MarkMap& watch(const std::string& scope);
  std::string hash_key(const std::string& scope) const;

  std::unique_ptr<RedisConnection> connection_;
  const std::size_t set_script_;  // connection_'s handles of the two scripts
  const std::size_t prune_script_;
  const sdk::Clock& clock_;
  std::shared_ptr<spdlog::logger> log_;

  std::mutex mutex_;
  std::condition_variable wake_;
  std::condition_variable synced_;
  std::map<std::string, MarkMap> copy_;  // scope -> key -> mark; every scope handed out
  std::deque<Change> changes_;           // not yet taken by Redis, by seq
  std::uint64_t next_seq_ = 1;
  std::uint64_t rounds_started_ = 0;
  std::uint64_t rounds_done_ = 0;                         // the last round that reached Redis
  bool forced_ = false;                                   // wait_synced() wants a round now
  bool new_scope_ = false;                                // a scope to read back for the first time
  bool last_ok_ = true;                                   // the last round reached Redis
  std::map<std::string, std::set<std::string>> expired_;  // seen expired: to prune
  bool dropped_logged_ = false;
  bool stopping_ = false;
  std::thread thread_;
};

}  // namespace slack_proxy

#endif  // SLACK_PROXY_CORE_REDIS_REDIS_MARKS_H

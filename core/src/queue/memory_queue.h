// Bounded in-memory queue: fastest, and everything in it (dead letters too)
// is lost on a crash or restart. For people who prefer speed over safety.
// Every stored message is in memory, bounded by the queue's capacity; so
// there is never a stored backlog to recover (backlog() is empty).
#pragma once

#include <cstdint>
#include <deque>
#include <map>
#include <mutex>
#include <string>
#include <unordered_map>

#include <slack_proxy/sdk/host.h>

#include "queue/dedup_index.h"
#include "queue/queue.h"

namespace slack_proxy {

class MemoryQueue final : public Queue, private DeadLetterStore {
 public:
  // Dead letters beyond `max_dead_letters` push out the oldest one.
  MemoryQueue(QueueLimits limits, const sdk::Clock& clock, std::size_t max_dead_letters = 10'000);
  // Count limit only (tests and benchmarks); other limits at their defaults.
  explicit MemoryQueue(std::size_t max_messages);

  using Queue::push;
  PushResult push(sdk::Message message, const PushOptions& options) override;
  std::vector<Queued> take(std::size_t max) override;
  std::vector<LaneBacklog> backlog() override { return {}; }
  std::vector<Queued> read_lane(const std::string& lane, std::uint64_t after, std::uint64_t upto,
                                std::size_t max) override;
  std::size_t lane_size(const std::string& lane) override;
  std::uint64_t backlog_upto() const override { return 0; }
  void ack(const Queued& done) override;
  void dead_letter(std::uint64_t seq, DeadLetter letter) override;
  std::size_t size() const override;
  std::size_t bytes() const override;
  QueueLimits limits() const override { return limits_; }
  DeadLetterStore& dead_letters() override { return *this; }
  void on_push(std::function<void()> listener) override { listener_ = std::move(listener); }
  void close() override;

 private:
  // DeadLetterStore
  DeadLetterPage list(const DeadLetterFilter& filter, const std::string& after,
                      std::size_t limit) override;
  std::optional<DeadLetter> get(const std::string& id) override;
  std::size_t count() override;
  bool remove(const std::string& id) override;
  std::size_t remove_matching(const DeadLetterFilter& filter) override;
  ReplayStatus replay(const std::string& id) override;
  ReplayCount replay_matching(const DeadLetterFilter& filter) override;

  // Holding mutex_: would `bytes` more fit? Empty when yes, else which limit.
  std::string over_limit(std::size_t payload_bytes) const;
  // Holding mutex_: stores `message` under the next sequence number and
  // queues it for take() to announce.
  void store_locked(sdk::Message message);
  // Holding mutex_: removes stored message `seq`; false when it is not
  // stored (already finished, or never was).
  bool remove_locked(std::uint64_t seq);
  ReplayStatus replay_locked(std::deque<DeadLetter>::iterator it);

  using Lane = std::map<std::uint64_t, sdk::Message>;

  const QueueLimits limits_;
  const sdk::Clock* clock_;
  const std::size_t max_dead_letters_;
  mutable std::mutex mutex_;
  std::uint64_t next_seq_ = 1;
  // Lane -> its stored messages by sequence. Ordered within a lane, not
  // hashed: read_lane() pages from a sequence on (upper_bound), and
  // sequences come in rising order, so an insert walks the tree's hot
  // right edge instead of rehashing a lane of half a million under the
  // lock (a stall for every pusher).
  std::unordered_map<std::string, Lane> lanes_;
  // seq -> the lane holding it, so ack() and dead_letter() find a message by
  // sequence alone. Points at the key in lanes_, which stays put while the
  // lane exists (unordered_map nodes never move), and a lane outlives
  // every sequence pointing at it. Ordered for the same reason as a lane.
  std::map<std::uint64_t, const std::string*> lane_of_;
  // Sequences pushed (or replayed) that take() has yet to announce. Only
  // the number: take() hands out a copy of the stored message, which stays
  // stored until ack() or dead_letter().
  std::deque<std::uint64_t> arrivals_;
  std::size_t bytes_ = 0;
  DedupIndex dedup_;
  std::deque<DeadLetter> dead_;  // oldest first
  bool closed_ = false;
  std::function<void()> listener_;
};

}  // namespace slack_proxy

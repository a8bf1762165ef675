// Bounded in-memory queue: fastest, and everything in it (dead letters too)
// is lost on a crash or restart. For people who prefer speed over safety.
#pragma once

#include <deque>
#include <mutex>
#include <map>

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
  std::vector<sdk::Message> take(std::size_t max) override;
  void ack(const std::string& id) override;
  void dead_letter(DeadLetter letter) override;
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
  ReplayStatus replay_locked(std::deque<DeadLetter>::iterator it);

  const QueueLimits limits_;
  const sdk::Clock* clock_;
  const std::size_t max_dead_letters_;
  mutable std::mutex mutex_;
  std::deque<sdk::Message> pending_;
  // id -> payload bytes. Ordered, not hashed: ids come in rising order, so
  // an insert walks the tree's hot right edge, and a backlog of half a
  // million never rehashes under the lock (a stall for every pusher).
  std::map<std::string, std::size_t> leased_;
  std::size_t bytes_ = 0;
  DedupIndex dedup_;
  std::deque<DeadLetter> dead_;  // oldest first
  bool closed_ = false;
  std::function<void()> listener_;
};

}  // namespace slack_proxy

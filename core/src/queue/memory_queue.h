// Bounded in-memory queue: fastest, and everything in it is lost on a crash.
#pragma once

#include <deque>
#include <mutex>
#include <unordered_set>

#include "queue/queue.h"

namespace slack_proxy {

class MemoryQueue final : public Queue {
 public:
  explicit MemoryQueue(std::size_t capacity);

  PushStatus push(sdk::Message message) override;
  std::vector<sdk::Message> take(std::size_t max) override;
  void ack(const std::string& id) override;
  std::size_t size() const override;
  std::size_t capacity() const override { return capacity_; }
  void on_push(std::function<void()> listener) override { listener_ = std::move(listener); }

 private:
  const std::size_t capacity_;
  mutable std::mutex mutex_;
  std::deque<sdk::Message> pending_;
  std::unordered_set<std::string> leased_;
  std::function<void()> listener_;
};

}  // namespace slack_proxy

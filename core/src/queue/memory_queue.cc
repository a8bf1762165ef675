#include "queue/memory_queue.h"

namespace slack_proxy {

MemoryQueue::MemoryQueue(std::size_t capacity) : capacity_(capacity) {}

Queue::PushStatus MemoryQueue::push(sdk::Message message) {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (pending_.size() + leased_.size() >= capacity_) return PushStatus::Full;
    pending_.push_back(std::move(message));
  }
  if (listener_) listener_();
  return PushStatus::Accepted;
}

std::vector<sdk::Message> MemoryQueue::take(std::size_t max) {
  std::vector<sdk::Message> out;
  std::lock_guard<std::mutex> lock(mutex_);
  while (!pending_.empty() && out.size() < max) {
    leased_.insert(pending_.front().id);
    out.push_back(std::move(pending_.front()));
    pending_.pop_front();
  }
  return out;
}

void MemoryQueue::ack(const std::string& id) {
  std::lock_guard<std::mutex> lock(mutex_);
  leased_.erase(id);
}

std::size_t MemoryQueue::size() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return pending_.size() + leased_.size();
}

}  // namespace slack_proxy

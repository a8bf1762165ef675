#include "queue/memory_queue.h"

#include <algorithm>
#include <limits>

#include "queue/dead_letter_filter.h"

namespace slack_proxy {

MemoryQueue::MemoryQueue(QueueLimits limits, const sdk::Clock& clock, std::size_t max_dead_letters)
    : limits_(limits),
      clock_(&clock),
      max_dead_letters_(std::max<std::size_t>(1, max_dead_letters)),
      dedup_(limits.dedup_window) {}

MemoryQueue::MemoryQueue(std::size_t max_messages)
    : limits_{max_messages, std::numeric_limits<std::size_t>::max(), std::chrono::milliseconds(0)},
      clock_(nullptr),
      max_dead_letters_(10'000),
      dedup_(std::chrono::milliseconds(0)) {}

std::string MemoryQueue::over_limit(std::size_t payload_bytes) const {
  return queue_over_limit(limits_, lane_of_.size(), bytes_, payload_bytes);
}

void MemoryQueue::store_locked(sdk::Message message) {
  const std::uint64_t seq = next_seq_++;
  bytes_ += message.payload.size();
  auto lane = lanes_.try_emplace(lane_key(message)).first;
  lane->second.emplace_hint(lane->second.end(), seq, std::move(message));
  lane_of_.emplace_hint(lane_of_.end(), seq, &lane->first);
  arrivals_.push_back(seq);
}

bool MemoryQueue::remove_locked(std::uint64_t seq) {
  auto where = lane_of_.find(seq);
  if (where == lane_of_.end()) return false;
  auto lane = lanes_.find(*where->second);
  auto it = lane->second.find(seq);
  bytes_ -= it->second.payload.size();
  lane->second.erase(it);
  lane_of_.erase(where);
  // A drained lane goes: a storm over 100,000 channels leaves no empty
  // lanes behind to hash past.
  if (lane->second.empty()) lanes_.erase(lane);
  return true;
}

Queue::PushResult MemoryQueue::push(sdk::Message message, const PushOptions& options) {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (closed_) return {PushStatus::Unavailable, "the queue is closed"};
    const bool dedup = dedup_.enabled() && !options.dedup_key.empty() && clock_ != nullptr;
    if (dedup && dedup_.seen(options.dedup_key, clock_->wall_now()))
      return {PushStatus::Duplicate, {}};
    if (std::string limit = over_limit(message.payload.size()); !limit.empty())
      return {PushStatus::Full, std::move(limit)};
    if (dedup) dedup_.remember(options.dedup_key, clock_->wall_now());
    store_locked(std::move(message));
  }
  if (listener_) listener_();
  return {PushStatus::Accepted, {}};
}

std::vector<Queued> MemoryQueue::take(std::size_t max) {
  std::vector<Queued> out;
  std::lock_guard<std::mutex> lock(mutex_);
  while (!arrivals_.empty() && out.size() < max) {
    const std::uint64_t seq = arrivals_.front();
    arrivals_.pop_front();
    // Finished before it was announced (acked by a sequence the caller did
    // not get from take()): there is nothing left to announce.
    auto where = lane_of_.find(seq);
    if (where == lane_of_.end()) continue;
    out.push_back({seq, lanes_.at(*where->second).at(seq)});
  }
  return out;
}

std::vector<Queued> MemoryQueue::read_lane(const std::string& lane, std::uint64_t after,
                                           std::uint64_t upto, std::size_t max) {
  std::vector<Queued> out;
  std::lock_guard<std::mutex> lock(mutex_);
  auto found = lanes_.find(lane);
  if (found == lanes_.end()) return out;
  const Lane& stored = found->second;
  for (auto it = stored.upper_bound(after);
       it != stored.end() && it->first <= upto && out.size() < max; ++it)
    out.push_back({it->first, it->second});
  return out;
}

std::size_t MemoryQueue::lane_size(const std::string& lane) {
  std::lock_guard<std::mutex> lock(mutex_);
  auto found = lanes_.find(lane);
  return found == lanes_.end() ? 0 : found->second.size();
}

void MemoryQueue::ack(const Queued& done) {
  std::lock_guard<std::mutex> lock(mutex_);
  remove_locked(done.seq);
}

void MemoryQueue::dead_letter(std::uint64_t seq, DeadLetter letter) {
  std::lock_guard<std::mutex> lock(mutex_);
  if (!remove_locked(seq)) return;  // not ours (already finished)
  dead_.push_back(std::move(letter));
  while (dead_.size() > max_dead_letters_) dead_.pop_front();
}

std::size_t MemoryQueue::size() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return lane_of_.size();
}

std::size_t MemoryQueue::bytes() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return bytes_;
}

void MemoryQueue::close() {
  std::lock_guard<std::mutex> lock(mutex_);
  closed_ = true;
}

DeadLetterPage MemoryQueue::list(const DeadLetterFilter& filter, const std::string& after,
                                 std::size_t limit) {
  std::lock_guard<std::mutex> lock(mutex_);
  DeadLetterPage page;
  auto it = dead_.begin();
  if (!after.empty()) {
    it = std::find_if(dead_.begin(), dead_.end(),
                      [&](const DeadLetter& d) { return d.message.id == after; });
    if (it != dead_.end()) ++it;
  }
  for (; it != dead_.end(); ++it) {
    if (!matches(filter, *it)) continue;
    if (page.items.size() == limit) {
      page.next_after = page.items.back().message.id;
      break;
    }
    page.items.push_back(*it);
    page.items.back().message.delivery_token.clear();  // readers never see it
  }
  return page;
}

std::optional<DeadLetter> MemoryQueue::get(const std::string& id) {
  std::lock_guard<std::mutex> lock(mutex_);
  for (const auto& d : dead_)
    if (d.message.id == id) {
      DeadLetter copy = d;
      copy.message.delivery_token.clear();  // readers never see it
      return copy;
    }
  return std::nullopt;
}

std::size_t MemoryQueue::count() {
  std::lock_guard<std::mutex> lock(mutex_);
  return dead_.size();
}

bool MemoryQueue::remove(const std::string& id) {
  std::lock_guard<std::mutex> lock(mutex_);
  auto it = std::find_if(dead_.begin(), dead_.end(),
                         [&](const DeadLetter& d) { return d.message.id == id; });
  if (it == dead_.end()) return false;
  dead_.erase(it);
  return true;
}

std::size_t MemoryQueue::remove_matching(const DeadLetterFilter& filter) {
  std::lock_guard<std::mutex> lock(mutex_);
  const std::size_t before = dead_.size();
  dead_.erase(std::remove_if(dead_.begin(), dead_.end(),
                             [&](const DeadLetter& d) { return matches(filter, d); }),
              dead_.end());
  return before - dead_.size();
}

DeadLetterStore::ReplayStatus MemoryQueue::replay_locked(std::deque<DeadLetter>::iterator it) {
  if (closed_) return ReplayStatus::Unavailable;
  if (!over_limit(it->message.payload.size()).empty()) return ReplayStatus::Full;
  sdk::Message m = std::move(it->message);
  dead_.erase(it);
  prepare_replay(m, clock_ ? clock_->now() : std::chrono::steady_clock::now(),
                 clock_ ? clock_->wall_now() : std::chrono::system_clock::now());
  store_locked(std::move(m));  // a new sequence: behind everything queued
  return ReplayStatus::Replayed;
}

DeadLetterStore::ReplayStatus MemoryQueue::replay(const std::string& id) {
  ReplayStatus status;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    auto it = std::find_if(dead_.begin(), dead_.end(),
                           [&](const DeadLetter& d) { return d.message.id == id; });
    if (it == dead_.end()) return ReplayStatus::NotFound;
    status = replay_locked(it);
  }
  if (status == ReplayStatus::Replayed && listener_) listener_();
  return status;
}

DeadLetterStore::ReplayCount MemoryQueue::replay_matching(const DeadLetterFilter& filter) {
  ReplayCount n;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    for (auto it = dead_.begin(); it != dead_.end();) {
      if (!matches(filter, *it)) {
        ++it;
        continue;
      }
      if (n.left > 0) {  // stopped at a message that did not fit: count the rest
        ++n.left;
        ++it;
        continue;
      }
      const auto offset = it - dead_.begin();
      if (replay_locked(it) == ReplayStatus::Replayed) {
        ++n.replayed;
        it = dead_.begin() + offset;
      } else {
        ++n.left;
        ++it;
      }
    }
  }
  if (n.replayed > 0 && listener_) listener_();
  return n;
}

}  // namespace slack_proxy

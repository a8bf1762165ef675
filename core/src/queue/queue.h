// The message queue between ingress and dispatcher.
//
// Contract every backend keeps (memory now; SQLite and Redis later):
//   - push() checks capacity and stores atomically: two racing pushes can
//     never both take the last slot.
//   - take() hands out messages in push order, and a message stays counted
//     in size() (it is "leased") until ack() records its outcome. A durable
//     backend re-delivers leased messages after a crash.
//   - The dispatcher is the only consumer; ingress threads push concurrently.
#pragma once

#include <cstddef>
#include <functional>
#include <string>
#include <vector>

#include <slack_proxy/sdk/message.h>

namespace slack_proxy {

class Queue {
 public:
  enum class PushStatus { Accepted, Full, Unavailable };

  virtual ~Queue() = default;

  virtual PushStatus push(sdk::Message message) = 0;

  // Up to `max` messages in push order, without blocking. They stay leased
  // until ack().
  virtual std::vector<sdk::Message> take(std::size_t max) = 0;

  // The message's outcome is recorded: it leaves the queue for good.
  virtual void ack(const std::string& id) = 0;

  // Queued + leased.
  virtual std::size_t size() const = 0;
  virtual std::size_t capacity() const = 0;

  // Called (from the pushing thread) after each accepted push, so the
  // consumer can wake up instead of polling. Set once, before use.
  virtual void on_push(std::function<void()> listener) = 0;
};

}  // namespace slack_proxy

// Remembers dedup keys for a window, so a repeated request is recognised.
// Not thread-safe: its owner's lock guards it. Memory is bounded by the
// keys accepted within one window (each at most a few dozen bytes: callers
// pass a hash, see Ingress).
#pragma once

#include <chrono>
#include <deque>
#include <string>
#include <unordered_map>
#include <utility>

#include <slack_proxy/sdk/message.h>

namespace slack_proxy {

class DedupIndex {
 public:
  explicit DedupIndex(std::chrono::milliseconds window) : window_(window) {}

  bool enabled() const { return window_.count() > 0; }

  // True when `key` was remembered and has not expired at `now`.
  bool seen(const std::string& key, sdk::WallTime now) {
    expire(now);
    auto it = expires_.find(key);
    return it != expires_.end() && it->second > now;
  }

  // Remembers `key` until now + window (or until `expires`, when reloaded).
  void remember(const std::string& key, sdk::WallTime now) { remember_until(key, now + window_); }
  void remember_until(const std::string& key, sdk::WallTime expires) {
    auto [it, inserted] = expires_.insert_or_assign(key, expires);
    (void)it;
    (void)inserted;
    order_.emplace_back(expires, key);
  }

  // Forgets `key` at once (its push did not commit after all).
  void forget(const std::string& key) { expires_.erase(key); }

  // Drops keys whose time has passed.
  void expire(sdk::WallTime now) {
    while (!order_.empty() && order_.front().first <= now) {
      auto it = expires_.find(order_.front().second);
      if (it != expires_.end() && it->second <= now) expires_.erase(it);
      order_.pop_front();
    }
  }

  std::size_t size() const { return expires_.size(); }
  std::chrono::milliseconds window() const { return window_; }

 private:
  std::chrono::milliseconds window_;
  std::unordered_map<std::string, sdk::WallTime> expires_;
  std::deque<std::pair<sdk::WallTime, std::string>> order_;  // by expiry (window is fixed)
};

}  // namespace slack_proxy

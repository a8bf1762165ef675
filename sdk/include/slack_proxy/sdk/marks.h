// Shared marks: facts with an expiry that a stage learns and every replica
// of the proxy should know, such as "Slack said channel #x does not exist;
// stop sending to it for 15 minutes".
//
// Each stage gets its own set (HostServices::shared_marks()): its keys never
// meet another stage's. The same stage (same pipeline and stage name) in
// another replica sharing the proxy's [redis] sees the same set; without
// Redis the set lives in this process.
#ifndef SLACK_PROXY_SDK_MARKS_H
#define SLACK_PROXY_SDK_MARKS_H

#include <slack_proxy/sdk/message.h>
#include <slack_proxy/sdk/pacing.h>
#include <slack_proxy/sdk/stages.h>

#include <chrono>
#include <cstddef>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

namespace slack_proxy::sdk {

// One mark: until when it holds (on this process's steady clock) and what
// the stage wrote with it (its own text, e.g. the error that set it).
struct Mark {
  SteadyTime until{};
  std::string note;
};

// ABI 1.3. A stage's set of marks. Thread-safe. Never waits on I/O: with
// Redis, set() and clear() reach the other replicas within a fraction of a
// second (kSharedMarksPoll), and find() answers from what this replica
// already knows. Another replica's mark may therefore show up a moment
// late: use marks for what saves work (a message not sent to a dead
// channel), never for what must be exact.
class SharedMarks {
 public:
  virtual ~SharedMarks() = default;
  // Marks `key` until `now + ttl`, with `note`. A mark on `key` that lasts
  // longer is kept as it is (note included).
  virtual void set(std::string_view key, std::chrono::milliseconds ttl, std::string_view note,
                   SteadyTime now) noexcept = 0;
  // Removes the mark on `key`, for every replica.
  virtual void clear(std::string_view key) noexcept = 0;
  // The mark on `key`, if it holds after `now`.
  virtual std::optional<Mark> find(std::string_view key, SteadyTime now) noexcept = 0;
  // How many marks hold after `now`.
  virtual std::size_t count(SteadyTime now) noexcept = 0;
};

// How soon, at most, a replica learns another's set() or clear() through Redis.
inline constexpr std::chrono::milliseconds kSharedMarksPoll{250};

// The host's SharedMarks within one process (and a test's).
class LocalSharedMarks final : public SharedMarks {
 public:
  void set(std::string_view key, std::chrono::milliseconds ttl, std::string_view note,
           SteadyTime now) noexcept override {
    guarded(
        [&] {
          std::lock_guard lock(mutex_);
          const SteadyTime until = now + ttl;
          auto it = marks_.find(key);
          if (it == marks_.end()) {
            marks_.emplace(std::string(key), Mark{until, std::string(note)});
          } else if (it->second.until < until) {
            it->second = Mark{until, std::string(note)};
          }
        },
        [](std::string_view) {});
  }
  void clear(std::string_view key) noexcept override {
    guarded(
        [&] {
          std::lock_guard lock(mutex_);
          if (auto it = marks_.find(key); it != marks_.end()) marks_.erase(it);
        },
        [](std::string_view) {});
  }
  std::optional<Mark> find(std::string_view key, SteadyTime now) noexcept override {
    return guarded(
        [&]() -> std::optional<Mark> {
          std::lock_guard lock(mutex_);
          auto it = marks_.find(key);
          if (it == marks_.end() || it->second.until <= now) return std::nullopt;
          return it->second;
        },
        [](std::string_view) -> std::optional<Mark> { return std::nullopt; });
  }
  std::size_t count(SteadyTime now) noexcept override {
    return guarded(
        [&] {
          std::lock_guard lock(mutex_);
          std::erase_if(marks_, [&](const auto& m) { return m.second.until <= now; });
          return marks_.size();
        },
        [](std::string_view) { return std::size_t{0}; });
  }
  // For the host (its status page): up to `limit` marks that hold after
  // `now`, in no particular order. Not part of SharedMarks: a stage has no
  // use for it.
  std::vector<std::pair<std::string, Mark>> list(SteadyTime now, std::size_t limit) {
    std::lock_guard lock(mutex_);
    std::vector<std::pair<std::string, Mark>> out;
    for (const auto& [key, mark] : marks_) {
      if (out.size() == limit) break;
      if (mark.until > now) out.emplace_back(key, mark);
    }
    return out;
  }

 private:
  std::mutex mutex_;
  std::unordered_map<std::string, Mark, StringKeyHash, std::equal_to<>> marks_;
};

}  // namespace slack_proxy::sdk

#endif  // SLACK_PROXY_SDK_MARKS_H

// What the queue tests share: a scratch directory for database files, and
// the ids and sequences of what a queue handed out, for one-line asserts.
#pragma once

#include <stdlib.h>  // mkdtemp

#include <cstdint>
#include <filesystem>
#include <functional>
#include <stdexcept>
#include <string>
#include <system_error>
#include <vector>

#include "queue/queue.h"

namespace slack_proxy::test_support {

// A fresh directory under the system temp dir, removed with everything in it.
class TempDir {
 public:
  explicit TempDir(const std::string& prefix = "sp-queue") {
    std::string pattern = (std::filesystem::temp_directory_path() / (prefix + "-XXXXXX")).string();
    if (mkdtemp(pattern.data()) == nullptr)
      throw std::runtime_error("mkdtemp failed for " + pattern);
    path_ = pattern;
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
};

// A queue that stores nothing and accepts every push: the base of test
// doubles that script one part of the contract (a failing push, a replay
// outcome) and provide their own dead-letter store.
class EmptyQueue : public Queue {
 public:
  using Queue::push;
  PushResult push(sdk::Message, const PushOptions&) override { return {}; }
  std::vector<Queued> take(std::size_t) override { return {}; }
  std::vector<LaneBacklog> backlog() override { return {}; }
  std::vector<Queued> read_lane(const std::string&, std::uint64_t, std::uint64_t,
                                std::size_t) override {
    return {};
  }
  std::size_t lane_size(const std::string&) override { return 0; }
  std::uint64_t backlog_upto() const override { return 0; }
  void ack(const Queued&) override {}
  void dead_letter(std::uint64_t, DeadLetter) override {}
  std::size_t size() const override { return 0; }
  std::size_t bytes() const override { return 0; }
  QueueLimits limits() const override { return {}; }
  void on_push(std::function<void()>) override {}
};

inline std::vector<std::string> ids(const std::vector<Queued>& queued) {
  std::vector<std::string> out;
  for (const auto& q : queued) out.push_back(q.message.id);
  return out;
}

inline std::vector<std::uint64_t> seqs(const std::vector<Queued>& queued) {
  std::vector<std::uint64_t> out;
  for (const auto& q : queued) out.push_back(q.seq);
  return out;
}

}  // namespace slack_proxy::test_support

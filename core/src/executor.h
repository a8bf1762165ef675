// Where the dispatcher runs blocking sends. Production uses a fixed pool of
// worker threads; tests use a ManualExecutor and decide when a send "ends".
#pragma once

#include <chrono>
#include <condition_variable>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace slack_proxy {

class Executor {
 public:
  virtual ~Executor() = default;
  virtual void post(std::function<void()> task) = 0;
};

// Fixed-size pool. The destructor runs every task already posted, then joins.
class ThreadPool final : public Executor {
 public:
  explicit ThreadPool(std::size_t threads) {
    for (std::size_t i = 0; i < threads; ++i) workers_.emplace_back([this] { work(); });
  }
  ~ThreadPool() override { shutdown(); }

  void post(std::function<void()> task) override {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      tasks_.push_back(std::move(task));
    }
    cv_.notify_one();
  }

  // Finishes queued tasks and joins the workers. Idempotent.
  void shutdown() {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      stopping_ = true;
    }
    cv_.notify_all();
    for (auto& t : workers_)
      if (t.joinable()) t.join();
  }

  // Like shutdown(), but gives up at `deadline`: returns false (and joins
  // nothing) if tasks are still running then. A blocking send cannot be
  // interrupted, so the caller must then leave without destroying what
  // those tasks use.
  bool shutdown_until(std::chrono::steady_clock::time_point deadline) {
    {
      std::unique_lock<std::mutex> lock(mutex_);
      stopping_ = true;
      cv_.notify_all();
      if (!done_cv_.wait_until(lock, deadline, [&] { return tasks_.empty() && active_ == 0; }))
        return false;
    }
    shutdown();
    return true;
  }

 private:
  void work() {
    for (;;) {
      std::function<void()> task;
      {
        std::unique_lock<std::mutex> lock(mutex_);
        cv_.wait(lock, [&] { return stopping_ || !tasks_.empty(); });
        if (tasks_.empty()) return;
        task = std::move(tasks_.front());
        tasks_.pop_front();
        ++active_;
      }
      task();
      {
        std::lock_guard<std::mutex> lock(mutex_);
        --active_;
        if (tasks_.empty() && active_ == 0) done_cv_.notify_all();
      }
    }
  }

  std::mutex mutex_;
  std::condition_variable cv_;
  std::condition_variable done_cv_;
  std::deque<std::function<void()>> tasks_;
  std::size_t active_ = 0;
  bool stopping_ = false;
  std::vector<std::thread> workers_;
};

// Holds tasks until the test runs them, to model sends that are in flight.
class ManualExecutor final : public Executor {
 public:
  void post(std::function<void()> task) override { tasks_.push_back(std::move(task)); }
  std::size_t pending() const { return tasks_.size(); }
  // Runs the oldest task; false if there was none.
  bool run_one() {
    if (tasks_.empty()) return false;
    auto task = std::move(tasks_.front());
    tasks_.pop_front();
    task();
    return true;
  }
  void run_all() {
    while (run_one()) {
    }
  }

 private:
  std::deque<std::function<void()>> tasks_;
};

}  // namespace slack_proxy

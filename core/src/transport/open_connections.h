// The ingress server's open connections and the one watchdog thread that
// enforces their read deadlines (read_timeout, from a request's first byte
// to its last). A late connection's socket is shut for reading (::shutdown
// on its descriptor, which wakes a blocked read with end-of-stream, plain or
// TLS) so that its own thread notices, answers 408 if it still can, and
// closes. Descriptors are only touched under the mutex, while their
// connection is registered, i.e. before it closes them.
#pragma once

#include <chrono>
#include <condition_variable>
#include <mutex>
#include <optional>
#include <thread>
#include <unordered_set>

#include "transport/http_handler.h"

namespace slack_proxy {

class OpenConnections {
 public:
  using SteadyClock = std::chrono::steady_clock;

  // One connection, owned by the thread serving it.
  struct Live {
    int fd = -1;
    SteadyClock::time_point deadline = SteadyClock::time_point::max();
    bool fired = false;  // its deadline passed and its reading side was shut
  };

  OpenConnections();
  ~OpenConnections();
  OpenConnections(const OpenConnections&) = delete;
  OpenConnections& operator=(const OpenConnections&) = delete;

  // False once the server is stopping: the connection should just close.
  bool add(Live& live);
  void remove(Live& live);
  bool stopped();

  void arm(Live& live, SteadyClock::time_point deadline);
  // Stops the clock; false when it had already fired.
  bool disarm(Live& live);
  bool fired(Live& live);

  // Refuses new connections and shuts every open one.
  void stop_all();

 private:
  void watch();

  std::mutex mutex_;
  std::condition_variable changed_;
  std::unordered_set<Live*> live_;
  SteadyClock::time_point wake_at_ = SteadyClock::time_point::max();
  bool stopped_ = false;
  bool quit_ = false;
  std::thread watchdog_;  // last: it uses everything above
};

// One request's deadline, as the handler sees it: whether its body came in
// time.
class ConnectionDeadline final : public ReadDeadline {
 public:
  ConnectionDeadline(OpenConnections& connections, OpenConnections::Live& live)
      : connections_(connections), live_(live) {}
  bool stop() noexcept override {
    if (!result_) result_ = connections_.disarm(live_);
    return *result_;
  }

 private:
  OpenConnections& connections_;
  OpenConnections::Live& live_;
  std::optional<bool> result_;
};

}  // namespace slack_proxy

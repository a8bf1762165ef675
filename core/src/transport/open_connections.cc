// The open connections of the ingress server and their deadline watchdog
// (see open_connections.h).
#include "transport/open_connections.h"

#include <sys/socket.h>

#include <algorithm>

namespace slack_proxy {

OpenConnections::OpenConnections() : watchdog_([this] { watch(); }) {}

OpenConnections::~OpenConnections() {
  {
    std::lock_guard lock(mutex_);
    quit_ = true;
  }
  changed_.notify_all();
  watchdog_.join();
}

bool OpenConnections::add(Live& live) {
  std::lock_guard lock(mutex_);
  if (stopped_) return false;
  live_.insert(&live);
  return true;
}

void OpenConnections::remove(Live& live) {
  std::lock_guard lock(mutex_);
  live_.erase(&live);
}

bool OpenConnections::stopped() {
  std::lock_guard lock(mutex_);
  return stopped_;
}

void OpenConnections::arm(Live& live, SteadyClock::time_point deadline) {
  bool wake = false;
  {
    std::lock_guard lock(mutex_);
    live.deadline = deadline;
    live.fired = false;
    // Under steady load the watchdog already sleeps until an earlier
    // deadline; only an earlier one than that needs it awake.
    wake = deadline < wake_at_;
  }
  if (wake) changed_.notify_one();
}

bool OpenConnections::disarm(Live& live) {
  std::lock_guard lock(mutex_);
  live.deadline = SteadyClock::time_point::max();
  return !live.fired;
}

bool OpenConnections::fired(Live& live) {
  std::lock_guard lock(mutex_);
  return live.fired;
}

void OpenConnections::stop_all() {
  std::lock_guard lock(mutex_);
  stopped_ = true;
  for (Live* live : live_) ::shutdown(live->fd, SHUT_RDWR);
}

void OpenConnections::watch() {
  std::unique_lock lock(mutex_);
  while (!quit_) {
    const auto now = SteadyClock::now();
    auto next = SteadyClock::time_point::max();
    for (Live* live : live_) {
      if (live->deadline <= now) {
        ::shutdown(live->fd, SHUT_RD);
        live->fired = true;
        live->deadline = SteadyClock::time_point::max();
      } else {
        next = std::min(next, live->deadline);
      }
    }
    wake_at_ = next;
    if (next == SteadyClock::time_point::max()) {
      changed_.wait(lock);
    } else {
      changed_.wait_until(lock, next);
    }
  }
}

}  // namespace slack_proxy

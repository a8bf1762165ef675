// Names the calling thread, so that `top -H`, `ps -L`, perf and gdb show
// which of the proxy's threads is busy (the kernel keeps at most 15
// characters; a longer name is cut).
#pragma once

#include <pthread.h>

#include <string>

namespace slack_proxy {

inline void name_this_thread(const std::string& name) {
  pthread_setname_np(pthread_self(), name.substr(0, 15).c_str());
}

}  // namespace slack_proxy

// 429 pauses that several replicas share: a Retry-After one replica was given
// for a rate budget holds every replica's sends on that budget. The
// dispatcher keeps its own pauses too (dispatcher.h); this adds the other
// replicas'. With [redis], RedisSharedBuckets is one (redis/redis_buckets.h).
#ifndef SLACK_PROXY_CORE_SHARED_PAUSES_H
#define SLACK_PROXY_CORE_SHARED_PAUSES_H

#include <string_view>

#include <slack_proxy/sdk/message.h>

namespace slack_proxy {

class SharedPauses {
 public:
  virtual ~SharedPauses() = default;
  // Holds `key` (a workspace key: a budget, or a pipeline's scope) until
  // `until` for every replica. Never waits on I/O.
  virtual void pause(std::string_view key, sdk::SteadyTime until, sdk::SteadyTime now) noexcept = 0;
  // Until when another replica (or this one) paused `key`, as far as this
  // replica knows by now; <= now when not paused. Never waits on I/O: what
  // other replicas did shows up within a few tens of milliseconds.
  virtual sdk::SteadyTime paused_until(std::string_view key, sdk::SteadyTime now) noexcept = 0;
};

}  // namespace slack_proxy

#endif  // SLACK_PROXY_CORE_SHARED_PAUSES_H

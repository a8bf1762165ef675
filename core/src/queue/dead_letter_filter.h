// Helpers every queue backend shares: limit checks, dead-letter filters and
// preparing a replay. Kept here so the backends agree by construction.
#pragma once

#include <chrono>
#include <cstddef>
#include <string>
#include <vector>

#include "queue/queue.h"

namespace slack_proxy {

inline bool matches(const DeadLetterFilter& f, const DeadLetter& d) {
  if (!f.channel.empty() && d.message.channel != f.channel &&
      d.message.original_channel != f.channel)
    return false;
  if (!f.error.empty() && d.error != f.error) return false;
  if (f.kind && d.kind != *f.kind) return false;
  return true;
}

// Empty when one more message of `payload_bytes` fits; otherwise which limit
// it would break, for the 503's detail and the log.
inline std::string queue_over_limit(const QueueLimits& limits, std::size_t count,
                                    std::size_t bytes, std::size_t payload_bytes) {
  if (count >= limits.max_messages)
    return "the queue holds its limit of " + std::to_string(limits.max_messages) + " messages";
  if (bytes + payload_bytes > limits.max_bytes)
    return "the queue holds its limit of " + std::to_string(limits.max_bytes) + " bytes";
  return {};
}

// replay_matching's loop, the same for every backend: each id in turn
// through `replay` (DeadLetterStore::replay), stopping at the first that
// does not fit (full, unavailable) and counting the rest as left.
template <typename Replay>
DeadLetterStore::ReplayCount replay_in_turn(const std::vector<std::string>& ids, Replay&& replay) {
  using Status = DeadLetterStore::ReplayStatus;
  DeadLetterStore::ReplayCount n;
  bool stopped = false;
  for (const auto& id : ids) {
    if (stopped) {
      ++n.left;
      continue;
    }
    switch (replay(id)) {
      case Status::Replayed:
        ++n.replayed;
        break;
      case Status::NotFound:
        break;  // deleted meanwhile
      case Status::TokenUnavailable:
        ++n.left;  // this one can never be replayed; the others still can
        break;
      case Status::Full:
      case Status::Unavailable:
        ++n.left;
        stopped = true;
        break;
    }
  }
  return n;
}

// A dead letter going back into the queue starts afresh: no attempts, and
// its age (which a retry policy's max_age measures) counts from the replay.
inline void prepare_replay(sdk::Message& m, sdk::SteadyTime now, sdk::WallTime wall_now) {
  m.attempts = 0;
  m.last_attempt_at = {};
  m.enqueued_at = now;
  m.received_at = wall_now;
  m.attributes[sdk::kReplayedAttribute] = "true";
}

}  // namespace slack_proxy

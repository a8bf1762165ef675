#include "redis/redis_buckets.h"

#include <algorithm>
#include <exception>

#include <Poco/Redis/Error.h>
#include <Poco/Redis/Type.h>

namespace slack_proxy {
namespace {

using namespace std::chrono;

// One bucket, with sdk::BucketMap's arithmetic (pacing.h) in microseconds:
// a bucket is the time it was (or will be) empty.
//   KEYS[1]  the bucket
//   ARGV[1]  interval (us)    ARGV[2]  capacity (us)
//   ARGV[3]  "claim": one token if one is there now; otherwise nothing,
//            and how long until there is one
//            "force": ARGV[4] tokens, whether there or not (taken without a claim)
//            "refund": give back ARGV[4] tokens claimed and never used
//   ARGV[5]  now (us), or "" for Redis' own clock
//   ARGV[6]  least time to keep the key (ms); the key otherwise expires
//            once the bucket is full again, when it is the same as none
// Returns {tokens taken, microseconds to wait}.
constexpr const char* kScript = R"lua(
local now
if ARGV[5] == '' then
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000000 + tonumber(t[2])
else
  now = tonumber(ARGV[5])
end
local interval = tonumber(ARGV[1])
local capacity = tonumber(ARGV[2])
local mode = ARGV[3]
local n = tonumber(ARGV[4])
local stored = redis.call('GET', KEYS[1])
if stored then stored = tonumber(stored) end
if mode == 'refund' then
  if not stored then return {0, 0} end
  local empty_at = math.max(stored - n * interval, now - capacity)
  redis.call('SET', KEYS[1], string.format('%d', empty_at), 'KEEPTTL')
  return {0, 0}
end
if mode == 'claim' then
  if stored and stored + interval > now then return {0, stored + interval - now} end
  n = 1
end
local empty_at = math.max(stored or (now - capacity), now - capacity) + n * interval
local keep = math.floor((empty_at + math.max(interval, capacity) - now) / 1000) + 1
redis.call('SET', KEYS[1], string.format('%d', empty_at), 'PX', math.max(keep, tonumber(ARGV[6])))
return {n, 0}
)lua";

// A 429 pause: KEYS[1] holds until when (Redis' clock, ms) for ARGV[1] ms,
// unless it holds a later time already. Its value is that time, so that every
// pause can be read back in one MGET, beside one TIME to compare it with.
constexpr const char* kPauseScript = R"lua(
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local till = now + tonumber(ARGV[1])
local held = tonumber(redis.call('GET', KEYS[1]) or '0')
if held < till then
  redis.call('SET', KEYS[1], string.format('%d', till), 'PX', ARGV[1])
end
return 0
)lua";

std::int64_t micros(nanoseconds d) { return duration_cast<microseconds>(d).count(); }
std::int64_t micros_up(nanoseconds d) { return (d.count() + 999) / 1000; }

std::int64_t integer_at(const Poco::Redis::Array& reply, std::size_t i) {
  return reply.get<Poco::Int64>(i);
}

}  // namespace

const char* RedisSharedBuckets::script() { return kScript; }

RedisSharedBuckets::RedisSharedBuckets(std::unique_ptr<RedisConnection> connection,
                                       const sdk::Clock& clock, std::shared_ptr<spdlog::logger> log,
                                       bool redis_clock)
    : connection_(std::move(connection)),
      bucket_script_(connection_->add_script(kScript)),
      pause_script_(connection_->add_script(kPauseScript)),
      clock_(clock),
      log_(std::move(log)),
      redis_clock_(redis_clock),
      thread_([this] { run(); }) {}

RedisSharedBuckets::~RedisSharedBuckets() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_all();
  thread_.join();
}

RedisSharedBuckets::Entry& RedisSharedBuckets::touch(std::string_view key,
                                                     const sdk::BucketShape& shape,
                                                     sdk::SteadyTime now) {
  auto it = entries_.find(key);
  if (it == entries_.end()) it = entries_.emplace(std::string(key), Entry{}).first;
  it->second.shape = shape;
  it->second.used_at = now;
  return it->second;
}

bool RedisSharedBuckets::holds_grant(const Entry& e, sdk::SteadyTime now) {
  return e.granted > 0 && now - e.granted_at <= kGrantLifetime;
}

void RedisSharedBuckets::enqueue(Entry& e, std::string_view key) {
  if (e.queued) return;
  e.queued = true;
  pending_.emplace_back(key);
  wake_.notify_one();
}

std::string RedisSharedBuckets::redis_key(std::string_view key) const {
  // Keys hold newlines and budget ids, never a token (pacing.h).
  return connection_->settings().key_prefix + "bucket:" + std::string(key);
}

sdk::SteadyTime RedisSharedBuckets::next_token(std::string_view key, const sdk::BucketShape& shape,
                                               sdk::SteadyTime now) noexcept {
  try {
    std::lock_guard lock(mutex_);
    Entry& e = touch(key, shape, now);
    if (holds_grant(e, now)) return now;
    if (e.retry_at > now) return e.retry_at;
    e.wanted = true;
    enqueue(e, key);
    return now + kPoll;
  } catch (...) {
    return now + shape.interval;  // allocation failed: slow, never a flood
  }
}

void RedisSharedBuckets::take(std::string_view key, const sdk::BucketShape& shape,
                              sdk::SteadyTime now) noexcept {
  try {
    std::lock_guard lock(mutex_);
    Entry& e = touch(key, shape, now);
    if (holds_grant(e, now)) {
      --e.granted;
      return;
    }
    // Taken without a token claimed for it (a stage that does not ask
    // first): Redis still has to count it.
    ++e.forced;
    enqueue(e, key);
  } catch (...) {
  }
}

void RedisSharedBuckets::pause(std::string_view key, sdk::SteadyTime until,
                               sdk::SteadyTime now) noexcept {
  if (until <= now) return;
  try {
    {
      std::lock_guard lock(mutex_);
      auto it = pauses_.find(key);
      if (it == pauses_.end()) it = pauses_.emplace(std::string(key), Watched{}).first;
      Watched& w = it->second;
      w.until = std::max(w.until, until);
      w.asked_at = now;
      w.write = std::max(w.write, duration_cast<milliseconds>(until - now) + milliseconds(1));
      pause_written_ = true;
    }
    wake_.notify_one();
  } catch (...) {
    // Not shared then; this replica's own pause (the dispatcher's) stands.
  }
}

sdk::SteadyTime RedisSharedBuckets::paused_until(std::string_view key, sdk::SteadyTime now) noexcept {
  try {
    std::lock_guard lock(mutex_);
    auto it = pauses_.find(key);
    if (it == pauses_.end()) it = pauses_.emplace(std::string(key), Watched{}).first;
    it->second.asked_at = now;
    return it->second.until;
  } catch (...) {
    return now;
  }
}

std::vector<RedisSharedBuckets::PauseOp> RedisSharedBuckets::pause_ops(
    std::vector<Poco::Redis::Array>& commands, bool poll) {
  std::vector<PauseOp> ops;
  const std::string& prefix = connection_->settings().key_prefix;
  if (pause_written_) {
    for (auto& [key, w] : pauses_) {
      if (w.write.count() == 0) continue;
      Poco::Redis::Array command = connection_->script(pause_script_);
      command << "1" << prefix + "pause:" + key << std::to_string(w.write.count());
      commands.push_back(std::move(command));
      ops.push_back({key, true});
      w.write = milliseconds(0);
    }
    pause_written_ = false;
  }
  if (poll && !pauses_.empty()) {
    // Two commands however many workspaces: Redis' time, then every pause.
    Poco::Redis::Array time;
    time << "TIME";
    commands.push_back(std::move(time));
    Poco::Redis::Array mget;
    mget << "MGET";
    for (const auto& [key, w] : pauses_) {
      mget << prefix + "pause:" + key;
      ops.push_back({key, false});
    }
    commands.push_back(std::move(mget));
  }
  return ops;
}

void RedisSharedBuckets::run() {
  std::unique_lock lock(mutex_);
  while (!stopping_) {
    // Claimed tokens left untaken go back, so that a bucket another stage
    // kept waiting does not lose its turns.
    const auto now = clock_.now();
    auto next_expiry = sdk::SteadyTime::max();
    for (auto& [key, e] : entries_) {
      if (e.granted == 0) continue;
      if (now - e.granted_at > kGrantLifetime) {
        e.forced -= e.granted;  // negative: a refund
        e.granted = 0;
        if (!e.queued) {
          e.queued = true;
          pending_.push_back(key);
        }
      } else {
        next_expiry = std::min(next_expiry, e.granted_at + kGrantLifetime);
      }
    }
    forget_idle(now);
    const bool poll = !pauses_.empty() &&
                      std::chrono::steady_clock::now() - polled_at_ >= kPausePoll;
    if (pending_.empty() && !pause_written_ && !poll) {
      settled_.notify_all();
      // The clock may be a test's: wake at least every few milliseconds of
      // real time to look at it again.
      wake_.wait_for(lock, next_expiry != sdk::SteadyTime::max() ? milliseconds(kPoll)
                           : !pauses_.empty()                  ? milliseconds(kPausePoll)
                                                               : milliseconds(1000));
      continue;
    }
    if (poll) polled_at_ = std::chrono::steady_clock::now();
    std::deque<std::string> batch;
    batch.swap(pending_);
    in_flight_ = batch.size() + 1;
    lock.unlock();
    try {
      claim(std::move(batch), poll);
    } catch (const std::exception& e) {
      // Only allocation can get here; the next round tries again.
      log_->error("shared pacing: {}", e.what());
    }
    lock.lock();
    in_flight_ = 0;
  }
}

void RedisSharedBuckets::claim(std::deque<std::string> keys, bool poll) {
  struct Op {
    std::string key;
    const char* mode;
    int count;
  };
  std::vector<Op> ops;
  std::vector<PauseOp> pauses;
  std::vector<Poco::Redis::Array> commands;
  const std::string now_arg = redis_clock_ ? "" : std::to_string(micros(clock_.now().time_since_epoch()));
  const std::string keep_ms = redis_clock_ ? "0" : "600000";
  {
    std::lock_guard lock(mutex_);
    for (auto& key : keys) {
      auto it = entries_.find(key);
      if (it == entries_.end()) continue;
      Entry& e = it->second;
      e.queued = false;
      const auto add = [&](const char* mode, int count) {
        Poco::Redis::Array command = connection_->script(bucket_script_);
        command << "1" << redis_key(key)
                << std::to_string(std::max<std::int64_t>(1, micros_up(e.shape.interval)))
                << std::to_string(micros(e.shape.capacity)) << mode
                << std::to_string(count) << now_arg << keep_ms;
        commands.push_back(std::move(command));
        ops.push_back({key, mode, count});
      };
      if (e.forced > 0) add("force", e.forced);
      if (e.forced < 0) add("refund", -e.forced);
      e.forced = 0;
      if (e.wanted && e.granted == 0) add("claim", 1);
      e.wanted = false;
    }
    pauses = pause_ops(commands, poll);
  }
  if (commands.empty()) return;

  Poco::Redis::Array replies;
  bool reached = true;
  try {
    replies = connection_->pipeline(commands);
  } catch (const std::exception&) {
    reached = false;  // the connection logged it, once
  }
  const auto now = clock_.now();
  std::lock_guard lock(mutex_);
  if (reached) read_pauses(replies, ops.size(), pauses, now);
  for (std::size_t i = 0; i < ops.size(); ++i) {
    auto it = entries_.find(ops[i].key);
    if (it == entries_.end()) continue;
    Entry& e = it->second;
    const std::string_view mode = ops[i].mode;
    std::int64_t taken = 0;
    std::int64_t wait_us = 0;
    bool ok = reached;
    if (ok) {
      try {
        const auto reply = replies.get<Poco::Redis::Array>(i);
        taken = integer_at(reply, 0);
        wait_us = integer_at(reply, 1);
      } catch (const std::exception&) {
        ok = false;  // an error reply (NOPERM, OOM, ...), or one of another shape
        connection_->reply_error(replies, i);
      }
    }
    if (!ok) {
      // Nothing granted; a forced take is kept to record later. Pausing is
      // the safe side: a proxy that cannot see the shared budget must not
      // spend it.
      if (mode == "force") e.forced += ops[i].count;
      if (mode == "claim") e.retry_at = now + std::max<nanoseconds>(e.shape.interval, seconds(1));
      continue;
    }
    if (mode != "claim") continue;
    if (taken > 0) {
      ++granted_total_;
      e.granted = 1;
      e.granted_at = now;
    } else {
      ++refused_total_;
      e.retry_at = now + microseconds(wait_us);
    }
  }
}

void RedisSharedBuckets::read_pauses(const Poco::Redis::Array& replies, std::size_t first,
                                     const std::vector<PauseOp>& pauses, sdk::SteadyTime now) {
  // Writes first (one reply each), then TIME and MGET when polled. A write
  // that failed is not tried again: this replica's own pause stands, and
  // sharing it is worth no busy loop while Redis is away.
  std::size_t i = first;
  auto read = pauses.begin();
  for (; read != pauses.end() && read->write; ++read, ++i) {
    if (is_reply_error(replies, i)) connection_->reply_error(replies, i);
  }
  if (read == pauses.end()) return;
  try {
    const std::int64_t redis_now = redis_time_ms(replies.get<Poco::Redis::Array>(i));
    const auto values = replies.get<Poco::Redis::Array>(i + 1);
    for (std::size_t k = 0; read != pauses.end(); ++read, ++k) {
      if (values.getType(k) != Poco::Redis::RedisTypeTraits<Poco::Redis::BulkString>::TypeId)
        continue;
      const auto value = values.get<Poco::Redis::BulkString>(k);
      if (value.isNull()) continue;
      const std::int64_t left_ms = std::stoll(value.value()) - redis_now;
      auto it = pauses_.find(read->key);
      if (left_ms > 0 && it != pauses_.end())
        it->second.until = std::max(it->second.until, now + milliseconds(left_ms));
    }
  } catch (const std::exception&) {
    connection_->reply_error(replies, i);  // nothing learned this time
  }
}

void RedisSharedBuckets::forget_idle(sdk::SteadyTime now) {
  if (now - swept_at_ < seconds(10)) return;
  swept_at_ = now;
  std::erase_if(entries_, [&](const auto& item) {
    const Entry& e = item.second;
    return !e.queued && e.granted == 0 && e.forced == 0 && now - e.used_at > seconds(60) &&
           e.retry_at <= now;
  });
  std::erase_if(pauses_, [&](const auto& item) {
    const Watched& w = item.second;
    return w.write.count() == 0 && now - w.asked_at > seconds(60) && w.until <= now;
  });
}

bool RedisSharedBuckets::wait_settled(std::chrono::milliseconds deadline) {
  std::unique_lock lock(mutex_);
  wake_.notify_one();
  return settled_.wait_for(lock, deadline,
                           [&] { return pending_.empty() && !pause_written_ && in_flight_ == 0; });
}

std::uint64_t RedisSharedBuckets::granted() const {
  std::lock_guard lock(mutex_);
  return granted_total_;
}
std::uint64_t RedisSharedBuckets::refused() const {
  std::lock_guard lock(mutex_);
  return refused_total_;
}

}  // namespace slack_proxy

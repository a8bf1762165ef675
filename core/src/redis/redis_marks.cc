#include "redis/redis_marks.h"

#include <Poco/Redis/Type.h>

#include <algorithm>
#include <exception>

namespace slack_proxy {
namespace {

using namespace std::chrono;

// A mark: KEYS[1] the scope's hash, ARGV[1] the field, ARGV[2] how long (ms),
// ARGV[3] the note. A mark that lasts longer already stays. The hash lives
// as long as its longest mark.
constexpr const char* kSetScript = R"lua(
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local ttl = tonumber(ARGV[2])
local till = now + ttl
local held = redis.call('HGET', KEYS[1], ARGV[1])
if held then
  local held_till = tonumber(string.match(held, '^(%d+)'))
  if held_till and held_till >= till then return 0 end
end
redis.call('HSET', KEYS[1], ARGV[1], string.format('%d', till) .. ' ' .. ARGV[3])
if redis.call('PTTL', KEYS[1]) < ttl then redis.call('PEXPIRE', KEYS[1], ttl) end
return 1
)lua";

// Removes the fields ARGV[...] of KEYS[1] that have expired by Redis' clock,
// and only those: another replica may have set one again meanwhile.
constexpr const char* kPruneScript = R"lua(
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
for _, field in ipairs(ARGV) do
  local held = redis.call('HGET', KEYS[1], field)
  if held then
    local till = tonumber(string.match(held, '^(%d+)'))
    if not till or till <= now then redis.call('HDEL', KEYS[1], field) end
  end
end
return 0
)lua";

// A stage's view: its scope, and the hub kept alive.
class ScopedMarks final : public sdk::SharedMarks {
 public:
  ScopedMarks(std::shared_ptr<RedisSharedMarks> hub, std::string scope)
      : hub_(std::move(hub)), scope_(std::move(scope)) {}
  void set(std::string_view key, milliseconds ttl, std::string_view note,
           sdk::SteadyTime now) noexcept override {
    hub_->set(scope_, key, ttl, note, now);
  }
  void clear(std::string_view key) noexcept override { hub_->clear(scope_, key); }
  std::optional<sdk::Mark> find(std::string_view key, sdk::SteadyTime now) noexcept override {
    return hub_->find(scope_, key, now);
  }
  std::size_t count(sdk::SteadyTime now) noexcept override { return hub_->count(scope_, now); }

 private:
  std::shared_ptr<RedisSharedMarks> hub_;
  std::string scope_;
};

}  // namespace

RedisSharedMarks::RedisSharedMarks(std::unique_ptr<RedisConnection> connection,
                                   const sdk::Clock& clock, std::shared_ptr<spdlog::logger> log)
    : connection_(std::move(connection)),
      set_script_(connection_->add_script(kSetScript)),
      prune_script_(connection_->add_script(kPruneScript)),
      clock_(clock),
      log_(std::move(log)),
      thread_([this] { run(); }) {}

RedisSharedMarks::~RedisSharedMarks() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_all();
  thread_.join();
}

std::shared_ptr<sdk::SharedMarks> RedisSharedMarks::scope(const std::string& scope) {
  // Read back from the first use on (watch()): a stage that never uses its
  // marks costs no command.
  return std::make_shared<ScopedMarks>(shared_from_this(), scope);
}

std::string RedisSharedMarks::hash_key(const std::string& scope) const {
  return connection_->settings().key_prefix + "marks:" + scope;
}

RedisSharedMarks::MarkMap& RedisSharedMarks::watch(const std::string& scope) {
  auto [it, added] = copy_.try_emplace(scope);
  if (added) {
    new_scope_ = true;
    wake_.notify_one();  // read it back now
  }
  return it->second;
}

void RedisSharedMarks::apply(const Change& change) {
  MarkMap& marks = watch(change.scope);
  if (!change.set) {
    if (auto it = marks.find(change.key); it != marks.end()) marks.erase(it);
    return;
  }
  auto it = marks.find(change.key);
  if (it == marks.end()) {
    marks.emplace(change.key, sdk::Mark{change.until, change.note});
  } else if (it->second.until < change.until) {
    it->second = sdk::Mark{change.until, change.note};
  }
}

void RedisSharedMarks::queue(Change change) {
  apply(change);
  // A change not yet sent that this one makes moot goes: a clear replaces
  // every change to its key; a set the set just before it (keeping the
  // longer), never one from before a clear. So at most a clear and a set per
  // key wait, besides those in flight.
  const auto same_key = [&](const Change& c) {
    return c.scope == change.scope && c.key == change.key;
  };
  if (!change.set) {
    std::erase_if(changes_, [&](const Change& c) { return !c.in_flight && same_key(c); });
  } else {
    auto last = std::find_if(changes_.rbegin(), changes_.rend(), same_key);
    if (last != changes_.rend() && !last->in_flight && last->set) {
      if (last->until > change.until) {
        change.until = last->until;
        change.note = last->note;
      }
      changes_.erase(std::next(last).base());
    }
  }
  changes_.push_back(std::move(change));
  if (changes_.size() <= kMaxUnsent) return;
  auto oldest =
      std::find_if(changes_.begin(), changes_.end(), [](const Change& c) { return !c.in_flight; });
  if (oldest != changes_.end()) changes_.erase(oldest);
  if (!dropped_logged_) {
    log_->warn(
        "shared marks: more than {} changes wait for Redis; the oldest are dropped: they "
        "will not reach the other replicas, and this replica forgets them at its next "
        "read-back",
        kMaxUnsent);
    dropped_logged_ = true;
  }
}

std::deque<RedisSharedMarks::Change>::iterator RedisSharedMarks::queued(std::uint64_t seq) {
  auto it = std::lower_bound(changes_.begin(), changes_.end(), seq,
                             [](const Change& c, std::uint64_t s) { return c.seq < s; });
  return it != changes_.end() && it->seq == seq ? it : changes_.end();
}

void RedisSharedMarks::set(const std::string& scope, std::string_view key, milliseconds ttl,
                           std::string_view note, sdk::SteadyTime now) noexcept {
  try {
    {
      std::lock_guard lock(mutex_);
      queue(Change{next_seq_++, scope, std::string(key), true, std::string(note), now + ttl});
    }
    wake_.notify_one();
  } catch (...) {
    // Allocation failed: the mark is not kept; the stage works without it.
  }
}

void RedisSharedMarks::clear(const std::string& scope, std::string_view key) noexcept {
  try {
    {
      std::lock_guard lock(mutex_);
      queue(Change{next_seq_++, scope, std::string(key), false, {}, {}});
    }
    wake_.notify_one();
  } catch (...) {
  }
}

std::optional<sdk::Mark> RedisSharedMarks::find(const std::string& scope, std::string_view key,
                                                sdk::SteadyTime now) noexcept {
  try {
    std::lock_guard lock(mutex_);
    const MarkMap& marks = watch(scope);
    auto it = marks.find(key);
    if (it == marks.end() || it->second.until <= now) return std::nullopt;
    return it->second;
  } catch (...) {
    return std::nullopt;
  }
}

std::vector<std::pair<std::string, sdk::Mark>> RedisSharedMarks::list(const std::string& scope,
                                                                     sdk::SteadyTime now,
                                                                     std::size_t limit) {
  std::lock_guard lock(mutex_);
  std::vector<std::pair<std::string, sdk::Mark>> out;
  const auto it = copy_.find(scope);
  if (it == copy_.end()) return out;
  for (const auto& [key, mark] : it->second) {
    if (out.size() == limit) break;
    if (mark.until > now) out.emplace_back(key, mark);
  }
  return out;
}

std::size_t RedisSharedMarks::count(const std::string& scope, sdk::SteadyTime now) noexcept {
  try {
    std::lock_guard lock(mutex_);
    const MarkMap& marks = watch(scope);
    return static_cast<std::size_t>(std::count_if(
        marks.begin(), marks.end(), [&](const auto& m) { return m.second.until > now; }));
  } catch (...) {
    return 0;
  }
}

void RedisSharedMarks::run() {
  std::unique_lock lock(mutex_);
  auto last_round = std::chrono::steady_clock::time_point{};
  while (!stopping_) {
    const bool due = std::chrono::steady_clock::now() - last_round >= sdk::kSharedMarksPoll;
    const bool unsent =
        std::any_of(changes_.begin(), changes_.end(), [](const Change& c) { return !c.in_flight; });
    // After a failed round, changes wait for the next poll: no busy loop
    // while Redis is away (the connection backs off on its own, too).
    if ((!copy_.empty() || forced_) && (due || ((unsent || forced_ || new_scope_) && last_ok_))) {
      last_round = std::chrono::steady_clock::now();
      try {
        sync(lock);
      } catch (const std::exception& e) {
        // Only allocation can get here; the next round tries again.
        if (!lock.owns_lock()) lock.lock();
        for (auto& change : changes_) change.in_flight = false;
        last_ok_ = false;
        log_->error("shared marks: {}", e.what());
      }
      continue;
    }
    wake_.wait_for(lock, copy_.empty() ? milliseconds(1000) : sdk::kSharedMarksPoll);
  }
}

void RedisSharedMarks::sync(std::unique_lock<std::mutex>& lock) {
  const std::uint64_t round = ++rounds_started_;
  forced_ = false;
  new_scope_ = false;
  const auto built_at = clock_.now();
  std::vector<Poco::Redis::Array> commands;
  std::vector<std::pair<std::uint64_t, std::size_t>> sent;  // seq, its reply (npos: none needed)
  std::size_t batched = 0;
  for (auto& change : changes_) {
    if (change.in_flight) continue;
    // A backlog goes over several rounds, so that no batch outlasts
    // command_timeout and is sent again whole.
    if (++batched > kMaxPerRound) break;
    change.in_flight = true;
    Poco::Redis::Array command;
    if (change.set) {
      const auto left = std::chrono::ceil<milliseconds>(change.until - built_at);
      if (left.count() <= 0) {
        sent.emplace_back(change.seq, std::string::npos);  // expired while it waited
        continue;
      }
      command = connection_->script(set_script_);
      command << "1" << hash_key(change.scope) << change.key << std::to_string(left.count())
              << change.note;
    } else {
      command << "HDEL" << hash_key(change.scope) << change.key;
    }
    sent.emplace_back(change.seq, commands.size());
    commands.push_back(std::move(command));
  }
  for (const auto& [scope, fields] : expired_) {
    Poco::Redis::Array command = connection_->script(prune_script_);
    command << "1" << hash_key(scope);
    for (const auto& field : fields) command << field;
    commands.push_back(std::move(command));
  }
  expired_.clear();
  const std::size_t time_at = commands.size();
  Poco::Redis::Array time;
  time << "TIME";
  commands.push_back(std::move(time));
  std::vector<std::string> scopes;
  for (const auto& item : copy_) {
    scopes.push_back(item.first);
    Poco::Redis::Array read;
    read << "HGETALL" << hash_key(item.first);
    commands.push_back(std::move(read));
  }
  lock.unlock();

  // Away from the lock: the round trip, and reading what came back.
  Poco::Redis::Array replies;
  bool reached = true;
  try {
    replies = connection_->pipeline(commands);
  } catch (const std::exception&) {
    reached = false;  // the connection logged it, once
  }
  const auto now = clock_.now();
  std::vector<bool> refused(commands.size(), false);
  std::vector<std::optional<MarkMap>> snapshots(scopes.size());
  std::map<std::string, std::set<std::string>> expired;
  if (reached) {
    for (std::size_t i = 0; i < time_at; ++i) {
      if (!is_reply_error(replies, i)) continue;
      refused[i] = true;
      connection_->reply_error(replies, i);
    }
    try {
      const std::int64_t redis_now = redis_time_ms(replies.get<Poco::Redis::Array>(time_at));
      for (std::size_t s = 0; s < scopes.size(); ++s) {
        const std::size_t at = time_at + 1 + s;
        if (is_reply_error(replies, at)) {
          connection_->reply_error(replies, at);
          continue;
        }
        const auto fields = replies.get<Poco::Redis::Array>(at);
        MarkMap marks;
        // No such hash: Poco reads the empty reply as a null array, whose
        // size() throws.
        const std::size_t count = fields.isNull() ? 0 : fields.size();
        for (std::size_t f = 0; f + 1 < count; f += 2) {
          const std::string key = fields.get<Poco::Redis::BulkString>(f).value();
          const std::string value = fields.get<Poco::Redis::BulkString>(f + 1).value();
          const auto space = value.find(' ');
          std::int64_t till = 0;
          try {
            till = std::stoll(value.substr(0, space));
          } catch (const std::exception&) {
          }
          const std::int64_t left = till - redis_now;
          if (left <= 0) {
            expired[scopes[s]].insert(key);
            continue;
          }
          marks.emplace(key, sdk::Mark{now + milliseconds(left),
                                       space == std::string::npos ? "" : value.substr(space + 1)});
        }
        snapshots[s] = std::move(marks);
      }
    } catch (const std::exception&) {
      connection_->reply_error(replies, time_at);  // nothing learned this round
    }
  }

  lock.lock();
  // Taken by Redis: done. Refused, or never sent: sent again, but not
  // before the next poll, so a Redis that keeps refusing (an ACL without a
  // command, OOM) costs a round every kSharedMarksPoll, not a busy loop.
  bool any_refused = false;
  for (const auto& [seq, reply] : sent) {
    const auto change = queued(seq);
    if (change == changes_.end()) continue;
    const bool was_refused = reply != std::string::npos && refused[reply];
    if (!reached || was_refused) {
      change->in_flight = false;
      change->refused = change->refused || was_refused;
      any_refused = any_refused || was_refused;
    } else {
      changes_.erase(change);
    }
  }
  last_ok_ = reached && !any_refused;
  if (!reached) return;
  for (std::size_t s = 0; s < scopes.size(); ++s)
    if (snapshots[s]) copy_[scopes[s]] = std::move(*snapshots[s]);
  for (auto& [scope, fields] : expired) expired_[scope].merge(fields);
  // What Redis does not have yet stays this replica's, on top; except a
  // clear Redis refused, which would hide a parking every other replica
  // sees (until Redis takes it, this one sees what they see).
  for (const auto& change : changes_)
    if (change.set || !change.refused) apply(change);
  if (changes_.empty()) dropped_logged_ = false;  // a later backlog is said again
  rounds_done_ = round;
  synced_.notify_all();
}

bool RedisSharedMarks::wait_synced(milliseconds deadline) {
  std::unique_lock lock(mutex_);
  const std::uint64_t want = rounds_started_ + 1;
  forced_ = true;
  last_ok_ = true;
  wake_.notify_one();
  return synced_.wait_for(lock, deadline, [&] { return rounds_done_ >= want; });
}

}  // namespace slack_proxy

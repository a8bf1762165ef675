#include "redis/redis_queue.h"

#include <Poco/Redis/Type.h>
#include <Poco/UUIDGenerator.h>

#include <algorithm>
#include <future>
#include <limits>
#include <sstream>

#include "queue/dead_letter_filter.h"
#include "queue/message_codec.h"
#include "queue/sqlite_db.h"  // QueueError

namespace slack_proxy {
namespace {

using namespace std::chrono;
using Poco::Redis::Array;

// Functions every script shares. ARGV[1] is the key prefix, ARGV[2] this
// replica's name. Keys are built here from the prefix: the queue needs a
// single Redis (or a primary with replicas), not a Cluster.
constexpr const char* kCommon = R"lua(
local p, me = ARGV[1], ARGV[2]
local function counts()
  return redis.call('HGET', p..'q:n', 'count') or '0', redis.call('HGET', p..'q:n', 'bytes') or '0'
end
-- "<count> <bytes> <version>": the version rises with every change, so a
-- replica keeps the newest of the copies its threads bring back.
local function state()
  local n, b = counts()
  return n..' '..b..' '..(redis.call('HGET', p..'q:n', 'v') or '0')
end
local function over(bytes, max_n, max_b)
  local n, b = counts()
  if tonumber(n) >= max_n then return 'count' end
  if tonumber(b) + bytes > max_b then return 'bytes' end
  return nil
end
-- Replica r is gone (stopped, or taken for dead): every lane it held with
-- messages left becomes free, for a heartbeat to take over.
local function let_go(r)
  for _, l in ipairs(redis.call('SMEMBERS', p..'q:held:'..r)) do
    if redis.call('HGET', p..'q:holder', l) == r then
      redis.call('HDEL', p..'q:holder', l)
      if redis.call('EXISTS', p..'q:l:'..l) == 1 then redis.call('SADD', p..'q:free', l) end
    end
  end
  redis.call('DEL', p..'q:held:'..r, p..'q:in:'..r, p..'q:claim:'..r)
  redis.call('ZREM', p..'q:replicas', r)
end
-- Stores a message, and puts it on its lane holder's inbox. An empty lane
-- nobody holds becomes the pusher's (when the pusher is alive); a lane with
-- older messages and no holder stays free, for a take-over that reads it
-- whole.
local function store(lane, bytes, record, token)
  local seq = redis.call('INCR', p..'q:seq')
  local lk = p..'q:l:'..lane
  redis.call('HSET', p..'q:msg', seq, record)
  redis.call('HSET', p..'q:meta', seq, bytes..' '..lane)
  if token ~= '' then redis.call('HSET', p..'q:tok', seq, token) end
  redis.call('ZADD', lk, seq, seq)
  redis.call('HINCRBY', p..'q:n', 'count', 1)
  redis.call('HINCRBY', p..'q:n', 'bytes', bytes)
  redis.call('HINCRBY', p..'q:n', 'v', 1)
  local holder = redis.call('HGET', p..'q:holder', lane)
  if not holder and redis.call('ZCARD', lk) == 1 and redis.call('ZSCORE', p..'q:replicas', me) then
    holder = me
    redis.call('HSET', p..'q:holder', lane, me)
    redis.call('SADD', p..'q:held:'..me, lane)
    redis.call('SREM', p..'q:free', lane)
  end
  if holder then
    redis.call('RPUSH', p..'q:in:'..holder, seq)
  else
    redis.call('SADD', p..'q:free', lane)
  end
  return seq
end
)lua";

// ARGV[3..]: max count, max bytes, now (ms, the proxy's clock), dedup
// window (ms), dedup key (empty: none), lane, bytes, record, sealed token.
constexpr const char* kPush = R"lua(
local dk, now = ARGV[7], tonumber(ARGV[5])
if dk ~= '' then
  local till = redis.call('ZSCORE', p..'q:dd', dk)
  if till and tonumber(till) > now then return {'dup'} end
end
local why = over(tonumber(ARGV[9]), tonumber(ARGV[3]), tonumber(ARGV[4]))
if why then return {'full', why} end
if dk ~= '' then
  redis.call('ZREMRANGEBYSCORE', p..'q:dd', '-inf', now)
  redis.call('ZADD', p..'q:dd', now + tonumber(ARGV[6]), dk)
end
local seq = store(ARGV[8], tonumber(ARGV[9]), ARGV[10], ARGV[11])
return {'ok', tostring(seq), state(), redis.call('HGET', p..'q:holder', ARGV[8]) or ''}
)lua";

// ARGV[3..]: seq, id, dead letter record (empty: an ack), max dead letters.
// Refused ('fenced') unless this replica holds the message's lane.
constexpr const char* kOutcome = R"lua(
local seq = ARGV[3]
local meta = redis.call('HGET', p..'q:meta', seq)
if not meta then return {'missing', state()} end
local sp = string.find(meta, ' ', 1, true)
local bytes, lane = tonumber(string.sub(meta, 1, sp - 1)), string.sub(meta, sp + 1)
if redis.call('HGET', p..'q:holder', lane) ~= me then return {'fenced', state()} end
local tok = redis.call('HGET', p..'q:tok', seq)
redis.call('HDEL', p..'q:msg', seq)
redis.call('HDEL', p..'q:meta', seq)
redis.call('HDEL', p..'q:tok', seq)
local lk = p..'q:l:'..lane
redis.call('ZREM', lk, seq)
redis.call('HINCRBY', p..'q:n', 'count', -1)
redis.call('HINCRBY', p..'q:n', 'bytes', -bytes)
redis.call('HINCRBY', p..'q:n', 'v', 1)
if redis.call('ZCARD', lk) == 0 then
  redis.call('HDEL', p..'q:holder', lane)
  redis.call('SREM', p..'q:held:'..me, lane)
end
if ARGV[5] ~= '' then
  local id = ARGV[4]
  redis.call('HSET', p..'q:dl', id, ARGV[5])
  if tok then redis.call('HSET', p..'q:dltok', id, tok) else redis.call('HDEL', p..'q:dltok', id) end
  redis.call('ZADD', p..'q:dlz', redis.call('INCR', p..'q:dlseq'), id)
  local max = tonumber(ARGV[6])
  while redis.call('ZCARD', p..'q:dlz') > max do
    local old = redis.call('ZPOPMIN', p..'q:dlz')
    redis.call('HDEL', p..'q:dl', old[1])
    redis.call('HDEL', p..'q:dltok', old[1])
  end
end
return {'ok', state()}
)lua";

// ARGV[3..]: lane, after, upto, max. The lane's holder, then seq, record,
// sealed token for each message after < seq <= upto.
constexpr const char* kRead = R"lua(
local out = {redis.call('HGET', p..'q:holder', ARGV[3]) or ''}
local seqs = redis.call('ZRANGEBYSCORE', p..'q:l:'..ARGV[3], '('..ARGV[4], ARGV[5], 'LIMIT', 0, tonumber(ARGV[6]))
for _, s in ipairs(seqs) do
  out[#out + 1] = s
  out[#out + 1] = redis.call('HGET', p..'q:msg', s) or ''
  out[#out + 1] = redis.call('HGET', p..'q:tok', s) or ''
end
return out
)lua";

// Reads (never pops) up to ARGV[3] sequences from the head of this
// replica's inbox, and the messages ARGV[4..]. Returns how many inbox
// entries it read, then seq, record, sealed token for each message still
// stored, in order. The caller trims the inbox once it has announced them,
// so a reply lost on the way loses nothing: the next read finds them again.
constexpr const char* kPeek = R"lua(
local seqs = {}
for i = 4, #ARGV do seqs[#seqs + 1] = ARGV[i] end
local n = tonumber(ARGV[3])
local read = {}
if n > 0 then read = redis.call('LRANGE', p..'q:in:'..me, 0, n - 1) end
for _, s in ipairs(read) do seqs[#seqs + 1] = s end
local out = {tostring(#read)}
for _, s in ipairs(seqs) do
  local m = redis.call('HGET', p..'q:msg', s)
  if m then
    out[#out + 1] = s
    out[#out + 1] = m
    out[#out + 1] = redis.call('HGET', p..'q:tok', s) or ''
  end
end
return out
)lua";

// The heartbeat. ARGV[3..]: lease (ms), lanes to take over at most (0:
// none), '1' to register (else a replica no longer listed was taken for
// dead: 'lost'), '1' to return the inbox. Replicas silent for a lease are
// removed and their lanes freed; then free lanes are taken over, each
// recorded in q:claim:<me> with "<first> <count> <last> <q:seq then>" until
// the caller confirms it (HDEL) once announced: a reply lost on the way
// loses no lane. Returns 'ok', q:seq, state(), the number of inbox
// entries and those, then lane and record for each claim not yet confirmed
// (when taking over).
constexpr const char* kBeat = R"lua(
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local prev = redis.call('ZSCORE', p..'q:replicas', me)
if ARGV[5] ~= '1' and not prev then return {'lost'} end
redis.call('ZADD', p..'q:replicas', now, me)
-- Only a replica that beat within the lease itself takes others for dead:
-- after an outage of Redis every replica is late, and the first one back
-- must not send all the others away.
local reaping = {}
if prev and now - tonumber(prev) <= tonumber(ARGV[3]) then
  reaping = redis.call('ZRANGEBYSCORE', p..'q:replicas', '-inf', now - tonumber(ARGV[3]), 'LIMIT', 0, 8)
end
for _, d in ipairs(reaping) do let_go(d) end
local seq = redis.call('GET', p..'q:seq') or '0'
local claim = tonumber(ARGV[4])
if claim > 0 then
  for _, l in ipairs(redis.call('SPOP', p..'q:free', claim)) do
    local lk = p..'q:l:'..l
    local count = redis.call('ZCARD', lk)
    if count > 0 and not redis.call('HGET', p..'q:holder', l) then
      redis.call('HSET', p..'q:holder', l, me)
      redis.call('SADD', p..'q:held:'..me, l)
      redis.call('HSET', p..'q:claim:'..me, l, redis.call('ZRANGE', lk, 0, 0)[1]..' '..count..' '..
                 redis.call('ZRANGE', lk, -1, -1)[1]..' '..seq)
    end
  end
end
local out = {'ok', seq, state()}
local inbox = {}
if ARGV[6] == '1' then inbox = redis.call('LRANGE', p..'q:in:'..me, 0, -1) end
out[#out + 1] = tostring(#inbox)
for _, s in ipairs(inbox) do out[#out + 1] = s end
if claim > 0 then
  for _, v in ipairs(redis.call('HGETALL', p..'q:claim:'..me)) do out[#out + 1] = v end
end
return out
)lua";

// Lets every lane this replica holds go (a clean shutdown): the next
// replica's heartbeat takes them over at once.
constexpr const char* kRelease = R"lua(
let_go(me)
return 0
)lua";

// ARGV[3..]: max count, max bytes, id, lane, bytes, record, sealed token.
// Moves dead letter `id` back into the queue, if it is still there and fits.
constexpr const char* kReplay = R"lua(
local id = ARGV[5]
if redis.call('HEXISTS', p..'q:dl', id) == 0 then return {'gone'} end
local why = over(tonumber(ARGV[7]), tonumber(ARGV[3]), tonumber(ARGV[4]))
if why then return {'full', why} end
redis.call('HDEL', p..'q:dl', id)
redis.call('HDEL', p..'q:dltok', id)
redis.call('ZREM', p..'q:dlz', id)
local seq = store(ARGV[6], tonumber(ARGV[7]), ARGV[8], ARGV[9])
return {'ok', tostring(seq), state(), redis.call('HGET', p..'q:holder', ARGV[6]) or ''}
)lua";

// ARGV[3]: the dead letter's id. 1 when it was there.
constexpr const char* kRemove = R"lua(
local gone = redis.call('HDEL', p..'q:dl', ARGV[3])
redis.call('HDEL', p..'q:dltok', ARGV[3])
redis.call('ZREM', p..'q:dlz', ARGV[3])
return gone
)lua";

// Element `i` of a reply as text: a bulk or simple string, or a number.
std::string text_at(const Array& a, std::size_t i) {
  switch (a.getType(i)) {
    case Poco::Redis::RedisType::REDIS_INTEGER:
      return std::to_string(a.get<Poco::Int64>(i));
    case Poco::Redis::RedisType::REDIS_SIMPLE_STRING:
      return a.get<std::string>(i);
    case Poco::Redis::RedisType::REDIS_BULK_STRING: {
      const auto s = a.get<Poco::Redis::BulkString>(i);
      return s.isNull() ? std::string() : s.value();
    }
    default:
      throw std::runtime_error("unexpected reply from Redis");
  }
}

std::size_t size_of(const Array& a) { return a.isNull() ? 0 : a.size(); }

std::uint64_t number(const std::string& text) {
  try {
    return text.empty() ? 0 : std::stoull(text);
  } catch (const std::exception&) {
    throw std::runtime_error("unexpected number from Redis");
  }
}

// A dead letter's stored form: its message's record (message_codec) and
// the record's own fields, each length-prefixed ("<len>:<bytes>").
void put(std::string& out, const std::string& field) {
  out += std::to_string(field.size());
  out += ':';
  out += field;
}
bool get_field(std::string_view& in, std::string& field) {
  const auto colon = in.find(':');
  if (colon == std::string_view::npos || colon == 0 || colon > 12) return false;
  std::size_t n = 0;
  for (char c : in.substr(0, colon)) {
    if (c < '0' || c > '9') return false;
    n = n * 10 + static_cast<std::size_t>(c - '0');
  }
  in.remove_prefix(colon + 1);
  if (n > in.size()) return false;
  field.assign(in.substr(0, n));
  in.remove_prefix(n);
  return true;
}

std::string encode_dead_letter(const DeadLetter& d) {
  std::string out = "dl1;";
  put(out, encode_message(d.message));
  put(out, to_string(d.kind));
  put(out, d.error);
  put(out, d.reason);
  put(out, std::to_string(d.http_status));
  put(out, std::to_string(to_unix_ms(d.dead_at)));
  return out;
}

std::optional<DeadLetter> decode_dead_letter(std::string_view in) {
  if (in.substr(0, 4) != "dl1;") return std::nullopt;
  in.remove_prefix(4);
  std::string record, kind, status, dead_at;
  DeadLetter d;
  if (!get_field(in, record) || !get_field(in, kind) || !get_field(in, d.error) ||
      !get_field(in, d.reason) || !get_field(in, status) || !get_field(in, dead_at))
    return std::nullopt;
  auto message = decode_message(record);
  auto k = dead_letter_kind_from(kind);
  if (!message || !k) return std::nullopt;
  d.message = std::move(*message);
  d.kind = *k;
  try {
    d.http_status = std::stoi(status);
    d.dead_at = from_unix_ms(std::stoll(dead_at));
  } catch (const std::exception&) {
    return std::nullopt;
  }
  return d;
}

constexpr std::size_t kBatch = 256;          // ops in one pipeline
constexpr std::size_t kInboxBatch = 512;     // sequences popped at once
constexpr auto kRefresh = milliseconds(250);  // counts read back when idle
constexpr auto kRetry = milliseconds(200);    // outcomes wait after a failure
// The longest BLMOVE wait: a stopping queue waits this long for its watcher, and
// an idle replica asks Redis this often.
constexpr auto kInboxWait = milliseconds(100);
// How long an accepted push's answer waits for its announcement at most:
// it is stored either way.
constexpr auto kAnnounceWait = milliseconds(1000);

}  // namespace

RedisQueue::RedisQueue(RedisQueueOptions options, const Connect& connect, const sdk::Clock& clock,
                       std::shared_ptr<spdlog::logger> log)
    : options_(std::move(options)),
      clock_(clock),
      log_(std::move(log)),
      writer_conn_(connect("queue")),
      watch_conn_(connect("queue-watch")),
      read_conn_(connect("queue-read")),
      dedup_(options_.limits.dedup_window) {
  prefix_ = writer_conn_->settings().key_prefix;
  const std::string suffix = Poco::UUIDGenerator::defaultGenerator().createRandom().toString();
  me_ = options_.replica + "-" + suffix.substr(0, 8);
  log_->info("redis queue: this replica is {} in Redis", me_);
  for (RedisConnection* c : {writer_conn_.get(), watch_conn_.get(), read_conn_.get()}) {
    const std::string common = kCommon;
    push_script_ = c->add_script(common + kPush);
    outcome_script_ = c->add_script(common + kOutcome);
    read_script_ = c->add_script(common + kRead);
    beat_script_ = c->add_script(common + kBeat);
    peek_script_ = c->add_script(common + kPeek);
    release_script_ = c->add_script(common + kRelease);
    replay_script_ = c->add_script(common + kReplay);
    remove_script_ = c->add_script(common + kRemove);
  }
  // Registered, and the lanes nobody delivers taken over, before the first
  // push: what backlog() will name is what was stored when this replica
  // opened, and the lanes it pushes to from here on are its own. If Redis
  // does not answer now, backlog() tries again.
  try {
    opened_ = claim_backlog();
  } catch (const QueueError&) {
    // The connection logged why.
  }
  writer_ = std::thread([this] { write_loop(); });
  watcher_ = std::thread([this] { watch_loop(); });
}

RedisQueue::~RedisQueue() { close(); }

std::string RedisQueue::replica() const {
  std::lock_guard lock(mutex_);
  return me_;
}

std::string RedisQueue::seal(const std::string& token) const {
  if (token.empty() || !options_.sealer) return {};
  return options_.sealer->seal(token);
}

std::string RedisQueue::open_token(const std::string& sealed) const {
  if (sealed.empty() || !options_.sealer) return {};
  return options_.sealer->open(sealed).value_or(std::string());
}

// ---- pushing ----------------------------------------------------------------

void RedisQueue::push_async(sdk::Message message, const PushOptions& options, PushDone done) {
  PushOp op;
  op.lane = lane_key(message);
  op.bytes = message.payload.size();
  try {
    op.sealed = seal(message.delivery_token);
  } catch (const std::exception&) {
    op.sealed.clear();  // not sealable: read back without a token
  }
  message.delivery_token.clear();
  op.record = encode_message(message);
  if (options_.limits.dedup_window.count() > 0) op.dedup_key = options.dedup_key;
  std::optional<PushResult> refused;
  {
    std::lock_guard lock(mutex_);
    // What is known here is answered here, as the other backends do: a
    // key this replica accepted within the window, and a queue that is
    // full by the last count Redis gave plus the pushes on their way (the
    // script checks again, for every replica at once).
    const std::size_t count = redis_count_ - std::min(redis_count_, pending_count_);
    const std::size_t bytes = redis_bytes_ - std::min(redis_bytes_, pending_bytes_);
    if (closed_ || lost_) {
      refused = PushResult{PushStatus::Unavailable,
                           lost_ ? "this replica was taken for dead and stops"
                                 : "the queue is closed"};
    } else if (!op.dedup_key.empty() && dedup_.seen(op.dedup_key, clock_.wall_now())) {
      refused = PushResult{PushStatus::Duplicate, {}};
    } else if (!op.dedup_key.empty() && pending_keys_.count(op.dedup_key) > 0) {
      // A repeat of a key whose first copy is on its way: answered after
      // it, by the script (a duplicate, unless the first was refused).
      op.reserved = false;
      ++pending_keys_[op.dedup_key];
      op.done = std::move(done);
      ops_.push_back(std::move(op));
      work_cv_.notify_one();
      return;
    } else if (std::string limit = queue_over_limit(options_.limits, count + pushing_count_,
                                                    bytes + pushing_bytes_, op.bytes);
               !limit.empty()) {
      refused = PushResult{PushStatus::Full, std::move(limit)};
    } else {
      pushing_count_ += 1;
      pushing_bytes_ += op.bytes;
      if (!op.dedup_key.empty()) ++pending_keys_[op.dedup_key];
      op.done = std::move(done);
      ops_.push_back(std::move(op));
      work_cv_.notify_one();
      return;
    }
  }
  done(std::move(*refused));
}

Queue::PushResult RedisQueue::push(sdk::Message message, const PushOptions& options) {
  auto promise = std::make_shared<std::promise<PushResult>>();
  auto future = promise->get_future();
  push_async(std::move(message), options, [promise](PushResult r) { promise->set_value(r); });
  return future.get();
}

void RedisQueue::write_loop() {
  for (;;) {
    std::vector<Op> batch;
    std::string me;
    bool last_round;
    {
      std::unique_lock lock(mutex_);
      work_cv_.wait_for(lock, kRefresh, [&] { return stopping_ || !ops_.empty(); });
      if (stopping_ && ops_.empty()) return;
      // Stopping: one more try for what is left, whatever it comes to
      // (close() says what could not be sent).
      last_round = stopping_;
      while (!ops_.empty() && batch.size() < kBatch) {
        batch.push_back(std::move(ops_.front()));
        ops_.pop_front();
      }
      me = me_;
    }
    std::vector<Array> commands;
    const auto now_ms = std::to_string(to_unix_ms(clock_.wall_now()));
    for (const Op& op : batch) {
      if (const auto* push = std::get_if<PushOp>(&op)) {
        Array c = writer_conn_->script(push_script_);
        c << "0" << prefix_ << me << std::to_string(options_.limits.max_messages)
          << std::to_string(options_.limits.max_bytes) << now_ms
          << std::to_string(options_.limits.dedup_window.count())
          << (options_.limits.dedup_window.count() > 0 ? push->dedup_key : std::string())
          << push->lane << std::to_string(push->bytes) << push->record << push->sealed;
        commands.push_back(std::move(c));
      } else {
        const auto& out = std::get<OutcomeOp>(op);
        Array c = writer_conn_->script(outcome_script_);
        c << "0" << prefix_ << me << std::to_string(out.seq) << out.id << out.dead
          << std::to_string(options_.max_dead_letters);
        commands.push_back(std::move(c));
      }
    }
    // The replicas' word for the pushes of this batch, when asked for.
    std::size_t wait_at = commands.size();
    if (options_.wait_replicas > 0 &&
        std::any_of(batch.begin(), batch.end(),
                    [](const Op& o) { return std::holds_alternative<PushOp>(o); })) {
      Array wait;
      wait << "WAIT" << std::to_string(options_.wait_replicas)
           << std::to_string(options_.wait_timeout.count());
      commands.push_back(std::move(wait));
    }
    if (commands.empty()) {  // idle: read the counts back (other replicas change them)
      release_reports(steady_clock::now() - kAnnounceWait);
      Array c;
      c << "HMGET" << prefix_ + "q:n" << "count" << "bytes" << "v";
      try {
        const Array reply = writer_conn_->pipeline({c});
        const Array counts = reply.get<Array>(0);
        std::lock_guard lock(mutex_);
        apply_state(text_at(counts, 0) + " " + text_at(counts, 1) + " " + text_at(counts, 2));
      } catch (const std::exception&) {
      }
      continue;
    }

    Array replies;
    bool reached = true;
    std::size_t retried = 0;
    std::string unconfirmed;  // why the replicas' word was not enough
    try {
      replies = writer_conn_->pipeline(commands);
      if (wait_at < commands.size()) {
        if (is_reply_error(replies, wait_at)) {
          writer_conn_->reply_error(replies, wait_at);
          unconfirmed = "redis refused WAIT";
        } else if (const auto got = replies.get<Poco::Int64>(wait_at);
                   got < options_.wait_replicas) {
          unconfirmed = std::to_string(got) + " of " + std::to_string(options_.wait_replicas) +
                        " redis replica(s) confirmed the write within " +
                        std::to_string(options_.wait_timeout.count()) + " ms";
        }
      }
    } catch (const std::exception&) {
      reached = false;  // the connection logged it, once per change of state
    }
    {
      std::lock_guard lock(mutex_);
      std::vector<Op> retry;
      for (std::size_t i = 0; i < batch.size(); ++i) {
        Op& op = batch[i];
        const bool refused = reached && is_reply_error(replies, i);
        if (refused) writer_conn_->reply_error(replies, i);
        if (auto* push = std::get_if<PushOp>(&op)) {
          if (push->reserved) {
            pushing_count_ -= std::min(pushing_count_, std::size_t{1});
            pushing_bytes_ -= std::min(pushing_bytes_, push->bytes);
          }
          if (!push->dedup_key.empty()) {
            auto key = pending_keys_.find(push->dedup_key);
            if (key != pending_keys_.end() && --key->second <= 0) pending_keys_.erase(key);
          }
          // Every answer goes through reports_, in push order.
          Report report{0, steady_clock::now(), std::move(push->done), {}, false};
          if (!reached || refused) {
            report.result = {PushStatus::Unavailable,
                             !reached ? "redis at " + writer_conn_->settings().where() +
                                            " is unreachable"
                                      : "redis refused the write"};
            reports_.push_back(std::move(report));
            continue;
          }
          try {
            const Array r = replies.get<Array>(i);
            const std::string status = text_at(r, 0);
            if (status == "ok" && !unconfirmed.empty()) {
              // Stored on the primary, not confirmed by its replicas: the
              // caller retries (a duplicate if it sent a dedup key).
              apply_state(text_at(r, 2));
              report.result = {PushStatus::Unavailable, unconfirmed};
            } else if (status == "ok") {
              apply_state(text_at(r, 2));
              // Announced by the lane holder's watcher, from its inbox.
              // When that is this replica, the answer waits until take()
              // has it (as with the other backends), or kAnnounceWait.
              const std::uint64_t seq = number(text_at(r, 1));
              if (!push->dedup_key.empty()) dedup_.remember(push->dedup_key, clock_.wall_now());
              report.seq = seq;
              report.wait = text_at(r, 3) == me;
              report.result = {PushStatus::Accepted, {}};
            } else if (status == "dup") {
              report.result = {PushStatus::Duplicate, {}};
            } else {
              const bool count = text_at(r, 1) == "count";
              report.result = {PushStatus::Full,
                               queue_over_limit(options_.limits,
                                                count ? options_.limits.max_messages : 0,
                                                count ? 0 : options_.limits.max_bytes,
                                                push->bytes)};
            }
          } catch (const std::exception&) {
            report.result = {PushStatus::Unavailable, "unexpected reply from redis"};
          }
          reports_.push_back(std::move(report));
          continue;
        }
        auto& out = std::get<OutcomeOp>(op);
        if (!reached || refused) {
          retry.push_back(std::move(op));  // sent again: nothing is lost
          continue;
        }
        pending_count_ -= std::min(pending_count_, std::size_t{1});
        pending_bytes_ -= std::min(pending_bytes_, out.bytes);
        try {
          const Array r = replies.get<Array>(i);
          if (text_at(r, 0) == "fenced")
            log_->warn("redis queue: outcome of message #{} refused: another replica delivers "
                       "its lane now, and sends it again",
                       out.seq);
          apply_state(text_at(r, 1));
        } catch (const std::exception&) {
        }
      }
      retried = retry.size();
      for (auto it = retry.rbegin(); it != retry.rend(); ++it) ops_.push_front(std::move(*it));
    }
    outcomes_cv_.notify_all();
    release_reports(steady_clock::now() - kAnnounceWait);
    if (last_round) return;
    if (retried > 0) {
      // Unreachable, or refused (NOPERM, OOM): outcomes wait a little
      // before they go again, never in a busy loop; pushes do not wait.
      std::unique_lock lock(mutex_);
      stop_cv_.wait_for(lock, kRetry, [&] {
        return stopping_ || std::any_of(ops_.begin(), ops_.end(), [](const Op& o) {
                 return std::holds_alternative<PushOp>(o);
               });
      });
    }
  }
}

// ---- the watcher: heartbeat, take-overs, inbox ------------------------------

bool RedisQueue::beat(bool register_first) {
  std::string me;
  bool adopted;
  {
    std::lock_guard lock(mutex_);
    if (lost_) return true;
    me = me_;
    adopted = adopted_;
  }
  Array command = watch_conn_->script(beat_script_);
  command << "0" << prefix_ << me << std::to_string(options_.lease.count())
          << (adopted ? "1000" : "0") << (register_first ? "1" : "0") << "1";
  try {
    const Array replies = watch_conn_->pipeline({command});
    if (is_reply_error(replies, 0)) {
      watch_conn_->reply_error(replies, 0);
      return false;
    }
    const Array reply = replies.get<Array>(0);
    if (text_at(reply, 0) == "lost") {
      fenced_off();
      return true;
    }
    const std::size_t n = static_cast<std::size_t>(number(text_at(reply, 3)));
    std::vector<std::string> inbox;
    for (std::size_t i = 0; i < n; ++i) inbox.push_back(text_at(reply, 4 + i));
    std::vector<std::pair<LaneBacklog, std::uint64_t>> claims = parse_claims(reply, 4 + n);
    // Arrivals and lanes merged by sequence: a lane taken over goes after
    // every arrival pushed before it was (which it does not hold), and
    // before those pushed after (some of which may be its own).
    std::vector<Queued> arrivals = fetch(*watch_conn_, inbox);
    std::vector<Event> events;
    std::vector<std::string> confirm;
    std::vector<std::pair<std::string, std::size_t>> taken;  // logged outside the lock
    {
      std::lock_guard lock(mutex_);
      if (lost_) return true;
      registered_ = true;
      apply_state(text_at(reply, 2));
      if (adopted) {
        // What Redis no longer lists was confirmed (a confirmation whose
        // reply was lost): forgotten, so that the lane is announced again
        // if it is ever taken over again.
        std::set<std::string> listed;
        for (const auto& c : claims) listed.insert(c.first.lane);
        std::erase_if(announced_claims_, [&](const auto& a) { return !listed.contains(a.first); });
        std::erase_if(claimed_upto_, [&](const auto& c) { return c.second <= announced_upto_; });
      }
      std::stable_sort(claims.begin(), claims.end(),
                       [](const auto& a, const auto& b) { return a.second < b.second; });
      std::size_t c = 0;
      auto claim = [&](std::pair<LaneBacklog, std::uint64_t>& next) {
        confirm.push_back(next.first.lane);
        auto [it, fresh] = announced_claims_.try_emplace(next.first.lane, next.second);
        if (!fresh && it->second == next.second) return;  // announced before a lost reply
        it->second = next.second;
        claimed_upto_[next.first.lane] = next.first.last_seq;
        taken.emplace_back(next.first.lane, next.first.count);
        events.emplace_back(std::move(next.first));
      };
      for (auto& q : arrivals) {
        for (; c < claims.size() && claims[c].second < q.seq; ++c) claim(claims[c]);
        if (q.seq > announced_upto_) events.emplace_back(std::move(q));
      }
      for (; c < claims.size(); ++c) claim(claims[c]);
    }
    for (const auto& [lane, count] : taken)
      log_->info("redis queue: lane {} ({} message(s)) taken over", lane, count);
    announce(std::move(events));
    // Announced: now they may leave the inbox and the claims.
    std::vector<Array> done;
    if (n > 0) {
      Array trim;
      trim << "LTRIM" << prefix_ + "q:in:" + me << std::to_string(n) << "-1";
      done.push_back(std::move(trim));
    }
    if (!confirm.empty()) {
      Array hdel;
      hdel << "HDEL" << prefix_ + "q:claim:" + me;
      for (const auto& lane : confirm) hdel << lane;
      done.push_back(std::move(hdel));
    }
    if (!done.empty()) {
      // If this is lost or refused, the next beat finds them again, and
      // knows they were announced.
      const Array replies = watch_conn_->pipeline(done);
      for (std::size_t i = 0; i < done.size(); ++i)
        if (is_reply_error(replies, i)) watch_conn_->reply_error(replies, i);
      if (!confirm.empty() && !is_reply_error(replies, done.size() - 1)) {
        std::lock_guard lock(mutex_);
        for (const auto& lane : confirm) announced_claims_.erase(lane);
      }
    }
    return true;
  } catch (const std::exception& e) {
    // The connection logged an outage once; anything else is said here.
    if (dynamic_cast<const RedisUnavailable*>(&e) == nullptr)
      log_->error("redis queue: unexpected heartbeat reply: {}", e.what());
    return false;
  }
}

std::vector<std::pair<LaneBacklog, std::uint64_t>> RedisQueue::parse_claims(const Array& reply,
                                                                            std::size_t from) {
  std::vector<std::pair<LaneBacklog, std::uint64_t>> out;
  for (std::size_t i = from; i + 1 < size_of(reply); i += 2) {
    LaneBacklog lane;
    lane.lane = text_at(reply, i);
    std::istringstream record(text_at(reply, i + 1));
    std::uint64_t at = 0;
    if (!(record >> lane.first_seq >> lane.count >> lane.last_seq >> at))
      throw std::runtime_error("unexpected lane record from Redis");
    out.emplace_back(std::move(lane), at);
  }
  return out;
}

std::vector<Queued> RedisQueue::decode(const Array& reply, std::size_t from,
                                       const std::string& where) const {
  std::vector<Queued> out;
  for (std::size_t i = from; i + 2 < size_of(reply); i += 3) {
    Queued q;
    q.seq = number(text_at(reply, i));
    auto message = decode_message(text_at(reply, i + 1));
    if (!message) {
      log_->error("redis queue: message #{}{} cannot be decoded; skipped", q.seq, where);
      continue;
    }
    q.message = std::move(*message);
    q.message.delivery_token = open_token(text_at(reply, i + 2));
    // Time already spent queued counts (for the queue-wait histogram).
    const auto age =
        std::max(clock_.wall_now() - q.message.received_at, sdk::WallTime::duration::zero());
    q.message.enqueued_at = clock_.now() - duration_cast<sdk::SteadyTime::duration>(age);
    out.push_back(std::move(q));
  }
  return out;
}

std::vector<Queued> RedisQueue::fetch(RedisConnection& connection,
                                      const std::vector<std::string>& seqs) {
  if (seqs.empty()) return {};
  Array command = connection.script(peek_script_);
  command << "0" << prefix_ << replica() << "0";
  for (const auto& s : seqs) command << s;
  const Array replies = connection.pipeline({command});
  if (is_reply_error(replies, 0)) {
    connection.reply_error(replies, 0);
    throw RedisUnavailable("redis refused to read the inbox");
  }
  return decode(replies.get<Array>(0), 1, "");
}

bool RedisQueue::drain_inbox(milliseconds wait) {
  const std::string me = replica();
  const std::string inbox = prefix_ + "q:in:" + me;
  // Waits until the inbox holds something, without taking it (a move of
  // its head onto its head): what is read is trimmed only once announced.
  Array wait_for;
  const double seconds = std::max(0.01, static_cast<double>(wait.count()) / 1000.0);
  wait_for << "BLMOVE" << inbox << inbox << "LEFT" << "LEFT" << std::to_string(seconds);
  try {
    const Array waited = watch_conn_->pipeline({wait_for});
    if (is_reply_error(waited, 0)) {
      watch_conn_->reply_error(waited, 0);
      return false;
    }
    if (waited.getType(0) != Poco::Redis::RedisType::REDIS_BULK_STRING ||
        waited.get<Poco::Redis::BulkString>(0).isNull())
      return true;  // timed out: nothing pushed
    Array peek = watch_conn_->script(peek_script_);
    peek << "0" << prefix_ << me << std::to_string(kInboxBatch);
    const Array peeked = watch_conn_->pipeline({peek});
    if (is_reply_error(peeked, 0)) {
      watch_conn_->reply_error(peeked, 0);
      return false;
    }
    const Array reply = peeked.get<Array>(0);
    const std::size_t n = static_cast<std::size_t>(number(text_at(reply, 0)));
    std::vector<Event> events;
    {
      std::lock_guard lock(mutex_);
      for (auto& q : decode(reply, 1, ""))
        if (q.seq > announced_upto_) events.emplace_back(std::move(q));
    }
    announce(std::move(events));
    if (n > 0) {
      Array trim;
      trim << "LTRIM" << inbox << std::to_string(n) << "-1";
      watch_conn_->pipeline({trim});  // if lost, the next read skips what was announced
    }
    return true;
  } catch (const std::exception&) {
    // The connection logged it; the inbox still holds what was not trimmed.
    return false;
  }
}

void RedisQueue::apply_state(const std::string& state) {
  std::istringstream in(state);
  std::size_t count = 0, bytes = 0;
  std::uint64_t version = 0;
  if (!(in >> count >> bytes >> version)) throw std::runtime_error("unexpected counts from Redis");
  if (version < counts_version_) return;  // an older copy, overtaken on another thread
  counts_version_ = version;
  redis_count_ = count;
  redis_bytes_ = bytes;
}

void RedisQueue::announce(std::vector<Event> events) {
  if (events.empty()) return;
  std::function<void()> listener;
  {
    std::lock_guard lock(mutex_);
    for (auto& e : events) {
      if (const auto* q = std::get_if<Queued>(&e))
        announced_upto_ = std::max(announced_upto_, q->seq);
      events_.push_back(std::move(e));
    }
    listener = listener_;
  }
  announced_cv_.notify_all();
  if (listener) listener();
  release_reports(steady_clock::time_point::min());
}

void RedisQueue::release_reports(steady_clock::time_point waited_since) {
  // One releaser at a time, so that answers leave in push order.
  std::lock_guard order(report_mutex_);
  std::vector<Report> ready;
  {
    std::lock_guard lock(mutex_);
    while (!reports_.empty()) {
      const Report& r = reports_.front();
      if (r.wait && r.seq > announced_upto_ && r.since > waited_since && !stopping_) break;
      ready.push_back(std::move(reports_.front()));
      reports_.pop_front();
    }
  }
  for (auto& r : ready) r.done(std::move(r.result));
}

void RedisQueue::watch_loop() {
  const auto interval = std::max(milliseconds(100), options_.lease / 8);
  auto next_beat = steady_clock::now();
  for (;;) {
    bool registered;
    {
      std::unique_lock lock(mutex_);
      if (stopping_) return;
      registered = registered_;
    }
    const auto now = steady_clock::now();
    if (now >= next_beat || !registered) {
      if (beat(!registered)) {
        next_beat = steady_clock::now() + interval;
      } else {
        // A failed beat may have taken lanes over all the same (its reply
        // lost): only a beat may come next, which announces them before
        // anything read from the inbox after them.
        next_beat = steady_clock::now();
        std::unique_lock lock(mutex_);
        stop_cv_.wait_for(lock, kRetry, [&] { return stopping_; });
      }
      continue;
    }
    const auto left = duration_cast<milliseconds>(next_beat - now);
    // Within the connection's command timeout, so a quiet inbox is not
    // taken for a dead Redis.
    const auto cap = std::max(milliseconds(50), watch_conn_->settings().command_timeout / 2);
    if (!drain_inbox(std::min({left, cap, kInboxWait}))) {
      std::unique_lock lock(mutex_);  // never in a busy loop
      stop_cv_.wait_for(lock, kRetry, [&] { return stopping_; });
    }
  }
}

void RedisQueue::fenced_off() {
  std::function<void()> on_lost;
  {
    std::lock_guard lock(mutex_);
    if (lost_) return;
    lost_ = true;
    events_.clear();  // what it was told of is the new holders' to send
    on_lost = on_lost_;
    log_->error("redis queue: replica {} was taken for dead (silent for over {} ms) and its "
                "channels went to other replicas; it delivers nothing more and stops, to "
                "start again as a new replica",
                me_, options_.lease.count());
  }
  announced_cv_.notify_all();
  if (on_lost) on_lost();
}

std::vector<Queued> RedisQueue::take(std::size_t max) {
  std::vector<Queued> out;
  bool stopped_at_take_over = false;
  {
    std::lock_guard lock(mutex_);
    if (lost_) return out;
    while (!events_.empty() && out.size() < max) {
      auto* q = std::get_if<Queued>(&events_.front());
      if (!q) {
        stopped_at_take_over = true;
        break;
      }
      out.push_back(std::move(*q));
      events_.pop_front();
    }
  }
  if (stopped_at_take_over) {  // collect it, then the rest
    std::function<void()> listener;
    {
      std::lock_guard lock(mutex_);
      listener = listener_;
    }
    if (listener) listener();
  }
  return out;
}

std::vector<LaneBacklog> RedisQueue::take_over() {
  std::vector<LaneBacklog> out;
  std::lock_guard lock(mutex_);
  while (!events_.empty()) {
    auto* lane = std::get_if<LaneBacklog>(&events_.front());
    if (!lane) break;
    out.push_back(std::move(*lane));
    events_.pop_front();
  }
  return out;
}

// ---- reads --------------------------------------------------------------------

Array RedisQueue::read(const std::vector<Array>& commands) {
  try {
    Array replies = read_conn_->pipeline(commands);
    for (std::size_t i = 0; i < commands.size(); ++i)
      if (is_reply_error(replies, i)) {
        read_conn_->reply_error(replies, i);
        throw QueueError("redis refused a read of the queue");
      }
    return replies;
  } catch (const RedisUnavailable& e) {
    throw QueueError(e.what());
  }
}

std::vector<LaneBacklog> RedisQueue::claim_backlog() {
  std::string me;
  bool registered;
  {
    std::lock_guard lock(mutex_);
    me = me_;
    registered = registered_;
  }
  std::vector<LaneBacklog> out;
  std::uint64_t upto = 0;
  {
    std::lock_guard lock(read_mutex_);
    Array command = read_conn_->script(beat_script_);
    command << "0" << prefix_ << me << std::to_string(options_.lease.count())
            << std::to_string(std::numeric_limits<std::int32_t>::max())
            << (registered ? "0" : "1") << "0";
    const Array reply = read(std::vector<Array>{command}).get<Array>(0);
    if (text_at(reply, 0) != "ok") throw QueueError("this replica was taken for dead");
    try {
      // Every claim not yet confirmed: also those of an earlier try whose
      // reply was lost.
      for (auto& [lane, at] : parse_claims(reply, 4 + number(text_at(reply, 3)))) {
        upto = std::max(upto, lane.last_seq);  // the highest stored sequence it covers
        // Named by backlog(), never again by a heartbeat (which forgets it
        // once Redis no longer lists the claim); readable up to its last
        // message from now on.
        std::lock_guard state(mutex_);
        announced_claims_[lane.lane] = at;
        claimed_upto_[lane.lane] = lane.last_seq;
        out.push_back(std::move(lane));
      }
    } catch (const std::runtime_error& e) {
      throw QueueError(e.what());
    }
    std::lock_guard state(mutex_);
    registered_ = true;
    apply_state(text_at(reply, 2));
  }
  std::sort(out.begin(), out.end(),
            [](const LaneBacklog& a, const LaneBacklog& b) { return a.first_seq < b.first_seq; });
  std::size_t messages = 0;
  for (const auto& l : out) messages += l.count;
  {
    std::lock_guard lock(mutex_);
    recovered_ = messages;
    backlog_upto_ = upto;
  }
  if (!out.empty())
    log_->info("redis queue: {} stored message(s) in {} lane(s) that no replica delivered are "
               "this one's now",
               messages, out.size());
  return out;
}

std::vector<LaneBacklog> RedisQueue::backlog() {
  std::optional<std::vector<LaneBacklog>> opened;
  {
    std::lock_guard lock(mutex_);
    if (adopted_) return {};  // named once; later ones come through take_over()
    opened = std::move(opened_);
    opened_.reset();
  }
  if (!opened) opened = claim_backlog();  // throws QueueError while Redis is away
  std::vector<std::string> lanes;
  {
    std::lock_guard lock(mutex_);
    adopted_ = true;
    for (const auto& lane : *opened) lanes.push_back(lane.lane);
  }
  if (!lanes.empty()) {
    std::lock_guard lock(read_mutex_);
    Array hdel;
    hdel << "HDEL" << prefix_ + "q:claim:" + replica();
    for (const auto& lane : lanes) hdel << lane;
    try {
      const Array replies = read_conn_->pipeline({hdel});
      if (is_reply_error(replies, 0)) read_conn_->reply_error(replies, 0);
    } catch (const std::exception&) {
      // The next heartbeat confirms them (and, knowing them, announces none).
    }
  }
  return std::move(*opened);
}

std::uint64_t RedisQueue::backlog_upto() const {
  std::lock_guard lock(mutex_);
  return backlog_upto_;
}

std::size_t RedisQueue::recovered() const {
  std::lock_guard lock(mutex_);
  return recovered_;
}

std::vector<Queued> RedisQueue::read_lane(const std::string& lane, std::uint64_t after,
                                          std::uint64_t upto, std::size_t max) {
  std::vector<Queued> out;
  std::string me;
  {
    std::lock_guard lock(mutex_);
    if (lost_) return out;  // another replica's now: holds() says so
    me = me_;
    // Never past what this replica was told of: a message still on its way
    // through the inbox is read once announced, not before. A lane taken
    // over was told of whole, up to its last message then.
    std::uint64_t told = announced_upto_;
    if (auto claimed = claimed_upto_.find(lane); claimed != claimed_upto_.end()) {
      if (claimed->second <= announced_upto_)
        claimed_upto_.erase(claimed);
      else
        told = claimed->second;
    }
    upto = std::min(upto, told);
  }
  if (max == 0 || upto <= after) return out;
  std::lock_guard lock(read_mutex_);
  Array command = read_conn_->script(read_script_);
  command << "0" << prefix_ << me << lane << std::to_string(after) << std::to_string(upto)
          << std::to_string(max);
  const Array reply = read(std::vector<Array>{command}).get<Array>(0);
  if (text_at(reply, 0) != me) return out;  // another replica's now: holds() says so
  return decode(reply, 1, " of lane " + lane);
}

bool RedisQueue::holds(const std::string& lane) {
  std::string me;
  {
    std::lock_guard lock(mutex_);
    if (lost_) return false;
    me = me_;
  }
  std::lock_guard lock(read_mutex_);
  Array command;
  command << "HGET" << prefix_ + "q:holder" << lane;
  try {
    return text_at(read(std::vector<Array>{command}), 0) == me;
  } catch (const std::exception&) {
    return true;  // unknown: the caller reports what it could not read
  }
}

std::size_t RedisQueue::lane_size(const std::string& lane) {
  std::lock_guard lock(read_mutex_);
  Array command;
  command << "ZCARD" << prefix_ + "q:l:" + lane;
  return static_cast<std::size_t>(number(text_at(read(std::vector<Array>{command}), 0)));
}

// ---- outcomes -----------------------------------------------------------------

void RedisQueue::ack(const Queued& done) {
  OutcomeOp op;
  op.seq = done.seq;
  op.bytes = done.message.payload.size();
  record(std::move(op));
}

void RedisQueue::dead_letter(std::uint64_t seq, DeadLetter letter) {
  OutcomeOp op;
  op.seq = seq;
  op.bytes = letter.message.payload.size();
  op.id = letter.message.id;
  letter.message.delivery_token.clear();  // the stored, sealed one goes with it
  op.dead = encode_dead_letter(letter);
  record(std::move(op));
}

void RedisQueue::record(OutcomeOp op) {
  // At once, so that what the caller reads next (read_lane, size, the
  // dead letters) already shows it; the writer sends it later when Redis
  // cannot take it now.
  const std::string me = replica();
  {
    std::lock_guard lock(read_mutex_);
    Array command = read_conn_->script(outcome_script_);
    command << "0" << prefix_ << me << std::to_string(op.seq) << op.id << op.dead
            << std::to_string(options_.max_dead_letters);
    try {
      const Array replies = read_conn_->pipeline({command});
      if (is_reply_error(replies, 0)) {
        read_conn_->reply_error(replies, 0);
      } else {
        const Array r = replies.get<Array>(0);
        if (text_at(r, 0) == "fenced")
          log_->warn("redis queue: outcome of message #{} refused: another replica delivers its "
                     "lane now, and sends it again",
                     op.seq);
        std::lock_guard state(mutex_);
        apply_state(text_at(r, 1));
        return;
      }
    } catch (const std::exception&) {
      // Unreachable (the connection logged it): the writer sends it later.
    }
  }
  std::lock_guard lock(mutex_);
  ++pending_count_;
  pending_bytes_ += op.bytes;
  ops_.push_back(std::move(op));
  work_cv_.notify_one();
}

std::size_t RedisQueue::size() const {
  std::lock_guard lock(mutex_);
  return redis_count_ - std::min(redis_count_, pending_count_);
}

std::size_t RedisQueue::bytes() const {
  std::lock_guard lock(mutex_);
  return redis_bytes_ - std::min(redis_bytes_, pending_bytes_);
}

void RedisQueue::close() {
  {
    std::lock_guard lock(mutex_);
    if (closed_) return;  // closed already (or closing on another thread)
    closed_ = true;
  }
  // The writer sends what was handed over (pushes and outcomes) first.
  {
    std::unique_lock lock(mutex_);
    const auto deadline = steady_clock::now() + writer_conn_->settings().command_timeout * 5;
    outcomes_cv_.wait_until(lock, deadline, [&] { return ops_.empty(); });
    stopping_ = true;
  }
  announced_cv_.notify_all();
  work_cv_.notify_all();
  stop_cv_.notify_all();
  if (writer_.joinable()) writer_.join();
  if (watcher_.joinable()) watcher_.join();
  release_reports(steady_clock::time_point::max());
  std::vector<Op> left;
  {
    std::lock_guard lock(mutex_);
    for (auto& op : ops_) left.push_back(std::move(op));
    ops_.clear();
  }
  std::size_t outcomes = 0;
  for (auto& op : left) {
    if (auto* push = std::get_if<PushOp>(&op))
      push->done({PushStatus::Unavailable, "the queue is closed"});
    else
      ++outcomes;
  }
  if (outcomes > 0)
    log_->warn("redis queue: {} outcome(s) could not reach Redis before shutdown; those messages "
               "are delivered again",
               outcomes);
  // Lets this replica's lanes go, so that another takes them over at once.
  try {
    std::lock_guard lock(read_mutex_);
    Array command = read_conn_->script(release_script_);
    command << "0" << prefix_ << replica();
    read(std::vector<Array>{command});
  } catch (const std::exception&) {
    // Unreachable: they are taken over once this replica's lease runs out.
  }
}

// ---- the dead-letter store ----------------------------------------------------

std::vector<DeadLetter> RedisQueue::all_dead_letters(const DeadLetterFilter& filter) {
  std::vector<DeadLetter> out;
  std::lock_guard lock(read_mutex_);
  Array range;
  range << "ZRANGE" << prefix_ + "q:dlz" << "0" << "-1";
  const Array ids = read(std::vector<Array>{range}).get<Array>(0);
  constexpr std::size_t kChunk = 256;
  for (std::size_t at = 0; at < size_of(ids); at += kChunk) {
    Array get;
    get << "HMGET" << prefix_ + "q:dl";
    const std::size_t end = std::min(size_of(ids), at + kChunk);
    for (std::size_t i = at; i < end; ++i) get << text_at(ids, i);
    const Array records = read(std::vector<Array>{get}).get<Array>(0);
    for (std::size_t i = 0; i < size_of(records); ++i) {
      const std::string text = text_at(records, i);
      if (text.empty()) continue;  // removed meanwhile
      auto d = decode_dead_letter(text);
      if (!d) {
        log_->error("redis queue: dead letter {} cannot be decoded; skipped", text_at(ids, at + i));
        continue;
      }
      if (matches(filter, *d)) out.push_back(std::move(*d));
    }
  }
  return out;
}

DeadLetterPage RedisQueue::list(const DeadLetterFilter& filter, const std::string& after,
                                std::size_t limit) {
  DeadLetterPage page;
  std::vector<DeadLetter> all = all_dead_letters(filter);
  auto it = all.begin();
  if (!after.empty()) {
    it = std::find_if(all.begin(), all.end(),
                      [&](const DeadLetter& d) { return d.message.id == after; });
    if (it != all.end()) ++it;
  }
  for (; it != all.end(); ++it) {
    if (page.items.size() == limit) {
      page.next_after = page.items.back().message.id;
      break;
    }
    page.items.push_back(std::move(*it));
  }
  return page;
}

std::optional<DeadLetter> RedisQueue::get(const std::string& id) {
  std::lock_guard lock(read_mutex_);
  Array command;
  command << "HGET" << prefix_ + "q:dl" << id;
  const std::string text = text_at(read(std::vector<Array>{command}), 0);
  if (text.empty()) return std::nullopt;
  return decode_dead_letter(text);
}

std::size_t RedisQueue::count() {
  std::lock_guard lock(read_mutex_);
  Array command;
  command << "ZCARD" << prefix_ + "q:dlz";
  return static_cast<std::size_t>(number(text_at(read(std::vector<Array>{command}), 0)));
}

bool RedisQueue::remove(const std::string& id) {
  std::lock_guard lock(read_mutex_);
  Array command = read_conn_->script(remove_script_);
  command << "0" << prefix_ << replica() << id;
  return text_at(read(std::vector<Array>{command}), 0) == "1";
}

std::size_t RedisQueue::remove_matching(const DeadLetterFilter& filter) {
  std::size_t n = 0;
  for (const auto& d : all_dead_letters(filter)) n += remove(d.message.id) ? 1 : 0;
  return n;
}

DeadLetterStore::ReplayStatus RedisQueue::replay(const std::string& id) {
  {
    std::lock_guard lock(mutex_);
    if (closed_) return ReplayStatus::Unavailable;
  }
  try {
    std::string record, sealed;
    {
      std::lock_guard lock(read_mutex_);
      Array get_record, get_token;
      get_record << "HGET" << prefix_ + "q:dl" << id;
      get_token << "HGET" << prefix_ + "q:dltok" << id;
      const Array replies = read({get_record, get_token});
      record = text_at(replies, 0);
      sealed = text_at(replies, 1);
    }
    if (record.empty()) return ReplayStatus::NotFound;
    auto d = decode_dead_letter(record);
    if (!d) return ReplayStatus::NotFound;
    sdk::Message m = std::move(d->message);
    // Never hand out a caller's message without the caller's token.
    if (!sealed.empty() && open_token(sealed).empty()) return ReplayStatus::TokenUnavailable;
    prepare_replay(m, clock_.now(), clock_.wall_now());
    const std::string lane = lane_key(m);
    const std::size_t bytes = m.payload.size();
    m.delivery_token.clear();
    const std::string me = replica();
    std::string status;
    std::uint64_t seq = 0;
    bool mine = false;
    {
      std::lock_guard lock(read_mutex_);
      Array command = read_conn_->script(replay_script_);
      command << "0" << prefix_ << me << std::to_string(options_.limits.max_messages)
              << std::to_string(options_.limits.max_bytes) << id << lane
              << std::to_string(bytes) << encode_message(m) << sealed;
      const Array reply = read(std::vector<Array>{command}).get<Array>(0);
      status = text_at(reply, 0);
      if (status == "ok") {
        seq = number(text_at(reply, 1));
        mine = text_at(reply, 3) == me;
        std::lock_guard state(mutex_);
        apply_state(text_at(reply, 2));
      }
    }
    if (status == "gone") return ReplayStatus::NotFound;
    if (status == "full") return ReplayStatus::Full;
    // Announced from the inbox of its lane's holder; when that is this
    // replica, answered once take() has it, as with the other backends.
    if (mine) {
      std::unique_lock lock(mutex_);
      announced_cv_.wait_for(lock, kAnnounceWait,
                             [&] { return stopping_ || announced_upto_ >= seq; });
    }
    return ReplayStatus::Replayed;
  } catch (const QueueError&) {
    return ReplayStatus::Unavailable;
  }
}

DeadLetterStore::ReplayCount RedisQueue::replay_matching(const DeadLetterFilter& filter) {
  // The matching ids first: a replayed message that fails again comes back
  // as a new dead letter that matches too, and is not replayed again now.
  std::vector<std::string> ids;
  for (const auto& d : all_dead_letters(filter)) ids.push_back(d.message.id);
  return replay_in_turn(ids, [this](const std::string& id) { return replay(id); });
}

}  // namespace slack_proxy

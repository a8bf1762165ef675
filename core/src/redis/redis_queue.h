// The queue in Redis ([queue] backend = "redis"), shared by every replica:
// a message any replica accepted is delivered by one of them, in order per
// lane, and survives the replica that took it.
//
// Keys (all under [redis] key_prefix, "q:" after it):
//   q:seq            the sequence counter (INCR), rising across replicas
//   q:msg, q:meta    seq -> the stored record (message_codec) / "<bytes> <lane>"
//   q:tok            seq -> the caller's delivery token, sealed (token_seal.h)
//   q:l:<lane>       the lane's sequences, a sorted set
//   q:n              count and bytes of everything stored
//   q:dd             dedup keys, a sorted set by expiry (the proxy's clock)
//   q:dl, q:dltok, q:dlz   dead letters: record, sealed token, order
//   q:replicas       live replicas, a sorted set by last heartbeat (Redis' clock)
//   q:holder         lane -> the replica delivering it
//   q:held:<replica> the lanes a replica holds
//   q:in:<replica>   sequences pushed to a lane it holds, in push order
//   q:free           lanes with messages and no holder
// Every push, outcome and replay is one Lua script, so the capacity check,
// the dedup check and the write are one step for all replicas.
//
// Lanes and leases. One replica at a time delivers a lane (its holder), so
// per-channel order holds across replicas. A push to a lane nobody holds
// makes the pusher its holder (when the lane was empty); every push to a
// held lane is put on its holder's inbox, which the holder waits on
// (BLMOVE of its head onto itself), reads, announces through take(), and
// only then trims: a reply lost on the way loses nothing. A replica sends a heartbeat every lease / 8; one
// silent for a whole lease is taken for dead by the next replica's
// heartbeat, and its lanes become free. A replica takes free lanes over at
// its heartbeat (recorded in q:claim:<replica> until it confirms it has
// announced them) and announces them through take_over(): within lease +
// the heartbeat interval of a crash (8 s + 1 s by default), its lanes move
// on. A replica that learns it was taken for dead (cut off, or stopped, for
// a lease) reads and pushes nothing more and calls on_lost(): the proxy
// stops, to start again as a new replica.
// Outcomes are fenced: an ack or a dead letter from a replica that no longer
// holds the lane is refused, and the message stays for the new holder to
// send (at-least-once; a duplicate is possible, a loss is not).
//
// The event stream (take() and take_over()) rises in sequence order: a
// take-over is announced after every arrival popped before it, and take()
// stops at a pending take-over, so the dispatcher never reads a lane past a
// message it has yet to be told of.
//
// Threads. Pushes and outcomes go to a writer thread with its own
// connection, which sends whatever gathered in one pipeline (so a 200 means
// "Redis has it", with Redis' persistence: see docs/scale-out.md). A
// watcher thread holds the heartbeat, the take-overs and the inbox. Reads
// (read_lane, backlog, the dead-letter store) run on the caller's thread on
// a third connection. Redis down: pushes are refused at once (Unavailable:
// the ingress answers 503 queue_unavailable with Retry-After), reads throw
// QueueError (the dispatcher asks again later), outcomes wait and are sent
// once Redis is back.
#ifndef SLACK_PROXY_CORE_REDIS_REDIS_QUEUE_H
#define SLACK_PROXY_CORE_REDIS_REDIS_QUEUE_H

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <utility>
#include <unordered_map>
#include <variant>
#include <vector>

#include <spdlog/logger.h>

#include <slack_proxy/sdk/host.h>

#include "queue/dedup_index.h"
#include "queue/queue.h"
#include "queue/token_seal.h"
#include "redis/redis_connection.h"

namespace slack_proxy {

struct RedisQueueOptions {
  QueueLimits limits;
  std::size_t max_dead_letters = 100'000;  // beyond it the oldest are deleted
  // Seals callers' tokens in Redis; without one they are never written.
  std::shared_ptr<const TokenSealer> sealer;
  // How long a replica may be silent before its lanes are taken over.
  std::chrono::milliseconds lease{8'000};
  // A push is accepted only once this many Redis replicas confirm it
  // (WAIT, within wait_timeout); fewer: Unavailable, though the primary
  // has it (a retry with the same dedup key is then a duplicate).
  int wait_replicas = 0;
  std::chrono::milliseconds wait_timeout{500};
  // Names this replica in Redis (q:replicas, q:held:...) and in logs; a
  // random suffix is added, so a restarted replica is a new one.
  std::string replica = "replica";
};

class RedisQueue final : public Queue, private DeadLetterStore {
 public:
  // One connection per use: "queue" (writer), "queue-watch", "queue-read".
  using Connect = std::function<std::unique_ptr<RedisConnection>(const std::string& role)>;

  RedisQueue(RedisQueueOptions options, const Connect& connect, const sdk::Clock& clock,
             std::shared_ptr<spdlog::logger> log);
  ~RedisQueue() override;
  RedisQueue(const RedisQueue&) = delete;
  RedisQueue& operator=(const RedisQueue&) = delete;

  using Queue::push;
  PushResult push(sdk::Message message, const PushOptions& options) override;
  void push_async(sdk::Message message, const PushOptions& options, PushDone done) override;
  std::vector<Queued> take(std::size_t max) override;
  std::vector<LaneBacklog> take_over() override;
  bool holds(const std::string& lane) override;
  std::vector<LaneBacklog> backlog() override;
  std::vector<Queued> read_lane(const std::string& lane, std::uint64_t after, std::uint64_t upto,
                                std::size_t max) override;
  std::size_t lane_size(const std::string& lane) override;
  std::uint64_t backlog_upto() const override;
  void ack(const Queued& done) override;
  void dead_letter(std::uint64_t seq, DeadLetter letter) override;
  std::size_t size() const override;
  std::size_t bytes() const override;
  QueueLimits limits() const override { return options_.limits; }
  std::size_t recovered() const override;
  DeadLetterStore& dead_letters() override { return *this; }
  void on_push(std::function<void()> listener) override {
    std::lock_guard lock(mutex_);
    listener_ = std::move(listener);
  }
  // Called once, from the watcher thread, when this replica learns it was
  // taken for dead (silent for a whole lease: stopped, or cut off from
  // Redis) and its lanes went to others. From then on it reads and pushes
  // nothing; the proxy stops, to start again as a new replica.
  void on_lost(std::function<void()> callback) {
    std::lock_guard lock(mutex_);
    on_lost_ = std::move(callback);
  }
  void close() override;

  // This replica's name in Redis.
  std::string replica() const;

 private:
  // DeadLetterStore
  DeadLetterPage list(const DeadLetterFilter& filter, const std::string& after,
                      std::size_t limit) override;
  std::optional<DeadLetter> get(const std::string& id) override;
  std::size_t count() override;
  bool remove(const std::string& id) override;
  std::size_t remove_matching(const DeadLetterFilter& filter) override;
  ReplayStatus replay(const std::string& id) override;
  ReplayCount replay_matching(const DeadLetterFilter& filter) override;

  struct PushOp {
    std::string lane, record, sealed, dedup_key;
    std::size_t bytes = 0;
    bool reserved = true;  // counted in pushing_count_/bytes_
    PushDone done;
  };
  struct OutcomeOp {
    std::uint64_t seq = 0;
    std::size_t bytes = 0;      // counted in pending_bytes_ until sent
    std::string id, dead;       // dead: the dead letter's record; empty for an ack
  };
  using Op = std::variant<PushOp, OutcomeOp>;
  using Event = std::variant<Queued, LaneBacklog>;

  // Sends an outcome now, or hands it to the writer when Redis cannot take it.
  void record(OutcomeOp op);
  void write_loop();
  // Registers this replica (if it is not yet) and takes every free lane
  // over: the stored backlog when it opened. QueueError when Redis cannot.
  std::vector<LaneBacklog> claim_backlog();
  void watch_loop();
  // One heartbeat (and take-over, once the backlog was adopted); false when
  // Redis could not be reached.
  bool beat(bool register_first);
  // Reads this replica's inbox (waiting up to `wait` for something),
  // announces what it holds and trims it; false when Redis failed or refused.
  bool drain_inbox(std::chrono::milliseconds wait);
  // Lanes taken over and not yet confirmed, from a heartbeat's reply at
  // `from`: each with the q:seq at the time it was taken over.
  static std::vector<std::pair<LaneBacklog, std::uint64_t>> parse_claims(
      const Poco::Redis::Array& reply, std::size_t from);
  // This replica was taken for dead: it stops reading and pushing.
  void fenced_off();
  // The stored messages `seqs`, with their tokens opened, in that order.
  std::vector<Queued> fetch(RedisConnection& connection, const std::vector<std::string>& seqs);
  // Triples (seq, record, sealed token) of `reply` from element `from`;
  // `where` ends the log line of one that cannot be decoded.
  std::vector<Queued> decode(const Poco::Redis::Array& reply, std::size_t from,
                             const std::string& where) const;
  void announce(std::vector<Event> events);
  // Under mutex_: a script's "<count> <bytes> <version>", kept unless a
  // newer version was seen already. Throws on a malformed one.
  void apply_state(const std::string& state);
  // Answers the pushes at the front of reports_ that are ready: accepted
  // ones take() has now, those that waited since before `waited_since`
  // (stored all the same), and every refusal.
  void release_reports(std::chrono::steady_clock::time_point waited_since);
  std::string seal(const std::string& token) const;
  std::string open_token(const std::string& sealed) const;
  std::vector<DeadLetter> all_dead_letters(const DeadLetterFilter& filter);
  // Runs `commands` on the read connection; QueueError when Redis cannot.
  Poco::Redis::Array read(const std::vector<Poco::Redis::Array>& commands);

  const RedisQueueOptions options_;
  const sdk::Clock& clock_;
  std::shared_ptr<spdlog::logger> log_;
  std::string prefix_;     // [redis] key_prefix

  std::unique_ptr<RedisConnection> writer_conn_, watch_conn_, read_conn_;
  std::mutex read_mutex_;  // read_conn_ is one caller's at a time
  // Script handles, the same on each connection (each registers them all).
  std::size_t push_script_ = 0, outcome_script_ = 0, read_script_ = 0, beat_script_ = 0,
              peek_script_ = 0, release_script_ = 0, replay_script_ = 0, remove_script_ = 0;

  mutable std::mutex mutex_;
  std::condition_variable work_cv_, stop_cv_, outcomes_cv_, announced_cv_;
  std::deque<Op> ops_;
  std::deque<Event> events_;
  std::uint64_t announced_upto_ = 0;  // the highest sequence in events_ so far
  // The writer's answers to pushes, in push order. One accepted into a
  // lane this replica holds (`wait`) leaves once take() has it (its seq
  // announced), or after kAnnounceWait; the ones behind it wait for it.
  struct Report {
    std::uint64_t seq = 0;
    std::chrono::steady_clock::time_point since;
    PushDone done;
    PushResult result;
    bool wait = false;
  };
  std::deque<Report> reports_;
  std::mutex report_mutex_;  // held while answers leave, never with mutex_ waiting on it
  std::string me_;  // this replica's name in Redis
  bool registered_ = false;
  bool lost_ = false;  // taken for dead: reads, pushes and holds() refuse
  std::function<void()> on_lost_;
  // Lanes taken over and announced -> the q:seq when they were, until Redis
  // no longer lists the claim: a heartbeat that finds the same claim again
  // (its confirmation lost) does not announce it twice.
  std::map<std::string, std::uint64_t> announced_claims_;
  // Lanes taken over -> their last sequence then: read_lane() may read
  // them that far before take() has announced anything of them.
  std::unordered_map<std::string, std::uint64_t> claimed_upto_;
  bool adopted_ = false;     // backlog() ran: the watcher takes free lanes over from now on
  std::optional<std::vector<LaneBacklog>> opened_;  // claimed when opened, for backlog()
  std::uint64_t backlog_upto_ = 0;
  std::size_t recovered_ = 0;
  std::size_t redis_count_ = 0, redis_bytes_ = 0;       // as Redis last said
  std::uint64_t counts_version_ = 0;                    // ... at this version of q:n
  std::size_t pending_count_ = 0, pending_bytes_ = 0;   // outcomes not yet sent
  std::size_t pushing_count_ = 0, pushing_bytes_ = 0;   // pushes handed to the writer
  DedupIndex dedup_;  // keys this replica accepted, within the window
  std::unordered_map<std::string, int> pending_keys_;  // dedup keys of pushes on their way
  bool closed_ = false;
  bool stopping_ = false;
  std::function<void()> listener_;
  std::thread writer_, watcher_;
};

}  // namespace slack_proxy

#endif  // SLACK_PROXY_CORE_REDIS_REDIS_QUEUE_H

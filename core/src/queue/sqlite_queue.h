// The durable default: a SQLite database in WAL mode. The database is the
// queue; memory holds what is on its way in and a few counters, never the
// backlog.
//
// Group commit: a pusher checks its message (capacity, dedup, sealing,
// encoding) and hands it to one writer thread with its completion; the
// writer stores everything that arrived meanwhile in one transaction with
// one fsync, then reports to each (push_async's `done`, outside the lock).
// push() is push_async plus a wait. So a 200 always means "on disk",
// durability costs one fsync per batch, not per message, and an event
// thread never waits for the disk.
//
// The writer is a loop over typed commands, one handler each: Insert (a
// push), Finish (an ack), Bury (a dead letter), Replay (a dead letter going
// back) share the group commit; Admin (the dead-letter store's calls) runs
// in a transaction of its own after it; housekeeping (purging expired dedup
// keys, trimming dead letters beyond the cap) is a task the writer
// schedules for itself, in its own transaction.
//
// Outcomes (ack, dead letter) travel the same way, but nobody waits for
// them: after a crash an acked-but-unrecorded message is delivered once
// more (at-least-once), never lost. A failed commit (disk full, I/O error)
// fails the pushes and replays in it (the callers get 503) and keeps the
// outcomes for the next commit.
//
// In memory, per message: only arrivals committed but not yet take()n, and
// the outcomes handed to the writer but not yet committed. Besides: the
// counters (size, bytes, reservations of pushes in flight), the dedup keys
// of the window and the keys whose first copy is still being committed.
// Everything else is read from disk: read_lane() and lane_size() on a
// second, read-only connection (WAL lets it read while the writer commits,
// and it never sees an uncommitted transaction), which also checks that an
// acked sequence is still stored. Opening reads totals kept by triggers,
// the highest sequence, the live dedup keys and the dead-letter count; it
// never loads the messages. A row whose sealed caller token cannot be
// opened (no key, or another key) is read with an empty delivery_token:
// the dispatcher dead-letters it (token_unavailable) when it reaches it.
//
// A second proxy pointed at the same file refuses to start instead of
// delivering everything twice: the queue holds an exclusive flock(2) on
// `<path>.lock`, beside the database, for its lifetime (SQLite's own
// locks cannot say this once two connections share the file).
#pragma once

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <future>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <thread>
#include <unordered_map>
#include <utility>
#include <variant>
#include <vector>

#include <spdlog/logger.h>

#include <slack_proxy/sdk/host.h>

#include "queue/dedup_index.h"
#include "queue/queue.h"
#include "queue/sqlite_db.h"
#include "queue/sqlite_dead_letters.h"
#include "queue/token_seal.h"

namespace slack_proxy {

struct SqliteQueueOptions {
  std::string path;  // the database file; its directory is created if missing
  QueueLimits limits;
  // Full: fsync at every group commit (survives power loss).
  // Normal: WAL without fsync at commit (survives a process crash; the last
  // commits may be lost if the machine loses power).
  enum class Sync { Full, Normal } sync = Sync::Full;
  std::size_t max_dead_letters = 100'000;  // beyond it the oldest are deleted
  // Seals delivery tokens at rest. Without one, tokens are never written:
  // a stored message that had one is read back without it.
  std::shared_ptr<const TokenSealer> sealer;
  // Test hook: caps the database size in pages (SQLite's max_page_count),
  // so "disk full" can be provoked without filling a disk. 0 = no cap.
  std::uint32_t max_page_count = 0;
  // Test hook: while it holds true, every read on the read-only connection
  // fails as an I/O error would (read_lane, backlog, an outcome's lookup).
  std::shared_ptr<const std::atomic<bool>> read_fault;
};

class SqliteQueue final : public Queue, private SqliteDeadLetters::Writer {
 public:
  // Opens (creating or migrating if needed). Throws QueueError naming the
  // path when the database cannot be opened or another process holds it.
  SqliteQueue(SqliteQueueOptions options, const sdk::Clock& clock,
              std::shared_ptr<spdlog::logger> log);
  ~SqliteQueue() override;

  SqliteQueue(const SqliteQueue&) = delete;
  SqliteQueue& operator=(const SqliteQueue&) = delete;

  using Queue::push;
  PushResult push(sdk::Message message, const PushOptions& options) override;
  void push_async(sdk::Message message, const PushOptions& options, PushDone done) override;
  std::vector<Queued> take(std::size_t max) override;
  std::vector<LaneBacklog> backlog() override;
  std::vector<Queued> read_lane(const std::string& lane, std::uint64_t after, std::uint64_t upto,
                                std::size_t max) override;
  std::size_t lane_size(const std::string& lane) override;
  std::uint64_t backlog_upto() const override { return backlog_upto_; }
  void ack(const Queued& done) override;
  void dead_letter(std::uint64_t seq, DeadLetter letter) override;
  std::size_t size() const override;
  std::size_t bytes() const override;
  QueueLimits limits() const override { return options_.limits; }
  std::size_t recovered() const override { return recovered_; }
  DeadLetterStore& dead_letters() override { return dead_letters_; }
  void on_push(std::function<void()> listener) override { listener_ = std::move(listener); }
  void close() override;

 private:
  // ---- the writer's commands ----
  struct Insert {
    std::uint64_t seq = 0;
    std::string lane;
    std::string body;    // encode_message()
    std::string sealed;  // sealed delivery token, or empty
    std::string dedup_key;
    std::int64_t dedup_expires_ms = 0;
    sdk::Message message;  // announced by take() after the commit
    PushDone done;
  };
  struct Finish {  // ack
    std::uint64_t seq = 0;
    std::size_t bytes = 0;     // as stored, given back if the row was gone
    bool bytes_known = true;   // false: the read failed; the commit reads them
    bool deleted = false;      // set by the commit
  };
  struct Bury {  // dead letter
    std::uint64_t seq = 0;
    std::size_t bytes = 0;
    bool bytes_known = true;
    std::string body, sealed;
    DeadLetter record;  // its message's payload and token are dropped (the body has them)
    bool deleted = false;
  };
  struct Replay {
    std::string id;
    std::uint64_t seq = 0;  // given when handed over, so arrivals stay in sequence order
    std::shared_ptr<std::promise<DeadLetterStore::ReplayStatus>> outcome;
    // Set by the commit:
    DeadLetterStore::ReplayStatus status = DeadLetterStore::ReplayStatus::Unavailable;
    std::size_t reserved_bytes = 0;  // counted in reserved_* while the commit runs
    bool reserved = false;
    Queued queued;
  };
  struct Admin {
    std::function<void(SqliteDb&)> work;
    std::shared_ptr<std::promise<std::string>> outcome;  // empty: committed
  };
  using Command = std::variant<Insert, Finish, Bury, Replay, Admin>;

  // A push's outcome, reported outside the lock.
  struct Completion {
    PushDone done;
    PushResult result;
  };
  struct Settled {
    bool arrived = false;      // take() has something new
    std::size_t retrying = 0;  // outcomes put back into ops_ after a failed commit
  };

  // ---- opening ----
  void open_database();
  void load_state();

  // ---- pushing ----
  // push_async's checks. Hands the push (and `done`) to the writer, or to
  // the outcome of a pending first copy, and returns nullopt; or returns
  // why it is refused now and leaves `done` with the caller.
  std::optional<PushResult> admit(sdk::Message&& message, const PushOptions& options,
                                  PushDone& done);
  std::string over_limit(std::size_t payload_bytes) const;  // holding mutex_
  void reserve(std::size_t payload_bytes);                   // holding mutex_
  void release(std::size_t payload_bytes);                   // holding mutex_
  std::string seal(const std::string& token) const;
  // nullopt when there is none, or it cannot be opened (no key, another key).
  std::optional<std::string> open_token(std::string_view sealed) const;

  // ---- outcomes ----
  // What claim() and stored_bytes() found: the stored size, or that the
  // row is not stored, or that the read failed (the size is then unknown:
  // the outcome still goes to the writer, which reads the size itself).
  struct Lookup {
    enum class Kind { Stored, Missing, Unreadable } kind = Kind::Missing;
    std::size_t bytes = 0;
  };
  // Claims `seq` for one outcome. Missing when it is not stored or already
  // has its outcome on the way.
  Lookup claim(std::uint64_t seq);
  // Hands an outcome to the writer, taking it off the counters now.
  template <typename Outcome>
  void hand_over(Outcome c, const Lookup& found);

  // ---- reading ----
  Lookup stored_bytes(std::uint64_t seq);  // on the read connection
  // Holding read_mutex_: the read connection; QueueError when it is closed
  // (or when the read_fault hook says so).
  SqliteDb& reader();
  std::set<std::uint64_t> finishing_between(std::uint64_t after, std::uint64_t upto) const;
  std::optional<Queued> decode_row(Stmt& row);
  void log_unreadable_once(std::uint64_t seq);

  // ---- the writer thread ----
  void writer_loop();
  // Waits for work (or for housekeeping to come due) and takes it; false
  // once closing with nothing left.
  bool next_batch(std::vector<Command>& batch, std::size_t retrying);
  // Commits the data commands of one batch; returns the error, empty on success.
  std::string commit(std::vector<Command>& batch);
  void store(Insert& c);
  void store(Finish& c);
  void store(Bury& c);
  // An outcome whose size claim() could not read reads it in the commit.
  void read_unknown_bytes(std::uint64_t seq, bool known, std::size_t& bytes);
  // Holding mutex_: takes off what hand_over() could not (its size unknown).
  template <typename Outcome>
  void take_off_unknown_bytes(const Outcome& c) {
    if (!c.bytes_known) bytes_ -= std::min(bytes_, c.bytes);
  }
  void store(Replay& c);
  DeadLetterStore::ReplayStatus reserve_for_replay(Replay& c, std::size_t payload);
  void store(Admin&) {}  // in transactions of their own
  // Holding mutex_: books one batch's committed (or failed) commands,
  // queues the completions (the first copy's before its repeats') and puts
  // back the outcomes to retry.
  Settled settle(std::vector<Command>& batch, const std::string& error,
                 std::vector<Completion>& completions);
  void settle(Insert& c, const std::string& error, Settled& s, std::vector<Completion>& out);
  void settle(Finish& c, const std::string& error, Settled& s, std::vector<Completion>& out);
  void settle(Bury& c, const std::string& error, Settled& s, std::vector<Completion>& out);
  void settle(Replay& c, const std::string& error, Settled& s, std::vector<Completion>& out);
  void settle(Admin&, const std::string&, Settled&, std::vector<Completion>&) {}
  void retry_later(Command&& outcome);  // holding mutex_
  void answer_repeats(const std::string& dedup_key, const std::string& error,
                      std::vector<Completion>& out);  // holding mutex_
  void run_admin(Admin& admin);
  bool housekeeping_due();
  void run_housekeeping();
  void report(Completion& c) noexcept;
  void wake_consumer();

  // ---- the dead-letter store's way in (SqliteDeadLetters::Writer) ----
  std::string transact(std::function<void(SqliteDb&)> work) override;
  DeadLetterStore::ReplayStatus requeue(const std::string& id) override;

  const SqliteQueueOptions options_;
  const sdk::Clock& clock_;
  std::shared_ptr<spdlog::logger> log_;
  std::unique_ptr<FileLock> lock_;  // first in, last out
  std::unique_ptr<SqliteDb> db_;    // used by the constructor, then the writer thread only
  SqliteDeadLetters dead_letters_;

  // The read connection, for the dispatcher (read_lane, ack's check) and tools.
  std::mutex read_mutex_;
  std::unique_ptr<SqliteDb> reader_;
  std::set<std::uint64_t> logged_unreadable_;  // rows already logged as undecodable

  mutable std::mutex mutex_;
  std::condition_variable work_cv_;
  std::vector<Command> ops_;  // waiting for the writer
  // Dedup keys whose push has not committed yet, and the repeats that came
  // meanwhile: they are answered with the first copy's outcome (Duplicate,
  // or its error), never "ok" before that copy is stored.
  std::unordered_map<std::string, std::vector<PushDone>> pending_keys_;
  std::deque<Queued> arrivals_;        // committed, not yet taken
  std::set<std::uint64_t> finishing_;  // outcomes handed to the writer, not committed yet
  std::size_t size_ = 0;               // stored, minus the outcomes on their way
  std::size_t bytes_ = 0;
  std::size_t reserved_ = 0;           // pushes and replays counted but not committed yet
  std::size_t reserved_bytes_ = 0;
  std::uint64_t next_seq_ = 1;
  DedupIndex dedup_;
  std::size_t recovered_ = 0;
  std::uint64_t backlog_upto_ = 0;
  std::size_t lost_outcomes_ = 0;      // dropped by a failed commit after close()
  bool closed_ = false;
  bool stop_writer_ = false;
  std::function<void()> listener_;

  // The writer thread's own.
  sdk::SteadyTime next_dedup_purge_{};
  std::thread writer_;
};

}  // namespace slack_proxy

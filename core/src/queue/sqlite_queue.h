// The durable default: a SQLite database in WAL mode.
//
// Group commit: a pusher checks its message (capacity, dedup, sealing,
// encoding) and hands it to one writer thread with its completion; the
// writer stores everything that arrived meanwhile in one transaction with
// one fsync, then reports to each (push_async's `done`, outside the lock).
// push() is push_async plus a wait. So a 200 always means "on disk",
// durability costs one fsync per batch, not per message, and an event
// thread never waits for the disk.
//
// Outcomes (ack, dead letter) travel the same way, but nobody waits for
// them: after a crash an acked-but-unrecorded message is delivered once
// more (at-least-once), never lost. A failed commit (disk full, I/O error)
// fails the pushes in it (the callers get 503) and keeps the outcomes for
// the next commit.
//
// Messages waiting for the dispatcher are also kept in memory, so take()
// never reads the disk; on open, everything in the database is loaded back
// in the original order and counted in recovered().
//
// The database is opened with an exclusive lock: a second proxy pointed at
// the same file refuses to start instead of delivering everything twice.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <unordered_map>
#include <utility>
#include <vector>

#include <spdlog/logger.h>

#include <slack_proxy/sdk/host.h>

#include "queue/dedup_index.h"
#include "queue/queue.h"
#include "queue/token_seal.h"

namespace slack_proxy {

class QueueError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

struct SqliteQueueOptions {
  std::string path;  // the database file; its directory is created if missing
  QueueLimits limits;
  // Full: fsync at every group commit (survives power loss).
  // Normal: WAL without fsync at commit (survives a process crash; the last
  // commits may be lost if the machine loses power).
  enum class Sync { Full, Normal } sync = Sync::Full;
  std::size_t max_dead_letters = 100'000;  // beyond it the oldest are deleted
  // Seals delivery tokens at rest. Without one, tokens are never written:
  // a recovered message that had one is dead-lettered "token_unavailable".
  std::shared_ptr<const TokenSealer> sealer;
  // Test hook: caps the database size in pages (SQLite's max_page_count),
  // so "disk full" can be provoked without filling a disk. 0 = no cap.
  std::uint32_t max_page_count = 0;
};

class SqliteQueue final : public Queue, private DeadLetterStore {
 public:
  // Opens (creating if needed) and recovers. Throws QueueError naming the
  // path and SQLite's message when the database cannot be opened.
  SqliteQueue(SqliteQueueOptions options, const sdk::Clock& clock,
              std::shared_ptr<spdlog::logger> log);
  ~SqliteQueue() override;

  SqliteQueue(const SqliteQueue&) = delete;
  SqliteQueue& operator=(const SqliteQueue&) = delete;

  using Queue::push;
  PushResult push(sdk::Message message, const PushOptions& options) override;
  void push_async(sdk::Message message, const PushOptions& options, PushDone done) override;
  std::vector<sdk::Message> take(std::size_t max) override;
  void ack(const std::string& id) override;
  void dead_letter(DeadLetter letter) override;
  std::size_t size() const override;
  std::size_t bytes() const override;
  QueueLimits limits() const override { return options_.limits; }
  std::size_t recovered() const override { return recovered_; }
  DeadLetterStore& dead_letters() override { return *this; }
  void on_push(std::function<void()> listener) override { listener_ = std::move(listener); }
  void close() override;

  class Db;  // the connection and its statements (sqlite_queue.cc)

 private:
  // An admin call's work: runs inside its own transaction on the writer
  // thread; `after` runs under the queue's lock once it committed, `failed`
  // if it did not.
  struct Txn {
    std::function<void(Db&)> run;
    std::function<void()> after;
    std::function<void(const std::string&)> failed;
  };
  struct Op {
    enum class Kind { Insert, Delete, DeadLetter, Txn } kind;
    std::int64_t seq = 0;
    std::string body;    // Insert, DeadLetter: encode_message()
    std::string sealed;  // Insert, DeadLetter: sealed delivery token, or empty
    std::string dedup_key;
    std::int64_t dedup_expires_ms = 0;
    sdk::Message message;  // Insert: handed to take() after the commit
    PushDone done;         // Insert: told the outcome after the commit
    // The rarer kinds keep their bulk out of line: every push moves its Op
    // into ops_ under the lock, and this halves what it moves.
    std::unique_ptr<DeadLetter> letter;  // DeadLetter: the record's fields (message unused)
    std::unique_ptr<Txn> txn;            // Txn
  };

  // DeadLetterStore
  DeadLetterPage list(const DeadLetterFilter& filter, const std::string& after,
                      std::size_t limit) override;
  std::optional<DeadLetter> get(const std::string& id) override;
  std::size_t count() override;
  bool remove(const std::string& id) override;
  std::size_t remove_matching(const DeadLetterFilter& filter) override;
  ReplayStatus replay(const std::string& id) override;
  ReplayCount replay_matching(const DeadLetterFilter& filter) override;

  // A push's outcome, to be reported outside the lock.
  struct Completion {
    PushDone done;
    PushResult result;
  };

  void recover();
  // push_async's checks. Hands the push (and `done`) to the writer, or to
  // the outcome of a pending first copy, and returns nullopt; or returns
  // why it is refused now and leaves `done` with the caller.
  std::optional<PushResult> admit(sdk::Message&& message, const PushOptions& options,
                                  PushDone& done);
  void writer_loop();
  // Commits the data ops of one batch; returns the error, empty on success.
  std::string commit(std::vector<Op>& ops);
  struct Settled {
    bool inserted = false;      // a message became takeable
    std::size_t retrying = 0;   // outcomes put back into ops_ after a failed commit
  };
  // Holding mutex_: books one batch's committed (or failed) ops, queues the
  // pushers' completions (the first copy's before its repeats') and puts
  // back the outcomes to retry.
  Settled settle(std::vector<Op>& ops, const std::string& error,
                 std::vector<Completion>& completions);
  // Calls `done`; never lets it throw into the writer.
  void report(PushDone& done, PushResult result) noexcept;
  // Runs `txn` on the writer thread in a transaction of its own and waits.
  // Returns false (and sets *error) if it threw or did not commit.
  // `after` (on success) and `on_fail` run under mutex_ on the writer thread.
  bool run_txn(std::function<void(Db&)> txn, std::function<void()> after, std::string* error,
               std::function<void()> on_fail = {});
  std::string over_limit(std::size_t payload_bytes) const;  // holding mutex_
  std::string seal(const std::string& token) const;
  void wake_consumer();

  const SqliteQueueOptions options_;
  const sdk::Clock& clock_;
  std::shared_ptr<spdlog::logger> log_;
  std::unique_ptr<Db> db_;  // used by the constructor, then the writer thread only

  mutable std::mutex mutex_;
  std::condition_variable work_cv_;
  std::condition_variable done_cv_;      // admin transactions finished
  std::vector<Op> ops_;                  // waiting for the next commit
  // Dedup keys whose push has not committed yet, and the repeats that came
  // meanwhile: they are answered with the first copy's outcome (Duplicate,
  // or its error), never "ok" before that copy is stored.
  std::unordered_map<std::string, std::vector<PushDone>> pending_keys_;
  std::deque<sdk::Message> ready_;       // committed, not yet taken
  // Committed and not yet finished (ready or leased): id -> (row, bytes).
  // Ordered, not hashed, as MemoryQueue's leased ids: no rehash of a
  // large backlog under the lock, on the writer's way to its next commit.
  std::map<std::string, std::pair<std::int64_t, std::size_t>> rows_;
  std::size_t reserved_ = 0;             // pushes counted but not committed yet
  std::size_t reserved_bytes_ = 0;
  std::size_t bytes_ = 0;                // of rows_
  std::int64_t next_seq_ = 1;
  DedupIndex dedup_;
  std::size_t dead_count_ = 0;
  std::size_t recovered_ = 0;
  std::size_t lost_outcomes_ = 0;        // dropped by a failed commit after close()
  bool closed_ = false;
  bool stop_writer_ = false;
  std::function<void()> listener_;
  std::thread writer_;
};

}  // namespace slack_proxy

// The durable default: a SQLite database in WAL mode.
//
// Group commit: ingress threads hand their message to one writer thread and
// wait; the writer stores everything that arrived meanwhile in one
// transaction with one fsync, then wakes them all. So a 200 always means
// "on disk", and durability costs one fsync per batch, not per message.
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
#include <memory>
#include <mutex>
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
  struct Op {
    enum class Kind { Insert, Delete, DeadLetter, Txn } kind;
    std::int64_t seq = 0;
    std::string id;
    std::string body;    // Insert, DeadLetter: encode_message()
    std::string sealed;  // Insert, DeadLetter: sealed delivery token, or empty
    std::string dedup_key;
    std::int64_t dedup_expires_ms = 0;
    sdk::Message message;  // Insert: handed to take() after the commit
    DeadLetter letter;     // DeadLetter: the record's fields (message unused)
    // Txn: runs inside its own transaction on the writer thread; `after`
    // runs under the queue's lock once it committed, `failed` if it did not.
    std::function<void(Db&)> txn;
    std::function<void()> after;
    std::function<void(const std::string&)> failed;
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

  void recover();
  void writer_loop();
  // Commits the data ops of one batch; returns the error, empty on success.
  std::string commit(std::vector<Op>& ops);
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
  // The pushers of one group commit wait on its own condition variable.
  struct BatchWait {
    std::condition_variable cv;
    bool done = false;
    std::string error;  // empty when the batch committed
  };
  std::shared_ptr<BatchWait> open_batch_ = std::make_shared<BatchWait>();  // ops_'s batch
  // Dedup keys whose push has not committed yet, and the batch it is in: a
  // repeat waits for that batch instead of being told "ok" too early.
  std::unordered_map<std::string, std::shared_ptr<BatchWait>> pending_keys_;
  std::deque<sdk::Message> ready_;       // committed, not yet taken
  // Committed and not yet finished (ready or leased): id -> (row, bytes).
  std::unordered_map<std::string, std::pair<std::int64_t, std::size_t>> rows_;
  std::size_t reserved_ = 0;             // pushes counted but not committed yet
  std::size_t reserved_bytes_ = 0;
  std::size_t bytes_ = 0;                // of rows_
  std::int64_t next_seq_ = 1;
  DedupIndex dedup_;
  std::size_t dead_count_ = 0;
  std::size_t recovered_ = 0;
  bool closed_ = false;
  bool stop_writer_ = false;
  std::function<void()> listener_;
  std::thread writer_;
};

}  // namespace slack_proxy

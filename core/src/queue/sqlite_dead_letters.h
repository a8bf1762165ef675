// The SQLite queue's dead-letter store: the `dead_letters` table of the
// queue's database, on the queue's writer connection.
//
// Every call runs on the queue's writer thread, after whatever the
// dispatcher handed the queue before it: a dead letter the dispatcher just
// recorded (committed lazily, with the next group commit) is already there
// for the admin call that follows. Reads go that way too, not over the
// queue's read connection, for that reason; they are an admin's pages of
// at most a few hundred rows, so taking a turn on the writer costs little.
// A replay is the queue's business (a new sequence number, a capacity
// check, an announcement), so the store hands it to the queue.
//
// The count is kept in memory: read at open, moved by every change.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>

#include "queue/queue.h"
#include "queue/sqlite_db.h"

namespace slack_proxy {

class SqliteDeadLetters final : public DeadLetterStore {
 public:
  // What the store needs from the queue it belongs to.
  class Writer {
   public:
    virtual ~Writer() = default;
    // Runs `work` on the writer thread in a transaction of its own and
    // waits; returns why it did not commit, empty when it did.
    virtual std::string transact(std::function<void(SqliteDb&)> work) = 0;
    // Moves dead letter `id` back into the queue and waits for the outcome.
    virtual ReplayStatus requeue(const std::string& id) = 0;
  };

  // A record as stored, for the queue's replay.
  struct Stored {
    std::int64_t row = 0;
    std::optional<DeadLetter> letter;  // nullopt: the body cannot be decoded
    std::string sealed;                // the caller's token, sealed; empty if none
  };

  SqliteDeadLetters(Writer& writer, std::size_t max_records);

  // DeadLetterStore
  DeadLetterPage list(const DeadLetterFilter& filter, const std::string& after,
                      std::size_t limit) override;
  std::optional<DeadLetter> get(const std::string& id) override;
  std::size_t count() override { return count_.load(); }
  bool remove(const std::string& id) override;
  std::size_t remove_matching(const DeadLetterFilter& filter) override;
  ReplayStatus replay(const std::string& id) override { return writer_.requeue(id); }
  ReplayCount replay_matching(const DeadLetterFilter& filter) override;

  // On the writer connection, inside the caller's transaction.
  static void insert(SqliteDb& db, const DeadLetter& letter, std::string_view body,
                     std::string_view sealed);
  static std::optional<Stored> find(SqliteDb& db, const std::string& id);
  static void erase(SqliteDb& db, std::int64_t row);
  // Deletes the oldest records beyond the cap; returns how many went.
  std::size_t trim(SqliteDb& db);

  void count_at_open(SqliteDb& db);
  // Records added (+) or gone (-) by the queue's own transactions.
  void counted(std::ptrdiff_t delta);
  bool over_cap() const { return count_.load() > max_records_; }
  std::size_t max_records() const { return max_records_; }

 private:
  [[noreturn]] static void fail(const char* what, const std::string& error);

  Writer& writer_;
  const std::size_t max_records_;
  std::atomic<std::size_t> count_{0};
};

}  // namespace slack_proxy

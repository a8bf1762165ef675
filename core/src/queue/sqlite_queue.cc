#include "queue/sqlite_queue.h"

#include <sqlite3.h>

#include <algorithm>
#include <filesystem>
#include <system_error>

#include "queue/dead_letter_filter.h"
#include "queue/message_codec.h"
#include "thread_name.h"

namespace slack_proxy {
namespace {

// Bump when the tables change; an older file is migrated or refused in open().
constexpr int kSchemaVersion = 1;

constexpr const char* kSchema = R"sql(
CREATE TABLE IF NOT EXISTS messages (
  seq    INTEGER PRIMARY KEY,
  id     TEXT NOT NULL,
  body   BLOB NOT NULL,
  sealed BLOB
);
CREATE TABLE IF NOT EXISTS dead_letters (
  seq              INTEGER PRIMARY KEY AUTOINCREMENT,
  id               TEXT NOT NULL UNIQUE,
  channel          TEXT NOT NULL,
  original_channel TEXT NOT NULL,
  kind             TEXT NOT NULL,
  error            TEXT NOT NULL,
  reason           TEXT NOT NULL,
  http_status      INTEGER NOT NULL,
  dead_at_ms       INTEGER NOT NULL,
  body             BLOB NOT NULL,
  sealed           BLOB
);
CREATE TABLE IF NOT EXISTS dedup (
  key        TEXT PRIMARY KEY,
  expires_ms INTEGER NOT NULL
) WITHOUT ROWID;
)sql";

// A failed commit leaves outcomes (acks, dead letters) to be retried; this
// is how long the writer waits before trying again, so a broken disk is not
// hammered in a tight loop.
constexpr auto kRetryOutcomesAfter = std::chrono::milliseconds(500);
// Expired dedup keys are purged from the database this often.
constexpr auto kDedupPurgeEvery = std::chrono::seconds(60);
constexpr std::size_t kReplayPage = 256;

std::string_view blob_view(sqlite3_stmt* s, int col) {
  const void* p = sqlite3_column_blob(s, col);
  const int n = sqlite3_column_bytes(s, col);
  return p ? std::string_view(static_cast<const char*>(p), static_cast<std::size_t>(n))
           : std::string_view();
}

std::string text_of(sqlite3_stmt* s, int col) {
  const unsigned char* p = sqlite3_column_text(s, col);
  return p ? std::string(reinterpret_cast<const char*>(p),
                         static_cast<std::size_t>(sqlite3_column_bytes(s, col)))
           : std::string();
}

}  // namespace

// One prepared statement, reset after each use. Text and blobs are bound
// without a copy (SQLITE_STATIC): a bound value must outlive the step()
// that reads it, which every caller gets by binding and running in one
// expression or by binding values it keeps. The bindings are cleared when
// the statement is reset, so none outlives its use.
class Stmt {
 public:
  Stmt(sqlite3* db, const char* sql) : db_(db) {
    if (sqlite3_prepare_v3(db, sql, -1, SQLITE_PREPARE_PERSISTENT, &stmt_, nullptr) != SQLITE_OK)
      throw QueueError(std::string("cannot prepare statement: ") + sqlite3_errmsg(db));
  }
  ~Stmt() { sqlite3_finalize(stmt_); }
  Stmt(const Stmt&) = delete;
  Stmt& operator=(const Stmt&) = delete;

  Stmt& bind(int i, std::int64_t v) {
    check(sqlite3_bind_int64(stmt_, i, v));
    return *this;
  }
  Stmt& bind_text(int i, std::string_view v) {
    check(sqlite3_bind_text(stmt_, i, v.data(), static_cast<int>(v.size()), SQLITE_STATIC));
    return *this;
  }
  Stmt& bind_blob(int i, std::string_view v) {
    if (v.empty()) {
      check(sqlite3_bind_null(stmt_, i));
    } else {
      check(sqlite3_bind_blob(stmt_, i, v.data(), static_cast<int>(v.size()), SQLITE_STATIC));
    }
    return *this;
  }
  // True while rows come; throws on error. Resets itself at the end.
  bool step() {
    const int rc = sqlite3_step(stmt_);
    if (rc == SQLITE_ROW) return true;
    const std::string error = rc == SQLITE_DONE ? std::string() : sqlite3_errmsg(db_);
    sqlite3_reset(stmt_);
    sqlite3_clear_bindings(stmt_);
    if (rc != SQLITE_DONE) throw QueueError(error);
    return false;
  }
  void run() {
    while (step()) {
    }
  }
  void reset() {
    sqlite3_reset(stmt_);
    sqlite3_clear_bindings(stmt_);
  }
  sqlite3_stmt* get() { return stmt_; }

 private:
  void check(int rc) {
    if (rc == SQLITE_OK) return;
    std::string why = std::string("cannot bind: ") + sqlite3_errmsg(db_);
    reset();  // drops the bindings made so far: they may not outlive this call
    throw QueueError(why);
  }
  sqlite3* db_;
  sqlite3_stmt* stmt_ = nullptr;
};

class SqliteQueue::Db {
 public:
  explicit Db(const SqliteQueueOptions& o) {
    const std::filesystem::path path(o.path);
    if (path.has_parent_path()) {
      std::error_code ec;
      std::filesystem::create_directories(path.parent_path(), ec);
      if (ec)
        throw QueueError("cannot create the queue's directory " + path.parent_path().string() +
                         ": " + ec.message());
    }
    const int rc = sqlite3_open_v2(o.path.c_str(), &db_,
                                   SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE |
                                       SQLITE_OPEN_NOMUTEX,
                                   nullptr);
    if (rc != SQLITE_OK) {
      std::string why = db_ ? sqlite3_errmsg(db_) : sqlite3_errstr(rc);
      sqlite3_close(db_);
      db_ = nullptr;
      throw QueueError("cannot open the queue database " + o.path + ": " + why);
    }
    try {
      // Exclusive: a second proxy on the same file fails here rather than
      // delivering every message twice. WAL: commits append; readers of a
      // file copy (sqlite3 CLI on a backup) never block us.
      exec("PRAGMA locking_mode=EXCLUSIVE");
      const std::string mode = query_text("PRAGMA journal_mode=WAL");
      if (mode != "wal") throw QueueError("cannot switch to WAL mode (got '" + mode + "')");
      exec(o.sync == SqliteQueueOptions::Sync::Full ? "PRAGMA synchronous=FULL"
                                                    : "PRAGMA synchronous=NORMAL");
      if (o.max_page_count > 0)
        exec("PRAGMA max_page_count=" + std::to_string(o.max_page_count));
      exec("BEGIN IMMEDIATE");  // takes the exclusive lock now, not at the first write
      const int version = static_cast<int>(query_int("PRAGMA user_version"));
      if (version > kSchemaVersion)
        throw QueueError("the database was written by a newer slack-proxy (schema " +
                         std::to_string(version) + ", this one knows " +
                         std::to_string(kSchemaVersion) + ")");
      exec(kSchema);
      exec("PRAGMA user_version=" + std::to_string(kSchemaVersion));
      exec("COMMIT");
    } catch (const QueueError& e) {
      sqlite3_close(db_);
      db_ = nullptr;
      std::string why = e.what();
      if (why.find("locked") != std::string::npos)
        why += " (is another slack-proxy using this file?)";
      throw QueueError("cannot open the queue database " + o.path + ": " + why);
    }
    insert_ = std::make_unique<Stmt>(db_, "INSERT INTO messages(seq,id,body,sealed) VALUES(?,?,?,?)");
    delete_ = std::make_unique<Stmt>(db_, "DELETE FROM messages WHERE seq=?");
    dedup_ = std::make_unique<Stmt>(
        db_, "INSERT OR REPLACE INTO dedup(key,expires_ms) VALUES(?,?)");
    dead_ = std::make_unique<Stmt>(
        db_,
        "INSERT OR REPLACE INTO dead_letters(id,channel,original_channel,kind,error,reason,"
        "http_status,dead_at_ms,body,sealed) VALUES(?,?,?,?,?,?,?,?,?,?)");
  }
  ~Db() {
    insert_.reset();
    delete_.reset();
    dedup_.reset();
    dead_.reset();
    if (db_) sqlite3_close(db_);
  }

  void exec(const std::string& sql) {
    char* err = nullptr;
    if (sqlite3_exec(db_, sql.c_str(), nullptr, nullptr, &err) != SQLITE_OK) {
      std::string why = err ? err : sqlite3_errmsg(db_);
      sqlite3_free(err);
      throw QueueError(why);
    }
  }
  std::int64_t query_int(const std::string& sql) {
    Stmt s(db_, sql.c_str());
    std::int64_t v = 0;
    if (s.step()) v = sqlite3_column_int64(s.get(), 0);
    s.reset();
    return v;
  }
  std::string query_text(const std::string& sql) {
    Stmt s(db_, sql.c_str());
    std::string v;
    if (s.step()) v = text_of(s.get(), 0);
    s.reset();
    return v;
  }
  void rollback() noexcept {
    if (!sqlite3_get_autocommit(db_)) sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
  }

  sqlite3* raw() { return db_; }
  Stmt& insert() { return *insert_; }
  Stmt& remove() { return *delete_; }
  Stmt& dedup() { return *dedup_; }
  Stmt& dead() { return *dead_; }

 private:
  sqlite3* db_ = nullptr;
  std::unique_ptr<Stmt> insert_, delete_, dedup_, dead_;
};

namespace {

void store_dead_letter(SqliteQueue::Db& db, const DeadLetter& d, std::string_view body,
                       std::string_view sealed) {
  db.dead()
      .bind_text(1, d.message.id)
      .bind_text(2, d.message.channel)
      .bind_text(3, d.message.original_channel)
      .bind_text(4, to_string(d.kind))
      .bind_text(5, d.error)
      .bind_text(6, d.reason)
      .bind(7, d.http_status)
      .bind(8, to_unix_ms(d.dead_at))
      .bind_blob(9, body)
      .bind_blob(10, sealed)
      .run();
}

// Columns: id, kind, error, reason, http_status, dead_at_ms, body, sealed.
constexpr const char* kDeadColumns =
    "SELECT seq,id,kind,error,reason,http_status,dead_at_ms,body,sealed FROM dead_letters";

struct StoredDead {
  std::int64_t seq = 0;
  DeadLetter letter;
  std::string sealed;
};

std::optional<StoredDead> read_dead(sqlite3_stmt* s) {
  auto m = decode_message(blob_view(s, 7));
  if (!m) return std::nullopt;
  StoredDead d;
  d.seq = sqlite3_column_int64(s, 0);
  d.letter.message = std::move(*m);
  d.letter.kind = dead_letter_kind_from(text_of(s, 2)).value_or(DeadLetterKind::Failed);
  d.letter.error = text_of(s, 3);
  d.letter.reason = text_of(s, 4);
  d.letter.http_status = static_cast<int>(sqlite3_column_int(s, 5));
  d.letter.dead_at = from_unix_ms(sqlite3_column_int64(s, 6));
  d.sealed = std::string(blob_view(s, 8));
  return d;
}

// The filter as SQL, so a page of 50 out of 100k records reads 50 rows.
std::string where_clause(const DeadLetterFilter& f, std::vector<std::string>& args) {
  std::string where;
  auto add = [&](const std::string& cond) { where += (where.empty() ? " WHERE " : " AND ") + cond; };
  if (!f.channel.empty()) {
    add("(channel=? OR original_channel=?)");
    args.push_back(f.channel);
    args.push_back(f.channel);
  }
  if (!f.error.empty()) {
    add("error=?");
    args.push_back(f.error);
  }
  if (f.kind) {
    add("kind=?");
    args.push_back(to_string(*f.kind));
  }
  return where;
}

}  // namespace

SqliteQueue::SqliteQueue(SqliteQueueOptions options, const sdk::Clock& clock,
                         std::shared_ptr<spdlog::logger> log)
    : options_(std::move(options)),
      clock_(clock),
      log_(std::move(log)),
      db_(std::make_unique<Db>(options_)),
      dedup_(options_.limits.dedup_window) {
  recover();
  writer_ = std::thread([this] {
    name_this_thread("sp-queue-writer");
    writer_loop();
  });
}

SqliteQueue::~SqliteQueue() { close(); }

void SqliteQueue::recover() {
  const auto now_wall = clock_.wall_now();
  const auto now = clock_.now();
  std::vector<std::pair<std::int64_t, std::string>> unreadable;
  std::vector<std::pair<std::int64_t, sdk::Message>> tokenless;
  {
    Stmt s(db_->raw(), "SELECT seq,body,sealed FROM messages ORDER BY seq");
    while (s.step()) {
      const std::int64_t seq = sqlite3_column_int64(s.get(), 0);
      next_seq_ = std::max(next_seq_, seq + 1);
      auto m = decode_message(blob_view(s.get(), 1));
      if (!m) {
        unreadable.emplace_back(seq, std::string());
        continue;
      }
      const std::string_view sealed = blob_view(s.get(), 2);
      if (!sealed.empty()) {
        std::optional<std::string> token;
        if (options_.sealer) token = options_.sealer->open(sealed);
        if (!token) {
          tokenless.emplace_back(seq, std::move(*m));
          continue;
        }
        m->delivery_token = std::move(*token);
      }
      // Time already spent queued counts (for the queue-wait histogram).
      const auto age = std::max(now_wall - m->received_at, sdk::WallTime::duration::zero());
      m->enqueued_at = now - std::chrono::duration_cast<sdk::SteadyTime::duration>(age);
      rows_.emplace(m->id, std::make_pair(seq, m->payload.size()));
      bytes_ += m->payload.size();
      ready_.push_back(std::move(*m));
    }
  }
  for (const auto& [seq, unused] : unreadable) {
    // Kept on disk for a human (sqlite3 .dump), never silently deleted.
    log_->error("queue row {} in {} cannot be decoded; left in place and skipped", seq,
                options_.path);
  }
  if (!tokenless.empty()) {
    // The caller's token was sealed with a key this process does not have
    // (no key configured, or another key): the message cannot be delivered
    // as that caller, so it is dead-lettered rather than sent with the
    // wrong token or dropped.
    db_->exec("BEGIN IMMEDIATE");
    for (auto& [seq, m] : tokenless) {
      DeadLetter d;
      d.message = std::move(m);
      d.kind = DeadLetterKind::Failed;
      d.error = "token_unavailable";
      d.reason = "the caller's token was sealed with another key; the caller must send it again";
      d.dead_at = now_wall;
      store_dead_letter(*db_, d, encode_message(d.message), {});
      db_->remove().bind(1, seq).run();
    }
    db_->exec("COMMIT");
    log_->warn("{} recovered message(s) carried a caller token sealed with another key; "
               "dead-lettered as token_unavailable",
               tokenless.size());
  }
  {
    Stmt s(db_->raw(), "SELECT key,expires_ms FROM dedup WHERE expires_ms>?");
    s.bind(1, to_unix_ms(now_wall));
    while (s.step())
      dedup_.remember_until(text_of(s.get(), 0), from_unix_ms(sqlite3_column_int64(s.get(), 1)));
  }
  dead_count_ = static_cast<std::size_t>(db_->query_int("SELECT count(*) FROM dead_letters"));
  recovered_ = ready_.size();
}

std::string SqliteQueue::over_limit(std::size_t payload_bytes) const {
  return queue_over_limit(options_.limits, rows_.size() + reserved_, bytes_ + reserved_bytes_,
                          payload_bytes);
}

std::string SqliteQueue::seal(const std::string& token) const {
  if (token.empty() || !options_.sealer) return {};
  return options_.sealer->seal(token);
}

void SqliteQueue::wake_consumer() {
  if (listener_) listener_();
}

Queue::PushResult SqliteQueue::push(sdk::Message message, const PushOptions& options) {
  // One path for both: wait here for what push_async reports. The callback
  // captures one pointer, so std::function keeps it without allocating.
  struct Waiter {
    std::mutex mutex;
    std::condition_variable cv;
    std::optional<PushResult> result;
  } waiter;
  push_async(std::move(message), options, [w = &waiter](PushResult result) {
    // Notified under the lock: the waiter cannot return (and destroy w)
    // before this call is done with it.
    std::lock_guard<std::mutex> lock(w->mutex);
    w->result = std::move(result);
    w->cv.notify_one();
  });
  std::unique_lock<std::mutex> lock(waiter.mutex);
  waiter.cv.wait(lock, [&] { return waiter.result.has_value(); });
  return std::move(*waiter.result);
}

void SqliteQueue::push_async(sdk::Message message, const PushOptions& options, PushDone done) {
  if (std::optional<PushResult> refused = admit(std::move(message), options, done)) {
    report(done, std::move(*refused));  // outside the lock, before returning
    return;
  }
  work_cv_.notify_one();  // after the unlock: the writer need not wait for it
}

std::optional<Queue::PushResult> SqliteQueue::admit(sdk::Message&& message,
                                                    const PushOptions& options, PushDone& done) {
  Op op;
  op.kind = Op::Kind::Insert;
  op.body = encode_message(message);  // outside the lock: the costly part
  try {
    op.sealed = seal(message.delivery_token);
  } catch (const std::exception& e) {
    return PushResult{PushStatus::Unavailable,
                      std::string("cannot seal the caller's token: ") + e.what()};
  }
  const std::size_t payload = message.payload.size();
  op.message = std::move(message);

  std::lock_guard<std::mutex> lock(mutex_);
  if (closed_) return PushResult{PushStatus::Unavailable, "the queue is closed"};
  const auto now = clock_.wall_now();
  const bool dedup = dedup_.enabled() && !options.dedup_key.empty();
  if (dedup && dedup_.seen(options.dedup_key, now)) {
    const auto pending = pending_keys_.find(options.dedup_key);
    if (pending == pending_keys_.end()) return PushResult{PushStatus::Duplicate, {}};
    // The first copy is still being committed: answer as it will be
    // answered, never "ok" for a message that may not get stored.
    pending->second.push_back(std::move(done));
    return std::nullopt;
  }
  if (std::string limit = over_limit(payload); !limit.empty())
    return PushResult{PushStatus::Full, std::move(limit)};
  if (dedup) {
    dedup_.remember(options.dedup_key, now);
    pending_keys_.try_emplace(options.dedup_key);
    op.dedup_key = options.dedup_key;
    op.dedup_expires_ms = to_unix_ms(now + dedup_.window());
  }
  op.seq = next_seq_++;
  ++reserved_;
  reserved_bytes_ += payload;
  op.done = std::move(done);
  ops_.push_back(std::move(op));
  return std::nullopt;
}

void SqliteQueue::report(PushDone& done, PushResult result) noexcept {
  try {
    done(std::move(result));
  } catch (const std::exception& e) {
    log_->error("queue database {}: a push's completion threw: {}", options_.path, e.what());
  } catch (...) {
    log_->error("queue database {}: a push's completion threw", options_.path);
  }
}

std::vector<sdk::Message> SqliteQueue::take(std::size_t max) {
  std::vector<sdk::Message> out;
  std::lock_guard<std::mutex> lock(mutex_);
  while (!ready_.empty() && out.size() < max) {
    out.push_back(std::move(ready_.front()));
    ready_.pop_front();
  }
  return out;
}

void SqliteQueue::ack(const std::string& id) {
  std::lock_guard<std::mutex> lock(mutex_);
  auto it = rows_.find(id);
  if (it == rows_.end()) return;
  Op op;
  op.kind = Op::Kind::Delete;
  op.seq = it->second.first;
  bytes_ -= it->second.second;
  rows_.erase(it);
  ops_.push_back(std::move(op));
  work_cv_.notify_one();
}

void SqliteQueue::dead_letter(DeadLetter letter) {
  Op op;
  op.kind = Op::Kind::DeadLetter;
  op.body = encode_message(letter.message);
  try {
    op.sealed = seal(letter.message.delivery_token);
  } catch (const std::exception&) {
    // Not sealable: the record keeps no token, and the dispatcher refuses
    // to deliver a caller-token message without one (token_unavailable).
    op.sealed.clear();
  }
  // The record's columns need only these; the body carries the rest.
  letter.message.payload.clear();
  letter.message.payload.shrink_to_fit();
  letter.message.delivery_token.clear();
  op.letter = std::make_unique<DeadLetter>(std::move(letter));
  std::lock_guard<std::mutex> lock(mutex_);
  auto it = rows_.find(op.letter->message.id);
  if (it == rows_.end()) return;
  op.seq = it->second.first;
  bytes_ -= it->second.second;
  rows_.erase(it);
  ++dead_count_;
  ops_.push_back(std::move(op));
  work_cv_.notify_one();
}

std::size_t SqliteQueue::size() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return rows_.size() + reserved_;
}

std::size_t SqliteQueue::bytes() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return bytes_ + reserved_bytes_;
}

std::string SqliteQueue::commit(std::vector<Op>& ops) {
  try {
    db_->exec("BEGIN IMMEDIATE");
    for (Op& op : ops) {
      switch (op.kind) {
        case Op::Kind::Insert:
          db_->insert().bind(1, op.seq).bind_text(2, op.message.id).bind_blob(3, op.body)
              .bind_blob(4, op.sealed).run();
          if (!op.dedup_key.empty())
            db_->dedup().bind_text(1, op.dedup_key).bind(2, op.dedup_expires_ms).run();
          break;
        case Op::Kind::Delete:
          db_->remove().bind(1, op.seq).run();
          break;
        case Op::Kind::DeadLetter:
          store_dead_letter(*db_, *op.letter, op.body, op.sealed);
          db_->remove().bind(1, op.seq).run();
          break;
        case Op::Kind::Txn:
          break;  // in transactions of their own
      }
    }
    db_->exec("COMMIT");
    return {};
  } catch (const std::exception& e) {
    db_->rollback();
    return e.what();
  }
}

SqliteQueue::Settled SqliteQueue::settle(std::vector<Op>& ops, const std::string& error,
                                         std::vector<Completion>& completions) {
  Settled settled;
  const std::size_t back = ops_.size();  // outcomes to retry go after this
  for (Op& op : ops) {
    if (op.kind != Op::Kind::Insert) {
      if (error.empty()) continue;
      if (closed_) {
        ++lost_outcomes_;  // no retry after close(): it reports them
      } else {
        ops_.push_back(std::move(op));  // outcomes are never dropped
      }
      continue;
    }
    --reserved_;
    reserved_bytes_ -= op.message.payload.size();
    if (error.empty()) {
      rows_.emplace(op.message.id, std::make_pair(op.seq, op.message.payload.size()));
      bytes_ += op.message.payload.size();
      ready_.push_back(std::move(op.message));
      settled.inserted = true;
      completions.push_back({std::move(op.done), {PushStatus::Accepted, {}}});
    } else {
      if (!op.dedup_key.empty()) dedup_.forget(op.dedup_key);
      completions.push_back({std::move(op.done), {PushStatus::Unavailable, error}});
    }
    if (op.dedup_key.empty()) continue;
    auto repeats = pending_keys_.extract(op.dedup_key);
    if (repeats.empty()) continue;
    for (PushDone& done : repeats.mapped()) {
      completions.push_back({std::move(done), error.empty()
                                                  ? PushResult{PushStatus::Duplicate, {}}
                                                  : PushResult{PushStatus::Unavailable, error}});
    }
  }
  settled.retrying = ops_.size() - back;
  return settled;
}

void SqliteQueue::writer_loop() {
  auto last_purge = clock_.now();
  std::size_t retrying = 0;  // ops_ entries put back after a failed commit
  // Reused from batch to batch, so a busy writer stops allocating for them:
  // `ops` and ops_ swap buffers, and each keeps its capacity.
  std::vector<Op> ops;
  std::vector<Op> txns;
  std::vector<Completion> completions;
  for (;;) {
    {
      std::unique_lock<std::mutex> lock(mutex_);
      if (retrying > 0) {
        // The last commit failed; its outcomes wait in ops_. Try again after
        // a pause, or at once when new work arrives.
        work_cv_.wait_for(lock, kRetryOutcomesAfter,
                          [&] { return stop_writer_ || ops_.size() > retrying; });
      } else {
        work_cv_.wait(lock, [&] { return stop_writer_ || !ops_.empty(); });
      }
      if (ops_.empty() && stop_writer_) return;
      ops.swap(ops_);
    }

    for (auto& op : ops)
      if (op.kind == Op::Kind::Txn) txns.push_back(std::move(op));
    std::erase_if(ops, [](const Op& op) { return op.kind == Op::Kind::Txn; });

    const std::string error = ops.empty() ? std::string() : commit(ops);
    Settled settled;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      settled = settle(ops, error, completions);
    }
    retrying = settled.retrying;
    if (!error.empty()) {
      log_->error("queue database {}: commit of {} operation(s) failed: {}", options_.path,
                  ops.size(), error);
    }
    ops.clear();
    // Outside the lock: a completion may post to another thread, or even
    // call back into the queue, without deadlocking with it.
    for (Completion& c : completions) report(c.done, std::move(c.result));
    completions.clear();
    if (settled.inserted) wake_consumer();

    for (Op& t : txns) {
      std::string txn_error;
      try {
        db_->exec("BEGIN IMMEDIATE");
        t.txn->run(*db_);
        db_->exec("COMMIT");
      } catch (const std::exception& e) {
        db_->rollback();
        txn_error = e.what();
        if (txn_error.empty()) txn_error = "unknown error";
      } catch (...) {
        db_->rollback();
        txn_error = "unknown error";
      }
      {
        std::lock_guard<std::mutex> lock(mutex_);
        // Nothing may escape the writer thread: its caller waits for one of
        // these two to run.
        try {
          if (txn_error.empty() && t.txn->after) t.txn->after();
        } catch (const std::exception& e) {
          txn_error = std::string("after the commit: ") + e.what();
        } catch (...) {
          txn_error = "after the commit: unknown error";
        }
        if (!txn_error.empty() && t.txn->failed) t.txn->failed(txn_error);
      }
      done_cv_.notify_all();
    }
    txns.clear();

    // Housekeeping, outside any caller's wait.
    const auto now = clock_.now();
    if (now - last_purge >= kDedupPurgeEvery) {
      last_purge = now;
      try {
        Stmt purge(db_->raw(), "DELETE FROM dedup WHERE expires_ms<=?");
        purge.bind(1, to_unix_ms(clock_.wall_now())).run();
      } catch (const std::exception& e) {
        log_->warn("queue database {}: purging old dedup keys failed: {}", options_.path,
                   e.what());
      }
    }
    std::size_t excess = 0;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      if (dead_count_ > options_.max_dead_letters) excess = dead_count_ - options_.max_dead_letters;
    }
    if (excess > 0) {
      try {
        Stmt trim(db_->raw(),
                  "DELETE FROM dead_letters WHERE seq IN "
                  "(SELECT seq FROM dead_letters ORDER BY seq LIMIT ?)");
        trim.bind(1, static_cast<std::int64_t>(excess)).run();
        const auto gone = static_cast<std::size_t>(sqlite3_changes(db_->raw()));
        {
          std::lock_guard<std::mutex> lock(mutex_);
          dead_count_ -= std::min(dead_count_, gone);
        }
        log_->warn("dead-letter store is over its limit of {}; deleted the {} oldest",
                   options_.max_dead_letters, gone);
      } catch (const std::exception& e) {
        log_->warn("queue database {}: trimming dead letters failed: {}", options_.path,
                   e.what());
      }
    }
  }
}

bool SqliteQueue::run_txn(std::function<void(Db&)> txn, std::function<void()> after,
                          std::string* error, std::function<void()> on_fail) {
  auto done = std::make_shared<bool>(false);
  auto failure = std::make_shared<std::string>();
  Op op;
  op.kind = Op::Kind::Txn;
  op.txn = std::make_unique<Txn>();
  op.txn->run = std::move(txn);
  op.txn->after = [done, after = std::move(after)] {
    if (after) after();
    *done = true;
  };
  op.txn->failed = [done, failure, on_fail = std::move(on_fail)](const std::string& why) {
    if (on_fail) on_fail();  // runs under the queue's lock, like `after`
    *failure = why;
    *done = true;
  };
  std::unique_lock<std::mutex> lock(mutex_);
  if (stop_writer_) {
    if (error) *error = "the queue is closed";
    return false;
  }
  ops_.push_back(std::move(op));
  work_cv_.notify_one();
  done_cv_.wait(lock, [&] { return *done; });
  if (!failure->empty()) {
    if (error) *error = *failure;
    return false;
  }
  return true;
}

void SqliteQueue::close() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (stop_writer_) return;
    closed_ = true;
    stop_writer_ = true;
  }
  work_cv_.notify_all();
  // The writer commits what was handed to it before it stops, and reports
  // every push in it: once joined, every push_async has had its `done`.
  if (writer_.joinable()) writer_.join();
  // Whatever the writer could not commit (a failing disk) is still pending:
  // the messages stay in the database and are delivered again next start.
  std::size_t lost_outcomes = 0;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    lost_outcomes = lost_outcomes_ + ops_.size();
    // Pending txns (admin calls) must not wait forever.
    for (auto& op : ops_)
      if (op.kind == Op::Kind::Txn && op.txn->failed) op.txn->failed("the queue is closed");
    ops_.clear();
  }
  done_cv_.notify_all();
  if (lost_outcomes > 0)
    log_->warn("queue database {}: {} outcome(s) could not be recorded; those messages will be "
               "delivered again after the restart",
               options_.path, lost_outcomes);
  db_.reset();
}

// ---- dead letters ---------------------------------------------------------

DeadLetterPage SqliteQueue::list(const DeadLetterFilter& filter, const std::string& after,
                                 std::size_t limit) {
  DeadLetterPage page;
  std::string error;
  const bool ok = run_txn(
      [&](Db& db) {
        std::vector<std::string> args;
        std::string sql = std::string(kDeadColumns) + where_clause(filter, args);
        if (!after.empty()) {
          sql += args.empty() ? " WHERE " : " AND ";
          sql += "seq>(SELECT seq FROM dead_letters WHERE id=?)";
          args.push_back(after);
        }
        // No SQL LIMIT: an undecodable row is skipped, and must not use up
        // the page (SQLite steps lazily, so this still reads ~limit rows).
        sql += " ORDER BY seq";
        Stmt s(db.raw(), sql.c_str());
        int i = 1;
        for (const auto& a : args) s.bind_text(i++, a);
        while (s.step()) {
          auto d = read_dead(s.get());
          if (!d) continue;
          if (page.items.size() == limit) {
            page.next_after = page.items.back().message.id;
            s.reset();
            break;
          }
          page.items.push_back(std::move(d->letter));
        }
      },
      {}, &error);
  if (!ok) throw QueueError("cannot read dead letters: " + error);
  return page;
}

std::optional<DeadLetter> SqliteQueue::get(const std::string& id) {
  std::optional<DeadLetter> found;
  std::string error;
  const bool ok = run_txn(
      [&](Db& db) {
        Stmt s(db.raw(), (std::string(kDeadColumns) + " WHERE id=?").c_str());
        s.bind_text(1, id);
        if (s.step()) {
          if (auto d = read_dead(s.get())) found = std::move(d->letter);
          s.reset();
        }
      },
      {}, &error);
  if (!ok) throw QueueError("cannot read dead letters: " + error);
  return found;
}

std::size_t SqliteQueue::count() {
  std::lock_guard<std::mutex> lock(mutex_);
  return dead_count_;
}

bool SqliteQueue::remove(const std::string& id) {
  std::size_t gone = 0;
  std::string error;
  const bool ok = run_txn(
      [&](Db& db) {
        Stmt s(db.raw(), "DELETE FROM dead_letters WHERE id=?");
        s.bind_text(1, id).run();
        gone = static_cast<std::size_t>(sqlite3_changes(db.raw()));
      },
      [&] { dead_count_ -= std::min(dead_count_, gone); }, &error);
  if (!ok) throw QueueError("cannot delete dead letters: " + error);
  return gone > 0;
}

std::size_t SqliteQueue::remove_matching(const DeadLetterFilter& filter) {
  std::size_t gone = 0;
  std::string error;
  const bool ok = run_txn(
      [&](Db& db) {
        std::vector<std::string> args;
        const std::string sql = "DELETE FROM dead_letters" + where_clause(filter, args);
        Stmt s(db.raw(), sql.c_str());
        int i = 1;
        for (const auto& a : args) s.bind_text(i++, a);
        s.run();
        gone = static_cast<std::size_t>(sqlite3_changes(db.raw()));
      },
      [&] { dead_count_ -= std::min(dead_count_, gone); }, &error);
  if (!ok) throw QueueError("cannot delete dead letters: " + error);
  return gone;
}

DeadLetterStore::ReplayStatus SqliteQueue::replay(const std::string& id) {
  ReplayStatus status = ReplayStatus::NotFound;
  std::string error;
  struct Moved {
    std::int64_t seq;
    sdk::Message message;
  };
  std::vector<Moved> moved;
  std::size_t reserved_payload = 0;  // counted in reserved_* while the txn runs
  bool reserved = false;
  const auto release = [&] {
    if (!reserved) return;
    --reserved_;
    reserved_bytes_ -= reserved_payload;
    reserved = false;
  };
  const bool ok = run_txn(
      [&](Db& db) {
        Stmt s(db.raw(), (std::string(kDeadColumns) + " WHERE id=?").c_str());
        s.bind_text(1, id);
        if (!s.step()) return;
        auto d = read_dead(s.get());
        s.reset();
        if (!d) throw QueueError("the dead letter's record cannot be decoded");
        std::optional<std::string> token;
        if (!d->sealed.empty()) {
          if (options_.sealer) token = options_.sealer->open(d->sealed);
          if (!token) {
            // Never hand out a caller's message without the caller's token.
            status = ReplayStatus::TokenUnavailable;
            return;
          }
        }
        {
          std::lock_guard<std::mutex> lock(mutex_);
          if (closed_) {
            status = ReplayStatus::Unavailable;
            return;
          }
          if (!over_limit(d->letter.message.payload.size()).empty()) {
            status = ReplayStatus::Full;
            return;
          }
          d->letter.message.delivery_token.clear();
          // Take the slot now, as push() does, so a racing push cannot
          // take it too.
          reserved_payload = d->letter.message.payload.size();
          ++reserved_;
          reserved_bytes_ += reserved_payload;
          reserved = true;
          moved.push_back(Moved{next_seq_++, std::move(d->letter.message)});
        }
        Moved& mv = moved.back();
        prepare_replay(mv.message, clock_.now(), clock_.wall_now());
        db.insert().bind(1, mv.seq).bind_text(2, mv.message.id)
            .bind_blob(3, encode_message(mv.message)).bind_blob(4, d->sealed).run();
        Stmt del(db.raw(), "DELETE FROM dead_letters WHERE seq=?");
        del.bind(1, d->seq).run();
        if (token) mv.message.delivery_token = std::move(*token);
        status = ReplayStatus::Replayed;
      },
      [&] {
        release();
        for (auto& mv : moved) {
          rows_.emplace(mv.message.id, std::make_pair(mv.seq, mv.message.payload.size()));
          bytes_ += mv.message.payload.size();
          ready_.push_back(std::move(mv.message));
          if (dead_count_ > 0) --dead_count_;
        }
      },
      &error, release);
  if (!ok) {
    log_->error("replaying dead letter {} failed: {}", id, error);
    return ReplayStatus::Unavailable;
  }
  if (status == ReplayStatus::Replayed) wake_consumer();
  return status;
}

DeadLetterStore::ReplayCount SqliteQueue::replay_matching(const DeadLetterFilter& filter) {
  // The matching ids first: a replayed message that fails again comes back
  // as a new dead letter that matches too, and must not be replayed again
  // in the same call.
  std::vector<std::string> ids;
  std::string after;
  do {
    DeadLetterPage page = list(filter, after, kReplayPage);
    for (auto& d : page.items) ids.push_back(std::move(d.message.id));
    after = std::move(page.next_after);
  } while (!after.empty());

  ReplayCount n;
  bool stopped = false;  // the queue is full or unavailable: count the rest
  for (const auto& id : ids) {
    if (stopped) {
      ++n.left;
      continue;
    }
    switch (replay(id)) {
      case ReplayStatus::Replayed:
        ++n.replayed;
        break;
      case ReplayStatus::NotFound:
        break;  // deleted meanwhile
      case ReplayStatus::TokenUnavailable:
        ++n.left;  // this one can never be replayed; the others still can
        break;
      case ReplayStatus::Full:
      case ReplayStatus::Unavailable:
        ++n.left;
        stopped = true;
        break;
    }
  }
  return n;
}

}  // namespace slack_proxy

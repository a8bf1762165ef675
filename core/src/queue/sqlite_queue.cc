#include "queue/sqlite_queue.h"

#include <algorithm>
#include <filesystem>
#include <system_error>

#include "queue/dead_letter_filter.h"
#include "queue/message_codec.h"
#include "queue/sqlite_schema.h"
#include "thread_name.h"

namespace slack_proxy {
namespace {

// A failed commit leaves outcomes (acks, dead letters) to be retried; this
// is how long the writer waits before trying again, so a broken disk is not
// hammered in a tight loop.
constexpr auto kRetryOutcomesAfter = std::chrono::milliseconds(500);
// Expired dedup keys are purged from the database this often.
constexpr auto kDedupPurgeEvery = std::chrono::seconds(60);

constexpr const char* kInsertMessage =
    "INSERT INTO messages(seq,id,lane,bytes,body,sealed) VALUES(?,?,?,?,?,?)";
constexpr const char* kDeleteMessage = "DELETE FROM messages WHERE seq=?";
constexpr const char* kRememberKey = "INSERT OR REPLACE INTO dedup(key,expires_ms) VALUES(?,?)";
constexpr const char* kPurgeKeys = "DELETE FROM dedup WHERE expires_ms<=?";
constexpr const char* kReadLane =
    "SELECT seq,body,sealed FROM messages WHERE lane=? AND seq>? AND seq<=? ORDER BY seq";
constexpr const char* kStoredBytes = "SELECT bytes FROM messages WHERE seq=?";
constexpr const char* kLaneSize = "SELECT count(*) FROM messages WHERE lane=?";
// Rows of no lane (undecodable when migrated) are left for a human.
constexpr const char* kBacklog =
    "SELECT lane, min(seq), count(*) FROM messages WHERE seq<=? AND lane<>'' GROUP BY lane "
    "ORDER BY 2";

std::int64_t as_int(std::uint64_t v) { return static_cast<std::int64_t>(v); }

// The stored size of message `seq` on `db`, nullopt when it is not stored.
// A failed read throws QueueError (the statement is left reset).
std::optional<std::size_t> stored_size(SqliteDb& db, std::uint64_t seq) {
  Stmt& s = db.cached(kStoredBytes);
  std::optional<std::size_t> bytes;
  try {
    s.bind(1, as_int(seq));
    if (s.step()) bytes = static_cast<std::size_t>(std::max<std::int64_t>(s.int_at(0), 0));
  } catch (const QueueError&) {
    s.reset();
    throw;
  }
  s.reset();
  return bytes;
}

void create_parent_directory(const std::string& path) {
  const std::filesystem::path p(path);
  if (!p.has_parent_path()) return;
  std::error_code ec;
  std::filesystem::create_directories(p.parent_path(), ec);
  if (ec)
    throw QueueError("cannot create the queue's directory " + p.parent_path().string() + ": " +
                     ec.message());
}

void configure_writer(SqliteDb& db, const SqliteQueueOptions& o) {
  // WAL: commits append, and the read connection reads beside the writer.
  const std::string mode = db.query_text("PRAGMA journal_mode=WAL");
  if (mode != "wal") throw QueueError("cannot switch to WAL mode (got '" + mode + "')");
  db.exec(o.sync == SqliteQueueOptions::Sync::Full ? "PRAGMA synchronous=FULL"
                                                   : "PRAGMA synchronous=NORMAL");
  if (o.max_page_count > 0) db.exec("PRAGMA max_page_count=" + std::to_string(o.max_page_count));
}

}  // namespace

SqliteQueue::SqliteQueue(SqliteQueueOptions options, const sdk::Clock& clock,
                         std::shared_ptr<spdlog::logger> log)
    : options_(std::move(options)),
      clock_(clock),
      log_(std::move(log)),
      dead_letters_(*this, options_.max_dead_letters),
      dedup_(options_.limits.dedup_window) {
  open_database();
  load_state();
  next_dedup_purge_ = clock_.now() + kDedupPurgeEvery;
  writer_ = std::thread([this] {
    name_this_thread("sp-queue-writer");
    writer_loop();
  });
}

SqliteQueue::~SqliteQueue() { close(); }

// ---- opening ----------------------------------------------------------------

void SqliteQueue::open_database() {
  const std::string& path = options_.path;
  try {
    create_parent_directory(path);
    // Before SQLite touches the file: a second proxy must not migrate it.
    lock_ = std::make_unique<FileLock>(path + ".lock");
    db_ = std::make_unique<SqliteDb>(path, SqliteDb::Mode::ReadWrite);
    configure_writer(*db_, options_);
    prepare_queue_schema(*db_, *log_, path);
    reader_ = std::make_unique<SqliteDb>(path, SqliteDb::Mode::ReadOnly);
  } catch (const QueueError& e) {
    reader_.reset();
    db_.reset();
    lock_.reset();
    throw QueueError("cannot open the queue database " + path + ": " + e.what());
  }
}

void SqliteQueue::load_state() {
  const StoredTotals totals = read_stored_totals(*db_);
  size_ = totals.count;
  bytes_ = totals.bytes;
  recovered_ = totals.count;
  backlog_upto_ = totals.max_seq;
  next_seq_ = std::max(totals.last_seq, totals.max_seq) + 1;
  Stmt keys(db_->raw(), "SELECT key,expires_ms FROM dedup WHERE expires_ms>?");
  keys.bind(1, to_unix_ms(clock_.wall_now()));
  while (keys.step()) dedup_.remember_until(keys.text_at(0), from_unix_ms(keys.int_at(1)));
  dead_letters_.count_at_open(*db_);
}

// ---- pushing ----------------------------------------------------------------

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
    Completion c{std::move(done), std::move(*refused)};
    report(c);  // outside the lock, before returning
    return;
  }
  work_cv_.notify_one();  // after the unlock: the writer need not wait for it
}

std::optional<Queue::PushResult> SqliteQueue::admit(sdk::Message&& message,
                                                    const PushOptions& options, PushDone& done) {
  Insert c;
  c.body = encode_message(message);  // outside the lock: the costly part
  try {
    c.sealed = seal(message.delivery_token);
  } catch (const std::exception& e) {
    return PushResult{PushStatus::Unavailable,
                      std::string("cannot seal the caller's token: ") + e.what()};
  }
  c.lane = lane_key(message);
  const std::size_t payload = message.payload.size();
  c.message = std::move(message);

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
    c.dedup_key = options.dedup_key;
    c.dedup_expires_ms = to_unix_ms(now + dedup_.window());
  }
  c.seq = next_seq_++;
  reserve(payload);
  c.done = std::move(done);
  ops_.emplace_back(std::move(c));
  return std::nullopt;
}

std::string SqliteQueue::over_limit(std::size_t payload_bytes) const {
  return queue_over_limit(options_.limits, size_ + reserved_, bytes_ + reserved_bytes_,
                          payload_bytes);
}

void SqliteQueue::reserve(std::size_t payload_bytes) {
  ++reserved_;
  reserved_bytes_ += payload_bytes;
}

void SqliteQueue::release(std::size_t payload_bytes) {
  --reserved_;
  reserved_bytes_ -= payload_bytes;
}

std::string SqliteQueue::seal(const std::string& token) const {
  if (token.empty() || !options_.sealer) return {};
  return options_.sealer->seal(token);
}

std::optional<std::string> SqliteQueue::open_token(std::string_view sealed) const {
  if (sealed.empty() || !options_.sealer) return std::nullopt;
  return options_.sealer->open(sealed);
}

std::vector<Queued> SqliteQueue::take(std::size_t max) {
  std::vector<Queued> out;
  std::lock_guard<std::mutex> lock(mutex_);
  while (!arrivals_.empty() && out.size() < max) {
    out.push_back(std::move(arrivals_.front()));
    arrivals_.pop_front();
  }
  return out;
}

std::size_t SqliteQueue::size() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return size_ + reserved_;
}

std::size_t SqliteQueue::bytes() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return bytes_ + reserved_bytes_;
}

// ---- outcomes ---------------------------------------------------------------

template <typename Outcome>
void SqliteQueue::hand_over(Outcome c, const Lookup& found) {
  c.bytes = found.bytes;
  c.bytes_known = found.kind == Lookup::Kind::Stored;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    size_ -= std::min<std::size_t>(size_, 1);
    bytes_ -= std::min(bytes_, c.bytes);
    ops_.emplace_back(std::move(c));
  }
  work_cv_.notify_one();
}

void SqliteQueue::ack(const Queued& done) {
  const Lookup found = claim(done.seq);
  if (found.kind == Lookup::Kind::Missing) return;
  Finish c;
  c.seq = done.seq;
  hand_over(std::move(c), found);
}

void SqliteQueue::dead_letter(std::uint64_t seq, DeadLetter letter) {
  Bury c;
  c.seq = seq;
  c.body = encode_message(letter.message);
  try {
    c.sealed = seal(letter.message.delivery_token);
  } catch (const std::exception&) {
    // Not sealable: the record keeps no token, and the dispatcher refuses
    // to deliver a caller-token message without one (token_unavailable).
    c.sealed.clear();
  }
  // The record's columns need only these; the body carries the rest.
  letter.message.payload.clear();
  letter.message.payload.shrink_to_fit();
  letter.message.delivery_token.clear();
  c.record = std::move(letter);
  const Lookup found = claim(seq);
  if (found.kind == Lookup::Kind::Missing) return;
  dead_letters_.counted(+1);
  hand_over(std::move(c), found);
}

SqliteQueue::Lookup SqliteQueue::claim(std::uint64_t seq) {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (stop_writer_ || !finishing_.insert(seq).second) return {};
  }
  // Claimed first, read second: a commit of an earlier outcome for this seq
  // drops its claim only after the row is gone, so the read cannot see it.
  const Lookup found = stored_bytes(seq);
  if (found.kind == Lookup::Kind::Missing) {
    std::lock_guard<std::mutex> lock(mutex_);
    finishing_.erase(seq);
  }
  return found;
}

// ---- reading ----------------------------------------------------------------

SqliteDb& SqliteQueue::reader() {
  if (!reader_) throw QueueError("queue database " + options_.path + " is closed");
  if (options_.read_fault && options_.read_fault->load())
    throw QueueError("disk I/O error (injected)");
  return *reader_;
}

SqliteQueue::Lookup SqliteQueue::stored_bytes(std::uint64_t seq) {
  std::lock_guard<std::mutex> lock(read_mutex_);
  if (!reader_) return {};
  try {
    const auto bytes = stored_size(reader(), seq);
    return bytes ? Lookup{Lookup::Kind::Stored, *bytes} : Lookup{};
  } catch (const QueueError& e) {
    // Not "missing": dropping the outcome would leave the message counted
    // (and, after a restart, delivered again). The writer reads its size.
    log_->error("queue database {}: cannot read message #{}: {}; its outcome is recorded anyway",
                options_.path, seq, e.what());
    return Lookup{Lookup::Kind::Unreadable, 0};
  }
}

std::set<std::uint64_t> SqliteQueue::finishing_between(std::uint64_t after,
                                                       std::uint64_t upto) const {
  std::lock_guard<std::mutex> lock(mutex_);
  return std::set<std::uint64_t>(finishing_.upper_bound(after), finishing_.upper_bound(upto));
}

std::vector<Queued> SqliteQueue::read_lane(const std::string& lane, std::uint64_t after,
                                           std::uint64_t upto, std::size_t max) {
  std::vector<Queued> out;
  if (max == 0 || upto <= after) return out;
  // Copied before the read starts: an outcome committed after the copy is
  // not in the read's snapshot either, one committed before is in neither.
  const std::set<std::uint64_t> finishing = finishing_between(after, upto);
  std::lock_guard<std::mutex> lock(read_mutex_);
  Stmt* rows = nullptr;
  try {
    rows = &reader().cached(kReadLane);
    rows->bind_text(1, lane).bind(2, as_int(after)).bind(3, as_int(upto));
    // No SQL LIMIT: skipped rows must not use up the page.
    while (out.size() < max && rows->step()) {
      if (finishing.contains(static_cast<std::uint64_t>(rows->int_at(0)))) continue;
      if (auto q = decode_row(*rows)) out.push_back(std::move(*q));
    }
  } catch (const QueueError& e) {
    // Not the end of the lane: the caller keeps its place and asks again.
    if (rows) rows->reset();
    log_->error("queue database {}: cannot read lane {}: {}", options_.path, lane, e.what());
    throw;
  }
  rows->reset();
  return out;
}

std::optional<Queued> SqliteQueue::decode_row(Stmt& row) {
  const auto seq = static_cast<std::uint64_t>(row.int_at(0));
  auto m = decode_message(row.blob_at(1));
  if (!m) {
    log_unreadable_once(seq);
    return std::nullopt;
  }
  // Left empty when it cannot be opened (another key): the dispatcher
  // never sends a caller's message without the caller's token.
  if (auto token = open_token(row.blob_at(2))) m->delivery_token = std::move(*token);
  // Time already spent queued counts (for the queue-wait histogram).
  const auto age = std::max(clock_.wall_now() - m->received_at, sdk::WallTime::duration::zero());
  m->enqueued_at = clock_.now() - std::chrono::duration_cast<sdk::SteadyTime::duration>(age);
  return Queued{seq, std::move(*m)};
}

void SqliteQueue::log_unreadable_once(std::uint64_t seq) {
  if (!logged_unreadable_.insert(seq).second) return;
  // Kept on disk for a human (sqlite3 .dump), never silently deleted.
  log_->error("queue row {} in {} cannot be decoded; left in place and skipped", seq,
              options_.path);
}

std::vector<LaneBacklog> SqliteQueue::backlog() {
  std::vector<LaneBacklog> out;
  if (backlog_upto_ == 0) return out;
  (void)transact([](SqliteDb&) {});  // every outcome handed over before is committed
  std::lock_guard<std::mutex> lock(read_mutex_);
  try {
    Stmt s(reader().raw(), kBacklog);
    s.bind(1, as_int(backlog_upto_));
    while (s.step()) {
      out.push_back(LaneBacklog{s.text_at(0), static_cast<std::uint64_t>(s.int_at(1)),
                                static_cast<std::size_t>(s.int_at(2))});
    }
  } catch (const QueueError& e) {
    log_->error("queue database {}: cannot read the stored backlog: {}", options_.path, e.what());
    throw;
  }
  return out;
}

std::size_t SqliteQueue::lane_size(const std::string& lane) {
  (void)transact([](SqliteDb&) {});  // every outcome handed over before is committed
  std::lock_guard<std::mutex> lock(read_mutex_);
  Stmt& s = reader().cached(kLaneSize);
  std::size_t n = 0;
  try {
    s.bind_text(1, lane);
    if (s.step()) n = static_cast<std::size_t>(s.int_at(0));
  } catch (const QueueError&) {
    s.reset();
    throw;
  }
  s.reset();
  return n;
}

// ---- the writer thread ------------------------------------------------------

void SqliteQueue::writer_loop() {
  // Reused from batch to batch, so a busy writer stops allocating for them:
  // `batch` and ops_ swap buffers, and each keeps its capacity.
  std::vector<Command> batch;
  std::vector<Command> admins;
  std::vector<Completion> completions;
  std::size_t retrying = 0;  // ops_ entries put back after a failed commit
  while (next_batch(batch, retrying)) {
    for (Command& c : batch)
      if (std::holds_alternative<Admin>(c)) admins.push_back(std::move(c));
    std::erase_if(batch, [](const Command& c) { return std::holds_alternative<Admin>(c); });

    const std::string error = batch.empty() ? std::string() : commit(batch);
    if (!error.empty())
      log_->error("queue database {}: commit of {} operation(s) failed: {}", options_.path,
                  batch.size(), error);
    Settled settled;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      settled = settle(batch, error, completions);
    }
    retrying = settled.retrying;
    batch.clear();
    // Outside the lock: a completion may post to another thread, or even
    // call back into the queue, without deadlocking with it.
    for (Completion& c : completions) report(c);
    completions.clear();
    if (settled.arrived) wake_consumer();

    for (Command& a : admins) run_admin(std::get<Admin>(a));
    admins.clear();
    if (housekeeping_due()) run_housekeeping();
  }
}

bool SqliteQueue::next_batch(std::vector<Command>& batch, std::size_t retrying) {
  std::unique_lock<std::mutex> lock(mutex_);
  if (retrying > 0) {
    // The last commit failed; its outcomes wait in ops_. Try again after a
    // pause, or at once when new work arrives.
    work_cv_.wait_for(lock, kRetryOutcomesAfter,
                      [&] { return stop_writer_ || ops_.size() > retrying; });
  } else {
    // Wakes for housekeeping too, when nothing else comes.
    const auto until_purge = std::clamp<std::chrono::nanoseconds>(
        next_dedup_purge_ - clock_.now(), std::chrono::milliseconds(1), kDedupPurgeEvery);
    work_cv_.wait_for(lock, until_purge, [&] { return stop_writer_ || !ops_.empty(); });
  }
  if (ops_.empty() && stop_writer_) return false;
  batch.swap(ops_);
  return true;
}

std::string SqliteQueue::commit(std::vector<Command>& batch) {
  try {
    Transaction txn(*db_);
    for (Command& c : batch) std::visit([this](auto& command) { store(command); }, c);
    txn.commit();
    return {};
  } catch (const std::exception& e) {
    return e.what();
  }
}

void SqliteQueue::store(Insert& c) {
  db_->cached(kInsertMessage)
      .bind(1, as_int(c.seq))
      .bind_text(2, c.message.id)
      .bind_text(3, c.lane)
      .bind(4, as_int(c.message.payload.size()))
      .bind_blob(5, c.body)
      .bind_blob(6, c.sealed)
      .run();
  if (!c.dedup_key.empty())
    db_->cached(kRememberKey).bind_text(1, c.dedup_key).bind(2, c.dedup_expires_ms).run();
}

void SqliteQueue::read_unknown_bytes(std::uint64_t seq, bool known, std::size_t& bytes) {
  if (known) return;
  if (const auto stored = stored_size(*db_, seq)) bytes = *stored;
}

void SqliteQueue::store(Finish& c) {
  read_unknown_bytes(c.seq, c.bytes_known, c.bytes);
  db_->cached(kDeleteMessage).bind(1, as_int(c.seq)).run();
  c.deleted = db_->changes() > 0;
}

void SqliteQueue::store(Bury& c) {
  read_unknown_bytes(c.seq, c.bytes_known, c.bytes);
  db_->cached(kDeleteMessage).bind(1, as_int(c.seq)).run();
  c.deleted = db_->changes() > 0;
  if (c.deleted) SqliteDeadLetters::insert(*db_, c.record, c.body, c.sealed);
}

void SqliteQueue::store(Replay& c) {
  using Status = DeadLetterStore::ReplayStatus;
  c.status = Status::Unavailable;
  c.reserved = false;
  auto stored = SqliteDeadLetters::find(*db_, c.id);
  if (!stored) {
    c.status = Status::NotFound;
    return;
  }
  if (!stored->letter) {
    log_->error("queue database {}: dead letter {} cannot be decoded; not replayed",
                options_.path, c.id);
    return;
  }
  std::optional<std::string> token = open_token(stored->sealed);
  if (!stored->sealed.empty() && !token) {
    // Never hand out a caller's message without the caller's token.
    c.status = Status::TokenUnavailable;
    return;
  }
  sdk::Message m = std::move(stored->letter->message);
  c.status = reserve_for_replay(c, m.payload.size());
  if (c.status != Status::Replayed) return;
  m.delivery_token.clear();
  prepare_replay(m, clock_.now(), clock_.wall_now());
  db_->cached(kInsertMessage)
      .bind(1, as_int(c.seq))
      .bind_text(2, m.id)
      .bind_text(3, lane_key(m))
      .bind(4, as_int(m.payload.size()))
      .bind_blob(5, encode_message(m))
      .bind_blob(6, stored->sealed)
      .run();
  SqliteDeadLetters::erase(*db_, stored->row);
  if (token) m.delivery_token = std::move(*token);
  c.queued = Queued{c.seq, std::move(m)};
}

DeadLetterStore::ReplayStatus SqliteQueue::reserve_for_replay(Replay& c, std::size_t payload) {
  std::lock_guard<std::mutex> lock(mutex_);
  if (closed_) return DeadLetterStore::ReplayStatus::Unavailable;
  if (!over_limit(payload).empty()) return DeadLetterStore::ReplayStatus::Full;
  // Take the slot now, as a push does, so a racing push cannot take it too.
  reserve(payload);
  c.reserved_bytes = payload;
  c.reserved = true;
  return DeadLetterStore::ReplayStatus::Replayed;
}

SqliteQueue::Settled SqliteQueue::settle(std::vector<Command>& batch, const std::string& error,
                                         std::vector<Completion>& completions) {
  Settled settled;
  const std::size_t back = ops_.size();  // outcomes to retry go after this
  for (Command& c : batch)
    std::visit([&](auto& command) { settle(command, error, settled, completions); }, c);
  settled.retrying = ops_.size() - back;
  return settled;
}

void SqliteQueue::settle(Insert& c, const std::string& error, Settled& s,
                         std::vector<Completion>& out) {
  release(c.message.payload.size());
  if (error.empty()) {
    ++size_;
    bytes_ += c.message.payload.size();
    arrivals_.push_back(Queued{c.seq, std::move(c.message)});
    s.arrived = true;
    out.push_back({std::move(c.done), {PushStatus::Accepted, {}}});
  } else {
    if (!c.dedup_key.empty()) dedup_.forget(c.dedup_key);
    out.push_back({std::move(c.done), {PushStatus::Unavailable, error}});
  }
  if (!c.dedup_key.empty()) answer_repeats(c.dedup_key, error, out);
}

void SqliteQueue::answer_repeats(const std::string& dedup_key, const std::string& error,
                                 std::vector<Completion>& out) {
  auto repeats = pending_keys_.extract(dedup_key);
  if (repeats.empty()) return;
  for (PushDone& done : repeats.mapped()) {
    out.push_back({std::move(done), error.empty() ? PushResult{PushStatus::Duplicate, {}}
                                                  : PushResult{PushStatus::Unavailable, error}});
  }
}

void SqliteQueue::settle(Finish& c, const std::string& error, Settled&,
                         std::vector<Completion>&) {
  if (!error.empty()) return retry_later(std::move(c));
  finishing_.erase(c.seq);
  if (c.deleted) return take_off_unknown_bytes(c);
  ++size_;  // it was gone already: what ack() took off goes back
  if (c.bytes_known) bytes_ += c.bytes;
}

void SqliteQueue::settle(Bury& c, const std::string& error, Settled&, std::vector<Completion>&) {
  if (!error.empty()) return retry_later(std::move(c));
  finishing_.erase(c.seq);
  if (c.deleted) return take_off_unknown_bytes(c);
  ++size_;
  if (c.bytes_known) bytes_ += c.bytes;
  dead_letters_.counted(-1);
}

void SqliteQueue::settle(Replay& c, const std::string& error, Settled& s,
                         std::vector<Completion>&) {
  using Status = DeadLetterStore::ReplayStatus;
  if (c.reserved) release(c.reserved_bytes);
  const Status status = error.empty() ? c.status : Status::Unavailable;
  if (status == Status::Replayed) {
    ++size_;
    bytes_ += c.reserved_bytes;
    arrivals_.push_back(std::move(c.queued));
    dead_letters_.counted(-1);
    s.arrived = true;
  }
  c.outcome->set_value(status);  // wakes the caller; runs nothing of theirs
}

void SqliteQueue::retry_later(Command&& outcome) {
  if (closed_) {
    ++lost_outcomes_;  // no retry after close(): it reports them
  } else {
    ops_.push_back(std::move(outcome));  // outcomes are never dropped
  }
}

void SqliteQueue::run_admin(Admin& admin) {
  std::string error;
  try {
    Transaction txn(*db_);
    admin.work(*db_);
    txn.commit();
  } catch (const std::exception& e) {
    error = e.what();
    if (error.empty()) error = "unknown error";
  } catch (...) {
    error = "unknown error";
  }
  admin.outcome->set_value(std::move(error));
}

bool SqliteQueue::housekeeping_due() {
  return clock_.now() >= next_dedup_purge_ || dead_letters_.over_cap();
}

void SqliteQueue::run_housekeeping() {
  const bool purge = clock_.now() >= next_dedup_purge_;
  if (purge) next_dedup_purge_ = clock_.now() + kDedupPurgeEvery;
  std::size_t trimmed = 0;
  try {
    Transaction txn(*db_);
    if (purge) db_->cached(kPurgeKeys).bind(1, to_unix_ms(clock_.wall_now())).run();
    trimmed = dead_letters_.trim(*db_);
    txn.commit();
  } catch (const std::exception& e) {
    log_->warn("queue database {}: housekeeping (old dedup keys, dead letters over the cap) "
               "failed: {}",
               options_.path, e.what());
    return;
  }
  if (trimmed == 0) return;
  dead_letters_.counted(-static_cast<std::ptrdiff_t>(trimmed));
  log_->warn("dead-letter store is over its limit of {}; deleted the {} oldest",
             dead_letters_.max_records(), trimmed);
}

void SqliteQueue::report(Completion& c) noexcept {
  try {
    c.done(std::move(c.result));
  } catch (const std::exception& e) {
    log_->error("queue database {}: a push's completion threw: {}", options_.path, e.what());
  } catch (...) {
    log_->error("queue database {}: a push's completion threw", options_.path);
  }
}

void SqliteQueue::wake_consumer() {
  if (listener_) listener_();
}

// ---- the dead-letter store's way in -------------------------------------------

std::string SqliteQueue::transact(std::function<void(SqliteDb&)> work) {
  auto outcome = std::make_shared<std::promise<std::string>>();
  auto result = outcome->get_future();
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (stop_writer_) return "the queue is closed";
    ops_.emplace_back(Admin{std::move(work), std::move(outcome)});
  }
  work_cv_.notify_one();
  return result.get();
}

DeadLetterStore::ReplayStatus SqliteQueue::requeue(const std::string& id) {
  auto outcome = std::make_shared<std::promise<DeadLetterStore::ReplayStatus>>();
  auto result = outcome->get_future();
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (closed_) return DeadLetterStore::ReplayStatus::Unavailable;
    Replay r;
    r.id = id;
    r.seq = next_seq_++;
    r.outcome = std::move(outcome);
    ops_.emplace_back(std::move(r));
  }
  work_cv_.notify_one();
  const auto status = result.get();
  if (status == DeadLetterStore::ReplayStatus::Unavailable)
    log_->error("replaying dead letter {} failed", id);
  return status;
}

// ---- closing ------------------------------------------------------------------

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
    lost_outcomes = lost_outcomes_;
    for (Command& c : ops_) {
      if (auto* a = std::get_if<Admin>(&c)) a->outcome->set_value("the queue is closed");
      if (auto* r = std::get_if<Replay>(&c))
        r->outcome->set_value(DeadLetterStore::ReplayStatus::Unavailable);
      if (std::holds_alternative<Finish>(c) || std::holds_alternative<Bury>(c)) ++lost_outcomes;
    }
    ops_.clear();
  }
  if (lost_outcomes > 0)
    log_->warn("queue database {}: {} outcome(s) could not be recorded; those messages will be "
               "delivered again after the restart",
               options_.path, lost_outcomes);
  {
    std::lock_guard<std::mutex> lock(read_mutex_);
    reader_.reset();  // first: the last connection to close checkpoints the WAL
  }
  db_.reset();
  lock_.reset();
}

}  // namespace slack_proxy

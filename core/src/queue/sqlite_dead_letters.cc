#include "queue/sqlite_dead_letters.h"

#include <algorithm>
#include <vector>

#include "queue/dead_letter_filter.h"
#include "queue/message_codec.h"

namespace slack_proxy {
namespace {

constexpr std::size_t kReplayPage = 256;

constexpr const char* kInsert =
    "INSERT OR REPLACE INTO dead_letters(id,channel,original_channel,kind,error,reason,"
    "http_status,dead_at_ms,body,sealed) VALUES(?,?,?,?,?,?,?,?,?,?)";
constexpr const char* kErase = "DELETE FROM dead_letters WHERE seq=?";
constexpr const char* kTrim =
    "DELETE FROM dead_letters WHERE seq IN (SELECT seq FROM dead_letters ORDER BY seq LIMIT ?)";
// Columns: row, id, kind, error, reason, http_status, dead_at_ms, body, sealed.
constexpr const char* kColumns =
    "SELECT seq,id,kind,error,reason,http_status,dead_at_ms,body,sealed FROM dead_letters";

SqliteDeadLetters::Stored read_row(Stmt& s) {
  SqliteDeadLetters::Stored d;
  d.row = s.int_at(0);
  d.sealed = std::string(s.blob_at(8));
  auto m = decode_message(s.blob_at(7));
  if (!m) return d;
  DeadLetter& l = d.letter.emplace();
  l.message = std::move(*m);
  l.kind = dead_letter_kind_from(s.text_at(2)).value_or(DeadLetterKind::Failed);
  l.error = s.text_at(3);
  l.reason = s.text_at(4);
  l.http_status = static_cast<int>(s.int_at(5));
  l.dead_at = from_unix_ms(s.int_at(6));
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

void bind_all(Stmt& s, const std::vector<std::string>& args) {
  int i = 1;
  for (const auto& a : args) s.bind_text(i++, a);
}

// Up to `limit` decodable records after `after`, oldest first.
DeadLetterPage read_page(SqliteDb& db, const DeadLetterFilter& filter, const std::string& after,
                         std::size_t limit) {
  std::vector<std::string> args;
  std::string sql = std::string(kColumns) + where_clause(filter, args);
  if (!after.empty()) {
    sql += args.empty() ? " WHERE " : " AND ";
    sql += "seq>(SELECT seq FROM dead_letters WHERE id=?)";
    args.push_back(after);
  }
  // No SQL LIMIT: an undecodable row is skipped, and must not use up the
  // page (SQLite steps lazily, so this still reads ~limit rows).
  sql += " ORDER BY seq";
  Stmt s(db.raw(), sql.c_str());
  bind_all(s, args);
  DeadLetterPage page;
  while (s.step()) {
    auto d = read_row(s);
    if (!d.letter) continue;
    if (page.items.size() == limit) {
      page.next_after = page.items.back().message.id;
      s.reset();
      break;
    }
    page.items.push_back(std::move(*d.letter));
  }
  return page;
}

}  // namespace

SqliteDeadLetters::SqliteDeadLetters(Writer& writer, std::size_t max_records)
    : writer_(writer), max_records_(max_records) {}

void SqliteDeadLetters::fail(const char* what, const std::string& error) {
  throw QueueError(std::string("cannot ") + what + " dead letters: " + error);
}

DeadLetterPage SqliteDeadLetters::list(const DeadLetterFilter& filter, const std::string& after,
                                       std::size_t limit) {
  DeadLetterPage page;
  const std::string error =
      writer_.transact([&](SqliteDb& db) { page = read_page(db, filter, after, limit); });
  if (!error.empty()) fail("read", error);
  return page;
}

std::optional<DeadLetter> SqliteDeadLetters::get(const std::string& id) {
  std::optional<Stored> found;
  const std::string error = writer_.transact([&](SqliteDb& db) { found = find(db, id); });
  if (!error.empty()) fail("read", error);
  if (!found) return std::nullopt;
  return std::move(found->letter);
}

bool SqliteDeadLetters::remove(const std::string& id) {
  std::size_t gone = 0;
  const std::string error = writer_.transact([&](SqliteDb& db) {
    Stmt s(db.raw(), "DELETE FROM dead_letters WHERE id=?");
    s.bind_text(1, id).run();
    gone = db.changes();
  });
  if (!error.empty()) fail("delete", error);
  counted(-static_cast<std::ptrdiff_t>(gone));
  return gone > 0;
}

std::size_t SqliteDeadLetters::remove_matching(const DeadLetterFilter& filter) {
  std::size_t gone = 0;
  const std::string error = writer_.transact([&](SqliteDb& db) {
    std::vector<std::string> args;
    const std::string sql = "DELETE FROM dead_letters" + where_clause(filter, args);
    Stmt s(db.raw(), sql.c_str());
    bind_all(s, args);
    s.run();
    gone = db.changes();
  });
  if (!error.empty()) fail("delete", error);
  counted(-static_cast<std::ptrdiff_t>(gone));
  return gone;
}

DeadLetterStore::ReplayCount SqliteDeadLetters::replay_matching(const DeadLetterFilter& filter) {
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

  return replay_in_turn(ids, [this](const std::string& id) { return replay(id); });
}

void SqliteDeadLetters::insert(SqliteDb& db, const DeadLetter& d, std::string_view body,
                               std::string_view sealed) {
  db.cached(kInsert)
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

std::optional<SqliteDeadLetters::Stored> SqliteDeadLetters::find(SqliteDb& db,
                                                                 const std::string& id) {
  Stmt s(db.raw(), (std::string(kColumns) + " WHERE id=?").c_str());
  s.bind_text(1, id);
  if (!s.step()) return std::nullopt;
  Stored d = read_row(s);
  s.reset();
  return d;
}

void SqliteDeadLetters::erase(SqliteDb& db, std::int64_t row) {
  db.cached(kErase).bind(1, row).run();
}

std::size_t SqliteDeadLetters::trim(SqliteDb& db) {
  const std::size_t n = count_.load();
  if (n <= max_records_) return 0;
  db.cached(kTrim).bind(1, static_cast<std::int64_t>(n - max_records_)).run();
  return db.changes();
}

void SqliteDeadLetters::count_at_open(SqliteDb& db) {
  count_ = static_cast<std::size_t>(db.query_int("SELECT count(*) FROM dead_letters"));
}

void SqliteDeadLetters::counted(std::ptrdiff_t delta) {
  std::size_t now = count_.load();
  std::size_t next;
  do {
    next = delta >= 0 ? now + static_cast<std::size_t>(delta)
                      : now - std::min(now, static_cast<std::size_t>(-delta));
  } while (!count_.compare_exchange_weak(now, next));
}

}  // namespace slack_proxy

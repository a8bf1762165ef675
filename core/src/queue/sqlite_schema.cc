#include "queue/sqlite_schema.h"

#include <algorithm>

#include "queue/message_codec.h"
#include "queue/queue.h"

namespace slack_proxy {
namespace {

std::string messages_table(const std::string& name) {
  return "CREATE TABLE " + name + R"sql( (
  seq    INTEGER PRIMARY KEY,
  id     TEXT NOT NULL,
  lane   TEXT NOT NULL,
  bytes  INTEGER NOT NULL,
  body   BLOB NOT NULL,
  sealed BLOB
);)sql";
}

constexpr const char* kOtherTables = R"sql(
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

// After `messages` holds its rows: the index, the totals as they are, and
// the triggers that keep them from then on.
constexpr const char* kLaneIndexAndTotals = R"sql(
CREATE INDEX messages_by_lane ON messages(lane, seq);
CREATE TABLE queue_totals (
  one      INTEGER PRIMARY KEY CHECK (one = 1),
  count    INTEGER NOT NULL,
  bytes    INTEGER NOT NULL,
  last_seq INTEGER NOT NULL
);
INSERT INTO queue_totals SELECT 1, count(*), coalesce(sum(bytes), 0), coalesce(max(seq), 0)
  FROM messages;
CREATE TRIGGER messages_counted AFTER INSERT ON messages BEGIN
  UPDATE queue_totals SET count = count + 1, bytes = bytes + NEW.bytes,
                          last_seq = max(last_seq, NEW.seq);
END;
CREATE TRIGGER messages_uncounted AFTER DELETE ON messages BEGIN
  UPDATE queue_totals SET count = count - 1, bytes = bytes - OLD.bytes;
END;
)sql";

void create_version_2(SqliteDb& db) {
  db.exec(messages_table("messages"));
  db.exec(kOtherTables);
  db.exec(kLaneIndexAndTotals);
}

// Version 1 had messages(seq, id, body, sealed). Each row is decoded for its
// lane and size; one that cannot be decoded keeps an empty lane (no lane_key
// is empty, so no lane pages it in) and is left for a human, as before.
void migrate_version_1(SqliteDb& db, spdlog::logger& log, const std::string& path) {
  db.exec(messages_table("messages_v2"));
  Stmt insert(db.raw(),
              "INSERT INTO messages_v2(seq,id,lane,bytes,body,sealed) VALUES(?,?,?,?,?,?)");
  Stmt rows(db.raw(), "SELECT seq,id,body,sealed FROM messages ORDER BY seq");
  std::size_t migrated = 0, unreadable = 0;
  while (rows.step()) {
    const auto message = decode_message(rows.blob_at(2));
    if (!message) ++unreadable;
    insert.bind(1, rows.int_at(0))
        .bind_text(2, rows.text_at(1))
        .bind_text(3, message ? lane_key(*message) : std::string())
        .bind(4, message ? static_cast<std::int64_t>(message->payload.size()) : 0)
        .bind_blob(5, rows.blob_at(2))
        .bind_blob(6, rows.blob_at(3))
        .run();
    ++migrated;
  }
  db.exec("DROP TABLE messages; ALTER TABLE messages_v2 RENAME TO messages;");
  db.exec(kLaneIndexAndTotals);
  log.info("queue database {}: migrated {} message(s) from schema 1 to 2", path, migrated);
  if (unreadable > 0)
    log.error("queue database {}: {} message row(s) cannot be decoded; left in place, in no "
              "lane",
              path, unreadable);
}

}  // namespace

void prepare_queue_schema(SqliteDb& db, spdlog::logger& log, const std::string& path) {
  Transaction txn(db);
  const int version = static_cast<int>(db.query_int("PRAGMA user_version"));
  if (version > kQueueSchemaVersion)
    throw QueueError("the database was written by a newer slack-proxy (schema " +
                     std::to_string(version) + ", this one knows " +
                     std::to_string(kQueueSchemaVersion) + ")");
  if (version == kQueueSchemaVersion) return;  // the rollback ends a read-only transaction
  if (version == 1) {
    migrate_version_1(db, log, path);
  } else {
    create_version_2(db);
  }
  db.exec("PRAGMA user_version=" + std::to_string(kQueueSchemaVersion));
  txn.commit();
}

StoredTotals read_stored_totals(SqliteDb& db) {
  StoredTotals t;
  Stmt s(db.raw(), "SELECT count, bytes, last_seq, (SELECT max(seq) FROM messages) "
                   "FROM queue_totals");
  if (s.step()) {
    t.count = static_cast<std::size_t>(std::max<std::int64_t>(s.int_at(0), 0));
    t.bytes = static_cast<std::size_t>(std::max<std::int64_t>(s.int_at(1), 0));
    t.last_seq = static_cast<std::uint64_t>(std::max<std::int64_t>(s.int_at(2), 0));
    t.max_seq = static_cast<std::uint64_t>(std::max<std::int64_t>(s.int_at(3), 0));
    s.reset();
  }
  return t;
}

}  // namespace slack_proxy

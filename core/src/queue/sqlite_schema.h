// The SQLite queue's tables, created in a new file and migrated in an old
// one, and the totals read back at open.
//
// Version 2 (this one): each message row carries its lane (lane_key()) and
// payload size, with an index on (lane, seq) so a lane is paged by an
// indexed read; a one-row table `queue_totals` holds the count, the bytes
// and the highest sequence ever stored, kept by triggers on `messages` in
// the same transaction as the change, so it cannot drift and opening reads
// it instead of counting a million rows. Version 1 files are migrated once
// (in one transaction, decoding each row for its lane); a newer version is
// refused.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include <spdlog/logger.h>

#include "queue/sqlite_db.h"

namespace slack_proxy {

inline constexpr int kQueueSchemaVersion = 2;

// Creates or migrates the tables; throws QueueError for a newer schema.
void prepare_queue_schema(SqliteDb& db, spdlog::logger& log, const std::string& path);

struct StoredTotals {
  std::size_t count = 0;
  std::size_t bytes = 0;
  std::uint64_t max_seq = 0;   // highest sequence stored now (0: none)
  std::uint64_t last_seq = 0;  // highest sequence ever stored
};
StoredTotals read_stored_totals(SqliteDb& db);

}  // namespace slack_proxy

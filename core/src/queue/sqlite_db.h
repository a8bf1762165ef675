// SQLite plumbing for the SQLite queue's parts: a connection with its
// cached prepared statements, a statement that resets itself, a
// transaction scope, and the file lock that keeps a second proxy off a
// queue database.
#pragma once

#include <sqlite3.h>

#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>
#include <unordered_map>

namespace slack_proxy {

class QueueError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

std::string_view blob_view(sqlite3_stmt* s, int col);
std::string text_of(sqlite3_stmt* s, int col);

// One prepared statement, reset after each use. Text and blobs are bound
// without a copy (SQLITE_STATIC): a bound value must outlive the step()
// that reads it, which every caller gets by binding and running in one
// expression or by binding values it keeps. The bindings are cleared when
// the statement is reset, so none outlives its use.
class Stmt {
 public:
  Stmt(sqlite3* db, const char* sql);
  ~Stmt() { sqlite3_finalize(stmt_); }
  Stmt(const Stmt&) = delete;
  Stmt& operator=(const Stmt&) = delete;

  Stmt& bind(int i, std::int64_t v);
  Stmt& bind_text(int i, std::string_view v);
  Stmt& bind_blob(int i, std::string_view v);  // empty binds NULL
  // True while rows come; throws QueueError on error. Resets itself at the end.
  bool step();
  void run() {
    while (step()) {
    }
  }
  void reset();
  std::int64_t int_at(int col) { return sqlite3_column_int64(stmt_, col); }
  std::string_view blob_at(int col) { return blob_view(stmt_, col); }
  std::string text_at(int col) { return text_of(stmt_, col); }

 private:
  void check(int rc);
  sqlite3* db_;
  sqlite3_stmt* stmt_ = nullptr;
};

// One connection. Not thread-safe (opened without SQLite's mutex): its
// owner keeps it to one thread at a time.
class SqliteDb {
 public:
  enum class Mode { ReadWrite, ReadOnly };
  // Throws QueueError with SQLite's message (the caller names the path).
  SqliteDb(const std::string& path, Mode mode);
  ~SqliteDb();
  SqliteDb(const SqliteDb&) = delete;
  SqliteDb& operator=(const SqliteDb&) = delete;

  void exec(const std::string& sql);
  std::int64_t query_int(const std::string& sql);
  std::string query_text(const std::string& sql);
  void rollback() noexcept;
  // Rows changed by the last INSERT, UPDATE or DELETE.
  std::size_t changes() const { return static_cast<std::size_t>(sqlite3_changes(db_)); }
  sqlite3* raw() { return db_; }

  // `sql` prepared once for this connection and kept: pass a named
  // constant (the cache is keyed by its address).
  Stmt& cached(const char* sql);

 private:
  sqlite3* db_ = nullptr;
  std::unordered_map<const char*, std::unique_ptr<Stmt>> cache_;
};

// BEGIN IMMEDIATE now; ROLLBACK unless commit() was called.
class Transaction {
 public:
  explicit Transaction(SqliteDb& db) : db_(db) { db_.exec("BEGIN IMMEDIATE"); }
  ~Transaction() {
    if (!done_) db_.rollback();
  }
  Transaction(const Transaction&) = delete;
  Transaction& operator=(const Transaction&) = delete;
  void commit() {
    db_.exec("COMMIT");
    done_ = true;
  }

 private:
  SqliteDb& db_;
  bool done_ = false;
};

// An exclusive flock(2) on `path` (created if missing), held until
// destroyed. Throws QueueError naming the path when another process holds
// it. Close-on-exec, so a child process never keeps it. The file is never
// removed: a process that removed it could leave the next two locking two
// different files.
class FileLock {
 public:
  explicit FileLock(const std::string& path);
  ~FileLock();
  FileLock(const FileLock&) = delete;
  FileLock& operator=(const FileLock&) = delete;

 private:
  int fd_ = -1;
};

}  // namespace slack_proxy

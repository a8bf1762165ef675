#include "queue/sqlite_db.h"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace slack_proxy {

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

// ---- Stmt -----------------------------------------------------------------

Stmt::Stmt(sqlite3* db, const char* sql) : db_(db) {
  if (sqlite3_prepare_v3(db, sql, -1, SQLITE_PREPARE_PERSISTENT, &stmt_, nullptr) != SQLITE_OK)
    throw QueueError(std::string("cannot prepare statement: ") + sqlite3_errmsg(db));
}

Stmt& Stmt::bind(int i, std::int64_t v) {
  check(sqlite3_bind_int64(stmt_, i, v));
  return *this;
}

Stmt& Stmt::bind_text(int i, std::string_view v) {
  check(sqlite3_bind_text(stmt_, i, v.data(), static_cast<int>(v.size()), SQLITE_STATIC));
  return *this;
}

Stmt& Stmt::bind_blob(int i, std::string_view v) {
  if (v.empty()) {
    check(sqlite3_bind_null(stmt_, i));
  } else {
    check(sqlite3_bind_blob(stmt_, i, v.data(), static_cast<int>(v.size()), SQLITE_STATIC));
  }
  return *this;
}

bool Stmt::step() {
  const int rc = sqlite3_step(stmt_);
  if (rc == SQLITE_ROW) return true;
  const std::string error = rc == SQLITE_DONE ? std::string() : sqlite3_errmsg(db_);
  reset();
  if (rc != SQLITE_DONE) throw QueueError(error);
  return false;
}

void Stmt::reset() {
  sqlite3_reset(stmt_);
  sqlite3_clear_bindings(stmt_);
}

void Stmt::check(int rc) {
  if (rc == SQLITE_OK) return;
  std::string why = std::string("cannot bind: ") + sqlite3_errmsg(db_);
  reset();  // drops the bindings made so far: they may not outlive this call
  throw QueueError(why);
}

// ---- SqliteDb -------------------------------------------------------------

namespace {
// How long a statement waits for a lock another connection holds for a
// moment (a WAL checkpoint, the reader's snapshot setup) before failing.
constexpr int kBusyTimeoutMs = 5000;
}  // namespace

SqliteDb::SqliteDb(const std::string& path, Mode mode) {
  const int flags = (mode == Mode::ReadOnly ? SQLITE_OPEN_READONLY
                                            : SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE) |
                    SQLITE_OPEN_NOMUTEX;
  const int rc = sqlite3_open_v2(path.c_str(), &db_, flags, nullptr);
  if (rc != SQLITE_OK) {
    std::string why = db_ ? sqlite3_errmsg(db_) : sqlite3_errstr(rc);
    sqlite3_close(db_);
    db_ = nullptr;
    throw QueueError(why);
  }
  sqlite3_busy_timeout(db_, kBusyTimeoutMs);
}

SqliteDb::~SqliteDb() {
  cache_.clear();  // statements first: a connection with live ones does not close
  if (db_) sqlite3_close(db_);
}

void SqliteDb::exec(const std::string& sql) {
  char* err = nullptr;
  if (sqlite3_exec(db_, sql.c_str(), nullptr, nullptr, &err) != SQLITE_OK) {
    std::string why = err ? err : sqlite3_errmsg(db_);
    sqlite3_free(err);
    throw QueueError(why);
  }
}

std::int64_t SqliteDb::query_int(const std::string& sql) {
  Stmt s(db_, sql.c_str());
  std::int64_t v = 0;
  if (s.step()) v = s.int_at(0);
  s.reset();
  return v;
}

std::string SqliteDb::query_text(const std::string& sql) {
  Stmt s(db_, sql.c_str());
  std::string v;
  if (s.step()) v = s.text_at(0);
  s.reset();
  return v;
}

void SqliteDb::rollback() noexcept {
  if (!sqlite3_get_autocommit(db_)) sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
}

Stmt& SqliteDb::cached(const char* sql) {
  auto& slot = cache_[sql];
  if (!slot) slot = std::make_unique<Stmt>(db_, sql);
  return *slot;
}

// ---- FileLock -------------------------------------------------------------

FileLock::FileLock(const std::string& path) {
  fd_ = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (fd_ < 0)
    throw QueueError("cannot open the lock file " + path + ": " + std::strerror(errno));
  if (::flock(fd_, LOCK_EX | LOCK_NB) != 0) {
    const int error = errno;
    ::close(fd_);
    fd_ = -1;
    if (error == EWOULDBLOCK)
      throw QueueError(path + " is locked by another process (is another slack-proxy using "
                              "this file?)");
    throw QueueError("cannot lock " + path + ": " + std::strerror(error));
  }
}

FileLock::~FileLock() {
  if (fd_ >= 0) ::close(fd_);  // releases the lock
}

}  // namespace slack_proxy

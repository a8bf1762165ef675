// What only the SQLite queue has, beyond the contract every backend keeps
// (queue_contract_test.cc): its file format (schema 2, the migration of a
// version-1 file, totals kept by triggers), recovery that reads the backlog
// from disk instead of loading it, the read connection's view of outcomes
// on their way, and the lock file.
#include "queue/sqlite_queue.h"

#include <atomic>
#include <chrono>
#include <filesystem>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <slack_proxy/sdk/message.h>
#include <slack_proxy/sdk/testing/fakes.h>

#include "metric_values.h"
#include "queue/message_codec.h"
#include "queue/sqlite_db.h"
#include "queue/token_seal.h"
#include "queue_test_support.h"

namespace slack_proxy {
namespace {

using namespace std::chrono_literals;
using sdk::testing::FakeClock;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using PushStatus = Queue::PushStatus;
using ReplayStatus = DeadLetterStore::ReplayStatus;
using test_support::ids;
using test_support::seqs;
using test_support::TempDir;

const std::string kTokenKeyHex = "00112233445566778899aabbccddeeff0123456789abcdef0f1e2d3c4b5a6978";
const std::string kOtherTokenKeyHex =
    "ffeeddccbbaa99887766554433221100fedcba98765432100123456789abcdef";

// The version-1 file format (core/src/queue/sqlite_queue.cc as of 64e398a),
// written by hand: what a proxy before schema 2 left on disk.
constexpr const char* kVersion1Schema = R"sql(
CREATE TABLE messages (
  seq    INTEGER PRIMARY KEY,
  id     TEXT NOT NULL,
  body   BLOB NOT NULL,
  sealed BLOB
);
CREATE TABLE dead_letters (
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
CREATE TABLE dedup (
  key        TEXT PRIMARY KEY,
  expires_ms INTEGER NOT NULL
) WITHOUT ROWID;
PRAGMA user_version=1;
)sql";

sdk::Message message(const std::string& id, const std::string& channel = "#general",
                     const std::string& payload = R"({"text":"hello"})") {
  sdk::Message m;
  m.id = id;
  m.pipeline = "slack";
  m.channel = channel;
  m.original_channel = channel;
  m.payload = payload;
  m.content_type = "application/json";
  return m;
}

std::string lane_of(const std::string& channel) { return lane_key(message("x", channel)); }

class SqliteQueueFileTest : public ::testing::Test {
 protected:
  std::string path() const { return (dir_.path() / "queue.db").string(); }
  SqliteQueueOptions options(const std::string& key = kTokenKeyHex) const {
    SqliteQueueOptions o;
    o.path = path();
    o.limits.max_messages = 1000;
    o.limits.max_bytes = 1 << 20;
    o.sealer = std::make_shared<TokenSealer>(TokenSealer::from_hex(key));
    return o;
  }
  std::unique_ptr<SqliteQueue> open(SqliteQueueOptions o) {
    return std::make_unique<SqliteQueue>(std::move(o), clock_, test_support::null_logger());
  }
  std::unique_ptr<SqliteQueue> open() { return open(options()); }
  // The file as it is now, through a connection of the test's own (the
  // queue must be closed, or it holds the lock file, not the database).
  std::int64_t query(const std::string& sql) {
    SqliteDb db(path(), SqliteDb::Mode::ReadWrite);
    return db.query_int(sql);
  }
  void exec(const std::string& sql) {
    SqliteDb db(path(), SqliteDb::Mode::ReadWrite);
    db.exec(sql);
  }

  FakeClock clock_;
  TempDir dir_;
};

// ---- the file format ----------------------------------------------------------

TEST_F(SqliteQueueFileTest, AVersion1FileIsMigratedOnceAndItsBacklogPagesInByLane) {
  {
    SqliteDb db(path(), SqliteDb::Mode::ReadWrite);
    db.exec(kVersion1Schema);
    Stmt insert(db.raw(), "INSERT INTO messages(seq,id,body,sealed) VALUES(?,?,?,NULL)");
    const std::vector<std::pair<int, sdk::Message>> rows = {
        {3, message("a1", "#a", "aaa")},
        {5, message("b1", "#b", "bbbbb")},
        {9, message("a2", "#a", "aaaaaaa")}};
    for (const auto& [seq, m] : rows)
      insert.bind(1, seq).bind_text(2, m.id).bind_blob(3, encode_message(m)).run();
    insert.bind(1, 7).bind_text(2, "broken").bind_blob(3, "not a record").run();
    db.exec("INSERT INTO dead_letters(id,channel,original_channel,kind,error,reason,"
            "http_status,dead_at_ms,body) VALUES('d1','#a','#a','failed','x','y',0,0,'z')");
  }

  {
    auto q = open();
    EXPECT_EQ(q->recovered(), 4u);  // the undecodable row is still stored
    EXPECT_EQ(q->size(), 4u);
    EXPECT_EQ(q->bytes(), 3u + 5u + 7u);  // its size is unknown: counted as 0
    EXPECT_EQ(q->backlog_upto(), 9u);
    EXPECT_EQ(q->dead_letters().count(), 1u);
    EXPECT_THAT(q->take(10), IsEmpty());  // stored before the open: not announced
    const auto backlog = q->backlog();
    ASSERT_EQ(backlog.size(), 2u);  // the row of no lane is left for a human
    EXPECT_EQ(backlog[0].lane, lane_of("#a"));
    EXPECT_EQ(backlog[0].first_seq, 3u);
    EXPECT_EQ(backlog[0].count, 2u);
    EXPECT_EQ(backlog[1].lane, lane_of("#b"));
    EXPECT_EQ(backlog[1].first_seq, 5u);
    EXPECT_EQ(backlog[1].count, 1u);
    const auto a = q->read_lane(lane_of("#a"), 0, q->backlog_upto(), 10);
    EXPECT_THAT(ids(a), ElementsAre("a1", "a2"));
    EXPECT_THAT(seqs(a), ElementsAre(3u, 9u));
    EXPECT_EQ(a[1].message.payload, "aaaaaaa");
    // New pushes go behind everything the old file held.
    ASSERT_EQ(q->push(message("new", "#a")).status, PushStatus::Accepted);
    const auto arrived = q->take(10);
    ASSERT_EQ(arrived.size(), 1u);
    EXPECT_GT(arrived[0].seq, 9u);
    q->ack(a[0]);
  }

  EXPECT_EQ(query("PRAGMA user_version"), 2);
  EXPECT_EQ(query("SELECT count(*) FROM messages WHERE id='broken'"), 1);  // never deleted
  // The totals the triggers keep agree with the rows, after the migration
  // and the changes since.
  EXPECT_EQ(query("SELECT count FROM queue_totals"), query("SELECT count(*) FROM messages"));
  EXPECT_EQ(query("SELECT bytes FROM queue_totals"), query("SELECT sum(bytes) FROM messages"));
  auto again = open();
  EXPECT_EQ(again->recovered(), 4u);  // a1 acked, "new" added
  EXPECT_THAT(ids(again->read_lane(lane_of("#a"), 0, again->backlog_upto(), 10)),
              ElementsAre("a2", "new"));
}

TEST_F(SqliteQueueFileTest, ANewerSchemaIsRefusedAndLeftAlone) {
  open().reset();
  exec("PRAGMA user_version=3");
  try {
    open();
    FAIL() << "a schema-3 file was opened";
  } catch (const QueueError& e) {
    EXPECT_THAT(e.what(), HasSubstr("newer slack-proxy"));
    EXPECT_THAT(e.what(), HasSubstr(path()));
  }
  EXPECT_EQ(query("PRAGMA user_version"), 3);
}

TEST_F(SqliteQueueFileTest, TotalsKeptByTriggersAreWhatTheNextOpenCounts) {
  {
    auto q = open();
    for (const char* id : {"1", "2", "3"})
      ASSERT_EQ(q->push(message(id, "#a", std::string(10, 'x'))).status, PushStatus::Accepted);
    const auto taken = q->take(10);
    ASSERT_EQ(taken.size(), 3u);
    q->ack(taken[0]);
    DeadLetter d;
    d.message = taken[1].message;
    d.error = "invalid_auth";
    q->dead_letter(taken[1].seq, d);
  }
  EXPECT_EQ(query("SELECT count FROM queue_totals"), 1);
  EXPECT_EQ(query("SELECT bytes FROM queue_totals"), 10);
  auto r = open();
  EXPECT_EQ(r->recovered(), 1u);
  EXPECT_EQ(r->size(), 1u);
  EXPECT_EQ(r->bytes(), 10u);
}

// ---- recovery reads the backlog from disk ------------------------------------

TEST_F(SqliteQueueFileTest, StoredMessagesAreNamedByLaneAndPagedInOrder) {
  {
    auto q = open();
    for (int i = 0; i < 6; ++i)
      ASSERT_EQ(q->push(message(std::to_string(i), i % 2 ? "#odd" : "#even")).status,
                PushStatus::Accepted);
  }
  auto r = open();
  EXPECT_EQ(r->recovered(), 6u);
  EXPECT_THAT(r->take(10), IsEmpty());
  const std::uint64_t upto = r->backlog_upto();
  EXPECT_EQ(upto, 6u);
  const auto backlog = r->backlog();
  ASSERT_EQ(backlog.size(), 2u);
  EXPECT_EQ(backlog[0].lane, lane_of("#even"));
  EXPECT_EQ(backlog[0].count, 3u);

  const auto first = r->read_lane(lane_of("#even"), 0, upto, 2);
  EXPECT_THAT(ids(first), ElementsAre("0", "2"));
  const auto rest = r->read_lane(lane_of("#even"), first.back().seq, upto, 2);
  EXPECT_THAT(ids(rest), ElementsAre("4"));
  // As often as asked: nothing was consumed by reading.
  EXPECT_THAT(ids(r->read_lane(lane_of("#even"), 0, upto, 10)), ElementsAre("0", "2", "4"));
  // `upto` bounds the page: what take() has yet to announce is not in it.
  ASSERT_EQ(r->push(message("late", "#even")).status, PushStatus::Accepted);
  EXPECT_THAT(ids(r->read_lane(lane_of("#even"), 0, upto, 10)), ElementsAre("0", "2", "4"));
  EXPECT_EQ(r->lane_size(lane_of("#even")), 4u);
}

TEST_F(SqliteQueueFileTest, SequencesKeepRisingAfterEverythingWasAcked) {
  std::uint64_t last = 0;
  {
    auto q = open();
    for (const char* id : {"1", "2"}) ASSERT_EQ(q->push(message(id)).status, PushStatus::Accepted);
    for (const auto& m : q->take(10)) {
      last = m.seq;
      q->ack(m);
    }
  }
  auto r = open();
  EXPECT_EQ(r->recovered(), 0u);
  EXPECT_EQ(r->backlog_upto(), 0u);
  ASSERT_EQ(r->push(message("3")).status, PushStatus::Accepted);
  const auto taken = r->take(10);
  ASSERT_EQ(taken.size(), 1u);
  EXPECT_GT(taken[0].seq, last);
}

// Where the old code dead-lettered these at open, the store now hands them
// out without the token, and the dispatcher decides when it gets there.
TEST_F(SqliteQueueFileTest, AMessageWhoseTokenWasSealedUnderAnotherKeyIsReadWithoutIt) {
  {
    auto q = open();
    sdk::Message m = message("1");
    m.delivery_token = "xoxp-sqlite-test-caller-token";
    ASSERT_EQ(q->push(m).status, PushStatus::Accepted);
  }
  auto r = open(options(kOtherTokenKeyHex));
  EXPECT_EQ(r->recovered(), 1u);
  EXPECT_EQ(r->dead_letters().count(), 0u);
  const auto page = r->read_lane(lane_of("#general"), 0, r->backlog_upto(), 10);
  ASSERT_THAT(ids(page), ElementsAre("1"));
  EXPECT_TRUE(page[0].message.delivery_token.empty());
}

TEST_F(SqliteQueueFileTest, AnUndecodableRowIsSkippedByReadsAndLeftInPlace) {
  {
    auto q = open();
    for (const char* id : {"1", "2", "3"})
      ASSERT_EQ(q->push(message(id)).status, PushStatus::Accepted);
  }
  exec("UPDATE messages SET body=x'00ff' WHERE id='2'");
  {
    auto r = open();
    const std::string lane = lane_of("#general");
    EXPECT_THAT(ids(r->read_lane(lane, 0, r->backlog_upto(), 10)), ElementsAre("1", "3"));
    // A page of two is two readable ones, not one and a skipped row.
    EXPECT_THAT(ids(r->read_lane(lane, 0, r->backlog_upto(), 2)), ElementsAre("1", "3"));
  }
  EXPECT_EQ(query("SELECT count(*) FROM messages WHERE id='2'"), 1);
}

// ---- outcomes -------------------------------------------------------------------

// read_lane() reads another connection, which sees an ack only once the
// writer committed it; the queue must not hand the message out again meanwhile.
TEST_F(SqliteQueueFileTest, AMessageWhoseOutcomeIsOnItsWayIsNotReadAgain) {
  auto q = open();
  for (const char* id : {"1", "2", "3"}) ASSERT_EQ(q->push(message(id)).status, PushStatus::Accepted);
  const auto taken = q->take(10);
  ASSERT_EQ(taken.size(), 3u);
  q->ack(taken[0]);
  DeadLetter d;
  d.message = taken[1].message;
  q->dead_letter(taken[1].seq, d);
  EXPECT_THAT(ids(q->read_lane(lane_of("#general"), 0, taken[2].seq, 10)), ElementsAre("3"));
  EXPECT_EQ(q->lane_size(lane_of("#general")), 1u);
}

TEST_F(SqliteQueueFileTest, AnAckOfAnUnknownOrFinishedSeqChangesNothing) {
  auto q = open();
  ASSERT_EQ(q->push(message("1", "#a", "0123456789")).status, PushStatus::Accepted);
  ASSERT_EQ(q->push(message("2", "#a", "01234")).status, PushStatus::Accepted);
  const auto taken = q->take(10);
  ASSERT_EQ(taken.size(), 2u);
  q->ack(Queued{999, message("ghost", "#a", std::string(100, 'g'))});
  EXPECT_EQ(q->size(), 2u);
  EXPECT_EQ(q->bytes(), 15u);
  q->ack(taken[0]);
  q->ack(taken[0]);
  q->dead_letter(taken[0].seq, DeadLetter{});
  EXPECT_EQ(q->size(), 1u);
  EXPECT_EQ(q->bytes(), 5u);
  EXPECT_EQ(q->dead_letters().count(), 0u);
  EXPECT_EQ(q->lane_size(lane_of("#a")), 1u);  // after the writer committed the ack
  q->ack(taken[0]);  // after the commit too
  EXPECT_EQ(q->size(), 1u);
  EXPECT_EQ(q->bytes(), 5u);
}

TEST_F(SqliteQueueFileTest, AnOutcomeWhoseLookupFailsIsStillRecordedAndAFailedReadThrows) {
  auto fault = std::make_shared<std::atomic<bool>>(false);
  SqliteQueueOptions o = options();
  o.read_fault = fault;
  auto q = open(o);
  ASSERT_EQ(q->push(message("1", "#a", "0123456789")).status, PushStatus::Accepted);
  ASSERT_EQ(q->push(message("2", "#a", "01234")).status, PushStatus::Accepted);
  ASSERT_EQ(q->push(message("3", "#a", "abc")).status, PushStatus::Accepted);
  const auto taken = q->take(10);
  ASSERT_EQ(taken.size(), 3u);

  fault->store(true);
  // A failed read is not the end of the lane.
  EXPECT_THROW(q->read_lane(lane_of("#a"), 0, taken[2].seq, 10), QueueError);
  q->ack(taken[0]);
  DeadLetter d;
  d.message = taken[1].message;
  q->dead_letter(taken[1].seq, d);
  EXPECT_EQ(q->size(), 1u);
  q->ack(taken[0]);  // its outcome is on its way already
  EXPECT_EQ(q->size(), 1u);

  fault->store(false);
  EXPECT_EQ(q->lane_size(lane_of("#a")), 1u);  // after the writer committed both outcomes
  EXPECT_EQ(q->bytes(), 3u) << "the commit read the sizes the lookups could not";
  EXPECT_EQ(q->dead_letters().count(), 1u);
  EXPECT_THAT(ids(q->read_lane(lane_of("#a"), 0, taken[2].seq, 10)), ElementsAre("3"));
  q->close();
  q.reset();

  fault->store(true);
  q = open(o);
  EXPECT_EQ(q->size(), 1u);
  EXPECT_THROW(q->backlog(), QueueError);
  fault->store(false);
  const auto stored = q->backlog();
  ASSERT_EQ(stored.size(), 1u);
  EXPECT_EQ(stored[0].count, 1u);
}

TEST_F(SqliteQueueFileTest, AReplayIsStoredUnderANewSeqAndAnnouncedByTake) {
  auto q = open();
  ASSERT_EQ(q->push(message("1", "#a")).status, PushStatus::Accepted);
  ASSERT_EQ(q->push(message("2", "#a")).status, PushStatus::Accepted);
  const auto taken = q->take(10);
  ASSERT_EQ(taken.size(), 2u);
  DeadLetter d;
  d.message = taken[0].message;
  d.error = "invalid_auth";
  q->dead_letter(taken[0].seq, d);
  ASSERT_EQ(q->dead_letters().replay("1"), ReplayStatus::Replayed);
  const auto replayed = q->take(10);
  ASSERT_EQ(replayed.size(), 1u);
  EXPECT_EQ(replayed[0].message.id, "1");
  EXPECT_GT(replayed[0].seq, taken[1].seq);
  EXPECT_THAT(ids(q->read_lane(lane_of("#a"), 0, replayed[0].seq, 10)), ElementsAre("2", "1"));
  EXPECT_EQ(q->size(), 2u);
  EXPECT_EQ(q->dead_letters().count(), 0u);
}

// ---- the lock ---------------------------------------------------------------------

TEST_F(SqliteQueueFileTest, TheLockFileRefusesASecondQueueAndIsFreedByClose) {
  auto first = open();
  try {
    open();
    FAIL() << "a second queue opened the same file";
  } catch (const QueueError& e) {
    EXPECT_THAT(e.what(), HasSubstr("cannot open the queue database " + path()));
    EXPECT_THAT(e.what(), HasSubstr("another slack-proxy"));
  }
  EXPECT_TRUE(std::filesystem::exists(path() + ".lock"));
  ASSERT_EQ(first->push(message("1")).status, PushStatus::Accepted);
  first->close();
  auto second = open();  // a clean stop frees the file for the next proxy
  EXPECT_EQ(second->recovered(), 1u);
}

}  // namespace
}  // namespace slack_proxy

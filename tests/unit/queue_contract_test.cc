// The queue contract (core/src/queue/queue.h), checked against every backend.
//
// One value-parameterised suite: each backend is a QueueFactory, and the
// suite is instantiated once per factory. A new backend (Redis) joins by
// writing its factory and adding it to kBackends at the bottom of the
// contract section. Tests of recovery need a store that outlives the queue
// object; they skip, saying why, on a backend that is not durable.
//
// Tests of things only one backend has (SQLite's disk-full handling, its
// file lock) live in their own suites at the end.

#include "queue/memory_queue.h"
#include "queue/sqlite_queue.h"
#include "queue/token_seal.h"

#include <stdlib.h>  // mkdtemp

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <filesystem>
#include <fstream>
#include <latch>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <ostream>
#include <set>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <slack_proxy/sdk/message.h>
#include <slack_proxy/sdk/testing/fakes.h>

#include "metric_values.h"

namespace slack_proxy {

// Readable failure messages. Static: another test file may print these too.
static void PrintTo(Queue::PushStatus s, std::ostream* os) {
  constexpr const char* kNames[] = {"Accepted", "Duplicate", "Full", "Unavailable"};
  *os << kNames[static_cast<int>(s)];
}
static void PrintTo(DeadLetterStore::ReplayStatus s, std::ostream* os) {
  constexpr const char* kNames[] = {"Replayed", "NotFound", "Full", "Unavailable"};
  *os << kNames[static_cast<int>(s)];
}

namespace {

using namespace std::chrono_literals;
using sdk::testing::FakeClock;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using PushStatus = Queue::PushStatus;
using ReplayStatus = DeadLetterStore::ReplayStatus;

// Generous, so tests that are not about limits never meet one.
QueueLimits roomy() {
  QueueLimits l;
  l.max_messages = 1000;
  l.max_bytes = 1 << 20;
  l.dedup_window = 10min;
  return l;
}

// Not real Slack tokens; still never printed (see same_message).
constexpr const char* kCallerToken = "xoxp-contract-test-caller-token";
const std::string kTokenKeyHex = "00112233445566778899aabbccddeeff0123456789abcdef0f1e2d3c4b5a6978";
const std::string kOtherTokenKeyHex =
    "ffeeddccbbaa99887766554433221100fedcba98765432100123456789abcdef";

// A fresh directory under the system temp dir, removed with everything in it.
class TempDir {
 public:
  TempDir() {
    std::string pattern = (std::filesystem::temp_directory_path() / "sp-queue-XXXXXX").string();
    if (mkdtemp(pattern.data()) == nullptr)
      throw std::runtime_error("mkdtemp failed for " + pattern);
    path_ = pattern;
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
};

// ---- backends ---------------------------------------------------------------

// One backend under test. It owns the queue it opened; the clock is the
// test's, so dedup windows and replay times are moved by hand.
class QueueFactory {
 public:
  explicit QueueFactory(FakeClock& clock) : clock_(clock) {}
  virtual ~QueueFactory() = default;

  // True when the store outlives the queue object: reopen() is possible and
  // the recovery tests apply.
  virtual bool durable() const = 0;
  // A new, empty store with these limits. Delivery tokens are sealed with
  // the factory's token key (durable backends).
  virtual Queue& open(QueueLimits limits) = 0;
  // close() and open the same store again, with the same limits and key.
  virtual Queue& reopen() = 0;
  // Like reopen(), but the new queue holds another token key, as after a
  // restart with a random per-process key.
  virtual Queue& reopen_with_another_token_key() = 0;
  // How many dead letters the stores opened from now on keep.
  void set_max_dead_letters(std::size_t n) { max_dead_letters_ = n; }

 protected:
  FakeClock& clock_;
  std::size_t max_dead_letters_ = 1000;
};

class MemoryFactory final : public QueueFactory {
 public:
  using QueueFactory::QueueFactory;
  bool durable() const override { return false; }
  Queue& open(QueueLimits limits) override {
    queue_ = std::make_unique<MemoryQueue>(limits, clock_, max_dead_letters_);
    return *queue_;
  }
  Queue& reopen() override { throw std::logic_error("a memory queue cannot be reopened"); }
  Queue& reopen_with_another_token_key() override { return reopen(); }

 private:
  std::unique_ptr<MemoryQueue> queue_;
};

class SqliteFactory final : public QueueFactory {
 public:
  using QueueFactory::QueueFactory;
  ~SqliteFactory() override { queue_.reset(); }  // before the directory goes
  bool durable() const override { return true; }
  Queue& open(QueueLimits limits) override {
    options_.path = (dir_.path() / "queue.db").string();
    options_.limits = limits;
    options_.max_dead_letters = max_dead_letters_;
    options_.sealer = std::make_shared<TokenSealer>(TokenSealer::from_hex(kTokenKeyHex));
    return start();
  }
  Queue& reopen() override {
    queue_->close();
    queue_.reset();
    return start();
  }
  Queue& reopen_with_another_token_key() override {
    options_.sealer = std::make_shared<TokenSealer>(TokenSealer::from_hex(kOtherTokenKeyHex));
    return reopen();
  }

 private:
  Queue& start() {
    queue_ = std::make_unique<SqliteQueue>(options_, clock_, test_support::null_logger());
    return *queue_;
  }
  TempDir dir_;
  SqliteQueueOptions options_;
  std::unique_ptr<SqliteQueue> queue_;
};

struct Backend {
  const char* name;
  std::unique_ptr<QueueFactory> (*make)(FakeClock&);
};

void PrintTo(const Backend& b, std::ostream* os) { *os << b.name; }

template <typename F>
std::unique_ptr<QueueFactory> make_factory(FakeClock& clock) {
  return std::make_unique<F>(clock);
}

// ---- helpers ------------------------------------------------------------------

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

// Every field set to something a round trip could lose. Wall times are
// whole milliseconds: that is what a durable store keeps.
sdk::Message full_message(const std::string& id, const FakeClock& clock) {
  sdk::Message m;
  m.id = id;
  m.pipeline = "caller-tokens";
  m.channel = "#ops-" + id;
  m.original_channel = "#alerts-" + id;
  m.workspace = "T0123:" + id;
  m.payload =
      R"({"channel":"#alerts","text":"disk full on db-)" + id + R"(","unfurl_links":false})";
  m.content_type = "application/json; charset=utf-8";
  m.caller = "alertmanager";
  m.attributes = {{"route", "override"}, {"tier", id}};
  m.delivery_token = kCallerToken;
  m.attempts = 2;
  m.received_at = clock.wall_now() - 90s;
  m.last_attempt_at = clock.wall_now() - 1234ms;
  m.enqueued_at = clock.now();
  return m;
}

// Field by field, except enqueued_at (a steady time means nothing after a
// restart). Names the fields that differ; never prints a token.
::testing::AssertionResult same_message(const sdk::Message& want, const sdk::Message& got) {
  std::string diff;
  auto field = [&](const char* name, bool equal) {
    if (!equal) diff += std::string(diff.empty() ? "" : ", ") + name;
  };
  field("id", want.id == got.id);
  field("pipeline", want.pipeline == got.pipeline);
  field("channel", want.channel == got.channel);
  field("original_channel", want.original_channel == got.original_channel);
  field("workspace", want.workspace == got.workspace);
  field("payload", want.payload == got.payload);
  field("content_type", want.content_type == got.content_type);
  field("caller", want.caller == got.caller);
  field("attributes", want.attributes == got.attributes);
  field("delivery_token", want.delivery_token == got.delivery_token);
  field("attempts", want.attempts == got.attempts);
  field("received_at", want.received_at == got.received_at);
  field("last_attempt_at", want.last_attempt_at == got.last_attempt_at);
  if (diff.empty()) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << "message " << want.id << " differs in: " << diff;
}

// GCC warns about designated initializers that leave members out.
DeadLetterFilter by_channel(std::string channel) {
  DeadLetterFilter f;
  f.channel = std::move(channel);
  return f;
}
DeadLetterFilter by_error(std::string error) {
  DeadLetterFilter f;
  f.error = std::move(error);
  return f;
}
DeadLetterFilter by_kind(DeadLetterKind kind) {
  DeadLetterFilter f;
  f.kind = kind;
  return f;
}

std::vector<std::string> ids(const std::vector<sdk::Message>& messages) {
  std::vector<std::string> out;
  for (const auto& m : messages) out.push_back(m.id);
  return out;
}

std::vector<std::string> ids(const DeadLetterPage& page) {
  std::vector<std::string> out;
  for (const auto& d : page.items) out.push_back(d.message.id);
  return out;
}

std::size_t total_payload(const std::vector<sdk::Message>& messages) {
  std::size_t n = 0;
  for (const auto& m : messages) n += m.payload.size();
  return n;
}

DeadLetter letter_for(sdk::Message m, std::string error, DeadLetterKind kind,
                      sdk::WallTime dead_at) {
  DeadLetter d;
  d.message = std::move(m);
  d.kind = kind;
  d.error = std::move(error);
  d.reason = d.kind == DeadLetterKind::Failed ? "permanent error" : "channel is deny-listed";
  d.http_status = d.kind == DeadLetterKind::Failed ? 200 : 0;
  d.dead_at = dead_at;
  return d;
}

// The listener's calls, labelled with what the test was doing at the time.
class ListenerLog {
 public:
  void set_phase(std::string phase) {
    std::lock_guard<std::mutex> lock(mutex_);
    phase_ = std::move(phase);
  }
  void record() {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      calls_.push_back(phase_);
    }
    cv_.notify_all();
  }
  // Waits (up to a generous deadline) until `n` calls arrived.
  bool wait_for_calls(std::size_t n) {
    std::unique_lock<std::mutex> lock(mutex_);
    return cv_.wait_for(lock, 10s, [&] { return calls_.size() >= n; });
  }
  std::vector<std::string> calls() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return calls_;
  }

 private:
  mutable std::mutex mutex_;
  std::condition_variable cv_;
  std::string phase_;
  std::vector<std::string> calls_;
};

// ---- the contract -------------------------------------------------------------

class QueueContractTest : public ::testing::TestWithParam<Backend> {
 protected:
  void SetUp() override { factory_ = GetParam().make(clock_); }

  Queue& open(QueueLimits limits = roomy()) { return factory_->open(limits); }

  // Pushes, takes and dead-letters `m` (the dispatcher's path to the store).
  void make_dead(Queue& q, sdk::Message m, const std::string& error,
                 DeadLetterKind kind = DeadLetterKind::Failed) {
    ASSERT_EQ(q.push(m).status, PushStatus::Accepted);
    auto taken = q.take(1);
    ASSERT_EQ(ids(taken), std::vector<std::string>{m.id});
    q.dead_letter(letter_for(std::move(taken[0]), error, kind, clock_.wall_now()));
  }

  FakeClock clock_;  // outlives the factory and its queue
  std::unique_ptr<QueueFactory> factory_;
};

#define SKIP_UNLESS_DURABLE()     \
  if (!factory_->durable())       \
  GTEST_SKIP() << GetParam().name \
               << " keeps nothing across a restart, so there is nothing to recover"

// -- ordering

TEST_P(QueueContractTest, TakeReturnsPushOrderAndRespectsMax) {
  Queue& q = open();
  for (const char* id : {"1", "2", "3", "4", "5"})
    ASSERT_EQ(q.push(message(id)).status, PushStatus::Accepted);

  EXPECT_THAT(ids(q.take(2)), ElementsAre("1", "2"));
  EXPECT_THAT(ids(q.take(0)), IsEmpty());
  ASSERT_EQ(q.push(message("6")).status, PushStatus::Accepted);
  EXPECT_THAT(ids(q.take(10)), ElementsAre("3", "4", "5", "6"));
  EXPECT_THAT(q.take(10), IsEmpty());
}

TEST_P(QueueContractTest, PerChannelOrderIsKeptAcrossInterleavedChannels) {
  Queue& q = open();
  const std::vector<std::pair<std::string, std::string>> pushes = {
      {"a1", "#a"}, {"b1", "#b"}, {"a2", "#a"}, {"c1", "#c"}, {"b2", "#b"}, {"a3", "#a"}};
  for (const auto& [id, channel] : pushes)
    ASSERT_EQ(q.push(message(id, channel)).status, PushStatus::Accepted);

  std::vector<sdk::Message> taken;
  for (auto batch = q.take(2); !batch.empty(); batch = q.take(2))
    for (auto& m : batch) taken.push_back(std::move(m));

  auto of = [&](const std::string& channel) {
    std::vector<std::string> out;
    for (const auto& m : taken)
      if (m.channel == channel) out.push_back(m.id);
    return out;
  };
  EXPECT_THAT(of("#a"), ElementsAre("a1", "a2", "a3"));
  EXPECT_THAT(of("#b"), ElementsAre("b1", "b2"));
  EXPECT_THAT(of("#c"), ElementsAre("c1"));
  EXPECT_THAT(ids(taken), ElementsAre("a1", "b1", "a2", "c1", "b2", "a3"));
}

TEST_P(QueueContractTest, TakeHandsOutEveryFieldAsPushed) {
  Queue& q = open();
  const sdk::Message m = full_message("1", clock_);
  ASSERT_EQ(q.push(m).status, PushStatus::Accepted);

  auto taken = q.take(1);
  ASSERT_EQ(taken.size(), 1u);
  EXPECT_TRUE(same_message(m, taken[0]));
}

// -- ack and size

TEST_P(QueueContractTest, SizeAndBytesCountLeasedMessagesUntilAcked) {
  Queue& q = open();
  ASSERT_EQ(q.push(message("1", "#a", std::string(10, 'x'))).status, PushStatus::Accepted);
  ASSERT_EQ(q.push(message("2", "#a", std::string(20, 'y'))).status, PushStatus::Accepted);
  ASSERT_EQ(q.push(message("3", "#a", std::string(30, 'z'))).status, PushStatus::Accepted);
  EXPECT_EQ(q.size(), 3u);
  EXPECT_EQ(q.bytes(), 60u);

  ASSERT_EQ(q.take(2).size(), 2u);
  EXPECT_EQ(q.size(), 3u);  // leased still count
  EXPECT_EQ(q.bytes(), 60u);

  q.ack("1");
  EXPECT_EQ(q.size(), 2u);
  EXPECT_EQ(q.bytes(), 50u);
  q.ack("2");
  EXPECT_EQ(q.size(), 1u);
  EXPECT_EQ(q.bytes(), 30u);
  EXPECT_THAT(ids(q.take(10)), ElementsAre("3"));
  q.ack("3");
  EXPECT_EQ(q.size(), 0u);
  EXPECT_EQ(q.bytes(), 0u);
}

TEST_P(QueueContractTest, AckOfUnknownOrAlreadyAckedIdIsHarmless) {
  Queue& q = open();
  ASSERT_EQ(q.push(message("1", "#a", "0123456789")).status, PushStatus::Accepted);
  ASSERT_EQ(q.take(1).size(), 1u);

  q.ack("no-such-id");
  EXPECT_EQ(q.size(), 1u);
  EXPECT_EQ(q.bytes(), 10u);

  q.ack("1");
  q.ack("1");  // twice: no underflow, nothing else removed
  EXPECT_EQ(q.size(), 0u);
  EXPECT_EQ(q.bytes(), 0u);
  ASSERT_EQ(q.push(message("2")).status, PushStatus::Accepted);
  EXPECT_EQ(q.size(), 1u);
}

// -- dead letters

TEST_P(QueueContractTest, DeadLetterMovesLeasedMessageToTheStore) {
  Queue& q = open();
  sdk::Message m = full_message("1", clock_);
  ASSERT_EQ(q.push(m).status, PushStatus::Accepted);
  auto taken = q.take(1);
  ASSERT_EQ(taken.size(), 1u);
  // The dispatcher's copy: one more attempt than the queue knows of.
  taken[0].attempts = 3;
  taken[0].last_attempt_at = clock_.wall_now() - 5s;
  DeadLetter d =
      letter_for(taken[0], "channel_not_found", DeadLetterKind::NotProcessed, clock_.wall_now());
  d.reason = "channel is parked";
  d.http_status = 404;
  q.dead_letter(d);

  EXPECT_EQ(q.size(), 0u);
  EXPECT_EQ(q.bytes(), 0u);
  EXPECT_EQ(q.dead_letters().count(), 1u);
  auto got = q.dead_letters().get("1");
  ASSERT_TRUE(got.has_value());
  sdk::Message want = taken[0];
  want.delivery_token.clear();  // readers never see it
  EXPECT_TRUE(same_message(want, got->message));
  EXPECT_EQ(got->kind, DeadLetterKind::NotProcessed);
  EXPECT_EQ(got->error, "channel_not_found");
  EXPECT_EQ(got->reason, "channel is parked");
  EXPECT_EQ(got->http_status, 404);
  EXPECT_EQ(got->dead_at, clock_.wall_now());
  EXPECT_FALSE(q.dead_letters().get("no-such-id").has_value());
  EXPECT_THAT(q.take(10), IsEmpty());
}

TEST_P(QueueContractTest, DeadLetterListIsOldestFirstAndFilters) {
  Queue& q = open();
  // routed #ops, asked for #alerts
  sdk::Message d1 = message("d1", "#ops");
  d1.original_channel = "#alerts";
  make_dead(q, d1, "channel_not_found", DeadLetterKind::NotProcessed);
  clock_.advance(1s);
  make_dead(q, message("d2", "#dev"), "invalid_auth", DeadLetterKind::Failed);
  clock_.advance(1s);
  make_dead(q, message("d3", "#ops"), "channel_not_found", DeadLetterKind::Failed);
  auto& store = q.dead_letters();
  ASSERT_EQ(store.count(), 3u);

  EXPECT_THAT(ids(store.list({}, "", 10)), ElementsAre("d1", "d2", "d3"));
  EXPECT_THAT(ids(store.list(by_channel("#alerts"), "", 10)), ElementsAre("d1"));     // original
  EXPECT_THAT(ids(store.list(by_channel("#ops"), "", 10)), ElementsAre("d1", "d3"));  // routed
  EXPECT_THAT(ids(store.list(by_channel("#nowhere"), "", 10)), IsEmpty());
  EXPECT_THAT(ids(store.list(by_error("channel_not_found"), "", 10)), ElementsAre("d1", "d3"));
  EXPECT_THAT(ids(store.list(by_error("channel_not"), "", 10)), IsEmpty());  // exact
  EXPECT_THAT(ids(store.list(by_kind(DeadLetterKind::NotProcessed), "", 10)), ElementsAre("d1"));
  EXPECT_THAT(ids(store.list(by_kind(DeadLetterKind::Failed), "", 10)), ElementsAre("d2", "d3"));
  EXPECT_THAT(ids(store.list(DeadLetterFilter{"#ops", "", DeadLetterKind::Failed}, "", 10)),
              ElementsAre("d3"));
  EXPECT_TRUE(store.list({}, "", 10).next_after.empty());

  const auto all = store.list({}, "", 10);
  ASSERT_EQ(all.items.size(), 3u);
  EXPECT_EQ(all.items[0].error, "channel_not_found");
  EXPECT_EQ(all.items[0].kind, DeadLetterKind::NotProcessed);
  EXPECT_EQ(all.items[1].error, "invalid_auth");
  EXPECT_EQ(all.items[2].dead_at, clock_.wall_now());
}

TEST_P(QueueContractTest, DeadLetterListPagesWithAfter) {
  Queue& q = open();
  for (const char* id : {"1", "2", "3", "4", "5"})
    make_dead(q, message(id, std::string(id) == "3" ? "#other" : "#main"), "invalid_auth");
  auto& store = q.dead_letters();

  auto page = store.list({}, "", 2);
  EXPECT_THAT(ids(page), ElementsAre("1", "2"));
  EXPECT_EQ(page.next_after, "2");
  page = store.list({}, page.next_after, 2);
  EXPECT_THAT(ids(page), ElementsAre("3", "4"));
  EXPECT_EQ(page.next_after, "4");
  page = store.list({}, page.next_after, 2);
  EXPECT_THAT(ids(page), ElementsAre("5"));
  EXPECT_TRUE(page.next_after.empty());

  // Exactly a page left: no next page is promised.
  page = store.list({}, "3", 2);
  EXPECT_THAT(ids(page), ElementsAre("4", "5"));
  EXPECT_TRUE(page.next_after.empty());

  // Paging through a filter skips what does not match.
  page = store.list(by_channel("#main"), "", 2);
  EXPECT_THAT(ids(page), ElementsAre("1", "2"));
  ASSERT_EQ(page.next_after, "2");
  page = store.list(by_channel("#main"), page.next_after, 2);
  EXPECT_THAT(ids(page), ElementsAre("4", "5"));
  EXPECT_TRUE(page.next_after.empty());
}

TEST_P(QueueContractTest, DeadLetterRemoveAndRemoveMatching) {
  Queue& q = open();
  make_dead(q, message("1"), "invalid_auth");
  make_dead(q, message("2"), "channel_not_found");
  make_dead(q, message("3"), "invalid_auth");
  make_dead(q, message("4"), "invalid_auth");
  auto& store = q.dead_letters();

  EXPECT_TRUE(store.remove("2"));
  EXPECT_FALSE(store.remove("2"));
  EXPECT_FALSE(store.remove("no-such-id"));
  EXPECT_EQ(store.count(), 3u);
  EXPECT_FALSE(store.get("2").has_value());

  EXPECT_EQ(store.remove_matching(by_error("no_such_error")), 0u);
  EXPECT_TRUE(store.remove("3"));
  EXPECT_EQ(store.remove_matching(by_error("invalid_auth")), 2u);
  EXPECT_EQ(store.count(), 0u);
  EXPECT_THAT(ids(store.list({}, "", 10)), IsEmpty());
  EXPECT_EQ(q.size(), 0u);  // removing dead letters never touches the queue
}

TEST_P(QueueContractTest, ReplayPutsTheMessageBackAtTheEndAsNew) {
  Queue& q = open();
  sdk::Message m = full_message("dead", clock_);
  ASSERT_EQ(q.push(m).status, PushStatus::Accepted);
  auto taken = q.take(1);
  ASSERT_EQ(taken.size(), 1u);
  taken[0].attempts = 4;
  taken[0].last_attempt_at = clock_.wall_now();
  q.dead_letter(letter_for(taken[0], "invalid_auth", DeadLetterKind::Failed, clock_.wall_now()));
  ASSERT_EQ(q.push(message("queued")).status, PushStatus::Accepted);

  clock_.advance(1h);
  EXPECT_EQ(q.dead_letters().replay("dead"), ReplayStatus::Replayed);

  EXPECT_EQ(q.dead_letters().count(), 0u);
  EXPECT_FALSE(q.dead_letters().get("dead").has_value());
  EXPECT_EQ(q.size(), 2u);
  EXPECT_EQ(q.bytes(), m.payload.size() + message("queued").payload.size());
  auto out = q.take(10);
  ASSERT_THAT(ids(out), ElementsAre("queued", "dead"));
  const sdk::Message& r = out[1];
  sdk::Message want = m;  // as accepted, except what a replay resets
  want.attempts = 0;
  want.last_attempt_at = {};
  want.received_at = clock_.wall_now();
  want.attributes[sdk::kReplayedAttribute] = "true";
  EXPECT_TRUE(same_message(want, r));
  EXPECT_EQ(r.enqueued_at, clock_.now());
}

TEST_P(QueueContractTest, ReplayOfUnknownIdIsNotFound) {
  Queue& q = open();
  make_dead(q, message("1"), "invalid_auth");
  EXPECT_EQ(q.dead_letters().replay("no-such-id"), ReplayStatus::NotFound);
  EXPECT_EQ(q.dead_letters().count(), 1u);
  EXPECT_EQ(q.size(), 0u);
}

TEST_P(QueueContractTest, ReplayIntoAFullQueueIsFullAndKeepsTheDeadLetter) {
  QueueLimits limits = roomy();
  limits.max_messages = 2;
  Queue& q = open(limits);
  make_dead(q, message("dead"), "invalid_auth");
  ASSERT_EQ(q.push(message("a")).status, PushStatus::Accepted);
  ASSERT_EQ(q.push(message("b")).status, PushStatus::Accepted);

  EXPECT_EQ(q.dead_letters().replay("dead"), ReplayStatus::Full);
  EXPECT_EQ(q.dead_letters().count(), 1u);
  EXPECT_TRUE(q.dead_letters().get("dead").has_value());
  EXPECT_EQ(q.size(), 2u);

  ASSERT_EQ(q.take(1).size(), 1u);
  q.ack("a");
  EXPECT_EQ(q.dead_letters().replay("dead"), ReplayStatus::Replayed);
  EXPECT_THAT(ids(q.take(10)), ElementsAre("b", "dead"));
}

TEST_P(QueueContractTest, ReplayMatchingStopsWhenFullAndCountsWhatIsLeft) {
  QueueLimits limits = roomy();
  limits.max_messages = 3;
  Queue& q = open(limits);
  for (const char* id : {"m1", "m2", "m3", "m4"})
    make_dead(q, message(id, "#ops"), "channel_not_found");
  make_dead(q, message("other", "#dev"), "invalid_auth");
  ASSERT_EQ(q.push(message("queued")).status, PushStatus::Accepted);

  auto n = q.dead_letters().replay_matching(by_error("channel_not_found"));
  EXPECT_EQ(n.replayed, 2u);
  EXPECT_EQ(n.left, 2u);
  EXPECT_EQ(q.dead_letters().count(), 3u);
  EXPECT_THAT(ids(q.dead_letters().list({}, "", 10)), ElementsAre("m3", "m4", "other"));
  auto out = q.take(10);
  EXPECT_THAT(ids(out), ElementsAre("queued", "m1", "m2"));  // oldest dead letters first
  for (std::size_t i = 1; i < out.size(); ++i)
    EXPECT_EQ(out[i].attributes[sdk::kReplayedAttribute], "true") << out[i].id;

  for (const auto& m : out) q.ack(m.id);
  n = q.dead_letters().replay_matching(by_channel("#ops"));
  EXPECT_EQ(n.replayed, 2u);
  EXPECT_EQ(n.left, 0u);
  EXPECT_THAT(ids(q.dead_letters().list({}, "", 10)), ElementsAre("other"));
  EXPECT_THAT(ids(q.take(10)), ElementsAre("m3", "m4"));

  n = q.dead_letters().replay_matching(by_channel("#nowhere"));
  EXPECT_EQ(n.replayed, 0u);
  EXPECT_EQ(n.left, 0u);
}

TEST_P(QueueContractTest, DeliveryTokenIsNeverShownButAReplayStillCarriesIt) {
  Queue& q = open();
  sdk::Message m = message("1");
  m.delivery_token = kCallerToken;
  make_dead(q, m, "channel_not_found");

  const auto page = q.dead_letters().list({}, "", 10);
  ASSERT_EQ(page.items.size(), 1u);
  EXPECT_TRUE(page.items[0].message.delivery_token.empty());
  const auto got = q.dead_letters().get("1");
  ASSERT_TRUE(got.has_value());
  EXPECT_TRUE(got->message.delivery_token.empty());

  ASSERT_EQ(q.dead_letters().replay("1"), ReplayStatus::Replayed);
  auto out = q.take(1);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_TRUE(out[0].delivery_token == kCallerToken) << "the replayed message lost its token";
}

// -- the dead-letter cap

// Waits until the store holds `n` dead letters. A backend may trim after it
// recorded the one over the cap (SQLite trims on its writer thread, after the
// commit), so the count can be over for a moment, never for long.
::testing::AssertionResult wait_for_dead_count(DeadLetterStore& store, std::size_t n) {
  const auto deadline = std::chrono::steady_clock::now() + 10s;
  std::size_t last = store.count();
  while (last != n) {
    if (std::chrono::steady_clock::now() >= deadline)
      return ::testing::AssertionFailure() << "the store holds " << last << ", not " << n;
    std::this_thread::sleep_for(1ms);
    last = store.count();
  }
  return ::testing::AssertionSuccess();
}

TEST_P(QueueContractTest, DeadLettersBeyondTheCapPushOutTheOldestFirst) {
  factory_->set_max_dead_letters(3);
  Queue& q = open();
  for (const char* id : {"1", "2", "3", "4", "5"})
    ASSERT_EQ(q.push(message(id)).status, PushStatus::Accepted);
  std::map<std::string, sdk::Message> leased;
  for (auto& m : q.take(10)) leased.emplace(m.id, std::move(m));
  ASSERT_EQ(leased.size(), 5u);

  // Dead in another order than pushed: "oldest" is the oldest dead letter.
  for (const char* id : {"2", "4", "1", "5", "3"}) {
    q.dead_letter(letter_for(leased.at(id), "invalid_auth", DeadLetterKind::Failed,
                             clock_.wall_now()));
    clock_.advance(1s);
  }
  auto& store = q.dead_letters();
  ASSERT_TRUE(wait_for_dead_count(store, 3));
  EXPECT_THAT(ids(store.list({}, "", 10)), ElementsAre("1", "5", "3"));
  EXPECT_FALSE(store.get("2").has_value());
  EXPECT_FALSE(store.get("4").has_value());
  EXPECT_EQ(q.size(), 0u);

  // Every later one pushes out the oldest left.
  make_dead(q, message("6"), "channel_not_found");
  ASSERT_TRUE(wait_for_dead_count(store, 3));
  EXPECT_THAT(ids(store.list({}, "", 10)), ElementsAre("5", "3", "6"));
  EXPECT_FALSE(store.get("1").has_value());
}

// -- recovery (durable backends)

TEST_P(QueueContractTest, PendingAndLeasedMessagesComeBackAfterReopenInOrder) {
  SKIP_UNLESS_DURABLE();
  Queue& q = open();
  std::vector<sdk::Message> pushed;
  for (const char* id : {"1", "2", "3", "4"}) {
    pushed.push_back(full_message(id, clock_));
    ASSERT_EQ(q.push(pushed.back()).status, PushStatus::Accepted);
  }
  ASSERT_THAT(ids(q.take(2)), ElementsAre("1", "2"));
  q.ack("1");  // "2" stays leased: delivery is at-least-once

  clock_.advance(30s);
  Queue& r = factory_->reopen();
  EXPECT_EQ(r.recovered(), 3u);
  EXPECT_EQ(r.size(), 3u);
  EXPECT_EQ(r.bytes(), total_payload({pushed[1], pushed[2], pushed[3]}));
  auto out = r.take(10);
  ASSERT_THAT(ids(out), ElementsAre("2", "3", "4"));
  for (std::size_t i = 0; i < out.size(); ++i) EXPECT_TRUE(same_message(pushed[i + 1], out[i]));
}

TEST_P(QueueContractTest, AckedMessagesDoNotComeBackAfterClose) {
  SKIP_UNLESS_DURABLE();
  Queue& q = open();
  for (const char* id : {"1", "2", "3"})
    ASSERT_EQ(q.push(message(id)).status, PushStatus::Accepted);
  for (const auto& m : q.take(10)) q.ack(m.id);

  Queue& r = factory_->reopen();  // closes first, which records every ack
  EXPECT_EQ(r.recovered(), 0u);
  EXPECT_EQ(r.size(), 0u);
  EXPECT_EQ(r.bytes(), 0u);
  EXPECT_THAT(r.take(10), IsEmpty());
}

TEST_P(QueueContractTest, DeadLettersSurviveReopen) {
  SKIP_UNLESS_DURABLE();
  Queue& q = open();
  sdk::Message m1 = full_message("1", clock_);
  make_dead(q, m1, "channel_not_found", DeadLetterKind::NotProcessed);
  make_dead(q, message("2", "#dev"), "invalid_auth", DeadLetterKind::Failed);
  const auto before = q.dead_letters().list({}, "", 10);
  ASSERT_EQ(before.items.size(), 2u);

  Queue& r = factory_->reopen();
  EXPECT_EQ(r.recovered(), 0u);
  EXPECT_EQ(r.dead_letters().count(), 2u);
  const auto after = r.dead_letters().list({}, "", 10);
  ASSERT_EQ(after.items.size(), 2u);
  for (std::size_t i = 0; i < 2; ++i) {
    EXPECT_TRUE(same_message(before.items[i].message, after.items[i].message));
    EXPECT_EQ(after.items[i].kind, before.items[i].kind);
    EXPECT_EQ(after.items[i].error, before.items[i].error);
    EXPECT_EQ(after.items[i].reason, before.items[i].reason);
    EXPECT_EQ(after.items[i].http_status, before.items[i].http_status);
    EXPECT_EQ(after.items[i].dead_at, before.items[i].dead_at);
  }
  EXPECT_THAT(ids(r.dead_letters().list(by_kind(DeadLetterKind::NotProcessed), "", 10)),
              ElementsAre("1"));

  // Same token key after the restart: the replay still carries the token.
  ASSERT_EQ(r.dead_letters().replay("1"), ReplayStatus::Replayed);
  auto out = r.take(10);
  ASSERT_THAT(ids(out), ElementsAre("1"));
  EXPECT_TRUE(out[0].delivery_token == kCallerToken) << "the replayed message lost its token";
}

TEST_P(QueueContractTest, DedupKeysSurviveReopen) {
  SKIP_UNLESS_DURABLE();
  Queue& q = open();
  ASSERT_EQ(q.push(message("1"), {.dedup_key = "k"}).status, PushStatus::Accepted);
  for (const auto& m : q.take(10)) q.ack(m.id);

  clock_.advance(5min);
  Queue& r = factory_->reopen();
  EXPECT_EQ(r.push(message("2"), {.dedup_key = "k"}).status, PushStatus::Duplicate);
  EXPECT_EQ(r.size(), 0u);

  clock_.advance(5min + 1ms);  // past the window of the first push
  EXPECT_EQ(r.push(message("3"), {.dedup_key = "k"}).status, PushStatus::Accepted);
}

TEST_P(QueueContractTest, MessageWithATokenSealedUnderAnotherKeyBecomesADeadLetter) {
  SKIP_UNLESS_DURABLE();
  Queue& q = open();
  sdk::Message with_token = full_message("1", clock_);
  sdk::Message without_token = full_message("2", clock_);
  without_token.delivery_token.clear();
  sdk::Message leased_with_token = full_message("0", clock_);
  ASSERT_EQ(q.push(leased_with_token).status, PushStatus::Accepted);
  ASSERT_EQ(q.take(1).size(), 1u);
  ASSERT_EQ(q.push(with_token).status, PushStatus::Accepted);
  ASSERT_EQ(q.push(without_token).status, PushStatus::Accepted);

  Queue& r = factory_->reopen_with_another_token_key();
  EXPECT_EQ(r.recovered(), 1u);
  EXPECT_EQ(r.size(), 1u);
  auto out = r.take(10);
  ASSERT_THAT(ids(out), ElementsAre("2"));  // never handed out without its token
  EXPECT_TRUE(same_message(without_token, out[0]));

  EXPECT_EQ(r.dead_letters().count(), 2u);
  for (const char* id : {"0", "1"}) {
    auto d = r.dead_letters().get(id);
    ASSERT_TRUE(d.has_value()) << id;
    EXPECT_EQ(d->error, "token_unavailable") << id;
    EXPECT_EQ(d->kind, DeadLetterKind::Failed) << id;
    EXPECT_TRUE(d->message.delivery_token.empty()) << id;
  }
}

// A dead letter whose sealed token the queue can no longer open must not go
// back out without it: a caller-token message would then be delivered with
// no token, i.e. as someone else or not at all.
TEST_P(QueueContractTest, DeadLetterWhoseTokenCannotBeOpenedIsNotReplayedWithoutIt) {
  SKIP_UNLESS_DURABLE();
  Queue& q = open();
  sdk::Message m = message("1");
  m.delivery_token = kCallerToken;
  make_dead(q, m, "channel_not_found");

  Queue& r = factory_->reopen_with_another_token_key();
  EXPECT_NE(r.dead_letters().replay("1"), ReplayStatus::Replayed);
  EXPECT_THAT(ids(r.take(10)), IsEmpty());
  EXPECT_EQ(r.dead_letters().count(), 1u);
}

// -- capacity

TEST_P(QueueContractTest, CountLimitGivesFullNamingTheLimit) {
  QueueLimits limits = roomy();
  limits.max_messages = 3;
  Queue& q = open(limits);
  EXPECT_EQ(q.limits().max_messages, 3u);
  for (const char* id : {"1", "2", "3"})
    ASSERT_EQ(q.push(message(id)).status, PushStatus::Accepted);

  const auto full = q.push(message("4"));
  EXPECT_EQ(full.status, PushStatus::Full);
  EXPECT_THAT(full.detail, HasSubstr("3 messages"));
  EXPECT_EQ(q.size(), 3u);
  EXPECT_THAT(ids(q.take(10)), ElementsAre("1", "2", "3"));
}

TEST_P(QueueContractTest, ByteLimitGivesFullNamingTheLimit) {
  QueueLimits limits = roomy();
  limits.max_bytes = 100;
  Queue& q = open(limits);
  EXPECT_EQ(q.limits().max_bytes, 100u);
  ASSERT_EQ(q.push(message("1", "#a", std::string(60, 'x'))).status, PushStatus::Accepted);

  const auto full = q.push(message("2", "#a", std::string(41, 'y')));
  EXPECT_EQ(full.status, PushStatus::Full);
  EXPECT_THAT(full.detail, HasSubstr("100 bytes"));
  EXPECT_EQ(q.bytes(), 60u);
  EXPECT_EQ(q.size(), 1u);

  // Exactly up to the limit fits.
  EXPECT_EQ(q.push(message("3", "#a", std::string(40, 'z'))).status, PushStatus::Accepted);
  EXPECT_EQ(q.bytes(), 100u);
  EXPECT_THAT(ids(q.take(10)), ElementsAre("1", "3"));
}

TEST_P(QueueContractTest, AckOrDeadLetterFreesSpaceForTheNextPush) {
  QueueLimits limits = roomy();
  limits.max_messages = 2;
  limits.max_bytes = 20;
  Queue& q = open(limits);
  ASSERT_EQ(q.push(message("1", "#a", std::string(10, 'x'))).status, PushStatus::Accepted);
  ASSERT_EQ(q.push(message("2", "#a", std::string(10, 'x'))).status, PushStatus::Accepted);
  auto taken = q.take(10);
  ASSERT_EQ(taken.size(), 2u);
  EXPECT_EQ(q.push(message("3", "#a", "x")).status, PushStatus::Full);  // leased count

  q.ack("1");
  EXPECT_EQ(q.push(message("3", "#a", std::string(10, 'x'))).status, PushStatus::Accepted);
  EXPECT_EQ(q.push(message("4", "#a", "x")).status, PushStatus::Full);

  q.dead_letter(letter_for(taken[1], "invalid_auth", DeadLetterKind::Failed, clock_.wall_now()));
  EXPECT_EQ(q.push(message("4", "#a", std::string(10, 'x'))).status, PushStatus::Accepted);
  EXPECT_THAT(ids(q.take(10)), ElementsAre("3", "4"));
}

// Racing pushers never share the last slot: exactly the limit is accepted.
void race_for_slots(Queue& q, std::size_t expected) {
  constexpr int kThreads = 8;
  constexpr int kPushesPerThread = 60;
  std::atomic<std::size_t> accepted{0};
  std::atomic<std::size_t> other{0};
  std::latch start(kThreads);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      start.arrive_and_wait();
      for (int i = 0; i < kPushesPerThread; ++i) {
        const auto r =
            q.push(message(std::to_string(t) + "-" + std::to_string(i), "#race", "0123456789"));
        if (r.status == PushStatus::Accepted) {
          ++accepted;
        } else if (r.status != PushStatus::Full) {
          ++other;
        }
      }
    });
  }
  for (auto& t : threads) t.join();

  EXPECT_EQ(accepted.load(), expected);
  EXPECT_EQ(other.load(), 0u);
  EXPECT_EQ(q.size(), expected);
  EXPECT_EQ(q.bytes(), expected * 10);
  const auto out = q.take(10 * expected);
  EXPECT_EQ(out.size(), expected);
  const auto got = ids(out);
  EXPECT_EQ(std::set<std::string>(got.begin(), got.end()).size(), expected);
}

TEST_P(QueueContractTest, RacingPushesNeverExceedTheCountLimit) {
  QueueLimits limits = roomy();
  limits.max_messages = 100;
  race_for_slots(open(limits), 100);
}

TEST_P(QueueContractTest, RacingPushesNeverExceedTheByteLimit) {
  QueueLimits limits = roomy();
  limits.max_bytes = 10 * 100 + 9;  // room for 100 payloads of 10 bytes, not 101
  race_for_slots(open(limits), 100);
}

// -- dedup

TEST_P(QueueContractTest, SameDedupKeyWithinTheWindowIsDuplicateAndNotStored) {
  Queue& q = open();  // window: 10 minutes
  ASSERT_EQ(q.push(message("1"), {.dedup_key = "k"}).status, PushStatus::Accepted);
  EXPECT_EQ(q.push(message("2"), {.dedup_key = "k"}).status, PushStatus::Duplicate);
  clock_.advance(9min);
  EXPECT_EQ(q.push(message("3"), {.dedup_key = "k"}).status, PushStatus::Duplicate);
  EXPECT_EQ(q.push(message("4"), {.dedup_key = "other"}).status, PushStatus::Accepted);

  EXPECT_EQ(q.size(), 2u);
  EXPECT_THAT(ids(q.take(10)), ElementsAre("1", "4"));
}

TEST_P(QueueContractTest, DedupKeyIsRememberedAfterTheMessageWasAcked) {
  Queue& q = open();
  ASSERT_EQ(q.push(message("1"), {.dedup_key = "k"}).status, PushStatus::Accepted);
  for (const auto& m : q.take(10)) q.ack(m.id);
  EXPECT_EQ(q.push(message("2"), {.dedup_key = "k"}).status, PushStatus::Duplicate);
  EXPECT_EQ(q.size(), 0u);
}

TEST_P(QueueContractTest, SameDedupKeyAfterTheWindowIsAccepted) {
  Queue& q = open();
  ASSERT_EQ(q.push(message("1"), {.dedup_key = "k"}).status, PushStatus::Accepted);
  clock_.advance(10min + 1ms);
  EXPECT_EQ(q.push(message("2"), {.dedup_key = "k"}).status, PushStatus::Accepted);
  // and the new push starts a new window
  EXPECT_EQ(q.push(message("3"), {.dedup_key = "k"}).status, PushStatus::Duplicate);
  EXPECT_THAT(ids(q.take(10)), ElementsAre("1", "2"));
}

TEST_P(QueueContractTest, EmptyDedupKeyNeverDedups) {
  Queue& q = open();
  EXPECT_EQ(q.push(message("1"), {.dedup_key = ""}).status, PushStatus::Accepted);
  EXPECT_EQ(q.push(message("2"), {.dedup_key = ""}).status, PushStatus::Accepted);
  EXPECT_EQ(q.push(message("3")).status, PushStatus::Accepted);
  EXPECT_THAT(ids(q.take(10)), ElementsAre("1", "2", "3"));
}

TEST_P(QueueContractTest, ZeroDedupWindowDisablesDedup) {
  QueueLimits limits = roomy();
  limits.dedup_window = 0ms;
  Queue& q = open(limits);
  EXPECT_EQ(q.push(message("1"), {.dedup_key = "k"}).status, PushStatus::Accepted);
  EXPECT_EQ(q.push(message("2"), {.dedup_key = "k"}).status, PushStatus::Accepted);
  EXPECT_THAT(ids(q.take(10)), ElementsAre("1", "2"));
}

TEST_P(QueueContractTest, PushRefusedAsFullDoesNotRememberItsDedupKey) {
  QueueLimits limits = roomy();
  limits.max_messages = 1;
  Queue& q = open(limits);
  ASSERT_EQ(q.push(message("1")).status, PushStatus::Accepted);
  ASSERT_EQ(q.push(message("2"), {.dedup_key = "k"}).status, PushStatus::Full);
  for (const auto& m : q.take(10)) q.ack(m.id);
  // The client retries after its 503: this is the first time it is stored.
  EXPECT_EQ(q.push(message("2"), {.dedup_key = "k"}).status, PushStatus::Accepted);
}

// -- on_push

TEST_P(QueueContractTest, OnPushIsCalledAfterAcceptedPushesAndReplaysOnly) {
  QueueLimits limits = roomy();
  limits.max_messages = 2;
  Queue& q = open(limits);
  ListenerLog listener;
  q.on_push([&] { listener.record(); });

  // Each step waits for its call before the next starts: a backend may call
  // from another thread, a little after push() returned.
  listener.set_phase("push 1");
  ASSERT_EQ(q.push(message("1"), {.dedup_key = "k"}).status, PushStatus::Accepted);
  ASSERT_TRUE(listener.wait_for_calls(1));
  listener.set_phase("duplicate");
  ASSERT_EQ(q.push(message("1b"), {.dedup_key = "k"}).status, PushStatus::Duplicate);
  listener.set_phase("push 2");
  ASSERT_EQ(q.push(message("2")).status, PushStatus::Accepted);
  ASSERT_TRUE(listener.wait_for_calls(2));
  listener.set_phase("full");
  ASSERT_EQ(q.push(message("3")).status, PushStatus::Full);

  listener.set_phase("take, dead letter");
  auto taken = q.take(1);
  ASSERT_EQ(ids(taken), std::vector<std::string>{"1"});
  q.dead_letter(letter_for(taken[0], "invalid_auth", DeadLetterKind::Failed, clock_.wall_now()));
  listener.set_phase("replay 1");
  ASSERT_EQ(q.dead_letters().replay("1"), ReplayStatus::Replayed);
  ASSERT_TRUE(listener.wait_for_calls(3));
  listener.set_phase("replay not found");
  ASSERT_EQ(q.dead_letters().replay("1"), ReplayStatus::NotFound);

  listener.set_phase("close");
  q.close();  // a backend calling from its own thread has finished by now
  EXPECT_THAT(listener.calls(), ElementsAre("push 1", "push 2", "replay 1"));
}

// -- close

TEST_P(QueueContractTest, PushAfterCloseIsUnavailable) {
  Queue& q = open();
  ASSERT_EQ(q.push(message("1")).status, PushStatus::Accepted);
  q.close();
  const auto r = q.push(message("2"));
  EXPECT_EQ(r.status, PushStatus::Unavailable);
  EXPECT_FALSE(r.detail.empty());
}

const Backend kBackends[] = {
    {"Memory", &make_factory<MemoryFactory>},
    {"Sqlite", &make_factory<SqliteFactory>},
};

INSTANTIATE_TEST_SUITE_P(Backends, QueueContractTest, ::testing::ValuesIn(kBackends),
                         [](const ::testing::TestParamInfo<Backend>& info) {
                           return std::string(info.param.name);
                         });

// ---- MemoryQueue only ---------------------------------------------------------

// The count-only constructor (tests and benchmarks): no clock, so no dedup.
TEST(MemoryQueueTest, CountOnlyConstructorAcceptsExactlyNAndNeverDedups) {
  MemoryQueue q(3);
  EXPECT_EQ(q.limits().max_messages, 3u);
  EXPECT_EQ(q.push(message("1"), {.dedup_key = "k"}).status, PushStatus::Accepted);
  EXPECT_EQ(q.push(message("2"), {.dedup_key = "k"}).status, PushStatus::Accepted);
  EXPECT_EQ(q.push(message("3", "#a", std::string(1 << 20, 'x'))).status, PushStatus::Accepted);
  const auto full = q.push(message("4"));
  EXPECT_EQ(full.status, PushStatus::Full);
  EXPECT_THAT(full.detail, HasSubstr("3 messages"));
  EXPECT_EQ(q.size(), 3u);
}

// ---- SqliteQueue only -----------------------------------------------------------

class SqliteQueueTest : public ::testing::Test {
 protected:
  SqliteQueueOptions options() const {
    SqliteQueueOptions o;
    o.path = (dir_.path() / "queue.db").string();
    o.limits = roomy();
    return o;
  }
  std::unique_ptr<SqliteQueue> open(SqliteQueueOptions o) {
    return std::make_unique<SqliteQueue>(std::move(o), clock_, test_support::null_logger());
  }

  FakeClock clock_;
  TempDir dir_;
};

TEST_F(SqliteQueueTest, DiskFullMakesPushUnavailableAndKeepsWhatWasAccepted) {
  SqliteQueueOptions o = options();
  o.max_page_count = 64;  // 256 KiB with 4 KiB pages
  auto q = open(o);

  std::vector<std::string> accepted;
  Queue::PushResult refused;
  for (int i = 0; i < 100; ++i) {
    auto m =
        message(std::to_string(i), "#big", std::string(16 * 1024, static_cast<char>('a' + i % 26)));
    refused = q->push(std::move(m));
    if (refused.status != PushStatus::Accepted) break;
    accepted.push_back(std::to_string(i));
  }
  ASSERT_EQ(refused.status, PushStatus::Unavailable) << "the page cap was never reached";
  EXPECT_THAT(refused.detail, HasSubstr("full"));
  ASSERT_GE(accepted.size(), 2u);
  EXPECT_EQ(q->size(), accepted.size());  // the refused push is not counted
  EXPECT_EQ(q->bytes(), accepted.size() * 16 * 1024);

  // Acks still work: they are recorded and free space.
  auto taken = q->take(accepted.size() + 10);
  ASSERT_EQ(ids(taken), accepted);
  q->ack(accepted[0]);
  EXPECT_EQ(q->size(), accepted.size() - 1);
  q->close();
  q.reset();

  auto r = open(options());
  EXPECT_EQ(r->recovered(), accepted.size() - 1);
  const std::vector<std::string> rest(accepted.begin() + 1, accepted.end());
  EXPECT_EQ(ids(r->take(accepted.size() + 10)), rest);
}

TEST_F(SqliteQueueTest, SecondQueueOnTheSameFileIsRefused) {
  auto first = open(options());
  try {
    auto second = open(options());
    FAIL() << "a second queue opened the same file";
  } catch (const QueueError& e) {
    EXPECT_THAT(e.what(), HasSubstr("another slack-proxy"));
    EXPECT_THAT(e.what(), HasSubstr(options().path));
  }
  // The first one is unharmed.
  EXPECT_EQ(first->push(message("1")).status, PushStatus::Accepted);
  EXPECT_THAT(ids(first->take(10)), ElementsAre("1"));
}

TEST_F(SqliteQueueTest, PathUnderARegularFileIsRefusedNamingThePath) {
  const auto file = dir_.path() / "not-a-directory";
  std::ofstream(file) << "x";
  SqliteQueueOptions o = options();
  o.path = (file / "queue.db").string();
  try {
    open(o);
    FAIL() << "a queue opened under a regular file";
  } catch (const QueueError& e) {
    EXPECT_THAT(e.what(), HasSubstr(file.string()));
  }
}

}  // namespace
}  // namespace slack_proxy

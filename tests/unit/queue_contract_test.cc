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
//
// The same file is compiled a second time into sp_redis_test with
// SP_QUEUE_CONTRACT_REDIS defined: there the suite runs on the Redis backend
// alone, against a redis-server the test starts (tests/redis/), and the
// suites of the other backends are left out.

#include "queue/memory_queue.h"
#include "queue/sqlite_queue.h"
#include "queue/token_seal.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
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
#include "queue_test_support.h"

#ifdef SP_QUEUE_CONTRACT_REDIS
#include "redis/redis_queue.h"
#include "redis_server.h"
#endif

namespace slack_proxy {

// Readable failure messages. Static: another test file may print these too.
static void PrintTo(Queue::PushStatus s, std::ostream* os) {
  constexpr const char* kNames[] = {"Accepted", "Duplicate", "Full", "Unavailable"};
  *os << kNames[static_cast<int>(s)];
}
static void PrintTo(DeadLetterStore::ReplayStatus s, std::ostream* os) {
  constexpr const char* kNames[] = {"Replayed", "NotFound", "Full", "Unavailable",
                                    "TokenUnavailable"};
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
using test_support::ids;
using test_support::seqs;
using test_support::TempDir;

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

// A durable backend: a store that outlives the queue object. Opening sets
// the limits and the token key the same way for each; reopening closes the
// queue and starts another on the same store. The backend says how to
// empty its store (prepare) and how to start a queue on it (make).
template <typename Options, typename Q>
class DurableFactory : public QueueFactory {
 public:
  using QueueFactory::QueueFactory;
  bool durable() const override { return true; }
  Queue& open(QueueLimits limits) override {
    prepare();
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

 protected:
  virtual void prepare() = 0;
  virtual std::unique_ptr<Q> make() = 0;
  // Derived destructors call it: the queue goes before what it uses.
  void stop() { queue_.reset(); }
  Options options_;

 private:
  Queue& start() {
    queue_ = make();
    return *queue_;
  }
  std::unique_ptr<Q> queue_;
};

class SqliteFactory final : public DurableFactory<SqliteQueueOptions, SqliteQueue> {
 public:
  using DurableFactory::DurableFactory;
  ~SqliteFactory() override { stop(); }  // before the directory goes

 private:
  void prepare() override { options_.path = (dir_.path() / "queue.db").string(); }
  std::unique_ptr<SqliteQueue> make() override {
    return std::make_unique<SqliteQueue>(options_, clock_, test_support::null_logger());
  }
  TempDir dir_;
};

#ifdef SP_QUEUE_CONTRACT_REDIS
// One redis-server for the whole suite; each open() starts from an empty
// database. "Reopen" is a new process on the same Redis: the queue closes
// (letting its lanes go), and a new RedisQueue, a new replica, opens.
class RedisFactory final : public DurableFactory<RedisQueueOptions, RedisQueue> {
 public:
  using DurableFactory::DurableFactory;
  ~RedisFactory() override { stop(); }  // before the metrics registry goes

 private:
  void prepare() override { EXPECT_EQ(server().admin({"FLUSHALL"}), "OK"); }
  static ::slack_proxy::testing::RedisServer& server() {
    static std::unique_ptr<::slack_proxy::testing::RedisServer> shared = [] {
      const auto program = ::slack_proxy::testing::find_program({"redis-server"});
      if (!program) throw std::runtime_error("redis-server is not installed");
      return std::make_unique<::slack_proxy::testing::RedisServer>(*program);
    }();
    return *shared;
  }
  std::unique_ptr<RedisQueue> make() override {
    RedisSettings settings;
    parse_redis_url(server().url(), settings);
    auto log = test_support::null_logger();
    return std::make_unique<RedisQueue>(
        options_,
        [&, settings, log](const std::string& role) {
          return std::make_unique<RedisConnection>(
              settings, log, std::make_shared<RedisMetrics>(registry_, role), role);
        },
        clock_, log);
  }
  prometheus::Registry registry_;
};
#endif

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

// Everything a reopened queue found in its store, as the dispatcher reads
// it: every lane backlog() names, through read_lane(), then merged into
// sequence order (push order, across lanes).
std::vector<Queued> stored_backlog(Queue& q) {
  std::vector<Queued> out;
  for (const auto& lane : q.backlog())
    for (auto& m : q.read_lane(lane.lane, 0, q.backlog_upto(), lane.count + 1))
      out.push_back(std::move(m));
  std::sort(out.begin(), out.end(),
            [](const Queued& a, const Queued& b) { return a.seq < b.seq; });
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

// Only catch a hang: every wait below ends as soon as its condition holds.
// A probe from inside a `done` gives up first, so that `done` has returned
// (and stopped using the test's locals) before the test's own wait does.
constexpr auto kHang = 30s;
constexpr auto kProbeHang = 10s;

// What push_async reported, in the order it was reported.
class Reports {
 public:
  struct Report {
    std::string tag;
    Queue::PushResult result;
    std::thread::id thread;
  };
  // A `done` that records `tag`'s result.
  Queue::PushDone done_for(std::string tag) {
    return [this, tag = std::move(tag)](Queue::PushResult result) {
      // Notified under the lock: once a waiter sees this report, this call
      // no longer touches the object, which the test may then destroy.
      std::lock_guard<std::mutex> lock(mutex_);
      reports_.push_back({tag, std::move(result), std::this_thread::get_id()});
      cv_.notify_all();
    };
  }
  bool wait_for(std::size_t n) {
    std::unique_lock<std::mutex> lock(mutex_);
    return cv_.wait_for(lock, kHang, [&] { return reports_.size() >= n; });
  }
  std::vector<Report> all() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return reports_;
  }
  std::vector<std::string> tags() const {
    std::vector<std::string> out;
    for (const auto& r : all()) out.push_back(r.tag);
    return out;
  }
  bool has(const std::string& tag) const { return count(tag) > 0; }
  std::size_t count(const std::string& tag) const {
    std::size_t n = 0;
    for (const auto& r : all()) n += r.tag == tag ? 1 : 0;
    return n;
  }
  // The first report for `tag`; Unavailable "never reported" if none.
  Queue::PushResult result(const std::string& tag) const {
    for (const auto& r : all())
      if (r.tag == tag) return r.result;
    return {PushStatus::Unavailable, "never reported"};
  }
  std::thread::id thread(const std::string& tag) const {
    for (const auto& r : all())
      if (r.tag == tag) return r.thread;
    return {};
  }

 private:
  mutable std::mutex mutex_;
  std::condition_variable cv_;
  std::vector<Report> reports_;
};

// From inside a `done`: runs `call` on a thread of its own and waits for it.
// Were `done` run under the queue's lock, a call that takes that lock could
// not finish before `done` returns: the wait then gives up at kProbeHang and
// says so, instead of hanging the suite (the thread is joined after `done`
// returned).
class CallFromAnotherThread {
 public:
  ~CallFromAnotherThread() {
    for (auto& t : threads_) t.join();
  }
  // True when `call` finished while the caller waited.
  bool run(std::function<void()> call) {
    auto finished = std::make_shared<std::atomic<bool>>(false);
    {
      std::lock_guard<std::mutex> lock(mutex_);
      threads_.emplace_back([this, finished, call = std::move(call)] {
        call();
        {
          std::lock_guard<std::mutex> lock(mutex_);
          *finished = true;
        }
        cv_.notify_all();
      });
    }
    std::unique_lock<std::mutex> lock(mutex_);
    return cv_.wait_for(lock, kProbeHang, [&] { return finished->load(); });
  }

 private:
  std::mutex mutex_;
  std::condition_variable cv_;
  std::vector<std::thread> threads_;
};

// Keeps whichever thread reports pushes (a backend's writer thread, or the
// pushing thread for a backend that stores at once) inside one push's `done`
// until release(), so the pushes that follow are still in flight meanwhile.
class HeldReporter {
 public:
  explicit HeldReporter(Queue& q)
      : pusher_([this, &q] {
          q.push_async(message("held", "#held"), {}, [this](Queue::PushResult result) {
            std::unique_lock<std::mutex> lock(mutex_);
            status_ = result.status;
            entered_ = true;
            cv_.notify_all();
            cv_.wait(lock, [&] { return released_; });
            exited_ = true;
            cv_.notify_all();
          });
        }) {
    {
      std::unique_lock<std::mutex> lock(mutex_);
      if (!cv_.wait_for(lock, kHang, [&] { return entered_; })) {
        ready_ = ::testing::AssertionFailure() << "the held push was never reported";
        return;
      }
    }
    // Were `done` run under the queue's lock, the pushes that follow would
    // wait for release() forever: fail instead of hanging.
    if (!probe_.run([&q] { (void)q.size(); }))
      ready_ = ::testing::AssertionFailure() << "done() holds the queue's lock";
  }
  // Returns once the held `done` has returned: it may run on a backend's
  // thread, after the pushing thread is gone.
  ~HeldReporter() {
    release();
    pusher_.join();
    std::unique_lock<std::mutex> lock(mutex_);
    cv_.wait_for(lock, kHang, [&] { return exited_; });
  }
  HeldReporter(const HeldReporter&) = delete;
  HeldReporter& operator=(const HeldReporter&) = delete;

  // Success once a reporter is held and the queue is still usable.
  ::testing::AssertionResult ready() const { return ready_; }
  // What the held push (id "held") was told.
  PushStatus status() {
    std::lock_guard<std::mutex> lock(mutex_);
    return status_;
  }
  void release() {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      released_ = true;
    }
    cv_.notify_all();
  }

 private:
  std::mutex mutex_;
  std::condition_variable cv_;
  bool entered_ = false;
  bool released_ = false;
  bool exited_ = false;
  PushStatus status_ = PushStatus::Unavailable;
  ::testing::AssertionResult ready_ = ::testing::AssertionSuccess();
  CallFromAnotherThread probe_;  // joined after release()
  std::thread pusher_;
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
    q.dead_letter(taken[0].seq, letter_for(std::move(taken[0].message), error, kind,
                                           clock_.wall_now()));
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

  std::vector<Queued> taken;
  for (auto batch = q.take(2); !batch.empty(); batch = q.take(2))
    for (auto& m : batch) taken.push_back(std::move(m));

  auto of = [&](const std::string& channel) {
    std::vector<std::string> out;
    for (const auto& q : taken)
      if (q.message.channel == channel) out.push_back(q.message.id);
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
  EXPECT_TRUE(same_message(m, taken[0].message));
}

// -- ack and size

TEST_P(QueueContractTest, SizeAndBytesCountLeasedMessagesUntilAcked) {
  Queue& q = open();
  ASSERT_EQ(q.push(message("1", "#a", std::string(10, 'x'))).status, PushStatus::Accepted);
  ASSERT_EQ(q.push(message("2", "#a", std::string(20, 'y'))).status, PushStatus::Accepted);
  ASSERT_EQ(q.push(message("3", "#a", std::string(30, 'z'))).status, PushStatus::Accepted);
  EXPECT_EQ(q.size(), 3u);
  EXPECT_EQ(q.bytes(), 60u);

  const auto taken = q.take(2);
  ASSERT_EQ(taken.size(), 2u);
  EXPECT_EQ(q.size(), 3u);  // leased still count
  EXPECT_EQ(q.bytes(), 60u);

  q.ack(taken[0]);
  EXPECT_EQ(q.size(), 2u);
  EXPECT_EQ(q.bytes(), 50u);
  q.ack(taken[1]);
  EXPECT_EQ(q.size(), 1u);
  EXPECT_EQ(q.bytes(), 30u);
  const auto rest = q.take(10);
  EXPECT_THAT(ids(rest), ElementsAre("3"));
  q.ack(rest.at(0));
  EXPECT_EQ(q.size(), 0u);
  EXPECT_EQ(q.bytes(), 0u);
}

TEST_P(QueueContractTest, AckOfUnknownOrAlreadyAckedIdIsHarmless) {
  Queue& q = open();
  ASSERT_EQ(q.push(message("1", "#a", "0123456789")).status, PushStatus::Accepted);
  const auto taken = q.take(1);
  ASSERT_EQ(taken.size(), 1u);

  q.ack(Queued{taken[0].seq + 1000, message("no-such-id")});
  EXPECT_EQ(q.size(), 1u);
  EXPECT_EQ(q.bytes(), 10u);

  q.ack(taken[0]);
  q.ack(taken[0]);  // twice: no underflow, nothing else removed
  EXPECT_EQ(q.size(), 0u);
  EXPECT_EQ(q.bytes(), 0u);
  ASSERT_EQ(q.push(message("2")).status, PushStatus::Accepted);
  EXPECT_EQ(q.size(), 1u);
}

// -- sequences, arrivals and lanes

// Ids in push order "0".."n-1", each in lane "#c<i % lanes>".
std::vector<std::string> push_spread(Queue& q, int n, int lanes) {
  std::vector<std::string> pushed;
  for (int i = 0; i < n; ++i) {
    pushed.push_back(std::to_string(i));
    EXPECT_EQ(q.push(message(pushed.back(), "#c" + std::to_string(i % lanes))).status,
              PushStatus::Accepted);
  }
  return pushed;
}

TEST_P(QueueContractTest, SequenceNumbersRiseInPushOrderAndAreNeverReused) {
  Queue& q = open();
  const auto pushed = push_spread(q, 10, 3);
  const auto out = q.take(20);
  ASSERT_EQ(ids(out), pushed);
  EXPECT_GE(out[0].seq, 1u) << "0 must stay free to mean 'before the first'";
  for (std::size_t i = 1; i < out.size(); ++i)
    EXPECT_GT(out[i].seq, out[i - 1].seq) << "across lanes too: " << out[i].message.id;

  // Finishing the newest does not free its number for the next push.
  q.ack(out.back());
  ASSERT_EQ(q.push(message("next", "#c0")).status, PushStatus::Accepted);
  const auto next = q.take(10);
  ASSERT_THAT(ids(next), ElementsAre("next"));
  EXPECT_GT(next[0].seq, out.back().seq);
}

// take() is the arrivals feed: each push once, in order; reading a lane or
// finishing a message neither consumes nor repeats an announcement.
TEST_P(QueueContractTest, TakeAnnouncesEachPushExactlyOnceInOrder) {
  Queue& q = open();
  ASSERT_EQ(q.push(message("1", "#a")).status, PushStatus::Accepted);
  ASSERT_EQ(q.push(message("2", "#b")).status, PushStatus::Accepted);
  ASSERT_EQ(q.push(message("3", "#a")).status, PushStatus::Accepted);
  const std::string a = lane_key(message("x", "#a"));

  const auto first = q.take(1);
  ASSERT_THAT(ids(first), ElementsAre("1"));
  EXPECT_THAT(ids(q.read_lane(a, 0, first[0].seq, 10)), ElementsAre("1"));
  EXPECT_THAT(ids(q.read_lane(a, 0, first[0].seq, 10)), ElementsAre("1"));
  q.ack(first[0]);
  ASSERT_EQ(q.push(message("4", "#b")).status, PushStatus::Accepted);

  EXPECT_THAT(ids(q.take(10)), ElementsAre("2", "3", "4"));
  EXPECT_THAT(q.take(10), IsEmpty());
  EXPECT_EQ(q.size(), 3u);  // announced is not finished
}

TEST_P(QueueContractTest, ReadLanePagesOneLaneInOrderWithinAfterUptoAndMax) {
  Queue& q = open();
  const std::vector<std::pair<std::string, std::string>> pushes = {
      {"a1", "#a"}, {"b1", "#b"}, {"a2", "#a"}, {"a3", "#a"},
      {"b2", "#b"}, {"a4", "#a"}, {"a5", "#a"}};
  for (const auto& [id, channel] : pushes)
    ASSERT_EQ(q.push(message(id, channel)).status, PushStatus::Accepted);
  const auto all = q.take(20);
  ASSERT_EQ(all.size(), pushes.size());
  std::map<std::string, std::uint64_t> seq;
  for (const auto& m : all) seq[m.message.id] = m.seq;
  const std::uint64_t upto = all.back().seq;
  const std::string a = lane_key(message("x", "#a"));
  const std::string b = lane_key(message("x", "#b"));

  // Page by page, each page after the last one's final sequence.
  auto page = q.read_lane(a, 0, upto, 2);
  EXPECT_THAT(ids(page), ElementsAre("a1", "a2"));
  EXPECT_THAT(seqs(page), ElementsAre(seq["a1"], seq["a2"]));  // the numbers take() gave
  page = q.read_lane(a, page.back().seq, upto, 2);
  EXPECT_THAT(ids(page), ElementsAre("a3", "a4"));
  page = q.read_lane(a, page.back().seq, upto, 2);
  EXPECT_THAT(ids(page), ElementsAre("a5"));
  EXPECT_THAT(q.read_lane(a, page.back().seq, upto, 2), IsEmpty());

  // `after` need not be one of the lane's own; `upto` caps the page; max 0 reads nothing.
  EXPECT_THAT(ids(q.read_lane(a, seq["b1"], upto, 10)), ElementsAre("a2", "a3", "a4", "a5"));
  EXPECT_THAT(ids(q.read_lane(a, 0, seq["a3"], 10)), ElementsAre("a1", "a2", "a3"));
  EXPECT_THAT(ids(q.read_lane(a, 0, seq["b2"], 10)), ElementsAre("a1", "a2", "a3"));
  EXPECT_THAT(q.read_lane(a, 0, seq["a1"] - 1, 10), IsEmpty());
  EXPECT_THAT(q.read_lane(a, 0, upto, 0), IsEmpty());

  // Only that lane; an unknown lane is empty.
  EXPECT_THAT(ids(q.read_lane(b, 0, upto, 10)), ElementsAre("b1", "b2"));
  EXPECT_THAT(q.read_lane(lane_key(message("x", "#nowhere")), 0, upto, 10), IsEmpty());
  EXPECT_EQ(q.lane_size(a), 5u);
  EXPECT_EQ(q.lane_size(b), 2u);

  // Again and again, until an outcome is recorded.
  EXPECT_THAT(ids(q.read_lane(a, 0, upto, 2)), ElementsAre("a1", "a2"));
  EXPECT_THAT(ids(q.read_lane(a, 0, upto, 2)), ElementsAre("a1", "a2"));
  q.ack(all[0]);
  EXPECT_THAT(ids(q.read_lane(a, 0, upto, 2)), ElementsAre("a2", "a3"));
}

TEST_P(QueueContractTest, ReadLaneHandsOutEveryFieldAsPushed) {
  Queue& q = open();
  const sdk::Message m = full_message("1", clock_);
  ASSERT_EQ(q.push(m).status, PushStatus::Accepted);
  const auto taken = q.take(1);
  ASSERT_EQ(taken.size(), 1u);

  const auto page = q.read_lane(lane_key(m), 0, taken[0].seq, 10);
  ASSERT_EQ(page.size(), 1u);
  EXPECT_EQ(page[0].seq, taken[0].seq);
  EXPECT_TRUE(same_message(m, page[0].message));
}

TEST_P(QueueContractTest, AckAndDeadLetterRemoveExactlyTheMessageTheirSeqNames) {
  Queue& q = open();
  ASSERT_EQ(q.push(message("a1", "#a", std::string(10, 'x'))).status, PushStatus::Accepted);
  ASSERT_EQ(q.push(message("a2", "#a", std::string(20, 'x'))).status, PushStatus::Accepted);
  ASSERT_EQ(q.push(message("a3", "#a", std::string(30, 'x'))).status, PushStatus::Accepted);
  ASSERT_EQ(q.push(message("b1", "#b", std::string(40, 'x'))).status, PushStatus::Accepted);
  const std::uint64_t upto = q.take(10).back().seq;
  const std::string a = lane_key(message("x", "#a"));
  const std::string b = lane_key(message("x", "#b"));

  // What read_lane() handed out can be finished, from the middle of a lane.
  const auto lane = q.read_lane(a, 0, upto, 10);
  ASSERT_THAT(ids(lane), ElementsAre("a1", "a2", "a3"));
  q.ack(lane[1]);
  EXPECT_THAT(ids(q.read_lane(a, 0, upto, 10)), ElementsAre("a1", "a3"));
  EXPECT_EQ(q.lane_size(a), 2u);
  EXPECT_EQ(q.size(), 3u);
  EXPECT_EQ(q.bytes(), 80u);

  q.dead_letter(lane[0].seq, letter_for(lane[0].message, "invalid_auth", DeadLetterKind::Failed,
                                        clock_.wall_now()));
  EXPECT_THAT(ids(q.read_lane(a, 0, upto, 10)), ElementsAre("a3"));
  EXPECT_EQ(q.lane_size(a), 1u);
  EXPECT_EQ(q.size(), 2u);
  EXPECT_EQ(q.bytes(), 70u);
  EXPECT_TRUE(q.dead_letters().get("a1").has_value());

  q.ack(lane[2]);
  EXPECT_THAT(q.read_lane(a, 0, upto, 10), IsEmpty());
  EXPECT_EQ(q.lane_size(a), 0u);
  EXPECT_THAT(ids(q.read_lane(b, 0, upto, 10)), ElementsAre("b1"));  // untouched
  EXPECT_EQ(q.lane_size(b), 1u);
  EXPECT_EQ(q.size(), 1u);
  EXPECT_EQ(q.bytes(), 40u);
}

// At-least-once delivery finishes a message more than once now and then:
// a second outcome for the same seq, or one for a seq never stored, must not
// take another message with it or skew the counts.
TEST_P(QueueContractTest, SecondOutcomeForTheSameSeqChangesNothing) {
  Queue& q = open();
  ASSERT_EQ(q.push(message("1", "#a", std::string(10, 'x'))).status, PushStatus::Accepted);
  ASSERT_EQ(q.push(message("2", "#a", std::string(20, 'x'))).status, PushStatus::Accepted);
  const auto taken = q.take(10);
  ASSERT_EQ(taken.size(), 2u);
  const std::string a = lane_key(taken[0].message);
  const auto unchanged = [&](std::size_t dead) {
    EXPECT_THAT(ids(q.read_lane(a, 0, taken[1].seq, 10)), ElementsAre("2"));
    EXPECT_EQ(q.lane_size(a), 1u);
    EXPECT_EQ(q.size(), 1u);
    EXPECT_EQ(q.bytes(), 20u);
    EXPECT_EQ(q.dead_letters().count(), dead);
  };

  q.ack(taken[0]);
  {
    SCOPED_TRACE("after the first ack");
    unchanged(0);
  }
  {
    SCOPED_TRACE("ack again");
    q.ack(taken[0]);
    unchanged(0);
  }
  {
    SCOPED_TRACE("dead letter after the ack");
    q.dead_letter(taken[0].seq, letter_for(taken[0].message, "invalid_auth",
                                           DeadLetterKind::Failed, clock_.wall_now()));
    unchanged(0);
  }
  {
    SCOPED_TRACE("a seq never stored");
    q.ack(Queued{taken[1].seq + 1000, taken[1].message});
    q.dead_letter(taken[1].seq + 1000, letter_for(taken[1].message, "invalid_auth",
                                                  DeadLetterKind::Failed, clock_.wall_now()));
    unchanged(0);
  }
  EXPECT_FALSE(q.dead_letters().get("1").has_value());
}

// A replay is a new arrival: behind everything queued, in its lane too, and
// announced like a push.
TEST_P(QueueContractTest, ReplayedDeadLetterGetsANewSeqAboveEverythingAndIsAnnounced) {
  Queue& q = open();
  ASSERT_EQ(q.push(message("dead", "#a")).status, PushStatus::Accepted);
  ASSERT_EQ(q.push(message("other", "#b")).status, PushStatus::Accepted);
  const auto taken = q.take(10);
  ASSERT_THAT(ids(taken), ElementsAre("dead", "other"));
  q.dead_letter(taken[0].seq, letter_for(taken[0].message, "invalid_auth",
                                         DeadLetterKind::Failed, clock_.wall_now()));
  ASSERT_EQ(q.push(message("queued", "#a")).status, PushStatus::Accepted);

  ASSERT_EQ(q.dead_letters().replay("dead"), ReplayStatus::Replayed);
  const auto out = q.take(10);
  ASSERT_THAT(ids(out), ElementsAre("queued", "dead"));
  EXPECT_GT(out[1].seq, out[0].seq);
  EXPECT_GT(out[0].seq, taken[1].seq);
  EXPECT_NE(out[1].seq, taken[0].seq);

  const std::string a = lane_key(taken[0].message);
  const auto lane = q.read_lane(a, 0, out[1].seq, 10);
  ASSERT_THAT(ids(lane), ElementsAre("queued", "dead"));
  EXPECT_THAT(seqs(lane), ElementsAre(out[0].seq, out[1].seq));
  EXPECT_EQ(q.lane_size(a), 2u);
  q.ack(out[1]);
  EXPECT_THAT(ids(q.read_lane(a, 0, out[1].seq, 10)), ElementsAre("queued"));
}

// The lane key reads back exactly, whatever a workspace holds: so two
// messages share a lane only when pipeline, workspace and channel match.
TEST_P(QueueContractTest, LaneKeyNamesItsPartsAndEachLaneReadsOnlyItsOwn) {
  sdk::Message m = message("1", "#ops:odd");
  m.pipeline = "pager";
  m.workspace = "T1:50%";
  const std::string lane = lane_key(m);
  EXPECT_EQ(pipeline_of_lane(lane), "pager");
  EXPECT_EQ(scope_of_lane(lane), "pager/T1%3A50%25");
  EXPECT_EQ(channel_of_lane(lane), "#ops:odd");
  EXPECT_EQ(lane_key(message("2", "#ops")), "slack/:#ops");  // the default workspace
  EXPECT_EQ(pipeline_of_lane("slack/:#ops"), "slack");

  // Unescaped, both would be "slack/a:b:#c".
  sdk::Message colon_in_workspace = message("ws", "#c");
  colon_in_workspace.workspace = "a:b";
  sdk::Message colon_in_channel = message("ch", "b:#c");
  colon_in_channel.workspace = "a";
  ASSERT_NE(lane_key(colon_in_workspace), lane_key(colon_in_channel));

  Queue& q = open();
  for (const auto& pushed : {m, colon_in_workspace, colon_in_channel})
    ASSERT_EQ(q.push(pushed).status, PushStatus::Accepted);
  const std::uint64_t upto = q.take(10).back().seq;
  EXPECT_THAT(ids(q.read_lane(lane, 0, upto, 10)), ElementsAre("1"));
  EXPECT_THAT(ids(q.read_lane(lane_key(colon_in_workspace), 0, upto, 10)), ElementsAre("ws"));
  EXPECT_THAT(ids(q.read_lane(lane_key(colon_in_channel), 0, upto, 10)), ElementsAre("ch"));
  EXPECT_EQ(q.lane_size(lane_key(colon_in_channel)), 1u);
}

// -- dead letters

TEST_P(QueueContractTest, DeadLetterMovesLeasedMessageToTheStore) {
  Queue& q = open();
  sdk::Message m = full_message("1", clock_);
  ASSERT_EQ(q.push(m).status, PushStatus::Accepted);
  auto taken = q.take(1);
  ASSERT_EQ(taken.size(), 1u);
  // The dispatcher's copy: one more attempt than the queue knows of.
  taken[0].message.attempts = 3;
  taken[0].message.last_attempt_at = clock_.wall_now() - 5s;
  DeadLetter d = letter_for(taken[0].message, "channel_not_found", DeadLetterKind::NotProcessed,
                            clock_.wall_now());
  d.reason = "channel is parked";
  d.http_status = 404;
  q.dead_letter(taken[0].seq, d);

  EXPECT_EQ(q.size(), 0u);
  EXPECT_EQ(q.bytes(), 0u);
  EXPECT_EQ(q.dead_letters().count(), 1u);
  auto got = q.dead_letters().get("1");
  ASSERT_TRUE(got.has_value());
  sdk::Message want = taken[0].message;
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
  taken[0].message.attempts = 4;
  taken[0].message.last_attempt_at = clock_.wall_now();
  q.dead_letter(taken[0].seq, letter_for(taken[0].message, "invalid_auth", DeadLetterKind::Failed,
                                         clock_.wall_now()));
  ASSERT_EQ(q.push(message("queued")).status, PushStatus::Accepted);

  clock_.advance(1h);
  EXPECT_EQ(q.dead_letters().replay("dead"), ReplayStatus::Replayed);

  EXPECT_EQ(q.dead_letters().count(), 0u);
  EXPECT_FALSE(q.dead_letters().get("dead").has_value());
  EXPECT_EQ(q.size(), 2u);
  EXPECT_EQ(q.bytes(), m.payload.size() + message("queued").payload.size());
  auto out = q.take(10);
  ASSERT_THAT(ids(out), ElementsAre("queued", "dead"));
  const sdk::Message& r = out[1].message;
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

  const auto taken = q.take(1);
  ASSERT_THAT(ids(taken), ElementsAre("a"));
  q.ack(taken[0]);
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
    EXPECT_EQ(out[i].message.attributes[sdk::kReplayedAttribute], "true") << out[i].message.id;

  for (const auto& m : out) q.ack(m);
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
  EXPECT_TRUE(out[0].message.delivery_token == kCallerToken)
      << "the replayed message lost its token";
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
  std::map<std::string, Queued> leased;
  for (auto& m : q.take(10)) leased.emplace(m.message.id, std::move(m));
  ASSERT_EQ(leased.size(), 5u);

  // Dead in another order than pushed: "oldest" is the oldest dead letter.
  for (const char* id : {"2", "4", "1", "5", "3"}) {
    q.dead_letter(leased.at(id).seq, letter_for(leased.at(id).message, "invalid_auth",
                                                DeadLetterKind::Failed, clock_.wall_now()));
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
  const auto taken = q.take(2);
  ASSERT_THAT(ids(taken), ElementsAre("1", "2"));
  q.ack(taken[0]);  // "2" stays leased: delivery is at-least-once

  clock_.advance(30s);
  Queue& r = factory_->reopen();
  EXPECT_EQ(r.recovered(), 3u);
  EXPECT_EQ(r.size(), 3u);
  EXPECT_EQ(r.bytes(), total_payload({pushed[1], pushed[2], pushed[3]}));
  auto out = stored_backlog(r);
  ASSERT_THAT(ids(out), ElementsAre("2", "3", "4"));
  for (std::size_t i = 0; i < out.size(); ++i)
    EXPECT_TRUE(same_message(pushed[i + 1], out[i].message));
}

TEST_P(QueueContractTest, AckedMessagesDoNotComeBackAfterClose) {
  SKIP_UNLESS_DURABLE();
  Queue& q = open();
  for (const char* id : {"1", "2", "3"})
    ASSERT_EQ(q.push(message(id)).status, PushStatus::Accepted);
  for (const auto& m : q.take(10)) q.ack(m);

  Queue& r = factory_->reopen();  // closes first, which records every ack
  EXPECT_EQ(r.recovered(), 0u);
  EXPECT_EQ(r.size(), 0u);
  EXPECT_EQ(r.bytes(), 0u);
  EXPECT_THAT(r.backlog(), IsEmpty());
  EXPECT_THAT(stored_backlog(r), IsEmpty());
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
  EXPECT_TRUE(out[0].message.delivery_token == kCallerToken)
      << "the replayed message lost its token";
}

TEST_P(QueueContractTest, DedupKeysSurviveReopen) {
  SKIP_UNLESS_DURABLE();
  Queue& q = open();
  ASSERT_EQ(q.push(message("1"), {.dedup_key = "k"}).status, PushStatus::Accepted);
  for (const auto& m : q.take(10)) q.ack(m);

  clock_.advance(5min);
  Queue& r = factory_->reopen();
  EXPECT_EQ(r.push(message("2"), {.dedup_key = "k"}).status, PushStatus::Duplicate);
  EXPECT_EQ(r.size(), 0u);

  clock_.advance(5min + 1ms);  // past the window of the first push
  EXPECT_EQ(r.push(message("3"), {.dedup_key = "k"}).status, PushStatus::Accepted);
}

// A stored message whose sealed caller token the reopened queue cannot open
// is kept, and read with no token at all, never a wrong one: the store does
// not read every row at open to find these, so deciding is the
// dispatcher's, when the lane reaches it: it dead-letters a caller-token
// message without its token as token_unavailable, never sends it with the
// proxy's own (dispatcher_test.cc:
// ACallerTokenMessageWithoutItsTokenIsNeverSentWithTheProxysToken).
TEST_P(QueueContractTest, MessageWithATokenSealedUnderAnotherKeyIsKeptAndReadWithoutIt) {
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
  EXPECT_EQ(r.recovered(), 3u);
  EXPECT_EQ(r.size(), 3u);
  EXPECT_EQ(r.dead_letters().count(), 0u);
  auto out = stored_backlog(r);
  ASSERT_THAT(ids(out), ElementsAre("0", "1", "2"));
  // Not opened, so not handed out; everything else as pushed.
  leased_with_token.delivery_token.clear();
  with_token.delivery_token.clear();
  EXPECT_TRUE(same_message(leased_with_token, out[0].message));
  EXPECT_TRUE(same_message(with_token, out[1].message));
  EXPECT_TRUE(same_message(without_token, out[2].message));
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

// -- the stored backlog (durable backends)

// A message of `channel` in workspace "T9:x" (a ':' the lane key escapes).
sdk::Message in_workspace(const std::string& id, const std::string& channel) {
  sdk::Message m = message(id, channel);
  m.workspace = "T9:x";
  return m;
}

TEST_P(QueueContractTest, BacklogAfterReopenNamesTheStoredLanesByFirstSeq) {
  SKIP_UNLESS_DURABLE();
  Queue& q = open();
  const std::vector<sdk::Message> pushes = {
      message("a1", "#a"),      message("b1", "#b"),      message("a2", "#a"),
      in_workspace("c1", "#c"), message("b2", "#b"),      in_workspace("c2", "#c"),
      message("d1", "#d")};
  for (const auto& m : pushes) ASSERT_EQ(q.push(m).status, PushStatus::Accepted);
  const auto taken = q.take(10);
  ASSERT_EQ(taken.size(), pushes.size());
  q.ack(taken[1]);  // b1: lane #b now starts at b2, after #c's first
  q.ack(taken[6]);  // d1, the newest: its lane is gone, and it is not the backlog's end
  const std::string a = lane_key(pushes[0]);
  const std::string b = lane_key(pushes[1]);
  const std::string c = lane_key(pushes[3]);

  Queue& r = factory_->reopen();
  EXPECT_EQ(r.recovered(), 5u);
  EXPECT_THAT(r.take(10), IsEmpty()) << "take() announces only what is pushed after the open";

  const auto backlog = r.backlog();
  ASSERT_EQ(backlog.size(), 3u);
  EXPECT_EQ(backlog[0].lane, a);
  EXPECT_EQ(backlog[1].lane, c);
  EXPECT_EQ(backlog[2].lane, b);
  EXPECT_EQ(backlog[0].count, 2u);
  EXPECT_EQ(backlog[1].count, 2u);
  EXPECT_EQ(backlog[2].count, 1u);
  EXPECT_EQ(scope_of_lane(backlog[1].lane), "slack/T9%3Ax");  // a stored lane reads back
  EXPECT_EQ(channel_of_lane(backlog[1].lane), "#c");

  const std::uint64_t upto = r.backlog_upto();
  const auto lane_a = r.read_lane(a, 0, upto, 10);
  const auto lane_c = r.read_lane(c, 0, upto, 10);
  const auto lane_b = r.read_lane(b, 0, upto, 10);
  ASSERT_THAT(ids(lane_a), ElementsAre("a1", "a2"));
  ASSERT_THAT(ids(lane_c), ElementsAre("c1", "c2"));
  ASSERT_THAT(ids(lane_b), ElementsAre("b2"));
  EXPECT_TRUE(same_message(pushes[3], lane_c[0].message));
  EXPECT_LT(lane_a[0].seq, lane_a[1].seq);
  EXPECT_LT(lane_c[0].seq, lane_c[1].seq);
  EXPECT_EQ(backlog[0].first_seq, lane_a[0].seq);
  EXPECT_EQ(backlog[1].first_seq, lane_c[0].seq);
  EXPECT_EQ(backlog[2].first_seq, lane_b[0].seq);
  EXPECT_LT(backlog[0].first_seq, backlog[1].first_seq);
  EXPECT_LT(backlog[1].first_seq, backlog[2].first_seq);
  EXPECT_EQ(upto, lane_c[1].seq) << "the highest stored seq (c2; d1 was acked)";
  EXPECT_EQ(r.lane_size(a), 2u);
  EXPECT_EQ(r.lane_size(b), 1u);
  EXPECT_EQ(r.lane_size(c), 2u);
  EXPECT_EQ(r.lane_size(lane_key(pushes[6])), 0u);

  // New pushes come after the backlog, and only they are announced.
  ASSERT_EQ(r.push(message("a3", "#a")).status, PushStatus::Accepted);
  const auto fresh = r.take(10);
  ASSERT_THAT(ids(fresh), ElementsAre("a3"));
  EXPECT_GT(fresh[0].seq, upto);
  EXPECT_THAT(ids(r.read_lane(a, 0, fresh[0].seq, 10)), ElementsAre("a1", "a2", "a3"));
  EXPECT_THAT(ids(r.read_lane(a, 0, upto, 10)), ElementsAre("a1", "a2"));  // upto still caps
}

// "Rising in push order across restarts": a restart must not hand out again
// the number of a message acked before it.
TEST_P(QueueContractTest, SeqsKeepRisingAcrossARestartPastAckedOnes) {
  SKIP_UNLESS_DURABLE();
  Queue& q = open();
  for (const char* id : {"1", "2", "3"})
    ASSERT_EQ(q.push(message(id)).status, PushStatus::Accepted);
  const auto taken = q.take(10);
  ASSERT_EQ(taken.size(), 3u);
  q.ack(taken[2]);

  Queue& r = factory_->reopen();
  EXPECT_EQ(r.backlog_upto(), taken[1].seq);
  ASSERT_EQ(r.push(message("4")).status, PushStatus::Accepted);
  const auto fresh = r.take(10);
  ASSERT_THAT(ids(fresh), ElementsAre("4"));
  EXPECT_GT(fresh[0].seq, taken[2].seq);
}

// The issue's "lanes page in order across restarts and retries": a lane is
// paged a few at a time, its head read again while it is retried (not
// acked), and the store restarted twice on the way; every message comes out
// once in order, and a lane beside it is untouched.
TEST_P(QueueContractTest, LanesPageInOrderAcrossRestartsAndRetries) {
  SKIP_UNLESS_DURABLE();
  Queue* q = &open();
  std::vector<std::string> want_a;
  std::vector<std::string> want_b;
  for (int i = 0; i < 10; ++i) {
    want_a.push_back("a" + std::to_string(i));
    want_b.push_back("b" + std::to_string(i));
    ASSERT_EQ(q->push(message(want_a.back(), "#a")).status, PushStatus::Accepted);
    ASSERT_EQ(q->push(message(want_b.back(), "#b")).status, PushStatus::Accepted);
  }
  const std::string a = lane_key(message("x", "#a"));
  const std::string b = lane_key(message("x", "#b"));
  std::uint64_t upto = q->take(100).back().seq;
  std::vector<std::string> delivered;
  // Reads a page from the lane's head and acks its first `n`: the rest of
  // the page is the lane's head again on the next read (a retry).
  const auto deliver_head = [&](Queue& from, std::size_t page, std::size_t n) {
    const auto got = from.read_lane(a, 0, upto, page);
    for (std::size_t i = 0; i < n && i < got.size(); ++i) {
      delivered.push_back(got[i].message.id);
      from.ack(got[i]);
    }
    return ids(got);
  };

  EXPECT_THAT(deliver_head(*q, 3, 2), ElementsAre("a0", "a1", "a2"));
  EXPECT_THAT(deliver_head(*q, 3, 0), ElementsAre("a2", "a3", "a4"));  // a2 retried
  EXPECT_THAT(deliver_head(*q, 3, 1), ElementsAre("a2", "a3", "a4"));

  q = &factory_->reopen();
  upto = q->backlog_upto();
  ASSERT_EQ(q->lane_size(a), 7u);
  EXPECT_THAT(deliver_head(*q, 3, 1), ElementsAre("a3", "a4", "a5"));
  EXPECT_THAT(deliver_head(*q, 3, 1), ElementsAre("a4", "a5", "a6"));
  // Paging on past the head, as a lane's read-ahead does, does not move it.
  const auto ahead = q->read_lane(a, q->read_lane(a, 0, upto, 2).back().seq, upto, 2);
  EXPECT_THAT(ids(ahead), ElementsAre("a7", "a8"));

  q = &factory_->reopen();
  upto = q->backlog_upto();
  ASSERT_EQ(q->lane_size(a), 5u);
  for (auto page = deliver_head(*q, 2, 2); !page.empty(); page = deliver_head(*q, 2, 2)) {
  }
  EXPECT_EQ(delivered, want_a);
  EXPECT_EQ(q->lane_size(a), 0u);
  EXPECT_EQ(q->lane_size(b), 10u);
  EXPECT_EQ(ids(q->read_lane(b, 0, upto, 100)), want_b);
  EXPECT_EQ(q->size(), 10u);
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

  q.ack(taken[0]);
  EXPECT_EQ(q.push(message("3", "#a", std::string(10, 'x'))).status, PushStatus::Accepted);
  EXPECT_EQ(q.push(message("4", "#a", "x")).status, PushStatus::Full);

  q.dead_letter(taken[1].seq, letter_for(taken[1].message, "invalid_auth", DeadLetterKind::Failed,
                                         clock_.wall_now()));
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
  for (const auto& m : q.take(10)) q.ack(m);
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
  for (const auto& m : q.take(10)) q.ack(m);
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
  q.dead_letter(taken[0].seq, letter_for(taken[0].message, "invalid_auth", DeadLetterKind::Failed,
                                         clock_.wall_now()));
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

// -- push_async

TEST_P(QueueContractTest, PushAsyncReportsEachPushExactlyOnce) {
  QueueLimits limits = roomy();
  limits.max_messages = 3;
  Queue& q = open(limits);
  Reports reports;
  q.push_async(message("1"), {.dedup_key = "k"}, reports.done_for("1"));
  q.push_async(message("2"), {}, reports.done_for("2"));
  q.push_async(message("dup"), {.dedup_key = "k"}, reports.done_for("dup"));
  q.push_async(message("3"), {}, reports.done_for("3"));
  q.push_async(message("full"), {}, reports.done_for("full"));
  ASSERT_TRUE(reports.wait_for(5));
  q.close();  // every push handed over has been reported by now
  q.push_async(message("closed"), {}, reports.done_for("closed"));

  for (const char* tag : {"1", "2", "dup", "3", "full", "closed"})
    EXPECT_EQ(reports.count(tag), 1u) << tag;
  EXPECT_EQ(reports.all().size(), 6u);
  EXPECT_EQ(reports.result("1").status, PushStatus::Accepted);
  EXPECT_EQ(reports.result("2").status, PushStatus::Accepted);
  EXPECT_EQ(reports.result("dup").status, PushStatus::Duplicate);
  EXPECT_EQ(reports.result("3").status, PushStatus::Accepted);
  EXPECT_EQ(reports.result("full").status, PushStatus::Full);
  EXPECT_EQ(reports.result("closed").status, PushStatus::Unavailable);
}

// A refusal known up front is reported on the calling thread, before
// push_async returns: the caller can answer at once, with the same detail
// push() gives.
TEST_P(QueueContractTest, PushAsyncReportsFullDuplicateAndClosedBeforeItReturns) {
  QueueLimits limits = roomy();
  limits.max_messages = 1;
  Queue& q = open(limits);
  Reports reports;
  q.push_async(message("1"), {.dedup_key = "k"}, reports.done_for("1"));
  ASSERT_TRUE(reports.wait_for(1));
  ASSERT_EQ(reports.result("1").status, PushStatus::Accepted);

  q.push_async(message("2"), {}, reports.done_for("full"));
  ASSERT_TRUE(reports.has("full")) << "not reported before push_async returned";
  EXPECT_EQ(reports.result("full").status, PushStatus::Full);
  EXPECT_THAT(reports.result("full").detail, HasSubstr("1 messages"));
  EXPECT_EQ(reports.thread("full"), std::this_thread::get_id());

  q.push_async(message("3"), {.dedup_key = "k"}, reports.done_for("dup"));
  ASSERT_TRUE(reports.has("dup")) << "not reported before push_async returned";
  EXPECT_EQ(reports.result("dup").status, PushStatus::Duplicate);
  EXPECT_EQ(reports.thread("dup"), std::this_thread::get_id());

  q.close();
  q.push_async(message("4"), {}, reports.done_for("closed"));
  ASSERT_TRUE(reports.has("closed")) << "not reported before push_async returned";
  EXPECT_EQ(reports.result("closed").status, PushStatus::Unavailable);
  EXPECT_FALSE(reports.result("closed").detail.empty());
  EXPECT_EQ(reports.thread("closed"), std::this_thread::get_id());
}

// "Accepted" is never early: when `done` runs, take() already hands the
// message out, and a durable backend has it in its store.
TEST_P(QueueContractTest, PushAsyncAcceptsOnlyWhatIsAlreadyTakeable) {
  Queue& q = open();
  CallFromAnotherThread other;
  std::mutex mutex;
  std::vector<std::string> takeable_at_done;
  bool take_finished = false;
  Reports reports;
  Queue::PushDone record = reports.done_for("1");
  q.push_async(message("1"), {}, [&](Queue::PushResult result) {
    take_finished = other.run([&] {
      auto taken = ids(q.take(10));
      std::lock_guard<std::mutex> lock(mutex);
      takeable_at_done = std::move(taken);
    });
    record(std::move(result));
  });
  ASSERT_TRUE(reports.wait_for(1));
  ASSERT_EQ(reports.result("1").status, PushStatus::Accepted);
  EXPECT_TRUE(take_finished) << "take() could not run while done() ran: done() holds the lock";
  std::lock_guard<std::mutex> lock(mutex);
  EXPECT_THAT(takeable_at_done, ElementsAre("1"));
}

TEST_P(QueueContractTest, PushAsyncAcceptedMessageIsThereAfterAReopen) {
  SKIP_UNLESS_DURABLE();
  Queue& q = open();
  Reports reports;
  const sdk::Message m = full_message("1", clock_);
  q.push_async(m, {.dedup_key = "k"}, reports.done_for("1"));
  ASSERT_TRUE(reports.wait_for(1));
  ASSERT_EQ(reports.result("1").status, PushStatus::Accepted);

  Queue& r = factory_->reopen();
  EXPECT_EQ(r.recovered(), 1u);
  auto out = stored_backlog(r);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_TRUE(same_message(m, out[0].message));
  r.push_async(message("2"), {.dedup_key = "k"}, reports.done_for("again"));
  ASSERT_TRUE(reports.wait_for(2));
  EXPECT_EQ(reports.result("again").status, PushStatus::Duplicate);  // the key was stored too
}

// A repeat of a key whose first copy is still on its way to the store is not
// answered before that copy is: never "ok" for a message that may yet fail.
TEST_P(QueueContractTest, PushAsyncRepeatOfAPendingKeyIsAnsweredAfterTheFirstCopy) {
  Queue& q = open();
  Reports reports;
  {
    HeldReporter hold(q);  // a backend's writer cannot report (or commit) more meanwhile
    ASSERT_TRUE(hold.ready());
    q.push_async(message("first"), {.dedup_key = "k"}, reports.done_for("first"));
    q.push_async(message("repeat"), {.dedup_key = "k"}, reports.done_for("repeat"));
    if (reports.has("repeat")) {
      EXPECT_TRUE(reports.has("first")) << "the repeat was answered before the first copy";
    }
  }
  ASSERT_TRUE(reports.wait_for(2));
  EXPECT_THAT(reports.tags(), ElementsAre("first", "repeat"));
  EXPECT_EQ(reports.result("first").status, PushStatus::Accepted);
  EXPECT_EQ(reports.result("repeat").status, PushStatus::Duplicate);
  EXPECT_THAT(ids(q.take(10)), ElementsAre("held", "first"));
}

// `done` runs outside the queue's lock, whatever the outcome: from inside
// it, another thread can use the queue (a `done` that ran under the lock
// would keep these calls waiting until it returned).
TEST_P(QueueContractTest, PushAsyncReportsOutsideTheQueuesLock) {
  QueueLimits limits = roomy();
  limits.max_messages = 3;
  Queue& q = open(limits);
  CallFromAnotherThread other;
  Reports reports;
  Reports inner;
  std::mutex mutex;
  std::map<std::string, bool> unblocked;  // tag -> the other thread's calls finished
  const auto probing = [&](const std::string& tag) {
    Queue::PushDone record = reports.done_for(tag);
    return [&, tag, record](Queue::PushResult result) {
      const bool finished = other.run([&, tag] {
        (void)q.size();
        (void)q.bytes();
        // A repeat of "accepted" (stored before any of these runs): takes
        // the lock, but no slot.
        q.push_async(message("inner-" + tag), {.dedup_key = "k"}, inner.done_for(tag));
      });
      {
        std::lock_guard<std::mutex> lock(mutex);
        unblocked[tag] = finished;
      }
      record(std::move(result));
    };
  };

  q.push_async(message("accepted"), {.dedup_key = "k"}, probing("accepted"));
  ASSERT_TRUE(reports.wait_for(1));
  q.push_async(message("duplicate"), {.dedup_key = "k"}, probing("duplicate"));
  ASSERT_TRUE(reports.wait_for(2));
  {
    HeldReporter hold(q);
    ASSERT_TRUE(hold.ready());
    q.push_async(message("first"), {.dedup_key = "p"}, probing("first"));
    q.push_async(message("repeat of pending"), {.dedup_key = "p"}, probing("repeat of pending"));
  }
  ASSERT_TRUE(reports.wait_for(4));
  q.push_async(message("full"), {}, probing("full"));  // 3 stored + held's
  ASSERT_TRUE(reports.wait_for(5));
  ASSERT_TRUE(inner.wait_for(5));
  for (const auto& r : inner.all()) EXPECT_EQ(r.result.status, PushStatus::Duplicate) << r.tag;

  EXPECT_EQ(reports.result("accepted").status, PushStatus::Accepted);
  EXPECT_EQ(reports.result("duplicate").status, PushStatus::Duplicate);
  EXPECT_EQ(reports.result("first").status, PushStatus::Accepted);
  EXPECT_EQ(reports.result("repeat of pending").status, PushStatus::Duplicate);
  EXPECT_EQ(reports.result("full").status, PushStatus::Full);
  std::lock_guard<std::mutex> lock(mutex);
  for (const char* tag : {"accepted", "duplicate", "first", "repeat of pending", "full"})
    EXPECT_TRUE(unblocked[tag]) << tag << ": done() ran under the queue's lock";
}

// close() with pushes still on their way to the store: each is reported
// (stored or failed), none is dropped, and pushes after close are refused.
TEST_P(QueueContractTest, CloseReportsEveryPushInFlight) {
  constexpr int kInFlight = 50;
  Queue& q = open();
  Reports reports;
  std::thread closer;
  {
    HeldReporter hold(q);
    ASSERT_TRUE(hold.ready());
    for (int i = 0; i < kInFlight; ++i)
      q.push_async(message(std::to_string(i)), {.dedup_key = "k" + std::to_string(i % 25)},
                   reports.done_for(std::to_string(i)));
    closer = std::thread([&] { q.close(); });
    // Known closed when a push is refused as such; pushes before that are
    // in flight too, and must be reported like the rest.
    int probes = 0;
    const auto deadline = std::chrono::steady_clock::now() + kHang;
    for (;;) {
      const std::string tag = "probe-" + std::to_string(probes++);
      q.push_async(message(tag), {}, reports.done_for(tag));
      if (reports.has(tag) && reports.result(tag).status == PushStatus::Unavailable) break;
      if (std::chrono::steady_clock::now() >= deadline) {
        ADD_FAILURE() << "close() never took effect";
        break;
      }
      std::this_thread::yield();
    }
  }  // the writer goes on, and close() finishes
  closer.join();

  const auto all = reports.all();  // close() returned: everything is reported
  std::map<std::string, int> times;
  for (const auto& r : all) ++times[r.tag];
  for (const auto& [tag, n] : times) EXPECT_EQ(n, 1) << tag << " reported " << n << " times";
  std::size_t stored = 0;
  for (int i = 0; i < kInFlight; ++i) {
    const std::string tag = std::to_string(i);
    ASSERT_EQ(times[tag], 1) << tag << " was never reported";
    const auto status = reports.result(tag).status;
    EXPECT_TRUE(status == PushStatus::Accepted || status == PushStatus::Duplicate ||
                status == PushStatus::Unavailable)
        << tag;
    if (status == PushStatus::Accepted) ++stored;
  }
  EXPECT_EQ(stored, 25u) << "one per dedup key: the rest are its repeats";
  q.push_async(message("after"), {}, reports.done_for("after"));
  EXPECT_EQ(reports.result("after").status, PushStatus::Unavailable);
}

// Many event threads pushing at once: every push is reported once, each
// thread's in the order it pushed them, and the queue holds exactly them.
TEST_P(QueueContractTest, ConcurrentPushAsyncCallersAreAllReportedInOrder) {
  constexpr int kThreads = 8;
  constexpr int kPerThread = 2000;
  QueueLimits limits = roomy();
  limits.max_messages = kThreads * kPerThread;
  Queue& q = open(limits);
  std::mutex mutex;
  std::condition_variable cv;
  std::vector<std::vector<int>> order(kThreads);  // per thread: i as reported
  int reported = 0;
  int not_accepted = 0;
  std::latch start(kThreads);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      start.arrive_and_wait();
      for (int i = 0; i < kPerThread; ++i) {
        q.push_async(message(std::to_string(t) + "-" + std::to_string(i), "#t" + std::to_string(t)),
                     {.dedup_key = std::to_string(t) + "/" + std::to_string(i)},
                     [&, t, i](Queue::PushResult result) {
                       std::lock_guard<std::mutex> lock(mutex);
                       order[t].push_back(i);
                       if (result.status != PushStatus::Accepted) ++not_accepted;
                       ++reported;
                       cv.notify_all();  // under the lock: the test may end once it sees this
                     });
      }
    });
  }
  for (auto& t : threads) t.join();
  {
    std::unique_lock<std::mutex> lock(mutex);
    ASSERT_TRUE(cv.wait_for(lock, kHang, [&] { return reported == kThreads * kPerThread; }))
        << reported << " reported";
    EXPECT_EQ(not_accepted, 0);
    for (int t = 0; t < kThreads; ++t) {
      ASSERT_EQ(order[t].size(), static_cast<std::size_t>(kPerThread)) << "thread " << t;
      for (int i = 0; i < kPerThread; ++i)
        ASSERT_EQ(order[t][i], i) << "thread " << t << " was reported out of order";
    }
  }
  EXPECT_EQ(q.size(), static_cast<std::size_t>(kThreads * kPerThread));
  const auto out = q.take(kThreads * kPerThread + 1);
  ASSERT_EQ(out.size(), static_cast<std::size_t>(kThreads * kPerThread));
  std::vector<int> next(kThreads, 0);  // per channel, push order is kept
  for (const auto& q : out) {
    const int t = std::stoi(q.message.channel.substr(2));
    EXPECT_EQ(q.message.id, std::to_string(t) + "-" + std::to_string(next[t]));
    ++next[t];
  }
}

#ifdef SP_QUEUE_CONTRACT_REDIS
const Backend kBackends[] = {
    {"Redis", &make_factory<RedisFactory>},
};
#else
const Backend kBackends[] = {
    {"Memory", &make_factory<MemoryFactory>},
    {"Sqlite", &make_factory<SqliteFactory>},
};
#endif

INSTANTIATE_TEST_SUITE_P(Backends, QueueContractTest, ::testing::ValuesIn(kBackends),
                         [](const ::testing::TestParamInfo<Backend>& info) {
                           return std::string(info.param.name);
                         });

#ifndef SP_QUEUE_CONTRACT_REDIS
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

// Nothing outlives the process, so there is never a stored backlog: every
// message is announced by take().
TEST(MemoryQueueTest, HasNoStoredBacklog) {
  MemoryQueue q(10);
  ASSERT_EQ(q.push(message("1")).status, PushStatus::Accepted);
  EXPECT_THAT(q.backlog(), IsEmpty());
  EXPECT_EQ(q.backlog_upto(), 0u);
  EXPECT_EQ(q.recovered(), 0u);
  EXPECT_THAT(ids(q.take(10)), ElementsAre("1"));
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
  q->ack(taken[0]);
  EXPECT_EQ(q->size(), accepted.size() - 1);
  q->close();
  q.reset();

  auto r = open(options());
  EXPECT_EQ(r->recovered(), accepted.size() - 1);
  const std::vector<std::string> rest(accepted.begin() + 1, accepted.end());
  EXPECT_EQ(ids(stored_backlog(*r)), rest);
}

// What "Accepted" promises, seen from outside: a copy of the database files
// taken while `done` runs (on the writer thread, so nothing is being
// written) already holds the message.
TEST_F(SqliteQueueTest, PushAsyncAcceptedMessageIsInTheFileWhenItsDoneRuns) {
  auto q = open(options());
  TempDir copy;
  Reports reports;
  Queue::PushDone record = reports.done_for("1");
  q->push_async(message("1"), {}, [&](Queue::PushResult result) {
    for (const char* name : {"queue.db", "queue.db-wal"}) {
      std::error_code ec;
      std::filesystem::copy_file(dir_.path() / name, copy.path() / name, ec);
    }
    record(std::move(result));
  });
  ASSERT_TRUE(reports.wait_for(1));
  ASSERT_EQ(reports.result("1").status, PushStatus::Accepted);

  SqliteQueueOptions o = options();
  o.path = (copy.path() / "queue.db").string();
  auto snapshot = open(o);
  EXPECT_EQ(snapshot->recovered(), 1u);
  EXPECT_THAT(ids(stored_backlog(*snapshot)), ElementsAre("1"));
}

// A failed commit is reported to its push as Unavailable with the cause, and
// a repeat of that push's dedup key that came meanwhile gets the same
// answer (push() gave it that too): it was not stored, so it is not a
// Duplicate, and the key is free for the client's retry.
TEST_F(SqliteQueueTest, PushAsyncRepeatOfAPendingKeyGetsTheFirstCopysFailure) {
  SqliteQueueOptions o = options();
  o.max_page_count = 64;  // 256 KiB with 4 KiB pages
  auto q = open(o);
  const auto big = [](const std::string& id) { return message(id, "#big", std::string(16 * 1024, 'x')); };
  int filled = 0;
  while (q->push(big("fill-" + std::to_string(filled))).status == PushStatus::Accepted) {
    ASSERT_LT(++filled, 100) << "the page cap was never reached";
  }

  Reports reports;
  std::size_t stored = static_cast<std::size_t>(filled);
  {
    HeldReporter hold(*q);
    ASSERT_TRUE(hold.ready());
    if (hold.status() == PushStatus::Accepted) ++stored;  // a small one may still fit
    q->push_async(big("first"), {.dedup_key = "k"}, reports.done_for("first"));
    q->push_async(big("repeat"), {.dedup_key = "k"}, reports.done_for("repeat"));
    EXPECT_FALSE(reports.has("repeat")) << "answered before the first copy's commit";
  }
  ASSERT_TRUE(reports.wait_for(2));
  EXPECT_THAT(reports.tags(), ElementsAre("first", "repeat"));
  const auto first = reports.result("first");
  EXPECT_EQ(first.status, PushStatus::Unavailable);
  EXPECT_THAT(first.detail, HasSubstr("full"));
  EXPECT_EQ(reports.result("repeat").status, PushStatus::Unavailable);
  EXPECT_EQ(reports.result("repeat").detail, first.detail);
  EXPECT_EQ(q->size(), stored);  // the failed ones are not counted

  // The key was not kept: once there is room, the client's retry is stored.
  for (const auto& m : q->take(stored + 10)) q->ack(m);
  EXPECT_EQ(q->push(message("retry"), {.dedup_key = "k"}).status, PushStatus::Accepted);
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

#endif  // SP_QUEUE_CONTRACT_REDIS
}  // namespace

}  // namespace slack_proxy

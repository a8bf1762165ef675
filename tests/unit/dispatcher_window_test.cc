// The dispatcher at scale: a lane holds a window of its messages and the
// queue the rest, paged in order (across retries and restarts), and a
// scheduling round costs the lanes that are due, not the lanes that exist.
// Everything runs on the fake clock and a ManualExecutor: no thread, no
// sleep, and the counts come from the dispatcher's own accessors.
#include "dispatcher.h"

#include <chrono>
#include <map>
#include <memory>
#include <set>
#include <sstream>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <spdlog/sinks/ostream_sink.h>

#include <slack_proxy/sdk/testing/fakes.h>
#include <slack_proxy/sdk/testing/mocks.h>

#include "executor.h"
#include "metric_values.h"
#include "queue/memory_queue.h"
#include "queue/sqlite_queue.h"
#include "queue_test_support.h"

namespace slack_proxy {
namespace {

using namespace std::chrono_literals;
using sdk::Message;
using sdk::SendResult;
using sdk::SteadyTime;
using ::testing::_;
using ::testing::ElementsAre;
using ::testing::ElementsAreArray;
using ::testing::Invoke;
using ::testing::NiceMock;

std::string lane_of(const std::string& channel) { return "default/:" + channel; }

Message make_message(const std::string& id, const std::string& channel) {
  Message m;
  m.id = id;
  m.pipeline = "default";
  m.channel = channel;
  m.original_channel = channel;
  m.payload = R"({"channel":")" + channel + R"(","text":")" + id + R"("})";
  return m;
}

std::vector<std::string> numbered(const std::string& prefix, int from, int to) {
  std::vector<std::string> ids;
  for (int i = from; i < to; ++i) ids.push_back(prefix + std::to_string(i));
  return ids;
}

// One send per second for everything it limits, as a workspace bucket with
// no burst would allow: what every waiting lane of a workspace shares.
class OnePerSecond final : public sdk::RateLimiter {
 public:
  SteadyTime next_send_time(const Message&, SteadyTime) override {
    ++asked;
    return next_;
  }
  void on_send(const Message&, SteadyTime now) override { next_ = now + 1s; }
  std::size_t asked = 0;

 private:
  SteadyTime next_{};
};

// A queue whose reads fail while the test says so, like a SQLite read that
// hits an I/O error or its busy timeout; everything else is the inner one.
class FlakyQueue final : public Queue {
 public:
  explicit FlakyQueue(Queue& inner) : inner_(inner) {}
  bool fail_reads = false;
  bool fail_backlog = false;

  using Queue::push;
  PushResult push(sdk::Message m, const PushOptions& o) override {
    return inner_.push(std::move(m), o);
  }
  std::vector<Queued> take(std::size_t max) override { return inner_.take(max); }
  std::vector<LaneBacklog> backlog() override {
    if (fail_backlog) throw QueueError("disk I/O error (test)");
    return inner_.backlog();
  }
  std::vector<Queued> read_lane(const std::string& lane, std::uint64_t after, std::uint64_t upto,
                                std::size_t max) override {
    if (fail_reads) throw QueueError("disk I/O error (test)");
    if (lost.count(lane) > 0) return {};
    return inner_.read_lane(lane, after, upto, max);
  }
  std::size_t lane_size(const std::string& lane) override { return inner_.lane_size(lane); }
  std::uint64_t backlog_upto() const override { return inner_.backlog_upto(); }
  // As a shared backend (Redis) would: lanes handed to this replica once,
  // and lanes another replica delivers now (read as nothing).
  std::vector<LaneBacklog> handed;
  std::set<std::string> lost;
  std::vector<LaneBacklog> take_over() override { return std::exchange(handed, {}); }
  bool holds(const std::string& lane) override { return lost.count(lane) == 0; }
  void ack(const Queued& q) override { inner_.ack(q); }
  void dead_letter(std::uint64_t seq, DeadLetter l) override { inner_.dead_letter(seq, std::move(l)); }
  std::size_t size() const override { return inner_.size(); }
  std::size_t bytes() const override { return inner_.bytes(); }
  QueueLimits limits() const override { return inner_.limits(); }
  DeadLetterStore& dead_letters() override { return inner_.dead_letters(); }
  void on_push(std::function<void()> l) override { inner_.on_push(std::move(l)); }

 private:
  Queue& inner_;
};

class DispatcherWindowTest : public ::testing::Test {
 protected:
  DispatcherWindowTest() {
    pipeline->name = "default";
    pipeline->sink = sink;
    ON_CALL(*sink, send(_)).WillByDefault(Invoke([this](const Message& m) {
      sent[m.channel].push_back(m.id);
      sent_in_order.push_back(m.id);
      return SendResult::ok();
    }));
  }

  Dispatcher& dispatcher(Queue& q, DispatcherWindow window) {
    dispatcher_ = std::make_unique<Dispatcher>(
        q, std::vector<std::shared_ptr<Pipeline>>{pipeline}, clock, metrics,
        test_support::null_logger(), executor, std::numeric_limits<std::size_t>::max(), window);
    return *dispatcher_;
  }

  void push(Queue& q, const std::string& id, const std::string& channel) {
    ASSERT_EQ(q.push(make_message(id, channel)).status, Queue::PushStatus::Accepted);
  }

  // Rounds and sends until nothing is left, moving the fake clock to the
  // next wake-up whenever nothing is due now. After each round `check` sees
  // the dispatcher.
  template <typename Check>
  void drain(Dispatcher& d, Queue& q, Check&& check) {
    for (int i = 0; i < 100'000; ++i) {
      const SteadyTime next = d.run_once();
      check(d);
      if (executor.pending() > 0) {
        executor.run_all();
        continue;
      }
      if (q.size() == 0) return;
      ASSERT_NE(next, SteadyTime::max()) << "messages left, but nothing will ever be due";
      clock.advance(next - clock.now());
    }
    FAIL() << "not drained after 100,000 rounds";
  }

  sdk::testing::FakeClock clock;
  prometheus::Registry registry;
  CoreMetrics metrics{registry};
  ManualExecutor executor;
  std::shared_ptr<NiceMock<sdk::testing::MockSink>> sink =
      std::make_shared<NiceMock<sdk::testing::MockSink>>();
  std::shared_ptr<Pipeline> pipeline = std::make_shared<Pipeline>();
  std::map<std::string, std::vector<std::string>> sent;  // by channel
  std::vector<std::string> sent_in_order;

 private:
  std::unique_ptr<Dispatcher> dispatcher_;
};

QueueLimits roomy() {
  QueueLimits limits;
  limits.max_messages = 200'000;
  limits.max_bytes = std::size_t{1} << 30;
  limits.dedup_window = 0ms;
  return limits;
}

// A SQLite queue file in `dir`, roomy, without an fsync per commit.
SqliteQueueOptions stored_in(const test_support::TempDir& dir) {
  SqliteQueueOptions options;
  options.path = (dir.path() / "queue.db").string();
  options.limits = roomy();
  options.sync = SqliteQueueOptions::Sync::Normal;
  return options;
}

TEST_F(DispatcherWindowTest, ALaneWithALongBacklogNeverHoldsMoreThanItsWindow) {
  MemoryQueue queue(roomy(), clock);
  for (int i = 0; i < 200; ++i) push(queue, "a" + std::to_string(i), "#a");
  for (int i = 0; i < 3; ++i) push(queue, "b" + std::to_string(i), "#b");
  Dispatcher& d = dispatcher(queue, DispatcherWindow{4, 1 << 20});

  d.run_once();
  EXPECT_EQ(d.window_of(lane_of("#a")), 4u);
  EXPECT_EQ(d.channel_depths().at("#a"), 200u) << "the depth counts what the queue stores";
  std::size_t most_in_memory = 0;
  drain(d, queue, [&](Dispatcher& dd) {
    ASSERT_LE(dd.window_of(lane_of("#a")), 4u);
    ASSERT_LE(dd.window_of(lane_of("#b")), 4u);
    most_in_memory = std::max(most_in_memory, dd.messages_in_memory());
  });

  EXPECT_LE(most_in_memory, 8u);
  EXPECT_THAT(sent["#a"], ElementsAreArray(numbered("a", 0, 200)));
  EXPECT_THAT(sent["#b"], ElementsAreArray(numbered("b", 0, 3)));
  EXPECT_TRUE(d.channel_depths().empty());
  EXPECT_EQ(d.messages_in_memory(), 0u);
}

TEST_F(DispatcherWindowTest, ALaneLongerThanItsWindowIsPagedInOrderAcrossRetries) {
  MemoryQueue queue(roomy(), clock);
  auto retry = std::make_shared<NiceMock<sdk::testing::MockRetryPolicy>>();
  ON_CALL(*retry, decide(_, _)).WillByDefault(Invoke([](const Message&, const SendResult&) {
    return sdk::RetryDecision::retry_after(1s, "transient");
  }));
  pipeline->retry = retry;
  std::map<std::string, int> failures_left{{"a3", 1}, {"a5", 2}};
  ON_CALL(*sink, send(_)).WillByDefault(Invoke([&](const Message& m) {
    sent_in_order.push_back(m.id);
    if (failures_left[m.id] > 0) {
      --failures_left[m.id];
      return SendResult::failed(503, "service_unavailable");
    }
    return SendResult::ok();
  }));
  for (int i = 0; i < 8; ++i) push(queue, "a" + std::to_string(i), "#a");
  Dispatcher& d = dispatcher(queue, DispatcherWindow{2, 1 << 20});

  drain(d, queue, [](Dispatcher& dd) { ASSERT_LE(dd.window_of(lane_of("#a")), 2u); });

  EXPECT_THAT(sent_in_order, ElementsAreArray(std::vector<std::string>{
                                 "a0", "a1", "a2", "a3", "a3", "a4", "a5", "a5", "a5", "a6",
                                 "a7"}));
}

TEST_F(DispatcherWindowTest, WindowsOverTheirByteBudgetGiveBackWhatTheyHaveNotTried) {
  MemoryQueue queue(roomy(), clock);
  auto limiter = std::make_shared<NiceMock<sdk::testing::MockRateLimiter>>();
  ON_CALL(*limiter, next_send_time(_, _)).WillByDefault(Invoke([&](const Message&, SteadyTime) {
    return clock.now() + 1h;  // nothing may go: every lane waits
  }));
  pipeline->limiters.push_back(limiter);
  for (int c = 0; c < 50; ++c)
    for (int i = 0; i < 10; ++i)
      push(queue, "m" + std::to_string(c) + "-" + std::to_string(i), "#c" + std::to_string(c));
  // Room for a couple of windows only.
  Dispatcher& d = dispatcher(queue, DispatcherWindow{10, 2000});

  d.run_once();

  EXPECT_EQ(d.lane_count(), 50u);
  EXPECT_LE(d.messages_in_memory(), 20u) << "waiting lanes past the budget keep nothing";
  std::size_t spare = 0;  // room allocated beyond what the windows hold
  for (int c = 0; c < 50; ++c) {
    const std::string lane = lane_of("#c" + std::to_string(c));
    spare += d.window_capacity_of(lane) - d.window_of(lane);
  }
  EXPECT_EQ(spare, 0u) << "waiting lanes keep room they do not use, uncounted by the budget";
  EXPECT_EQ(queue.size(), 500u);
  std::size_t counted = 0;
  for (const auto& [channel, n] : d.channel_depths()) counted += n;
  EXPECT_EQ(counted, 500u);
}

// Lanes of a durable queue, paged in after a restart: the store is read
// lane by lane, in order, never loaded whole.
TEST_F(DispatcherWindowTest, AStoredBacklogIsPagedInOrderAfterARestart) {
  const test_support::TempDir dir("sp-dispatch");
  const SqliteQueueOptions options = stored_in(dir);
  {
    SqliteQueue before(options, clock, test_support::null_logger());
    for (int i = 0; i < 30; ++i) {
      push(before, "a" + std::to_string(i), "#a");
      push(before, "b" + std::to_string(i), "#b");
    }
    // The first five of #a were delivered before the restart.
    int acked = 0;
    for (const Queued& q : before.take(100))
      if (q.message.channel == "#a" && acked < 5) {
        before.ack(q);
        ++acked;
      }
    before.close();
  }
  {
    SqliteQueue after(options, clock, test_support::null_logger());
    ASSERT_EQ(after.size(), 55u);
    Dispatcher& d = dispatcher(after, DispatcherWindow{4, 1 << 20});
    std::size_t most_in_memory = 0;
    drain(d, after, [&](Dispatcher& dd) {
      most_in_memory = std::max(most_in_memory, dd.messages_in_memory());
    });
    EXPECT_LE(most_in_memory, 8u);
    after.close();
  }

  EXPECT_THAT(sent["#a"], ElementsAreArray(numbered("a", 5, 30)));
  EXPECT_THAT(sent["#b"], ElementsAreArray(numbered("b", 0, 30)));
}

TEST_F(DispatcherWindowTest, HundredThousandWaitingLanesWithOneDueCostOneLanesWorkPerRound) {
  MemoryQueue queue(roomy(), clock);
  auto limiter = std::make_shared<NiceMock<sdk::testing::MockRateLimiter>>();
  ON_CALL(*limiter, next_send_time(_, _)).WillByDefault(Invoke([](const Message& m, SteadyTime now) {
    return m.channel == "#due" ? now : now + 1h;
  }));
  pipeline->limiters.push_back(limiter);
  constexpr int kLanes = 100'000;
  for (int c = 0; c < kLanes; ++c) push(queue, "w" + std::to_string(c), "#w" + std::to_string(c));
  Dispatcher& d = dispatcher(queue, DispatcherWindow{});

  d.run_once();  // every new lane is asked once, and all but none wait an hour
  ASSERT_EQ(d.last_round().lanes_asked, static_cast<std::size_t>(kLanes));
  ASSERT_EQ(d.lane_count(), static_cast<std::size_t>(kLanes));

  clock.advance(30min);
  d.run_once();
  EXPECT_EQ(d.last_round().lanes_asked, 0u);
  EXPECT_EQ(d.last_round().batches_fired, 0u);

  for (int i = 0; i < 3; ++i) {
    push(queue, "due" + std::to_string(i), "#due");
    d.run_once();
    EXPECT_EQ(d.last_round().lanes_asked, 1u) << "round " << i;
    EXPECT_EQ(d.last_round().batches_fired, 0u);
    executor.run_all();
    d.run_once();  // the result comes back; nothing else is due
    EXPECT_EQ(d.last_round().lanes_asked, 0u);
  }
  EXPECT_THAT(sent["#due"], ElementsAreArray(numbered("due", 0, 3)));
  EXPECT_EQ(d.lane_count(), static_cast<std::size_t>(kLanes));
  EXPECT_EQ(queue.size(), static_cast<std::size_t>(kLanes));
}

TEST_F(DispatcherWindowTest, AWorkspaceLimiterOverManyWaitingLanesAsksOneLanePerToken) {
  MemoryQueue queue(roomy(), clock);
  auto limiter = std::make_shared<OnePerSecond>();
  pipeline->limiters.push_back(limiter);
  constexpr int kLanes = 10'000;
  for (int c = 0; c < kLanes; ++c) push(queue, "w" + std::to_string(c), "#w" + std::to_string(c));
  Dispatcher& d = dispatcher(queue, DispatcherWindow{});
  d.run_once();
  executor.run_all();
  ASSERT_EQ(sent_in_order.size(), 1u);

  for (int second = 1; second <= 20; ++second) {
    clock.advance(1s);
    limiter->asked = 0;
    d.run_once();
    EXPECT_LE(d.last_round().lanes_asked, 2u) << "second " << second;
    EXPECT_LE(limiter->asked, 2u) << "second " << second;
    executor.run_all();
    EXPECT_EQ(sent_in_order.size(), static_cast<std::size_t>(second + 1)) << "one per token";
  }
  // Channels are served in the order their messages arrived, as one FIFO.
  EXPECT_THAT(sent_in_order, ElementsAreArray(numbered("w", 0, 21)));
}

TEST_F(DispatcherWindowTest, DeadLettersGiveBackWhatTheirMessagesCountedInTheBudget) {
  MemoryQueue queue(roomy(), clock);
  pipeline->caller_token = true;  // and none of these has one: each is a dead letter
  for (int i = 0; i < 10; ++i) push(queue, "a" + std::to_string(i), "#a");
  Dispatcher& d = dispatcher(queue, DispatcherWindow{4, 1 << 20});

  drain(d, queue, [](Dispatcher&) {});

  EXPECT_EQ(queue.dead_letters().count(), 10u);
  EXPECT_EQ(d.messages_in_memory(), 0u);
  EXPECT_EQ(d.bytes_in_memory(), 0u) << "a dead letter's payload left counted in the budget";
}

TEST_F(DispatcherWindowTest, ALaneOfUndeliverableMessagesYieldsToTheOtherLanes) {
  MemoryQueue queue(roomy(), clock);
  pipeline->caller_token = true;
  for (int i = 0; i < 500; ++i) push(queue, "dead" + std::to_string(i), "#dead");
  Message live = make_message("live", "#live");
  live.delivery_token = "xoxp-caller-token-for-the-test";
  ASSERT_EQ(queue.push(live).status, Queue::PushStatus::Accepted);
  Dispatcher& d = dispatcher(queue, DispatcherWindow{});

  d.run_once();
  EXPECT_LT(queue.dead_letters().count(), 500u) << "one ask settled the whole lane";
  EXPECT_GT(queue.dead_letters().count(), 0u);
  executor.run_all();
  EXPECT_THAT(sent_in_order, ElementsAre("live")) << "the other lane went in the same round";

  drain(d, queue, [](Dispatcher&) {});
  EXPECT_EQ(queue.dead_letters().count(), 500u);
}

TEST_F(DispatcherWindowTest, AFailedReadKeepsTheLanesPlaceSoNothingOvertakesWhatIsStored) {
  MemoryQueue inner(roomy(), clock);
  FlakyQueue queue(inner);
  for (int i = 0; i < 6; ++i) push(queue, "a" + std::to_string(i), "#a");
  Dispatcher& d = dispatcher(queue, DispatcherWindow{2, 1 << 20});
  d.run_once();  // a0 and a1 in the window, a2..a5 left in the store
  queue.fail_reads = true;
  for (int round = 0; round < 10; ++round) {
    const SteadyTime next = d.run_once();
    if (round == 3) push(queue, "a6", "#a");  // arrives while the store cannot be read
    if (executor.pending() > 0) {
      executor.run_all();
      continue;
    }
    ASSERT_NE(next, SteadyTime::max()) << "round " << round << ": the lane was given up on";
    clock.advance(next - clock.now());
  }
  EXPECT_THAT(sent_in_order, ElementsAre("a0", "a1"));
  EXPECT_EQ(d.channel_depths().at("#a"), 5u);

  queue.fail_reads = false;
  drain(d, queue, [](Dispatcher&) {});
  EXPECT_THAT(sent_in_order, ElementsAreArray(numbered("a", 0, 7)));
}

TEST_F(DispatcherWindowTest, AFailedBacklogReadIsAskedAgainAndTheStoredMessagesStillGoFirst) {
  const test_support::TempDir dir("sp-dispatch");
  const SqliteQueueOptions options = stored_in(dir);
  {
    SqliteQueue before(options, clock, test_support::null_logger());
    for (int i = 0; i < 3; ++i) push(before, "a" + std::to_string(i), "#a");
    before.close();
  }
  SqliteQueue after(options, clock, test_support::null_logger());
  FlakyQueue queue(after);
  queue.fail_backlog = true;
  Dispatcher& d = dispatcher(queue, DispatcherWindow{});
  d.run_once();
  push(queue, "a3", "#a");  // newer than the stored three
  d.run_once();
  executor.run_all();
  EXPECT_TRUE(sent_in_order.empty());

  queue.fail_backlog = false;
  clock.advance(1s);
  drain(d, queue, [](Dispatcher&) {});
  EXPECT_THAT(sent_in_order, ElementsAreArray(numbered("a", 0, 4)));
  after.close();
}

// A lane taken over from a replica that died (Queue::take_over()) is read
// from its first stored message, and what arrives behind it comes after.
TEST_F(DispatcherWindowTest, ALaneTakenOverIsPagedInFromItsFirstMessageBeforeWhatFollows) {
  MemoryQueue inner(100);
  FlakyQueue queue(inner);
  for (int i = 0; i < 3; ++i) push(queue, "a" + std::to_string(i), "#a");
  const auto elsewhere = inner.take(10);  // announced to the replica that died
  ASSERT_EQ(elsewhere.size(), 3u);
  Dispatcher& d = dispatcher(queue, DispatcherWindow{2, 1 << 20});
  d.run_once();
  executor.run_all();
  EXPECT_TRUE(sent_in_order.empty());  // nobody told this replica of them yet

  queue.handed = {LaneBacklog{lane_key(elsewhere[0].message), elsewhere[0].seq, 3,
                              elsewhere[2].seq}};
  push(queue, "a3", "#a");  // announced by take() in the same round, behind them
  drain(d, queue, [](Dispatcher&) {});
  EXPECT_THAT(sent_in_order, ElementsAreArray(numbered("a", 0, 4)));
}

// A lane another replica took over (this one was taken for dead) is
// forgotten: nothing more of it is sent from here, it is not counted, and
// the log says why (not that its messages could not be read).
TEST_F(DispatcherWindowTest, ALaneAnotherReplicaTookOverIsForgottenAndNotSentFromHere) {
  MemoryQueue inner(100);
  FlakyQueue queue(inner);
  std::ostringstream logged;
  Dispatcher d(queue, std::vector<std::shared_ptr<Pipeline>>{pipeline}, clock, metrics,
               std::make_shared<spdlog::logger>(
                   "test", std::make_shared<spdlog::sinks::ostream_sink_mt>(logged)),
               executor, std::numeric_limits<std::size_t>::max(), DispatcherWindow{1, 1 << 20});
  for (int i = 0; i < 4; ++i) push(queue, "a" + std::to_string(i), "#a");
  d.run_once();  // a0 in the window, a1..a3 left in the store
  executor.run_all();
  ASSERT_THAT(sent_in_order, ElementsAre("a0"));

  queue.lost.insert(lane_key(make_message("x", "#a")));
  for (int round = 0; round < 5; ++round) {
    d.run_once();
    executor.run_all();
    clock.advance(1s);
  }
  EXPECT_THAT(sent_in_order, ElementsAre("a0"));
  EXPECT_EQ(d.channel_depths().count("#a"), 0u);
  EXPECT_EQ(inner.size(), 3u) << "the other replica's to send";
  EXPECT_NE(logged.str().find("3 stored message(s) are delivered by another replica now"),
            std::string::npos)
      << logged.str();
  EXPECT_EQ(logged.str().find("could not be read back"), std::string::npos) << logged.str();
}

TEST_F(DispatcherWindowTest, AfterARestartAWorkspaceLimiterAsksOneStoredLanePerToken) {
  const test_support::TempDir dir("sp-dispatch");
  const SqliteQueueOptions options = stored_in(dir);
  constexpr int kLanes = 2'000;
  {
    SqliteQueue before(options, clock, test_support::null_logger());
    for (int c = 0; c < kLanes; ++c)
      push(before, "w" + std::to_string(c), "#w" + std::to_string(c));
    before.close();
  }
  SqliteQueue after(options, clock, test_support::null_logger());
  auto limiter = std::make_shared<OnePerSecond>();
  pipeline->limiters.push_back(limiter);
  Dispatcher& d = dispatcher(after, DispatcherWindow{});

  d.run_once();
  EXPECT_LE(d.last_round().lanes_asked, 2u) << "every stored lane was read and asked";
  executor.run_all();
  for (int second = 1; second <= 5; ++second) {
    clock.advance(1s);
    d.run_once();
    EXPECT_LE(d.last_round().lanes_asked, 2u) << "second " << second;
    executor.run_all();
  }
  EXPECT_THAT(sent_in_order, ElementsAreArray(numbered("w", 0, 6)));
  after.close();
}

TEST_F(DispatcherWindowTest, APauseOfAChannelThatWentQuietIsForgottenOnceItIsOver) {
  MemoryQueue queue(roomy(), clock);
  auto retry = std::make_shared<NiceMock<sdk::testing::MockRetryPolicy>>();
  ON_CALL(*retry, decide(_, _)).WillByDefault(Invoke([](const Message&, const SendResult&) {
    return sdk::RetryDecision::give_up("test");
  }));
  pipeline->retry = retry;
  ON_CALL(*sink, send(_)).WillByDefault(Invoke([&](const Message& m) {
    sent_in_order.push_back(m.id);
    SendResult r = SendResult::failed(429, "ratelimited");
    r.back_pressure = sdk::BackPressure{sdk::BackPressure::Scope::Channel, clock.now() + 10s};
    return r;
  }));
  for (int c = 0; c < 100; ++c) push(queue, "q" + std::to_string(c), "#q" + std::to_string(c));
  Dispatcher& d = dispatcher(queue, DispatcherWindow{});
  d.run_once();
  executor.run_all();
  d.run_once();  // each is a dead letter, its lane gone, its channel paused for 10 s
  ASSERT_EQ(queue.dead_letters().count(), 100u);
  ASSERT_EQ(d.lane_count(), 0u);
  EXPECT_EQ(d.pauses_held(), 100u);

  clock.advance(5s);
  d.run_once();
  EXPECT_EQ(d.pauses_held(), 100u) << "a pause still running is kept";
  clock.advance(2min);
  d.run_once();
  EXPECT_EQ(d.pauses_held(), 0u);
}

}  // namespace
}  // namespace slack_proxy

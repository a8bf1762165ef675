#include "dispatcher.h"

#include <chrono>
#include <condition_variable>
#include <map>
#include <memory>
#include <mutex>
#include <sstream>
#include <stdexcept>
#include <string>
#include <tuple>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <spdlog/sinks/ostream_sink.h>

#include <slack_proxy/sdk/testing/fakes.h>
#include <slack_proxy/sdk/testing/mocks.h>

#include <slack_proxy/sdk/outcome.h>

#include "executor.h"
#include "metric_values.h"
#include "queue/memory_queue.h"

namespace slack_proxy {
namespace {

using namespace std::chrono_literals;
using sdk::Message;
using sdk::SendResult;
using sdk::SteadyTime;
using ::testing::_;
using ::testing::ElementsAre;
using ::testing::Field;
using ::testing::Invoke;
using ::testing::NiceMock;
using ::testing::Return;
using ::testing::UnorderedElementsAre;
using test_support::metric_value;

class DispatcherTest : public ::testing::Test {
 protected:
  DispatcherTest() {
    pipeline->name = "default";
    pipeline->sink = sink;
    // Every send succeeds and is recorded, unless a test says otherwise.
    ON_CALL(*sink, send(_)).WillByDefault(Invoke([this](const Message& m) {
      sent.push_back(m.id);
      return SendResult::ok();
    }));
  }

  Dispatcher& dispatcher() {
    if (!dispatcher_)
      dispatcher_ = std::make_unique<Dispatcher>(
          queue, std::vector<std::shared_ptr<Pipeline>>{pipeline}, clock, metrics, log, executor);
    return *dispatcher_;
  }

  void push(const std::string& id, const std::string& channel) {
    Message m;
    m.id = id;
    m.pipeline = "default";
    m.channel = channel;
    m.original_channel = channel;
    m.payload = R"({"channel":")" + channel + R"(","text":")" + id + R"("})";
    ASSERT_EQ(queue.push(std::move(m)).status, Queue::PushStatus::Accepted);
  }

  // Rounds and sends until nothing is left to do at the current fake time.
  void run_until_quiet() {
    for (int i = 0; i < 100; ++i) {
      dispatcher().run_once();
      if (executor.pending() == 0) return;
      executor.run_all();
    }
    FAIL() << "dispatcher still busy after 100 rounds";
  }

  double counter(const std::string& name, const std::string& channel) {
    return metric_value(registry, name, {{"channel", channel}});
  }

  sdk::testing::FakeClock clock;
  MemoryQueue queue{100};
  prometheus::Registry registry;
  CoreMetrics metrics{registry};
  ManualExecutor executor;
  std::shared_ptr<NiceMock<sdk::testing::MockSink>> sink =
      std::make_shared<NiceMock<sdk::testing::MockSink>>();
  std::shared_ptr<Pipeline> pipeline = std::make_shared<Pipeline>();
  std::vector<std::string> sent;
  std::shared_ptr<spdlog::logger> log = test_support::null_logger();

 private:
  std::unique_ptr<Dispatcher> dispatcher_;
};

TEST_F(DispatcherTest, DeliversMessagesOfOneChannelInPushOrder) {
  push("a1", "#a");
  push("a2", "#a");
  push("a3", "#a");

  run_until_quiet();

  EXPECT_THAT(sent, ElementsAre("a1", "a2", "a3"));
}

TEST_F(DispatcherTest, StartsOnlyOneSendPerChannelWhileOneIsPending) {
  push("a1", "#a");
  push("a2", "#a");

  dispatcher().run_once();
  ASSERT_EQ(executor.pending(), 1u);
  dispatcher().run_once();  // a1 still in flight: a2 must wait
  EXPECT_EQ(executor.pending(), 1u);

  executor.run_one();  // a1 ends
  EXPECT_THAT(sent, ElementsAre("a1"));
  dispatcher().run_once();
  EXPECT_EQ(executor.pending(), 1u);
  executor.run_one();
  EXPECT_THAT(sent, ElementsAre("a1", "a2"));
}

TEST_F(DispatcherTest, PendingSendOnOneChannelDoesNotHoldBackAnotherChannel) {
  push("a1", "#a");
  dispatcher().run_once();
  ASSERT_EQ(executor.pending(), 1u);  // a1 hangs in the executor

  push("b1", "#b");
  dispatcher().run_once();

  EXPECT_EQ(executor.pending(), 2u);
  executor.run_all();
  EXPECT_THAT(sent, UnorderedElementsAre("a1", "b1"));
}

// Lanes turned away together until the same time wait as one batch, and
// when the first is turned away again the rest follow it unasked. That is
// only sound within one caller: a limiter keyed by caller (token_bucket's
// "client") that turns caller a away again says nothing about caller b.
TEST_F(DispatcherTest, AnotherCallersLaneIsAskedWhenOneCallerIsTurnedAwayAgain) {
  auto limiter = std::make_shared<NiceMock<sdk::testing::MockRateLimiter>>();
  pipeline->limiters.push_back(limiter);
  const SteadyTime t = clock.now() + 1s;
  ON_CALL(*limiter, next_send_time(_, _))
      .WillByDefault(Invoke([&](const Message& m, SteadyTime now) {
        if (now < t) return t;                         // both wait until t...
        return m.caller == "a" ? t + 1000s : now;      // ...then only a waits on
      }));
  for (const auto& [id, channel, caller] :
       {std::tuple{"a1", "#a", "a"}, std::tuple{"b1", "#b", "b"}}) {
    Message m;
    m.id = id;
    m.pipeline = "default";
    m.channel = channel;
    m.original_channel = channel;
    m.caller = caller;
    m.payload = R"({"text":"x"})";
    ASSERT_EQ(queue.push(std::move(m)).status, Queue::PushStatus::Accepted);
  }
  run_until_quiet();
  EXPECT_TRUE(sent.empty());
  clock.advance(1s);
  run_until_quiet();
  EXPECT_THAT(sent, ElementsAre("b1"));
}

TEST_F(DispatcherTest, ChannelWaitingOnItsLimiterDoesNotDelayAnotherAndSetsTheNextWakeUp) {
  const SteadyTime slow_due = clock.now() + 3s;
  auto limiter = std::make_shared<NiceMock<sdk::testing::MockRateLimiter>>();
  ON_CALL(*limiter, next_send_time(_, _))
      .WillByDefault(Invoke([slow_due](const Message& m, SteadyTime now) {
        return m.channel == "#slow" ? slow_due : now;
      }));
  pipeline->limiters.push_back(limiter);
  push("slow1", "#slow");
  push("fast1", "#fast");

  const SteadyTime next = dispatcher().run_once();

  EXPECT_EQ(next, slow_due);
  executor.run_all();
  EXPECT_THAT(sent, ElementsAre("fast1"));
}

TEST_F(DispatcherTest, LimiterOnSendIsCalledOncePerSendAndNeverForDeniedMessages) {
  auto limiter = std::make_shared<NiceMock<sdk::testing::MockRateLimiter>>();
  ON_CALL(*limiter, next_send_time(_, _)).WillByDefault(Invoke([](const Message&, SteadyTime now) {
    return now;
  }));
  auto guard = std::make_shared<NiceMock<sdk::testing::MockGuard>>();
  ON_CALL(*guard, before_send(_, _)).WillByDefault(Invoke([](const Message& m, SteadyTime) {
    return m.id == "denied" ? sdk::GuardVerdict::deny("test") : sdk::GuardVerdict::pass();
  }));
  pipeline->limiters.push_back(limiter);
  pipeline->guards.push_back(guard);
  EXPECT_CALL(*limiter, on_send(Field(&Message::id, "a1"), _)).Times(1);
  EXPECT_CALL(*limiter, on_send(Field(&Message::id, "b1"), _)).Times(1);
  EXPECT_CALL(*limiter, on_send(Field(&Message::id, "denied"), _)).Times(0);
  push("a1", "#a");
  push("denied", "#a");
  push("b1", "#b");

  run_until_quiet();

  EXPECT_THAT(sent, UnorderedElementsAre("a1", "b1"));
}

TEST_F(DispatcherTest, TransientFailureIsResentExactlyWhenTheRetryPolicySays) {
  auto retry = std::make_shared<NiceMock<sdk::testing::MockRetryPolicy>>();
  std::vector<std::uint32_t> attempts_at_decision;
  ON_CALL(*retry, decide(_, _)).WillByDefault(Invoke([&](const Message& m, const SendResult&) {
    attempts_at_decision.push_back(m.attempts);
    return sdk::RetryDecision::retry_after(5s, "transient");
  }));
  pipeline->retry = retry;
  std::vector<std::uint32_t> attempts_at_send;
  EXPECT_CALL(*sink, send(_))
      .WillOnce(Invoke([&](const Message& m) {
        attempts_at_send.push_back(m.attempts);
        return SendResult::failed(503, "service_unavailable");
      }))
      .WillOnce(Invoke([&](const Message& m) {
        attempts_at_send.push_back(m.attempts);
        return SendResult::ok();
      }));
  push("a1", "#a");

  dispatcher().run_once();
  executor.run_all();  // the first attempt fails
  const SteadyTime failed_at = clock.now();
  EXPECT_EQ(dispatcher().run_once(), failed_at + 5s);
  EXPECT_EQ(executor.pending(), 0u);

  clock.advance(5s - 1ms);
  dispatcher().run_once();
  EXPECT_EQ(executor.pending(), 0u) << "resent before the retry delay";

  clock.advance(1ms);
  dispatcher().run_once();
  ASSERT_EQ(executor.pending(), 1u) << "not resent at the retry delay";
  executor.run_all();
  dispatcher().run_once();

  EXPECT_THAT(attempts_at_send, ElementsAre(1u, 2u));
  EXPECT_THAT(attempts_at_decision, ElementsAre(1u));
  EXPECT_EQ(counter("slackproxy_requests_retried_total", "#a"), 1);
  EXPECT_EQ(counter("slackproxy_requests_succeeded_total", "#a"), 1);
  EXPECT_EQ(queue.size(), 0u);
}

TEST_F(DispatcherTest, GivingUpCountsFailedAcksTheMessageAndLetsTheNextOneProceed) {
  auto retry = std::make_shared<NiceMock<sdk::testing::MockRetryPolicy>>();
  ON_CALL(*retry, decide(_, _)).WillByDefault(Return(sdk::RetryDecision::give_up("permanent")));
  pipeline->retry = retry;
  EXPECT_CALL(*sink, send(Field(&Message::id, "a1")))
      .WillOnce(Return(SendResult::failed(200, "channel_not_found")));
  EXPECT_CALL(*sink, send(Field(&Message::id, "a2"))).WillOnce(Return(SendResult::ok()));
  push("a1", "#a");
  push("a2", "#a");

  dispatcher().run_once();
  executor.run_all();  // a1 fails
  dispatcher().run_once();

  EXPECT_EQ(counter("slackproxy_requests_failed_total", "#a"), 1);
  EXPECT_EQ(queue.size(), 1u) << "a1 must be acked once given up";
  EXPECT_EQ(executor.pending(), 1u) << "a2 must start once a1 is given up";
  executor.run_all();
  dispatcher().run_once();
  EXPECT_EQ(counter("slackproxy_requests_succeeded_total", "#a"), 1);
  EXPECT_EQ(queue.size(), 0u);
}

TEST_F(DispatcherTest, WithoutRetryPolicyTheFirstFailureGivesUp) {
  EXPECT_CALL(*sink, send(_)).WillOnce(Return(SendResult::failed(503, "service_unavailable")));
  push("a1", "#a");

  run_until_quiet();

  EXPECT_EQ(counter("slackproxy_requests_failed_total", "#a"), 1);
  EXPECT_EQ(counter("slackproxy_requests_retried_total", "#a"), 0);
  EXPECT_EQ(queue.size(), 0u);
}

TEST_F(DispatcherTest, GuardDenialSkipsTheSendCountsNotProcessedAndTheNextMessageProceeds) {
  auto guard = std::make_shared<NiceMock<sdk::testing::MockGuard>>();
  ON_CALL(*guard, before_send(_, _)).WillByDefault(Invoke([](const Message& m, SteadyTime) {
    return m.id == "a1" ? sdk::GuardVerdict::deny("parked") : sdk::GuardVerdict::pass();
  }));
  pipeline->guards.push_back(guard);
  push("a1", "#a");
  push("a2", "#a");

  dispatcher().run_once();

  EXPECT_EQ(executor.pending(), 1u) << "a2 must start in the round that dropped a1";
  executor.run_all();
  EXPECT_THAT(sent, ElementsAre("a2"));
  EXPECT_EQ(counter("slackproxy_requests_not_processed_total", "#a"), 1);
}

TEST_F(DispatcherTest, GuardAfterResultSeesTheSendResult) {
  auto guard = std::make_shared<NiceMock<sdk::testing::MockGuard>>();
  ON_CALL(*guard, before_send(_, _)).WillByDefault(Return(sdk::GuardVerdict::pass()));
  pipeline->guards.push_back(guard);
  EXPECT_CALL(*sink, send(_)).WillOnce(Return(SendResult::failed(200, "channel_not_found")));
  EXPECT_CALL(*guard, after_result(Field(&Message::id, "a1"),
                                   Field(&SendResult::error, "channel_not_found"), clock.now()))
      .Times(1);
  push("a1", "#a");

  run_until_quiet();
}

TEST_F(DispatcherTest, SucceededMetricIsLabelledWithTheOriginalChannel) {
  Message m;
  m.id = "a1";
  m.pipeline = "default";
  m.channel = "#override";
  m.original_channel = "#asked";
  m.payload = R"({"channel":"#asked","text":"hi"})";
  ASSERT_EQ(queue.push(std::move(m)).status, Queue::PushStatus::Accepted);

  run_until_quiet();

  EXPECT_EQ(counter("slackproxy_requests_succeeded_total", "#asked"), 1);
  EXPECT_EQ(counter("slackproxy_requests_succeeded_total", "#override"), 0);
}

TEST_F(DispatcherTest, LanesOfIdleChannelsAreDropped) {
  push("a1", "#a");
  push("b1", "#b");
  dispatcher().run_once();
  EXPECT_EQ(dispatcher().backlog().size(), 2u);

  executor.run_all();
  dispatcher().run_once();

  EXPECT_TRUE(dispatcher().backlog().empty());
}

TEST_F(DispatcherTest, WaitIdleReturnsTrueAtOnceWhenIdle) {
  dispatcher().run_once();

  EXPECT_TRUE(dispatcher().wait_idle(std::chrono::steady_clock::now() - 1s));
}

TEST_F(DispatcherTest, WaitIdleReturnsFalseAtTheDeadlineWhileASendIsPending) {
  push("a1", "#a");
  dispatcher().run_once();  // a1 held by the executor
  const auto deadline = std::chrono::steady_clock::now() + 20ms;

  EXPECT_FALSE(dispatcher().wait_idle(deadline));
  EXPECT_GE(std::chrono::steady_clock::now(), deadline);
}

TEST_F(DispatcherTest, WaitIdleReturnsFalseWhileMessagesAreQueuedButNotTaken) {
  dispatcher().run_once();
  push("a1", "#a");

  EXPECT_FALSE(dispatcher().wait_idle(std::chrono::steady_clock::now() - 1s));
}

// The real threads: start() must pick up pushes on its own and deliver all of
// them through a pool, in order per channel.
TEST(DispatcherThreadsTest, StartAndStopDeliverEveryMessageThroughAThreadPool) {
  constexpr int kPerChannel = 20;
  const std::vector<std::string> channels = {"#a", "#b", "#c"};
  const std::size_t total = kPerChannel * channels.size();

  sdk::testing::FakeClock clock;
  MemoryQueue queue(total);
  prometheus::Registry registry;
  CoreMetrics metrics(registry);
  auto sink = std::make_shared<NiceMock<sdk::testing::MockSink>>();
  std::mutex mutex;
  std::condition_variable all_sent;
  std::map<std::string, std::vector<std::string>> sent_by_channel;
  std::size_t sent = 0;
  ON_CALL(*sink, send(_)).WillByDefault(Invoke([&](const Message& m) {
    {
      std::lock_guard<std::mutex> lock(mutex);
      sent_by_channel[m.channel].push_back(m.id);
      ++sent;
    }
    all_sent.notify_all();
    return SendResult::ok();
  }));
  auto pipeline = std::make_shared<Pipeline>();
  pipeline->name = "default";
  pipeline->sink = sink;
  ThreadPool pool(2);
  Dispatcher dispatcher(queue, {pipeline}, clock, metrics, test_support::null_logger(), pool);

  dispatcher.start();
  std::map<std::string, std::vector<std::string>> expected;
  for (int i = 0; i < kPerChannel; ++i) {
    for (const auto& channel : channels) {
      Message m;
      m.id = channel + "-" + std::to_string(i);
      m.pipeline = "default";
      m.channel = m.original_channel = channel;
      expected[channel].push_back(m.id);
      EXPECT_EQ(queue.push(std::move(m)).status, Queue::PushStatus::Accepted);
    }
  }
  bool all_delivered = false;
  {
    std::unique_lock<std::mutex> lock(mutex);
    all_delivered = all_sent.wait_for(lock, 10s, [&] { return sent == total; });
  }
  const bool idle = dispatcher.wait_idle(std::chrono::steady_clock::now() + 10s);
  // Drain the pool while the dispatcher still exists: a send still running
  // reports back into it.
  dispatcher.stop();
  pool.shutdown();

  EXPECT_TRUE(all_delivered) << "only " << sent << " of " << total << " messages were sent";
  EXPECT_TRUE(idle);
  EXPECT_EQ(sent_by_channel, expected);
  EXPECT_EQ(queue.size(), 0u);
  for (const auto& channel : channels)
    EXPECT_EQ(metric_value(registry, "slackproxy_requests_succeeded_total", {{"channel", channel}}),
              kPerChannel);
}

}  // namespace
}  // namespace slack_proxy

namespace slack_proxy {
namespace {

// Back-pressure (Slack's 429 as slack_sink reports it, or any sink's "not
// now"): the scope waits until the time the sink said, the message keeps its
// place and its retry budget. The sinks here speak no HTTP (status 0): the
// dispatcher acts on the reported fact, never on a status.
class DispatcherRateLimitTest : public DispatcherTest {
 protected:
  DispatcherRateLimitTest() {
    // A policy that retries every failure at once: what it is asked is
    // checked where it matters.
    ON_CALL(*retry, decide(_, _))
        .WillByDefault(Return(sdk::RetryDecision::retry_after(0ms, "retry")));
    pipeline->retry = retry;
  }
  SendResult rate_limited(std::chrono::milliseconds wait,
                          sdk::BackPressure::Scope scope = sdk::BackPressure::Scope::Workspace) {
    SendResult r = SendResult::failure("overloaded", "the receiver asked for a pause");
    r.retry_after = wait;
    r.back_pressure = sdk::BackPressure{scope, clock.now() + wait};
    return r;
  }
  void push_in(const std::string& id, const std::string& channel, const std::string& workspace) {
    Message m;
    m.id = id;
    m.pipeline = "default";
    m.workspace = workspace;
    m.channel = channel;
    m.original_channel = channel;
    m.payload = R"({"channel":")" + channel + R"(","text":"x"})";
    m.enqueued_at = clock.now();
    ASSERT_EQ(queue.push(std::move(m)).status, Queue::PushStatus::Accepted);
  }
  // The first send reports back-pressure for `wait` in `scope`, every later
  // one is ok; `order` records the ids sent.
  void answer_first_send_with_back_pressure(
      std::chrono::milliseconds wait,
      sdk::BackPressure::Scope scope = sdk::BackPressure::Scope::Workspace) {
    ON_CALL(*sink, send(_)).WillByDefault(Invoke([this, wait, scope](const Message& m) {
      order.push_back(m.id);
      return order.size() == 1 ? rate_limited(wait, scope) : SendResult::ok();
    }));
  }
  std::shared_ptr<NiceMock<sdk::testing::MockRetryPolicy>> retry =
      std::make_shared<NiceMock<sdk::testing::MockRetryPolicy>>();
  std::vector<std::string> order;
};

TEST_F(DispatcherRateLimitTest, WorkspaceBackPressurePausesEveryChannelOfTheWorkspaceUntilItsTime) {
  answer_first_send_with_back_pressure(3s);
  push_in("a1", "#a", "T1");
  dispatcher().run_once();
  executor.run_all();  // a1 gets back-pressure
  push_in("b1", "#b", "T1");  // same workspace, another channel
  push_in("c1", "#c", "T2");  // another workspace
  const SteadyTime limited_at = clock.now();
  EXPECT_EQ(dispatcher().run_once(), limited_at + 3s);
  executor.run_all();
  dispatcher().run_once();
  EXPECT_THAT(order, ElementsAre("a1", "c1")) << "only the other workspace may send";

  clock.advance(3s - 1ms);
  run_until_quiet();
  EXPECT_THAT(order, ElementsAre("a1", "c1")) << "sent before the pause ended";

  clock.advance(1ms);
  run_until_quiet();
  EXPECT_THAT(order, ElementsAre("a1", "c1", "a1"));  // a1 keeps its place in #a
  // Learned pacing: the workspace had delivered nothing in the second
  // before its 429, so it is held to about one message a second for now
  // (LearnedPacingTest has the exact figures).
  clock.advance(1s);
  run_until_quiet();
  EXPECT_THAT(order, ElementsAre("a1", "c1", "a1", "b1"));
  EXPECT_EQ(counter("slackproxy_rate_limited_total", "#a"), 1);
  EXPECT_EQ(counter("slackproxy_requests_retried_total", "#a"), 0);
  EXPECT_EQ(counter("slackproxy_requests_succeeded_total", "#a"), 1);
  EXPECT_EQ(queue.size(), 0u);
}

// What RedisSharedBuckets is to the dispatcher, kept in a map.
class FakeSharedPauses final : public SharedPauses {
 public:
  void pause(std::string_view key, SteadyTime until, SteadyTime) noexcept override {
    written[std::string(key)] = until;
  }
  SteadyTime paused_until(std::string_view key, SteadyTime now) noexcept override {
    const auto it = held.find(std::string(key));
    return it == held.end() ? now : it->second;
  }
  std::map<std::string, SteadyTime> written;  // what this replica shared
  std::map<std::string, SteadyTime> held;     // what other replicas did
};

TEST_F(DispatcherRateLimitTest, AWorkspacePauseIsSharedAndAnotherReplicasHoldsThisOne) {
  auto shared = std::make_shared<FakeSharedPauses>();
  dispatcher().share_pauses(shared);
  answer_first_send_with_back_pressure(3s);
  push_in("a1", "#a", "T1");
  dispatcher().run_once();
  const SteadyTime limited_at = clock.now();
  executor.run_all();  // a1 gets back-pressure
  dispatcher().run_once();
  ASSERT_EQ(shared->written.size(), 1u);
  const auto& [t1_key, until] = *shared->written.begin();
  EXPECT_EQ(until, limited_at + 3s);
  EXPECT_NE(t1_key.find("T1"), std::string::npos) << t1_key;

  // Another replica was told to wait for T2: this one holds T2 too.
  std::string t2_key = t1_key;
  t2_key.replace(t2_key.find("T1"), 2, "T2");
  shared->held[t2_key] = clock.now() + 2s;
  push_in("c1", "#c", "T2");
  run_until_quiet();
  EXPECT_THAT(order, ElementsAre("a1")) << "sent while another replica's pause holds T2";
  clock.advance(2s);
  run_until_quiet();
  EXPECT_THAT(order, ElementsAre("a1", "c1"));
}

TEST_F(DispatcherRateLimitTest, ChannelBackPressurePausesOnlyThatChannel) {
  answer_first_send_with_back_pressure(3s, sdk::BackPressure::Scope::Channel);
  push_in("a1", "#a", "T1");
  dispatcher().run_once();
  executor.run_all();
  push_in("b1", "#b", "T1");
  push_in("a2", "#a", "T1");
  run_until_quiet();
  EXPECT_THAT(order, ElementsAre("a1", "b1"));
  clock.advance(3s);
  run_until_quiet();
  EXPECT_THAT(order, ElementsAre("a1", "b1", "a1"));
  clock.advance(1s);  // the channel's learned pace: one a second
  run_until_quiet();
  EXPECT_THAT(order, ElementsAre("a1", "b1", "a1", "a2"));
}

// Slack answers 429 alike for a busy channel and a busy workspace; a channel
// that itself sent twice in the second before is taken as the cause.
TEST_F(DispatcherRateLimitTest, AWorkspace429AfterTheChannelSentTwiceInASecondSlowsOnlyThatChannel) {
  int calls = 0;
  ON_CALL(*sink, send(_)).WillByDefault(Invoke([&](const Message& m) {
    order.push_back(m.id);
    return ++calls == 3 ? rate_limited(1s) : SendResult::ok();
  }));
  for (const char* id : {"a1", "a2", "a3", "a4"}) push_in(id, "#a", "T1");
  run_until_quiet();
  ASSERT_THAT(order, ElementsAre("a1", "a2", "a3"));  // a3 refused: the workspace waits 1 s

  push_in("b1", "#b", "T1");
  push_in("b2", "#b", "T1");
  clock.advance(1s);
  run_until_quiet();
  EXPECT_THAT(order, ElementsAre("a1", "a2", "a3", "a3", "b1", "b2"))
      << "#b is not slowed; #a is held to about one a second, so a4 waits";
  EXPECT_EQ(metric_value(registry, "slackproxy_learned_pacing_channels"), 1);
  EXPECT_FALSE(test_support::has_series(registry, "slackproxy_effective_rate",
                                        {{"pipeline", "default"}, {"workspace", "T1"}}));
  clock.advance(1s);
  run_until_quiet();
  EXPECT_THAT(order, ElementsAre("a1", "a2", "a3", "a3", "b1", "b2", "a4"));
}

TEST_F(DispatcherRateLimitTest, TheRetryPolicyDecidesButTheAttemptSpendsNoBudget) {
  std::vector<std::uint32_t> attempts_at_send;
  std::vector<std::uint32_t> attempts_at_decide;
  EXPECT_CALL(*retry, decide(_, _))
      .Times(3)
      .WillRepeatedly(Invoke([&](const Message& m, const SendResult& r) {
        EXPECT_TRUE(r.back_pressure.has_value());
        attempts_at_decide.push_back(m.attempts);
        return sdk::RetryDecision::retry_after(0ms, "wait");
      }));
  int calls = 0;
  ON_CALL(*sink, send(_)).WillByDefault(Invoke([&](const Message& m) {
    attempts_at_send.push_back(m.attempts);
    return ++calls <= 3 ? rate_limited(1s) : SendResult::ok();
  }));
  push_in("a1", "#a", "");
  // Each 429 also slows the workspace (learned pacing), so the fourth
  // attempt comes a little after the third pause ends.
  for (int i = 0; i < 5; ++i) {
    run_until_quiet();
    clock.advance(1s);
  }
  EXPECT_THAT(attempts_at_send, ElementsAre(1u, 1u, 1u, 1u));
  EXPECT_THAT(attempts_at_decide, ElementsAre(1u, 1u, 1u)) << "the policy sees the attempt";
  EXPECT_EQ(counter("slackproxy_rate_limited_total", "#a"), 3);
  EXPECT_EQ(counter("slackproxy_requests_succeeded_total", "#a"), 1);
}

TEST_F(DispatcherRateLimitTest, APolicyThatGivesUpOnBackPressureDeadLettersTheMessageButThePauseStays) {
  ON_CALL(*retry, decide(_, _)).WillByDefault(Return(sdk::RetryDecision::give_up("no thanks")));
  answer_first_send_with_back_pressure(5s);
  push_in("a1", "#a", "T1");
  push_in("b1", "#b", "T1");
  dispatcher().run_once();  // a1 and b1 both start
  executor.run_one();       // a1: back-pressure
  dispatcher().run_once();
  ASSERT_TRUE(queue.dead_letters().get("a1").has_value());
  push_in("b2", "#b", "T1");
  executor.run_all();  // b1 was already on its way
  run_until_quiet();
  EXPECT_THAT(order, ElementsAre("a1", "b1")) << "b2 must wait for the workspace's pause";
  clock.advance(5s);
  run_until_quiet();
  EXPECT_THAT(order, ElementsAre("a1", "b1", "b2"));
}

TEST_F(DispatcherRateLimitTest, WithoutARetryPolicyBackPressureStillWaitsAndSendsAgain) {
  pipeline->retry = nullptr;
  answer_first_send_with_back_pressure(2s);
  push_in("a1", "#a", "T1");
  run_until_quiet();
  EXPECT_THAT(order, ElementsAre("a1"));
  clock.advance(2s);
  run_until_quiet();
  EXPECT_THAT(order, ElementsAre("a1", "a1"));
  // Delivered, so not a dead letter.
  EXPECT_EQ(counter("slackproxy_requests_succeeded_total", "#a"), 1);
  EXPECT_EQ(queue.size(), 0u);
}

TEST_F(DispatcherRateLimitTest, BackPressureWithoutATimeWaitsOneSecond) {
  int calls = 0;
  ON_CALL(*sink, send(_)).WillByDefault(Invoke([&](const Message&) {
    if (++calls > 1) return SendResult::ok();
    SendResult r = SendResult::failure("overloaded");
    r.back_pressure = sdk::BackPressure{};
    return r;
  }));
  push_in("a1", "#a", "");
  dispatcher().run_once();
  executor.run_all();
  EXPECT_EQ(dispatcher().run_once(), clock.now() + 1s);
}

TEST_F(DispatcherRateLimitTest, AnHttp429WithoutBackPressureIsJustAFailureForThePolicy) {
  // The dispatcher reads no statuses: only the sink's back_pressure pauses.
  EXPECT_CALL(*retry, decide(_, _))
      .Times(2)
      .WillRepeatedly(Return(sdk::RetryDecision::give_up("policy says")));
  ON_CALL(*sink, send(_)).WillByDefault(Invoke([this](const Message& m) {
    order.push_back(m.id);
    return SendResult::failed(429, "ratelimited");
  }));
  push_in("a1", "#a", "");
  dispatcher().run_once();
  executor.run_all();  // a1: a 429, but no back-pressure reported
  push_in("b1", "#b", "");
  run_until_quiet();
  EXPECT_THAT(order, ElementsAre("a1", "b1")) << "nothing was paused";
  EXPECT_TRUE(queue.dead_letters().get("a1").has_value());
  EXPECT_EQ(counter("slackproxy_rate_limited_total", "#a"), 0);
}

TEST_F(DispatcherRateLimitTest, ChannelDepthsCountWaitingMessagesPerChannel) {
  ON_CALL(*sink, send(_)).WillByDefault(Invoke([this](const Message&) { return rate_limited(60s); }));
  push_in("a1", "#a", "");
  push_in("a2", "#a", "");
  push_in("b1", "#b", "T9");
  run_until_quiet();
  EXPECT_EQ(dispatcher().channel_depths(),
            (std::map<std::string, std::size_t>{{"#a", 2}, {"#b", 1}}));
}

// The oldest message's age per channel (slackproxy_channel_oldest_age_seconds)
// follows each channel's head. A scrape asks, and the scheduling thread
// looks in its next round, even while every lane waits behind a long pause.
TEST_F(DispatcherRateLimitTest, OldestFollowsEachChannelsHeadEvenBehindALongPause) {
  ON_CALL(*sink, send(_)).WillByDefault(Invoke([this](const Message&) { return rate_limited(60s); }));
  const auto look = [this] {
    dispatcher().look();  // asks for a look in the next round
    dispatcher().run_once();
    return dispatcher().look().oldest;
  };
  const sdk::SteadyTime t0 = clock.now();
  push_in("a1", "#a", "");
  clock.advance(2s);
  push_in("a2", "#a", "");
  push_in("b1", "#b", "");
  run_until_quiet();  // a1 is sent and paused for 60 s with the whole workspace
  EXPECT_EQ(look(), (std::map<std::string, sdk::SteadyTime>{{"#a", t0}, {"#b", t0 + 2s}}));

  clock.advance(5s);
  push_in("c1", "#c", "");
  EXPECT_EQ(look().at("#c"), clock.now()) << "seen while every lane waits for the pause";

  ON_CALL(*sink, send(_)).WillByDefault(Return(SendResult::ok()));
  clock.advance(60s);
  for (int second = 0; second < 10 && queue.size() > 0; ++second) {
    run_until_quiet();  // learned pacing lets about one a second go
    clock.advance(1s);
  }
  ASSERT_EQ(queue.size(), 0u);
  EXPECT_TRUE(look().empty()) << "everything was delivered";
}
// ---- a reload hands the dispatcher new pipelines ----------------------------

// The send in flight finishes on the pipeline that started it, and its
// result goes to that pipeline's retry policy; the retry and every later
// message go through the new pipeline of the same name.
TEST_F(DispatcherTest, AfterSetPipelinesTheSendInFlightFinishesOnItsPipelineAndTheRestUseTheNew) {
  auto old_retry = std::make_shared<NiceMock<sdk::testing::MockRetryPolicy>>();
  EXPECT_CALL(*old_retry, decide(_, _)).WillOnce(Return(sdk::RetryDecision::retry_after(0ms, "x")));
  pipeline->retry = old_retry;
  EXPECT_CALL(*sink, send(_)).WillOnce(Return(SendResult::failure("timeout")));
  push("a1", "#a");
  push("a2", "#a");
  dispatcher().run_once();  // a1 is in flight on the old sink

  auto next = std::make_shared<Pipeline>();
  next->name = "default";
  auto new_sink = std::make_shared<NiceMock<sdk::testing::MockSink>>();
  std::vector<std::string> sent_new;
  ON_CALL(*new_sink, send(_)).WillByDefault(Invoke([&](const Message& m) {
    sent_new.push_back(m.id);
    return SendResult::ok();
  }));
  next->sink = new_sink;
  dispatcher().set_pipelines({next});
  run_until_quiet();

  EXPECT_THAT(sent_new, ElementsAre("a1", "a2")) << "the retry and the rest on the new sink";
  EXPECT_EQ(queue.size(), 0u);
}

// A lane its limiter turned away asks the new pipeline's limiters at once
// after a reload (they may let it go sooner); a lane in a retry backoff
// keeps its time.
TEST_F(DispatcherTest, AfterSetPipelinesLimiterWaitsAskAgainAndBackoffsKeepTheirTime) {
  auto limiter = std::make_shared<NiceMock<sdk::testing::MockRateLimiter>>();
  ON_CALL(*limiter, next_send_time(_, _))
      .WillByDefault(Invoke([](const Message& m, SteadyTime now) {
        return m.channel == "#slow" ? now + 1000s : now;
      }));
  pipeline->limiters.push_back(limiter);
  auto retry = std::make_shared<NiceMock<sdk::testing::MockRetryPolicy>>();
  ON_CALL(*retry, decide(_, _)).WillByDefault(Return(sdk::RetryDecision::retry_after(60s, "x")));
  pipeline->retry = retry;
  ON_CALL(*sink, send(_)).WillByDefault(Invoke([this](const Message& m) {
    sent.push_back(m.id);
    return m.channel == "#flaky" ? SendResult::failure("timeout") : SendResult::ok();
  }));
  push("slow1", "#slow");
  push("flaky1", "#flaky");
  run_until_quiet();  // slow1 waits 1000 s for its limiter, flaky1 60 s to be retried
  ASSERT_THAT(sent, ElementsAre("flaky1"));

  auto next = std::make_shared<Pipeline>(*pipeline);
  next->limiters.clear();  // the reload dropped the limiter
  dispatcher().set_pipelines({next});
  run_until_quiet();
  EXPECT_THAT(sent, ElementsAre("flaky1", "slow1")) << "slow1 at once; flaky1 still waits";
  clock.advance(60s);
  run_until_quiet();
  EXPECT_THAT(sent, ElementsAre("flaky1", "slow1", "flaky1"));
}

// A pipeline a reload removed: what its lanes hold becomes dead letters
// (unknown_pipeline) as they come up, nothing is sent or lost.
TEST_F(DispatcherTest, MessagesOfAPipelineAReloadRemovedAreDeadLetteredAsUnknownPipeline) {
  push("a1", "#a");
  auto other = std::make_shared<Pipeline>();
  other->name = "other";
  other->sink = sink;
  dispatcher().set_pipelines({other});
  run_until_quiet();
  EXPECT_TRUE(sent.empty());
  auto letter = queue.dead_letters().get("a1");
  ASSERT_TRUE(letter.has_value());
  EXPECT_EQ(letter->error, "unknown_pipeline");
  EXPECT_EQ(queue.size(), 0u);
}

// What the status page shows of each lane: why it waits and until when, and
// what each channel delivered in the last minutes.
TEST_F(DispatcherRateLimitTest, ALookSaysWhyEachLaneWaitsAndWhatEachChannelDelivered) {
  answer_first_send_with_back_pressure(60s);
  const auto look = [this] {
    dispatcher().look(0ms, 10);
    dispatcher().run_once();
    return dispatcher().look(0ms, 10);
  };
  push_in("a1", "#a", "T1");
  push_in("a2", "#a", "T1");
  dispatcher().run_once();
  executor.run_all();  // a1: a 429 with a minute's pause for the workspace
  dispatcher().run_once();
  push_in("b1", "#b", "T1");
  push_in("c1", "#c", "T1");
  const sdk::SteadyTime paused_at = clock.now();
  dispatcher().run_once();  // #b and #c are turned away by the pause: one batch waits for it
  Dispatcher::Look seen = look();
  ASSERT_EQ(seen.lanes.size(), 3u);
  EXPECT_EQ(seen.lanes_total, 3u);
  EXPECT_EQ(seen.lanes[0].channel, "#a") << "the most queued first";
  EXPECT_EQ(seen.lanes[0].queued, 2u);
  EXPECT_EQ(seen.lanes[0].workspace, "T1");
  EXPECT_STREQ(seen.lanes[0].state, "waiting");
  EXPECT_STREQ(seen.lanes[0].reason, "pause_after_429");
  EXPECT_EQ(seen.lanes[0].until, paused_at + 60s);
  for (std::size_t i = 1; i < 3; ++i) {
    EXPECT_EQ(seen.lanes[i].channel, i == 1 ? "#b" : "#c") << "equals in arrival order";
    EXPECT_STREQ(seen.lanes[i].state, "waiting") << seen.lanes[i].channel;
    EXPECT_STREQ(seen.lanes[i].reason, "pause_workspace") << "held by #a's pause";
    EXPECT_EQ(seen.lanes[i].until, paused_at + 60s);
  }
  EXPECT_TRUE(seen.recent.empty());

  clock.advance(60s);
  for (int second = 0; second < 6 && queue.size() > 0; ++second) {
    run_until_quiet();  // learned pacing lets about one a second go
    clock.advance(1s);
  }
  ASSERT_EQ(queue.size(), 0u);
  seen = look();
  EXPECT_TRUE(seen.lanes.empty());
  ASSERT_EQ(seen.recent.size(), 3u);
  std::map<std::string, Dispatcher::Recent> by_channel;
  for (const auto& r : seen.recent) {
    EXPECT_EQ(r.pipeline, "default");
    EXPECT_EQ(r.workspace, "T1");
    by_channel[r.channel] = r.counts;
  }
  EXPECT_EQ(by_channel["#a"].delivered, 2u);
  EXPECT_EQ(by_channel["#b"].delivered, 1u);
  EXPECT_EQ(by_channel["#c"].delivered, 1u);
  EXPECT_EQ(by_channel["#a"].failed, 0u);
  EXPECT_EQ(seen.learned_rates.count({"default", "T1"}), 1u) << "T1 is paced after its 429";
  EXPECT_GT(seen.recent_seconds, Dispatcher::kRecentMinutes * 60.0);

  clock.advance(std::chrono::minutes(Dispatcher::kRecentMinutes + 1));
  EXPECT_TRUE(look().recent.empty()) << "older than the window: forgotten";
}


// ---- outcomes that are not deliveries become dead letters ----------------

TEST_F(DispatcherTest, GivingUpMovesTheMessageToTheDeadLettersWithItsLastError) {
  auto retry = std::make_shared<NiceMock<sdk::testing::MockRetryPolicy>>();
  ON_CALL(*retry, decide(_, _))
      .WillByDefault(Return(sdk::RetryDecision::give_up("permanent error")));
  pipeline->retry = retry;
  EXPECT_CALL(*sink, send(_))
      .WillOnce(Return(SendResult::failed(200, "channel_not_found", "no such channel")));
  push("a1", "#a");

  run_until_quiet();

  EXPECT_EQ(queue.size(), 0u);
  auto letter = queue.dead_letters().get("a1");
  ASSERT_TRUE(letter.has_value());
  EXPECT_EQ(letter->kind, DeadLetterKind::Failed);
  EXPECT_EQ(letter->error, "channel_not_found");
  EXPECT_EQ(letter->reason, "permanent error");
  EXPECT_EQ(letter->http_status, 200);
  EXPECT_EQ(letter->message.attempts, 1u);
  EXPECT_EQ(letter->message.payload, R"({"channel":"#a","text":"a1"})");
  EXPECT_EQ(letter->dead_at, clock.wall_now());
  EXPECT_EQ(counter("slackproxy_requests_failed_total", "#a"), 1);
  EXPECT_EQ(metric_value(registry, "slackproxy_dead_lettered_total",
                         {{"channel", "#a"}, {"kind", "failed"}}),
            1);
}

TEST_F(DispatcherTest, AFailureWithoutAnErrorCodeIsRecordedByItsHttpStatus) {
  EXPECT_CALL(*sink, send(_)).WillOnce(Return(SendResult::failed(502, "")));
  push("a1", "#a");  // no retry policy: gives up at once

  run_until_quiet();

  auto letter = queue.dead_letters().get("a1");
  ASSERT_TRUE(letter.has_value());
  EXPECT_EQ(letter->error, "http_502");
}

TEST_F(DispatcherTest, ADeniedMessageIsKeptAsNotProcessed) {
  auto guard = std::make_shared<NiceMock<sdk::testing::MockGuard>>();
  ON_CALL(*guard, before_send(_, _))
      .WillByDefault(Return(sdk::GuardVerdict::deny("channel is deny-listed")));
  pipeline->guards.push_back(guard);
  EXPECT_CALL(*sink, send(_)).Times(0);
  push("a1", "#a");

  run_until_quiet();

  EXPECT_EQ(queue.size(), 0u);
  auto letter = queue.dead_letters().get("a1");
  ASSERT_TRUE(letter.has_value());
  EXPECT_EQ(letter->kind, DeadLetterKind::NotProcessed);
  EXPECT_EQ(letter->error, "denied");
  EXPECT_EQ(letter->reason, "channel is deny-listed");
  EXPECT_EQ(letter->message.attempts, 0u);
  EXPECT_EQ(counter("slackproxy_requests_not_processed_total", "#a"), 1);
}

TEST_F(DispatcherTest, ACallerTokenMessageWithoutItsTokenIsNeverSentWithTheProxysToken) {
  pipeline->caller_token = true;
  EXPECT_CALL(*sink, send(_)).Times(0);
  push("a1", "#a");  // no delivery_token: as after a restart without the sealing key

  run_until_quiet();

  auto letter = queue.dead_letters().get("a1");
  ASSERT_TRUE(letter.has_value());
  EXPECT_EQ(letter->error, "token_unavailable");
  EXPECT_EQ(queue.size(), 0u);
}

TEST_F(DispatcherTest, LimitersSeeTheBudgetTheSinkNames) {
  auto limiter = std::make_shared<NiceMock<sdk::testing::MockRateLimiter>>();
  pipeline->limiters.push_back(limiter);
  ON_CALL(*sink, budget_of(_)).WillByDefault(Return("b-token-of-a"));
  std::vector<std::string> seen;
  ON_CALL(*limiter, next_send_time(_, _))
      .WillByDefault(Invoke([&](const Message& m, SteadyTime now) {
        seen.push_back(m.attributes.at(sdk::kBudgetAttribute));
        return now;
      }));
  push("a1", "#a");
  run_until_quiet();
  EXPECT_THAT(seen, ElementsAre("b-token-of-a"));
  EXPECT_THAT(sent, ElementsAre("a1"));
}

// The budget is an unsalted digest of the token, for this process's pacing:
// a dead letter (kept, listed by the admin API) does not carry it.
TEST_F(DispatcherTest, ADeadLetterKeepsNoBudget) {
  ON_CALL(*sink, budget_of(_)).WillByDefault(Return("b-token-of-a"));
  EXPECT_CALL(*sink, send(_))
      .WillOnce(Invoke([](const Message& m) {
        EXPECT_EQ(m.attributes.count(sdk::kBudgetAttribute), 1u);
        return SendResult::failed(200, "channel_not_found", "no such channel");
      }));
  push("a1", "#a");
  run_until_quiet();
  auto letter = queue.dead_letters().get("a1");
  ASSERT_TRUE(letter.has_value());
  EXPECT_EQ(letter->message.attributes.count(sdk::kBudgetAttribute), 0u);
}

TEST_F(DispatcherTest, ASinkBuiltBeforeAbi12IsNeverAskedForItsBudget) {
  pipeline->sink_names_budget = false;  // what an ABI 1.1 sink's descriptor makes it
  EXPECT_CALL(*sink, budget_of(_)).Times(0);
  push("a1", "#a");
  run_until_quiet();
  EXPECT_THAT(sent, ElementsAre("a1"));
}

TEST_F(DispatcherTest, ASinkThatThrowsFromBudgetOfStillDeliversUnderItsOwnScope) {
  auto limiter = std::make_shared<NiceMock<sdk::testing::MockRateLimiter>>();
  pipeline->limiters.push_back(limiter);
  ON_CALL(*sink, budget_of(_)).WillByDefault(Invoke([](const Message&) -> std::string {
    throw std::runtime_error("no budget today");
  }));
  bool had_budget = true;
  ON_CALL(*limiter, next_send_time(_, _))
      .WillByDefault(Invoke([&](const Message& m, SteadyTime now) {
        had_budget = m.attributes.count(sdk::kBudgetAttribute) > 0;
        return now;
      }));
  push("a1", "#a");
  run_until_quiet();
  EXPECT_FALSE(had_budget);
  EXPECT_THAT(sent, ElementsAre("a1"));
  EXPECT_EQ(metric_value(registry, "slackproxy_plugin_exceptions_total",
                         {{"pipeline", "default"}, {"stage", "(unnamed)"}, {"method", "budget_of"}}),
            1);
}

TEST_F(DispatcherTest, AMessageOfAnUnknownPipelineBecomesADeadLetter) {
  Message m;
  m.id = "lost";
  m.pipeline = "removed-from-config";
  m.channel = "#a";
  m.original_channel = "#a";
  ASSERT_EQ(queue.push(std::move(m)).status, Queue::PushStatus::Accepted);

  run_until_quiet();

  auto letter = queue.dead_letters().get("lost");
  ASSERT_TRUE(letter.has_value());
  EXPECT_EQ(letter->error, "unknown_pipeline");
  EXPECT_EQ(queue.size(), 0u);
}

TEST_F(DispatcherTest, AReplayedDeadLetterIsDeliveredAgain) {
  EXPECT_CALL(*sink, send(_))
      .WillOnce(Return(SendResult::failed(200, "channel_not_found")))
      .WillOnce(Invoke([this](const Message& m) {
        sent.push_back(m.id);
        EXPECT_EQ(m.attempts, 1u);  // the replay starts afresh
        EXPECT_EQ(m.attributes.at(sdk::kReplayedAttribute), "true");
        return SendResult::ok();
      }));
  push("a1", "#a");
  run_until_quiet();
  ASSERT_EQ(queue.dead_letters().count(), 1u);

  ASSERT_EQ(queue.dead_letters().replay("a1"), DeadLetterStore::ReplayStatus::Replayed);
  run_until_quiet();

  EXPECT_THAT(sent, ElementsAre("a1"));
  EXPECT_EQ(queue.dead_letters().count(), 0u);
  EXPECT_EQ(queue.size(), 0u);
}

}  // namespace
}  // namespace slack_proxy

namespace slack_proxy {
namespace {

// A stage method that throws (outside sdk::guarded) fails that one attempt,
// is logged with the pipeline, stage and plugin, and counted; the dispatcher
// carries on with the next message.
class DispatcherFaultTest : public DispatcherTest {
 protected:
  DispatcherFaultTest() {
    log = std::make_shared<spdlog::logger>("test",
                                           std::make_shared<spdlog::sinks::ostream_sink_mt>(logged));
    ON_CALL(*retry, decide(_, _)).WillByDefault(Invoke([this](const Message& m, const SendResult& r) {
      decided.push_back(r);
      return m.attempts < 2 ? sdk::RetryDecision::retry_after(1s, "transient")
                            : sdk::RetryDecision::give_up("retries exhausted");
    }));
    pipeline->retry = retry;
    label(sink.get(), "deliver", "faulty_sink");
  }
  void label(const sdk::Stage* stage, const std::string& name, const std::string& plugin) {
    pipeline->labels[stage] = StageLabel{name, plugin};
  }
  double exceptions(const std::string& stage, const std::string& method) {
    return metric_value(registry, "slackproxy_plugin_exceptions_total",
                        {{"pipeline", "default"}, {"stage", stage}, {"method", method}});
  }
  // Runs until the clock has passed every retry delay (1 s) twice.
  void run_with_retries() {
    for (int i = 0; i < 3; ++i) {
      run_until_quiet();
      clock.advance(1s);
    }
  }

  std::ostringstream logged;
  std::shared_ptr<NiceMock<sdk::testing::MockRetryPolicy>> retry =
      std::make_shared<NiceMock<sdk::testing::MockRetryPolicy>>();
  std::vector<SendResult> decided;
};

TEST_F(DispatcherFaultTest, ASinkThatThrowsFailsTheAttemptTransientlyAndTheNextMessageGoes) {
  ON_CALL(*sink, send(_)).WillByDefault(Invoke([this](const Message& m) -> SendResult {
    if (m.channel == "#boom") throw std::runtime_error("kaboom in send");
    sent.push_back(m.id);
    return SendResult::ok();
  }));
  push("x1", "#boom");
  push("a1", "#a");
  run_with_retries();

  ASSERT_EQ(decided.size(), 2u);
  EXPECT_EQ(decided[0].error, sdk::outcome::kInternalErrorInSink);
  EXPECT_TRUE(sdk::outcome::is_transient(decided[0].error));
  EXPECT_THAT(decided[0].detail, ::testing::HasSubstr("kaboom in send"));
  auto letter = queue.dead_letters().get("x1");
  ASSERT_TRUE(letter.has_value()) << "retried, then kept: nothing is lost";
  EXPECT_EQ(letter->error, sdk::outcome::kInternalErrorInSink);
  EXPECT_EQ(letter->message.attempts, 2u);
  EXPECT_THAT(sent, ElementsAre("a1"));
  EXPECT_EQ(exceptions("deliver", "send"), 2);
  EXPECT_THAT(logged.str(), ::testing::AllOf(::testing::HasSubstr("[error]"),
                                             ::testing::HasSubstr("pipeline 'default'"),
                                             ::testing::HasSubstr("stage 'deliver'"),
                                             ::testing::HasSubstr("plugin faulty_sink"),
                                             ::testing::HasSubstr("kaboom in send")));
}

TEST_F(DispatcherFaultTest, AGuardThatThrowsBeforeSendFailsTheAttemptWithoutSending) {
  auto guard = std::make_shared<NiceMock<sdk::testing::MockGuard>>();
  label(guard.get(), "picky", "faulty_guard");
  ON_CALL(*guard, before_send(_, _)).WillByDefault(Invoke([](const Message& m, SteadyTime) {
    if (m.channel == "#boom") throw std::runtime_error("guard broke");
    return sdk::GuardVerdict::pass();
  }));
  pipeline->guards.push_back(guard);
  push("x1", "#boom");
  push("a1", "#a");
  run_with_retries();

  ASSERT_FALSE(decided.empty());
  EXPECT_EQ(decided[0].error, sdk::outcome::kInternalErrorInGuard);
  EXPECT_THAT(decided[0].detail, ::testing::HasSubstr("guard broke"));
  EXPECT_THAT(sent, ElementsAre("a1")) << "#boom was never sent";
  EXPECT_TRUE(queue.dead_letters().get("x1").has_value());
  EXPECT_EQ(exceptions("picky", "before_send"), 2);
  EXPECT_THAT(logged.str(), ::testing::HasSubstr("stage 'picky' (plugin faulty_guard)"));
}

TEST_F(DispatcherFaultTest, AGuardThatThrowsAfterTheResultIsOnlyLoggedAndCounted) {
  auto guard = std::make_shared<NiceMock<sdk::testing::MockGuard>>();
  label(guard.get(), "learner", "faulty_guard");
  ON_CALL(*guard, after_result(_, _, _))
      .WillByDefault(Invoke([](const Message&, const SendResult&, SteadyTime) {
        throw std::runtime_error("cannot learn");
      }));
  pipeline->guards.push_back(guard);
  push("a1", "#a");
  run_until_quiet();

  EXPECT_THAT(sent, ElementsAre("a1"));
  EXPECT_EQ(counter("slackproxy_requests_succeeded_total", "#a"), 1);
  EXPECT_EQ(exceptions("learner", "after_result"), 1);
  EXPECT_TRUE(decided.empty());
}

TEST_F(DispatcherFaultTest, ARateLimiterThatThrowsFailsTheAttemptAndBacksOffInsteadOfSpinning) {
  auto limiter = std::make_shared<NiceMock<sdk::testing::MockRateLimiter>>();
  label(limiter.get(), "bucket", "faulty_limiter");
  int asked = 0;
  ON_CALL(*limiter, next_send_time(_, _)).WillByDefault(Invoke([&](const Message& m, SteadyTime now) {
    ++asked;
    if (m.channel == "#boom") throw std::runtime_error("bucket broke");
    return now;
  }));
  pipeline->limiters.push_back(limiter);
  push("x1", "#boom");
  push("a1", "#a");
  run_until_quiet();
  EXPECT_EQ(asked, 2) << "one failed ask for #boom, then it waits its retry delay";
  ASSERT_EQ(decided.size(), 1u);
  EXPECT_EQ(decided[0].error, sdk::outcome::kInternalErrorInRateLimiter);

  clock.advance(1s);
  run_until_quiet();
  EXPECT_TRUE(queue.dead_letters().get("x1").has_value());
  EXPECT_THAT(sent, ElementsAre("a1"));
  EXPECT_EQ(exceptions("bucket", "next_send_time"), 2);
}

TEST_F(DispatcherFaultTest, ARateLimiterThatThrowsOnSendFailsTheAttempt) {
  auto limiter = std::make_shared<NiceMock<sdk::testing::MockRateLimiter>>();
  label(limiter.get(), "bucket", "faulty_limiter");
  ON_CALL(*limiter, next_send_time(_, _)).WillByDefault(Invoke([](const Message&, SteadyTime now) {
    return now;
  }));
  ON_CALL(*limiter, on_send(_, _)).WillByDefault(Invoke([](const Message& m, SteadyTime) {
    if (m.channel == "#boom") throw std::runtime_error("cannot take a token");
  }));
  pipeline->limiters.push_back(limiter);
  push("x1", "#boom");
  push("a1", "#a");
  run_with_retries();
  ASSERT_FALSE(decided.empty());
  EXPECT_EQ(decided[0].error, sdk::outcome::kInternalErrorInRateLimiter);
  EXPECT_THAT(sent, ElementsAre("a1"));
  EXPECT_EQ(exceptions("bucket", "on_send"), 2);
}

TEST_F(DispatcherFaultTest, ARetryPolicyThatThrowsGivesTheMessageUpIntoTheDeadLettersWithTheReason) {
  label(retry.get(), "backoff", "faulty_retry");
  ON_CALL(*retry, decide(_, _))
      .WillByDefault(Invoke([](const Message&, const SendResult&) -> sdk::RetryDecision {
        throw std::runtime_error("policy broke");
      }));
  EXPECT_CALL(*sink, send(_)).WillOnce(Return(SendResult::failed(503, "service_unavailable")));
  push("x1", "#a");
  run_until_quiet();

  auto letter = queue.dead_letters().get("x1");
  ASSERT_TRUE(letter.has_value());
  EXPECT_EQ(letter->error, "service_unavailable");
  EXPECT_THAT(letter->reason, ::testing::AllOf(::testing::HasSubstr("stage 'backoff'"),
                                               ::testing::HasSubstr("policy broke"),
                                               ::testing::HasSubstr("replay")));
  EXPECT_EQ(exceptions("backoff", "decide"), 1);
  EXPECT_EQ(queue.size(), 0u);
}

}  // namespace
}  // namespace slack_proxy

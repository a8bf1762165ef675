// The Redis queue end to end: real proxies sharing one queue in a real
// redis-server. Every message any replica answered 200 is delivered, in
// order per channel, when a replica is killed -9 mid-stream (its channels
// are taken over within the lease) and when Redis itself restarts (AOF on:
// requests meanwhile get 503 queue_unavailable and succeed when retried).
#include <algorithm>
#include <atomic>
#include <iostream>
#include <map>
#include <set>
#include <sstream>
#include <thread>

#include <gtest/gtest.h>
#include <prometheus/registry.h>
#include <slack_proxy/sdk/testing/fakes.h>
#include <spdlog/logger.h>

#include "fake_slack.h"
#include "redis/redis_queue.h"
#include "proxy_test.h"
#include "redis_server.h"

namespace slack_proxy::testing {
namespace {

using namespace std::chrono_literals;

constexpr int kChannels = 3;
constexpr int kPerChannel = 10;
constexpr const char* kLease = "2s";

// Per channel, the texts Slack received, in the order it received them.
std::map<std::string, std::vector<std::string>> received(const FakeSlack& slack) {
  std::map<std::string, std::vector<std::string>> out;
  for (const auto& r : slack.requests()) out[r.channel].push_back(text_of(r));
  return out;
}

// "c<channel>-<n>" -> n.
int number_of(const std::string& text) { return std::stoi(text.substr(text.find('-') + 1)); }

// Every text of `sent` arrived; first deliveries kept the order they were
// sent in; a repeat (at-least-once, after a take-over) only ever repeats
// the message just before it or one already delivered.
::testing::AssertionResult delivered_in_order(
    const std::map<std::string, std::vector<std::string>>& got,
    const std::map<std::string, std::vector<std::string>>& sent) {
  for (const auto& [channel, texts] : sent) {
    const auto it = got.find(channel);
    if (it == got.end()) return ::testing::AssertionFailure() << channel << ": nothing arrived";
    std::set<std::string> seen;
    int last_first = -1;
    for (const auto& text : it->second) {
      if (!seen.insert(text).second) continue;  // a repeat
      const int n = number_of(text);
      if (n < last_first)
        return ::testing::AssertionFailure()
               << channel << ": " << text << " arrived after message " << last_first;
      last_first = n;
    }
    for (const auto& text : texts)
      if (seen.count(text) == 0)
        return ::testing::AssertionFailure() << channel << ": " << text << " was lost";
  }
  return ::testing::AssertionSuccess();
}

class RedisQueueTest : public ::testing::Test {
 protected:
  void SetUp() override {
    SP_REQUIRE_TOOL(program, "redis-server", "redis-server");
    // Every write on disk before Redis answers, as docs/scale-out.md
    // recommends for the queue.
    redis_ = std::make_unique<RedisServer>(
        program, std::vector<std::string>{"--appendonly", "yes", "--appendfsync", "always"});
    slack_.start();
  }

  // Two messages a second per channel: slow enough that a replica killed
  // right after the posts still holds undelivered messages.
  std::string toml() const {
    ProxyConfig c;
    c.slack_url = slack_.url();
    c.queue_backend = "redis";
    c.queue_settings = std::string("lease = \"") + kLease + "\"\n";
    c.stages = stage("token_bucket", "key = \"channel\"\nrate = 2.0\nburst = 1\n") +
               ProxyConfig::fast_retry_stages();
    return c.toml() + "\n[redis]\nurl = \"" + redis_->url() + "\"\n";
  }

  std::unique_ptr<RedisServer> redis_;
  FakeSlack slack_;
};

// Which replica Redis says delivers `channel` now (its q:holder entry).
std::size_t holder_of(const RedisServer& redis, const std::string& channel,
                      const std::vector<std::unique_ptr<ProxyProcess>>& replicas) {
  const std::string all = redis.admin({"HGETALL", "slack-proxy:q:holder"});
  for (std::size_t i = 0; i < replicas.size(); ++i) {
    const std::string log = replicas[i]->log();
    const std::string tag = "redis queue: this replica is ";
    const auto at = log.find(tag);
    if (at == std::string::npos) continue;
    const std::string name = log.substr(at + tag.size(), log.find(' ', at + tag.size()) -
                                                              (at + tag.size()));
    if (all.find(":" + channel + "\n" + name) != std::string::npos) return i;
  }
  return replicas.size();
}

// Three replicas, the posts spread over them round robin. The replica that
// delivers #c0 when the posts are done is killed -9: the others take its
// channel over within the lease and deliver everything, in order.
TEST_F(RedisQueueTest, AKilledReplicasChannelsAreTakenOverAndNothingAcceptedIsLost) {
  std::vector<std::unique_ptr<ProxyProcess>> replicas;
  for (int i = 0; i < 3; ++i) {
    replicas.push_back(std::make_unique<ProxyProcess>(toml()));
    ASSERT_TRUE(replicas.back()->start());
  }
  ASSERT_TRUE(replicas[0]->wait_for_log("queue: Redis at"));
  std::map<std::string, std::vector<std::string>> sent;
  for (int n = 0; n < kPerChannel; ++n) {
    for (int c = 0; c < kChannels; ++c) {
      const std::string channel = "#c" + std::to_string(c);
      const std::string text = "c" + std::to_string(c) + "-" + std::to_string(n);
      // Round robin, starting with the channel's own replica.
      ProxyProcess& p = *replicas[static_cast<std::size_t>((c + n) % 3)];
      const auto r = p.post(message(channel, text));
      ASSERT_EQ(r.status, 200) << r.body;
      sent[channel].push_back(text);
    }
  }
  const std::size_t victim = holder_of(*redis_, "#c0", replicas);
  ASSERT_LT(victim, replicas.size()) << "no replica holds #c0: "
                                     << redis_->admin({"HGETALL", "slack-proxy:q:holder"});
  const auto killed_at = std::chrono::steady_clock::now();
  replicas[victim]->kill_hard();
  const std::string killed_log = replicas[victim]->log();
  EXPECT_LT(received(slack_)["#c0"].size(), static_cast<std::size_t>(kPerChannel))
      << "#c0 was delivered before its replica was killed: the test proves nothing";

  const auto deadline = killed_at + 30s;
  while (std::chrono::steady_clock::now() < deadline &&
         !delivered_in_order(received(slack_), sent))
    std::this_thread::sleep_for(50ms);
  EXPECT_TRUE(delivered_in_order(received(slack_), sent))
      << killed_log << replicas[(victim + 1) % 3]->log() << replicas[(victim + 2) % 3]->log();
  // The figure for docs/scale-out.md: from the kill to the last message.
  std::cout << "everything delivered "
            << std::chrono::duration_cast<std::chrono::milliseconds>(
                   std::chrono::steady_clock::now() - killed_at)
                   .count()
            << " ms after the kill (lease " << kLease << ")\n";
  bool taken_over = false;
  for (std::size_t i = 0; i < replicas.size(); ++i) {
    if (i == victim) continue;
    const std::string log = replicas[i]->log();
    for (auto at = log.find("redis queue: lane "); at != std::string::npos;
         at = log.find("redis queue: lane ", at + 1)) {
      const std::string line = log.substr(at, log.find('\n', at) - at);
      if (line.find(":#c0 (") != std::string::npos && line.find("taken over") != std::string::npos)
        taken_over = true;
    }
  }
  EXPECT_TRUE(taken_over) << "nobody took #c0 over:\n" << killed_log << replicas[(victim + 1) % 3]->log()
                          << replicas[(victim + 2) % 3]->log();
  EXPECT_LT(std::chrono::steady_clock::now() - killed_at, 30s);
  // Duplicates: at most the one message per channel the killed replica
  // had in flight.
  std::size_t total = 0;
  for (const auto& [channel, texts] : received(slack_)) total += texts.size();
  EXPECT_LE(total, static_cast<std::size_t>(kChannels * kPerChannel + kChannels));
  EXPECT_EQ(slack_.rate_limited(), 0u);
}

// Redis goes away mid-stream and comes back from its AOF: what was
// answered 200 before is delivered, requests meanwhile get 503
// queue_unavailable with Retry-After, and succeed once Redis is back.
TEST_F(RedisQueueTest, RedisRestartLosesNothingThatWasAnsweredAndRefusesMeanwhile) {
  ProxyProcess p(toml());
  ASSERT_TRUE(p.start());
  std::map<std::string, std::vector<std::string>> sent;
  for (int n = 0; n < 5; ++n) {
    const std::string text = "c0-" + std::to_string(n);
    ASSERT_EQ(p.post(message("#c0", text)).status, 200);
    sent["#c0"].push_back(text);
  }
  redis_->kill();
  const auto refused = p.post(message("#c0", "c0-refused"));
  EXPECT_EQ(refused.status, 503) << refused.body;
  EXPECT_EQ(error_of(refused), "queue_unavailable");
  EXPECT_TRUE(refused.header("retry-after").has_value());
  redis_->start();
  // Retried as a client would, until Redis answers again.
  const auto deadline = std::chrono::steady_clock::now() + 20s;
  int status = 0;
  for (int n = 5; n < 10; ++n) {
    const std::string text = "c0-" + std::to_string(n);
    do {
      status = p.post(message("#c0", text)).status;
      if (status != 200) std::this_thread::sleep_for(100ms);
    } while (status != 200 && std::chrono::steady_clock::now() < deadline);
    ASSERT_EQ(status, 200) << p.log();
    sent["#c0"].push_back(text);
  }
  const auto until = std::chrono::steady_clock::now() + 30s;
  while (std::chrono::steady_clock::now() < until && !delivered_in_order(received(slack_), sent))
    std::this_thread::sleep_for(50ms);
  EXPECT_TRUE(delivered_in_order(received(slack_), sent)) << p.log() << redis_->log();
  const auto got = received(slack_);
  for (const auto& text : got.at("#c0")) EXPECT_NE(text, "c0-refused");
}

// Callers' tokens with the Redis queue: the replicas need the sealing key
// they share (else a replica taking a lane over could not open the tokens),
// and name a caller's tenant alike with it, so that one caller's channel is
// one lane (one holder, its order kept) whichever replica took a message.
TEST_F(RedisQueueTest, ACallersChannelIsOneLaneOnEveryReplicaAndTheKeyIsRequired) {
  ProxyConfig c;
  c.slack_url = slack_.url();
  c.queue_backend = "redis";
  c.pipeline_settings = "delivery_token = \"caller\"";
  c.stages = paused_bucket() + ProxyConfig::fast_retry_stages();
  const std::string text = c.toml() + "\n[redis]\nurl = \"" + redis_->url() + "\"\n";

  ProxyProcess keyless(text);
  keyless.spawn();
  EXPECT_EQ(keyless.wait_exit(kDeadline), 2);
  EXPECT_NE(keyless.log().find("SLACK_PROXY_QUEUE_KEY is not set"), std::string::npos)
      << keyless.log();

  Environment env = default_environment();
  env.push_back("SLACK_PROXY_QUEUE_KEY="
                "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff");
  ProxyProcess a(text, env);
  ProxyProcess b(text, env);
  ASSERT_TRUE(a.start());
  ASSERT_TRUE(b.start());
  const std::string token = "xoxb-caller-of-the-fleet";
  for (int i = 0; i < 4; ++i) {
    HttpRequest request;
    request.method = "POST";
    request.url = (i % 2 == 0 ? a : b).url();
    request.body = message("#t", "t-" + std::to_string(i));
    request.content_type = "application/json";
    request.headers = {{"Authorization", "Bearer " + token}};
    ASSERT_EQ(http_send(request).status, 200);
  }
  // The bucket lets one message through and holds the rest: they wait in
  // their lane, and there is one.
  std::size_t lanes = 0;
  std::istringstream keys(redis_->admin({"KEYS", "slack-proxy:q:l:*"}));
  for (std::string key; std::getline(keys, key);)
    if (key.size() >= 3 && key.compare(key.size() - 3, 3, ":#t") == 0) ++lanes;
  EXPECT_EQ(lanes, 1u) << redis_->admin({"KEYS", "slack-proxy:q:l:*"});
  EXPECT_EQ(a.log().find(token), std::string::npos) << "the caller's token in a's log";
  EXPECT_EQ(b.log().find(token), std::string::npos) << "the caller's token in b's log";
}

// Queues on one redis-server, as replicas of one fleet, each with its own
// connections and metrics (labelled by its name).
class Fleet {
 public:
  explicit Fleet(const RedisServer& redis) { parse_redis_url(redis.url(), settings_); }
  std::unique_ptr<RedisQueue> open(const std::string& name, RedisQueueOptions options = {}) {
    options.replica = name;
    return std::make_unique<RedisQueue>(
        options,
        [this, name](const std::string& role) {
          return std::make_unique<RedisConnection>(
              settings_, log_, std::make_shared<RedisMetrics>(registry_, name + "-" + role), role);
        },
        clock_, log_);
  }

 private:
  sdk::testing::FakeClock clock_;
  prometheus::Registry registry_;
  RedisSettings settings_;
  std::shared_ptr<spdlog::logger> log_ = std::make_shared<spdlog::logger>("test");
};

// What `queue` announces, until it has `n` (a push is answered once its
// replica's watcher announced it, or after a second all the same).
std::vector<Queued> take_within(Queue& queue, std::size_t n) {
  std::vector<Queued> out;
  const auto deadline = std::chrono::steady_clock::now() + 10s;
  while (out.size() < n && std::chrono::steady_clock::now() < deadline) {
    for (auto& q : queue.take(n - out.size())) out.push_back(std::move(q));
    if (out.size() < n) std::this_thread::sleep_for(5ms);
  }
  return out;
}

sdk::Message queued_message(const std::string& id, const std::string& channel) {
  sdk::Message m;
  m.id = id;
  m.pipeline = "slack";
  m.channel = channel;
  m.payload = R"({"text":")" + id + R"("})";
  return m;
}

// Two replicas share one dead-letter store: what one dead-letters, the
// other lists, shows and replays, and the replay is delivered by whichever
// replica holds the lane then (the one that pushed it back into the empty
// lane).
TEST(RedisQueueReplicasTest, TheyShareOneDeadLetterStore) {
  SP_REQUIRE_TOOL(program, "redis-server", "redis-server");
  RedisServer redis(program);
  Fleet fleet(redis);
  auto a = fleet.open("a");
  auto b = fleet.open("b");
  ASSERT_TRUE(a->backlog().empty());
  ASSERT_TRUE(b->backlog().empty());
  const sdk::Message d = queued_message("d1", "#d");
  ASSERT_EQ(a->push(d).status, Queue::PushStatus::Accepted);
  const auto dead = take_within(*a, 1);
  ASSERT_EQ(dead.size(), 1u);
  DeadLetter letter;
  letter.message = dead[0].message;
  letter.error = "channel_not_found";
  a->dead_letter(dead[0].seq, letter);
  ASSERT_EQ(b->dead_letters().count(), 1u);
  EXPECT_EQ(b->dead_letters().get("d1")->error, "channel_not_found");
  EXPECT_EQ(b->dead_letters().replay("d1"), DeadLetterStore::ReplayStatus::Replayed);
  const auto replayed = take_within(*b, 1);
  ASSERT_EQ(replayed.size(), 1u);
  EXPECT_EQ(replayed[0].message.id, "d1");
  EXPECT_EQ(a->dead_letters().count(), 0u);
  b->ack(replayed[0]);

  EXPECT_EQ(b->lane_size(lane_key(d)), 0u);
  a->close();
  b->close();
}

// Two queues on one Redis, as two replicas: when one is taken for dead, the
// other takes its lane over, and the first learns it at its next heartbeat:
// it calls on_lost, holds nothing, reads nothing and refuses pushes. The
// first is made to look dead by a long lease (a heartbeat every 3 s) while
// the second reaps replicas silent for 1 s: it is taken for dead between
// two of its own heartbeats, as one cut off from Redis would be.
TEST(RedisQueueReplicasTest, AReplicaTakenForDeadStopsAndAnotherTakesItsLaneOver) {
  SP_REQUIRE_TOOL(program, "redis-server", "redis-server");
  RedisServer redis(program);
  Fleet fleet(redis);
  RedisQueueOptions slow, quick;
  slow.lease = 24s;
  quick.lease = 1s;
  // a holds its lane before b exists: b may take a for dead at once.
  auto a = fleet.open("a", slow);
  ASSERT_TRUE(a->backlog().empty());
  std::atomic<bool> a_lost{false};
  a->on_lost([&] { a_lost = true; });
  sdk::Message m = queued_message("x1", "#x");
  ASSERT_EQ(a->push(m).status, Queue::PushStatus::Accepted);
  const std::string lane = lane_key(m);
  ASSERT_EQ(take_within(*a, 1).size(), 1u);
  ASSERT_TRUE(a->holds(lane));
  auto b = fleet.open("b", quick);
  ASSERT_TRUE(b->backlog().empty());

  std::vector<LaneBacklog> taken;
  const auto deadline = std::chrono::steady_clock::now() + 10s;
  while ((taken.empty() || !a_lost) && std::chrono::steady_clock::now() < deadline) {
    for (auto& l : b->take_over()) taken.push_back(std::move(l));
    std::this_thread::sleep_for(10ms);
  }
  ASSERT_EQ(taken.size(), 1u);
  EXPECT_EQ(taken[0].lane, lane);
  EXPECT_EQ(taken[0].count, 1u);
  EXPECT_TRUE(b->holds(lane));
  const auto read = b->read_lane(lane, 0, taken[0].last_seq, 10);
  ASSERT_EQ(read.size(), 1u);
  EXPECT_EQ(read[0].message.id, "x1");

  EXPECT_TRUE(a_lost);
  EXPECT_FALSE(a->holds(lane));
  EXPECT_TRUE(a->read_lane(lane, 0, taken[0].last_seq, 10).empty());
  m.id = "x2";
  EXPECT_EQ(a->push(m).status, Queue::PushStatus::Unavailable);
  // Its outcome for the message is refused: b delivers it now.
  a->ack(read[0]);
  EXPECT_EQ(b->lane_size(lane), 1u);
  b->ack(read[0]);
  EXPECT_EQ(b->lane_size(lane), 0u);
  a->close();
  b->close();
}

// wait_replicas: a push is accepted once a Redis replica has it too (WAIT).
// With the replica gone it is refused (the caller retries), though the
// primary stored it.
TEST(RedisQueueWaitTest, APushIsAcceptedOnlyOnceTheRedisReplicasHaveIt) {
  SP_REQUIRE_TOOL(program, "redis-server", "redis-server");
  // Diskless sync at once: Redis 7 waits 5 s by default before the first.
  RedisServer primary(program, {"--repl-diskless-sync-delay", "0"});
  RedisServer replica(program, {"--replicaof", "127.0.0.1", std::to_string(primary.port())});
  const auto deadline = std::chrono::steady_clock::now() + 20s;
  while (replica.admin({"INFO", "replication"}).find("master_link_status:up") == std::string::npos &&
         std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(20ms);
  ASSERT_NE(replica.admin({"INFO", "replication"}).find("master_link_status:up"),
            std::string::npos);
  // And the primary counts it (WAIT counts only replicas it sees online).
  while (primary.admin({"INFO", "replication"}).find("state=online") == std::string::npos &&
         std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(20ms);
  ASSERT_NE(primary.admin({"INFO", "replication"}).find("state=online"), std::string::npos);

  Fleet fleet(primary);
  RedisQueueOptions options;
  options.wait_replicas = 1;
  options.wait_timeout = 200ms;
  auto owned = fleet.open("w", options);
  RedisQueue& queue = *owned;
  ASSERT_TRUE(queue.backlog().empty());
  // Accepted once the replica confirms; the first WAITs after its sync may
  // time out while it settles, so it is asked until then.
  sdk::Message m = queued_message("w1", "#w");
  std::size_t pushed = 0;
  Queue::PushResult accepted;
  const auto settled = std::chrono::steady_clock::now() + 20s;
  do {
    m.id = "w" + std::to_string(++pushed);
    accepted = queue.push(m);
  } while (accepted.status != Queue::PushStatus::Accepted &&
           std::chrono::steady_clock::now() < settled);
  ASSERT_EQ(accepted.status, Queue::PushStatus::Accepted) << accepted.detail;

  replica.kill();
  m.id = "refused";
  ++pushed;
  const auto refused = queue.push(m);
  EXPECT_EQ(refused.status, Queue::PushStatus::Unavailable);
  EXPECT_NE(refused.detail.find("0 of 1 redis replica(s)"), std::string::npos) << refused.detail;
  EXPECT_EQ(queue.lane_size(lane_key(m)), pushed) << "the primary has them all the same";
  queue.close();
}

}  // namespace
}  // namespace slack_proxy::testing

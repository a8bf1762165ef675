// RedisSharedMarks against a real redis-server: a mark one replica sets is
// seen by the others, a clear reaches them too, a shorter mark never cuts a
// longer one, stages never see each other's marks, expired marks leave
// Redis, and a Redis that is away loses no change made meanwhile.
#include "redis/redis_marks.h"

#include <Poco/Net/SocketAddress.h>
#include <Poco/Redis/Array.h>
#include <Poco/Redis/Client.h>
#include <gtest/gtest.h>
#include <slack_proxy/sdk/testing/fakes.h>
#include <spdlog/sinks/ostream_sink.h>

#include <fstream>
#include <sstream>

#include "metric_values.h"
#include "redis/redis_buckets.h"
#include "redis/redis_queue.h"
#include "redis_server.h"

namespace slack_proxy {
namespace {

using namespace std::chrono_literals;
using testing::RedisServer;

constexpr auto kSettle = 10'000ms;  // only reached when something is broken
constexpr const char* kScope = "alerts/deny_list";
const std::map<std::string, std::string> kMarks{{"role", "marks"}};  // the metrics' label
const std::map<std::string, std::string> kPacing{{"role", "pacing"}};

class MarksReplica {
 public:
  MarksReplica(const RedisServer& server, const sdk::Clock& clock, RedisSettings settings = {})
      : log_(std::make_shared<spdlog::logger>(
            "redis", std::make_shared<spdlog::sinks::ostream_sink_mt>(text_))) {
    parse_redis_url(server.url(), settings);
    hub_ = std::make_shared<RedisSharedMarks>(
        std::make_unique<RedisConnection>(
            settings, log_, std::make_shared<RedisMetrics>(registry_, "marks"), "marks"),
        clock, log_);
  }
  std::shared_ptr<sdk::SharedMarks> scope(const std::string& name) { return hub_->scope(name); }
  RedisSharedMarks& hub() { return *hub_; }
  prometheus::Registry& registry() { return registry_; }
  std::string log() const { return text_.str(); }

 private:
  std::ostringstream text_;
  std::shared_ptr<spdlog::logger> log_;
  prometheus::Registry registry_;
  std::shared_ptr<RedisSharedMarks> hub_;
};

// HLEN of `key`, straight from Redis.
std::int64_t hash_length(const RedisServer& server, const std::string& key) {
  Poco::Redis::Client client;
  client.connect(Poco::Net::SocketAddress("127.0.0.1", server.port()));
  Poco::Redis::Array hlen;
  hlen << "HLEN" << key;
  return client.execute<Poco::Int64>(hlen);
}

class RedisMarksTest : public ::testing::Test {
 protected:
  void SetUp() override {
    SP_REQUIRE_TOOL(program, "redis-server", "redis-server");
    server_ = std::make_unique<RedisServer>(program);
    a_ = std::make_unique<MarksReplica>(*server_, clock_);
    b_ = std::make_unique<MarksReplica>(*server_, clock_);
  }
  // What `replica` finds for `key` once it has read Redis back after now.
  std::optional<sdk::Mark> seen_by(MarksReplica& replica, const std::string& key) {
    auto marks = replica.scope(kScope);
    marks->find(key, clock_.now());  // watched from here on
    EXPECT_TRUE(replica.hub().wait_synced(kSettle)) << replica.log();
    return marks->find(key, clock_.now());
  }

  sdk::testing::FakeClock clock_;
  std::unique_ptr<RedisServer> server_;
  std::unique_ptr<MarksReplica> a_;
  std::unique_ptr<MarksReplica> b_;
};

TEST_F(RedisMarksTest, AMarkOneReplicaSetsIsSeenByTheOtherWithItsNoteAndTimeLeft) {
  const auto now = clock_.now();
  EXPECT_FALSE(seen_by(*b_, "#gone"));
  a_->scope(kScope)->set("#gone", 60s, "channel_not_found", now);
  EXPECT_TRUE(a_->scope(kScope)->find("#gone", now)) << "not on the replica that set it";
  ASSERT_TRUE(a_->hub().wait_synced(kSettle)) << a_->log();

  const auto mark = seen_by(*b_, "#gone");
  ASSERT_TRUE(mark) << b_->log();
  EXPECT_EQ(mark->note, "channel_not_found");
  // Redis counts down in real time while the test's clock stands still.
  EXPECT_GT(mark->until, now + 50s);
  EXPECT_LE(mark->until, now + 60s);
  EXPECT_EQ(b_->scope(kScope)->count(now), 1u);
}

TEST_F(RedisMarksTest, AClearOnOneReplicaClearsItOnTheOther) {
  a_->scope(kScope)->set("#back", 60s, "channel_not_found", clock_.now());
  ASSERT_TRUE(a_->hub().wait_synced(kSettle));
  ASSERT_TRUE(seen_by(*b_, "#back"));
  b_->scope(kScope)->clear("#back");
  EXPECT_FALSE(b_->scope(kScope)->find("#back", clock_.now())) << "still set where it was cleared";
  ASSERT_TRUE(b_->hub().wait_synced(kSettle));
  EXPECT_FALSE(seen_by(*a_, "#back"));
}

TEST_F(RedisMarksTest, AShorterMarkFromAnotherReplicaDoesNotCutALongerOne) {
  const auto now = clock_.now();
  a_->scope(kScope)->set("#x", 60s, "first", now);
  ASSERT_TRUE(a_->hub().wait_synced(kSettle));
  b_->scope(kScope)->set("#x", 1s, "shorter", now);  // b had not seen the first
  const auto mark = seen_by(*b_, "#x");
  ASSERT_TRUE(mark);
  EXPECT_EQ(mark->note, "first");
  EXPECT_GT(mark->until, now + 50s);
}

TEST_F(RedisMarksTest, TwoStagesNeverSeeEachOthersMarks) {
  a_->scope("other/deny_list")->set("#x", 60s, "e", clock_.now());
  ASSERT_TRUE(a_->hub().wait_synced(kSettle));
  EXPECT_FALSE(seen_by(*b_, "#x"));
  EXPECT_FALSE(seen_by(*a_, "#x"));
}

TEST_F(RedisMarksTest, ExpiredMarksAreRemovedFromRedis) {
  auto marks = a_->scope(kScope);
  marks->set("#short", 30ms, "e", clock_.now());
  marks->set("#long", 60s, "e", clock_.now());
  ASSERT_TRUE(a_->hub().wait_synced(kSettle));
  const std::string key = "slack-proxy:marks:" + std::string(kScope);
  // A read-back after the 30 ms sees it expired, the next round prunes it.
  const auto deadline = std::chrono::steady_clock::now() + kSettle;
  while (hash_length(*server_, key) != 1 && std::chrono::steady_clock::now() < deadline)
    ASSERT_TRUE(a_->hub().wait_synced(kSettle));
  EXPECT_EQ(hash_length(*server_, key), 1);
}

// Redis away: the replica keeps its marks and sends them once Redis is back
// (this one kept no data across the restart, as a Redis without
// persistence would not), with the time they have left then: a mark that
// ran out meanwhile is not brought back.
TEST_F(RedisMarksTest, AMarkSetWhileRedisIsAwayReachesTheOthersOnceItIsBackWithTheTimeLeft) {
  ASSERT_FALSE(seen_by(*b_, "#gone"));
  server_->kill();
  a_->scope(kScope)->set("#gone", 60s, "channel_not_found", clock_.now());
  a_->scope(kScope)->set("#stale", 10s, "channel_not_found", clock_.now());
  EXPECT_TRUE(a_->scope(kScope)->find("#gone", clock_.now())) << "lost while Redis is away";
  EXPECT_FALSE(a_->hub().wait_synced(200ms)) << "synced with no Redis";
  clock_.advance(30s);  // the outage lasts 30 s by the replicas' clock
  server_->start();
  // The connections retry with backoff (at most 5 s).
  const auto deadline = std::chrono::steady_clock::now() + 15s;
  bool seen = false;
  while (!seen && std::chrono::steady_clock::now() < deadline) {
    a_->hub().wait_synced(1s);
    b_->hub().wait_synced(1s);
    seen = b_->scope(kScope)->find("#gone", clock_.now()).has_value();
  }
  EXPECT_TRUE(seen) << a_->log() << b_->log();
  const auto mark = b_->scope(kScope)->find("#gone", clock_.now());
  ASSERT_TRUE(mark);
  EXPECT_LE(mark->until, clock_.now() + 30s) << "sent with its whole ttl after the outage";
  EXPECT_GT(mark->until, clock_.now() + 20s);
  EXPECT_FALSE(b_->scope(kScope)->find("#stale", clock_.now())) << "an expired mark came back";
  EXPECT_NE(a_->log().find("unreachable"), std::string::npos) << a_->log();
  EXPECT_NE(a_->log().find("reachable again"), std::string::npos) << a_->log();
}

// A change Redis refuses (here an ACL without HDEL) stays queued and is
// sent again, once a poll and never in a busy loop, until Redis takes it.
// Meanwhile a refused clear is not kept here either: this replica sees what
// Redis, and so every other replica, has.
TEST_F(RedisMarksTest, AChangeRedisRefusesIsSentAgainUntilItIsTaken) {
  ASSERT_EQ(server_->admin(
                {"ACL", "SETUSER", "no-hdel", "on", ">pw-nohdel-5a1c", "~*", "+@all", "-hdel"}),
            "OK");
  RedisSettings limited;
  limited.user = "no-hdel";
  limited.password = "pw-nohdel-5a1c";
  MarksReplica c(*server_, clock_, limited);
  c.scope(kScope)->set("#x", 60s, "channel_not_found", clock_.now());
  ASSERT_TRUE(c.hub().wait_synced(kSettle)) << c.log();
  const auto refusals = [&] {
    return test_support::metric_value(c.registry(), "slackproxy_redis_reply_errors_total", kMarks);
  };
  c.scope(kScope)->clear("#x");
  ASSERT_TRUE(c.hub().wait_synced(kSettle));  // refused
  const double first = refusals();
  EXPECT_GE(first, 1);
  const auto started = std::chrono::steady_clock::now();
  ASSERT_TRUE(c.hub().wait_synced(kSettle));
  ASSERT_TRUE(c.hub().wait_synced(kSettle));
  // Two rounds asked for, and at most one a poll besides.
  const auto polls = (std::chrono::steady_clock::now() - started) / sdk::kSharedMarksPoll + 1;
  EXPECT_GE(refusals(), first + 2) << "not sent again";
  EXPECT_LE(refusals(), first + 2 + static_cast<double>(polls)) << "sent again in a busy loop";
  EXPECT_TRUE(c.scope(kScope)->find("#x", clock_.now())) << "a refused clear hides it here";
  EXPECT_TRUE(seen_by(*b_, "#x")) << "Redis has it still, so the others do";
  EXPECT_NE(c.log().find("NOPERM"), std::string::npos) << c.log();
  ASSERT_EQ(server_->admin({"ACL", "SETUSER", "no-hdel", "+hdel"}), "OK");
  ASSERT_TRUE(c.hub().wait_synced(kSettle));
  EXPECT_FALSE(seen_by(*b_, "#x")) << "the clear never reached Redis";
}

// docs/scale-out.md's ACL line gives a user every command the buckets, the
// pauses and the marks use (Redis checks a script's commands too): with it,
// nothing is refused.
TEST(RedisAclTest, TheDocumentedAclUserIsRefusedNothing) {
  SP_REQUIRE_TOOL(program, "redis-server", "redis-server");
  RedisServer server(program);
  std::ifstream doc(std::string(SP_SOURCE_DIR) + "/docs/scale-out.md");
  std::string line, acl;
  while (std::getline(doc, line)) {
    const auto at = line.find("`ACL SETUSER ");
    if (at != std::string::npos) acl = line.substr(at + 1, line.find('`', at + 1) - at - 1);
  }
  ASSERT_FALSE(acl.empty()) << "no ACL line in docs/scale-out.md";
  std::vector<std::string> setuser;
  std::istringstream words(acl);
  for (std::string word; words >> word;)
    setuser.push_back(word == ">PASSWORD" ? ">pw-acl-7e2a" : word);
  ASSERT_EQ(server.admin(setuser), "OK") << acl;
  RedisSettings user;
  user.user = "slack-proxy";
  user.password = "pw-acl-7e2a";
  sdk::testing::FakeClock clock;

  MarksReplica marks(server, clock, user);
  auto set = marks.scope(kScope);
  set->set("#gone", 60s, "channel_not_found", clock.now());
  set->set("#short", 1ms, "e", clock.now());
  ASSERT_TRUE(marks.hub().wait_synced(kSettle)) << marks.log();
  set->clear("#gone");
  // Cleared, and #short pruned once a read-back has seen it expired: the
  // hash is empty (it would keep #short for the 60 s #gone gave it).
  const std::string key = "slack-proxy:marks:" + std::string(kScope);
  const auto until = std::chrono::steady_clock::now() + kSettle;
  while (hash_length(server, key) != 0 && std::chrono::steady_clock::now() < until)
    ASSERT_TRUE(marks.hub().wait_synced(kSettle)) << marks.log();
  EXPECT_EQ(hash_length(server, key), 0) << marks.log();

  RedisSettings bucket_user = user;
  parse_redis_url(server.url(), bucket_user);
  std::ostringstream text;
  auto log = std::make_shared<spdlog::logger>(
      "redis", std::make_shared<spdlog::sinks::ostream_sink_mt>(text));
  prometheus::Registry registry;
  RedisSharedBuckets buckets(
      std::make_unique<RedisConnection>(
          bucket_user, log, std::make_shared<RedisMetrics>(registry, "pacing"), "pacing"),
      clock, log);
  const auto shape = sdk::BucketShape::of(10.0, 2, 0ms);
  buckets.next_token("b-x", shape, clock.now());
  buckets.pause("b-x", clock.now() + 2s, clock.now());
  buckets.paused_until("b-x", clock.now());
  ASSERT_TRUE(buckets.wait_settled(kSettle));
  EXPECT_EQ(buckets.granted(), 1u) << text.str();
  // And a read-back of the pause (TIME and MGET, every 20 ms): two more
  // commands than now.
  const auto commands = [&] {
    return test_support::metric_value(registry, "slackproxy_redis_commands_total", kPacing);
  };
  const double before = commands();
  const auto deadline = std::chrono::steady_clock::now() + kSettle;
  while (commands() < before + 2 && std::chrono::steady_clock::now() < deadline)
    ASSERT_TRUE(buckets.wait_settled(kSettle));
  EXPECT_GE(commands(), before + 2);

  // Exported, and zero: nothing refused.
  EXPECT_EQ(
      test_support::series_value(marks.registry(), "slackproxy_redis_reply_errors_total", kMarks),
      std::optional<double>(0))
      << marks.log();
  EXPECT_EQ(test_support::series_value(registry, "slackproxy_redis_reply_errors_total", kPacing),
            std::optional<double>(0))
      << text.str();

  // The queue ([queue] backend = "redis"): every call it makes, as the user.
  {
    RedisQueueOptions options;
    RedisQueue queue(
        options,
        [&](const std::string& role) {
          return std::make_unique<RedisConnection>(
              bucket_user, log, std::make_shared<RedisMetrics>(registry, role), role);
        },
        clock, log);
    ASSERT_TRUE(queue.backlog().empty());
    sdk::Message m;
    m.id = "acl-1";
    m.pipeline = "slack";
    m.channel = "#acl";
    m.payload = R"({"text":"hi"})";
    ASSERT_EQ(queue.push(m, {.dedup_key = "k"}).status, Queue::PushStatus::Accepted) << text.str();
    m.id = "acl-2";
    ASSERT_EQ(queue.push(m).status, Queue::PushStatus::Accepted) << text.str();
    const auto taken = queue.take(10);
    ASSERT_EQ(taken.size(), 2u) << text.str();
    EXPECT_EQ(queue.read_lane(lane_key(m), 0, taken[1].seq, 10).size(), 2u);
    EXPECT_EQ(queue.lane_size(lane_key(m)), 2u);
    EXPECT_TRUE(queue.holds(lane_key(m)));
    queue.ack(taken[0]);
    DeadLetter letter;
    letter.message = taken[1].message;
    letter.error = "invalid_auth";
    queue.dead_letter(taken[1].seq, letter);
    EXPECT_EQ(queue.dead_letters().count(), 1u);
    EXPECT_EQ(queue.dead_letters().list({}, "", 10).items.size(), 1u);
    EXPECT_EQ(queue.dead_letters().replay("acl-2"), DeadLetterStore::ReplayStatus::Replayed);
    const auto replayed = queue.take(10);
    ASSERT_EQ(replayed.size(), 1u) << text.str();
    queue.dead_letter(replayed[0].seq, letter);
    EXPECT_TRUE(queue.dead_letters().remove("acl-2"));
    queue.close();
  }
  for (const char* role : {"queue", "queue-watch", "queue-read"})
    EXPECT_EQ(test_support::series_value(registry, "slackproxy_redis_reply_errors_total",
                                         {{"role", role}}),
              std::optional<double>(0))
        << role << "\n" << text.str();
}

}  // namespace
}  // namespace slack_proxy

// RedisSharedBuckets against a real redis-server: the same arithmetic as the
// in-process buckets, one bucket for every replica, a pause (never a flood)
// while Redis is away, and no secret in any message.
#include "redis/redis_buckets.h"

#include <sstream>

#include <Poco/Net/SocketAddress.h>
#include <Poco/Redis/Array.h>
#include <Poco/Redis/Client.h>
#include <gtest/gtest.h>
#include <spdlog/sinks/ostream_sink.h>

#include <slack_proxy/sdk/testing/fakes.h>

#include "metric_values.h"
#include "redis_server.h"

namespace slack_proxy {
namespace {

using namespace std::chrono_literals;
using sdk::BucketShape;
using testing::RedisServer;

constexpr auto kSettle = 10'000ms;  // only reached when something is broken
const std::map<std::string, std::string> kPacing{{"role", "pacing"}};  // the metrics' label

struct LogCapture {
  std::ostringstream text;
  std::shared_ptr<spdlog::logger> log = std::make_shared<spdlog::logger>(
      "redis", std::make_shared<spdlog::sinks::ostream_sink_mt>(text));
};

RedisSettings settings_for(const RedisServer& server) {
  RedisSettings s;
  parse_redis_url(server.url(), s);
  return s;
}

class Replica {
 public:
  Replica(const RedisServer& server, const sdk::Clock& clock, prometheus::Registry& registry,
          RedisSettings settings = {}, bool use_server = true)
      : capture_(std::make_unique<LogCapture>()) {
    if (use_server) {
      const RedisSettings base = settings_for(server);
      settings.host = base.host;
      settings.port = base.port;
    }
    auto connection = std::make_unique<RedisConnection>(
        settings, capture_->log, std::make_shared<RedisMetrics>(registry, "pacing"), "pacing");
    buckets_ = std::make_unique<RedisSharedBuckets>(std::move(connection), clock, capture_->log,
                                                    /*redis_clock=*/false);
  }
  // What next_token() says once this replica has heard from Redis.
  sdk::SteadyTime ask(std::string_view key, const BucketShape& shape, sdk::SteadyTime now) {
    auto at = buckets_->next_token(key, shape, now);
    if (at != now + RedisSharedBuckets::kPoll) return at;
    EXPECT_TRUE(buckets_->wait_settled(kSettle));
    return buckets_->next_token(key, shape, now);
  }
  RedisSharedBuckets& buckets() { return *buckets_; }
  std::string log() const { return capture_->text.str(); }

 private:
  std::unique_ptr<LogCapture> capture_;
  std::unique_ptr<RedisSharedBuckets> buckets_;
};

class RedisBucketsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    SP_REQUIRE_TOOL(program, "redis-server", "redis-server");
    server_ = std::make_unique<RedisServer>(program);
  }
  sdk::testing::FakeClock clock_;
  prometheus::Registry registry_;
  std::unique_ptr<RedisServer> server_;
};

TEST(RedisUrlTest, ReadsHostPortAndDatabaseAndRefusesCredentialsInTheUrl) {
  RedisSettings s;
  parse_redis_url("redis://redis.internal:6380/2", s);
  EXPECT_EQ(s.host, "redis.internal");
  EXPECT_EQ(s.port, 6380);
  EXPECT_EQ(s.database, 2);
  parse_redis_url("redis://10.0.0.5", s);
  EXPECT_EQ(s.port, 6379);
  EXPECT_EQ(s.database, 0);
  parse_redis_url("redis://[::1]:6380/1", s);
  EXPECT_EQ(s.host, "::1");
  EXPECT_EQ(s.port, 6380);
  EXPECT_EQ(s.database, 1);
  EXPECT_EQ(s.where(), "[::1]:6380/1");
  parse_redis_url("redis://[fd00::5]", s);
  EXPECT_EQ(s.host, "fd00::5");
  EXPECT_EQ(s.port, 6379);
  for (const char* bad : {"http://x", "redis://", "redis://h:0", "redis://h:70000", "redis://h/16",
                          "redis://h:x", "rediss://h", "redis://[::1", "redis://[::1]x",
                          "redis://[]:6379", "redis://[::1]:", "redis://fd00::5",
                          "redis://::1:6379"}) {
    EXPECT_THROW(parse_redis_url(bad, s), std::invalid_argument) << bad;
  }
  try {
    parse_redis_url("redis://fd00::abc", s);
    ADD_FAILURE() << "accepted an IPv6 address without brackets";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("in brackets"), std::string::npos) << e.what();
  }
  try {
    parse_redis_url("redis://user:hunter2secret@h:6379", s);
    ADD_FAILURE() << "accepted a password in the URL";
  } catch (const std::invalid_argument& e) {
    EXPECT_EQ(std::string(e.what()).find("hunter2secret"), std::string::npos) << e.what();
  }
}

// Every answer equals sdk::BucketMap's for the same calls: the script is the
// same bucket, kept elsewhere.
TEST_F(RedisBucketsTest, TheScriptKeepsTheSameBucketAsTheInProcessOne) {
  // 500 ms apart, 3 at once less 20 ms; and a jitter larger than the burst,
  // whose negative capacity spaces tokens interval + 200 ms apart.
  for (const auto& [name, shape] : {std::pair{"k", BucketShape::of(2.0, 3, 20ms)},
                                    std::pair{"n", BucketShape::of(2.0, 1, 700ms)}}) {
    SCOPED_TRACE(name);
    Replica replica(*server_, clock_, registry_);
    sdk::BucketMap local;
    int granted = 0;
    // Uneven steps: bursts, idling past full, and asking too early.
    const std::chrono::milliseconds steps[] = {0ms,   1ms,    1ms, 0ms, 120ms, 380ms, 499ms, 1ms,
                                               250ms, 2000ms, 0ms, 0ms, 0ms,   0ms,   480ms, 220ms};
    for (const auto step : steps) {
      clock_.advance(step);
      const auto now = clock_.now();
      const auto expected = local.next_token(name, shape, now);
      const auto said = replica.ask(name, shape, now);
      ASSERT_EQ((said - now).count(), (expected - now).count()) << "after " << granted << " tokens";
      if (expected <= now) {
        replica.buckets().take(name, shape, now);
        local.take(name, shape, now);
        ++granted;
      }
    }
    EXPECT_GE(granted, 3);  // and every answer on the way was the same
    EXPECT_EQ(replica.buckets().granted(), static_cast<std::uint64_t>(granted));
  }
}

// Two replicas asking as fast as they can draw from one bucket: together
// they get the burst plus the rate, not twice that.
TEST_F(RedisBucketsTest, TwoReplicasShareOneBucket) {
  Replica a(*server_, clock_, registry_);
  prometheus::Registry other_registry;
  Replica b(*server_, clock_, other_registry);
  const auto shape = BucketShape::of(1.0, 3, 0ms);
  int taken_a = 0, taken_b = 0;
  for (int step = 0; step <= 100; ++step) {  // 10 s in 100 ms steps
    const auto now = clock_.now();
    for (auto* replica : {&a, &b}) {
      if (replica->ask("w", shape, now) > now) continue;
      replica->buckets().take("w", shape, now);
      ++(replica == &a ? taken_a : taken_b);
    }
    clock_.advance(100ms);
  }
  // A full bucket of 3, then one a second for 10 s.
  EXPECT_EQ(taken_a + taken_b, 13);
  EXPECT_GT(taken_a, 0);
  EXPECT_GT(taken_b, 0);
}

// A claimed token left untaken goes back: a stage that claimed it and then
// waited on another bucket must not cost the budget a turn.
TEST_F(RedisBucketsTest, AClaimedTokenLeftUntakenGoesBack) {
  Replica a(*server_, clock_, registry_);
  prometheus::Registry other_registry;
  Replica b(*server_, clock_, other_registry);
  const auto shape = BucketShape::of(1.0, 1, 0ms);
  ASSERT_EQ(a.ask("c", shape, clock_.now()), clock_.now());  // claimed, never taken
  EXPECT_EQ(b.ask("c", shape, clock_.now()) - clock_.now(), 1s);  // a holds it

  clock_.advance(RedisSharedBuckets::kGrantLifetime + 1ms);
  // The claim has expired: a gives it back before claiming again, so the
  // token is there now (kept, it would be 949 ms away).
  EXPECT_EQ(a.ask("c", shape, clock_.now()), clock_.now());
  prometheus::Registry third_registry;
  Replica c(*server_, clock_, third_registry);
  EXPECT_EQ(c.ask("c", shape, clock_.now()) - clock_.now(), 1s)
      << "a's second claim holds the one token";
}

// Without Redis no token is granted, however long it is asked: the shared
// budget cannot be seen, so it is not spent. Back, and tokens flow again.
TEST_F(RedisBucketsTest, RedisGoneMeansAPauseNotAFloodAndItResumes) {
  Replica replica(*server_, clock_, registry_);
  const auto shape = BucketShape::of(10.0, 5, 0ms);
  ASSERT_EQ(replica.ask("p", shape, clock_.now()), clock_.now());
  replica.buckets().take("p", shape, clock_.now());

  server_->kill();
  for (int i = 0; i < 5; ++i) {
    clock_.advance(2s);
    EXPECT_GT(replica.ask("p", shape, clock_.now()), clock_.now()) << "granted while Redis is down";
  }
  EXPECT_NE(replica.log().find("unreachable"), std::string::npos) << replica.log();

  server_->start();
  // The connection retries with backoff (at most 5 s): ask until it is back.
  const auto deadline = std::chrono::steady_clock::now() + 15s;
  bool granted = false;
  while (!granted && std::chrono::steady_clock::now() < deadline) {
    clock_.advance(1s);
    granted = replica.ask("p", shape, clock_.now()) <= clock_.now();
  }
  EXPECT_TRUE(granted) << replica.log();
  EXPECT_NE(replica.log().find("reachable again"), std::string::npos) << replica.log();
}

// A 429 pause one replica was given holds the other within a poll, and a
// shorter pause never cuts a longer one short.
TEST_F(RedisBucketsTest, APauseOneReplicaWritesHoldsTheOther) {
  Replica a(*server_, clock_, registry_);
  prometheus::Registry other_registry;
  Replica b(*server_, clock_, other_registry);
  const auto now = clock_.now();
  EXPECT_LE(b.buckets().paused_until("b-budget", now), now);  // and b now watches it

  a.buckets().pause("b-budget", now + 2s, now);
  ASSERT_TRUE(a.buckets().wait_settled(kSettle));  // written to Redis
  // A replica that did not see the first writes a shorter one: Redis keeps
  // the longer.
  prometheus::Registry third_registry;
  Replica c(*server_, clock_, third_registry);
  c.buckets().pause("b-budget", now + 500ms, now);
  ASSERT_TRUE(c.buckets().wait_settled(kSettle));
  // Redis counts the pause down in real time, the test's clock stands still:
  // b sees it end 2 s from the write, less the real time since.
  const auto deadline = std::chrono::steady_clock::now() + kSettle;
  sdk::SteadyTime seen = now;
  while (seen <= now && std::chrono::steady_clock::now() < deadline) {
    ASSERT_TRUE(b.buckets().wait_settled(kSettle));
    seen = b.buckets().paused_until("b-budget", now);
  }
  EXPECT_GT(seen, now + 1s) << "not seen, or the shorter pause cut it";
  EXPECT_LE(seen, now + 2s + 1ms);
  EXPECT_LE(b.buckets().paused_until("another-budget", now), now);
}

// Redis' INFO commandstats line for `command`, e.g. "calls=3,usec=...".
std::string command_stats(const RedisServer& server, const std::string& command) {
  Poco::Redis::Client client;
  client.connect(Poco::Net::SocketAddress("127.0.0.1", server.port()));
  Poco::Redis::Array info;
  info << "INFO" << "commandstats";
  const std::string text = client.execute<Poco::Redis::BulkString>(info).value();
  const std::string key = "cmdstat_" + command + ":";
  const auto at = text.find(key);
  if (at == std::string::npos) return {};
  return text.substr(at + key.size(), text.find('\r', at) - at - key.size());
}

// The scripts are loaded once a connection and run by their SHA1, not sent
// in full with every claim; a script cache flushed under a running proxy
// costs one refused batch, after which they are loaded again.
TEST_F(RedisBucketsTest, ScriptsRunByTheirShaAndAFlushedCacheIsLoadedAgain) {
  Replica replica(*server_, clock_, registry_);
  const auto shape = BucketShape::of(1.0, 1, 0ms);
  ASSERT_EQ(replica.ask("s", shape, clock_.now()), clock_.now());  // connects, loads, EVALSHA
  replica.buckets().take("s", shape, clock_.now());
  clock_.advance(2s);
  ASSERT_EQ(replica.ask("s", shape, clock_.now()), clock_.now());
  EXPECT_NE(command_stats(*server_, "evalsha").find("calls="), std::string::npos)
      << "EVALSHA never ran";
  EXPECT_EQ(command_stats(*server_, "eval"), "") << "a script was sent in full";
  replica.buckets().take("s", shape, clock_.now());

  ASSERT_EQ(server_->admin({"SCRIPT", "FLUSH"}), "OK");
  clock_.advance(2s);
  EXPECT_GT(replica.ask("s", shape, clock_.now()), clock_.now()) << "NOSCRIPT granted a token";
  EXPECT_NE(replica.log().find("lost its scripts (SCRIPT FLUSH or a restart): loading them again"),
            std::string::npos)
      << replica.log();
  clock_.advance(2s);
  EXPECT_EQ(replica.ask("s", shape, clock_.now()), clock_.now()) << replica.log();
  clock_.advance(2s);
  EXPECT_EQ(replica.ask("s", shape, clock_.now()), clock_.now()) << replica.log();
  EXPECT_EQ(test_support::metric_value(registry_, "slackproxy_redis_reply_errors_total", kPacing),
            1);
}

class RedisAuthTest : public ::testing::Test {
 protected:
  void SetUp() override {
    SP_REQUIRE_TOOL(program, "redis-server", "redis-server");
    server_ = std::make_unique<RedisServer>(program, std::vector<std::string>{
                                                         "--requirepass", "pw-9f3e1c-secret"});
  }
  sdk::testing::FakeClock clock_;
  prometheus::Registry registry_;
  std::unique_ptr<RedisServer> server_;
};

TEST_F(RedisAuthTest, AWrongPasswordIsReportedWithoutThePassword) {
  RedisSettings wrong;
  wrong.password = "pw-wrong-7a2b-secret";
  Replica replica(*server_, clock_, registry_, wrong);
  const auto shape = BucketShape::of(1.0, 1, 0ms);
  EXPECT_GT(replica.ask("x", shape, clock_.now()), clock_.now());
  EXPECT_NE(replica.log().find("AUTH refused"), std::string::npos) << replica.log();
  EXPECT_EQ(replica.log().find("pw-wrong-7a2b-secret"), std::string::npos) << replica.log();

  RedisSettings right;
  right.password = "pw-9f3e1c-secret";
  prometheus::Registry other_registry;
  Replica ok(*server_, clock_, other_registry, right);
  EXPECT_EQ(ok.ask("x", shape, clock_.now()), clock_.now()) << ok.log();
  EXPECT_EQ(ok.log().find("pw-9f3e1c-secret"), std::string::npos);
}

// Redis refusing the script (here an ACL user without EVAL and EVALSHA; NOPERM, OOM
// under noeviction, ... alike) grants nothing, and says so once.
TEST_F(RedisAuthTest, ACommandRedisRefusesGrantsNothingAndIsLoggedAndCounted) {
  ASSERT_EQ(server_->admin({"ACL", "SETUSER", "limited", "on", ">pw-limited-4c1d", "~*", "+@all",
                            "-eval", "-evalsha"}),
            "OK");
  RedisSettings limited;
  limited.user = "limited";
  limited.password = "pw-limited-4c1d";
  Replica replica(*server_, clock_, registry_, limited);
  const auto shape = BucketShape::of(1.0, 1, 0ms);
  for (int i = 0; i < 3; ++i) {
    EXPECT_GT(replica.ask("x", shape, clock_.now()), clock_.now());
    clock_.advance(2s);
  }
  const std::string log = replica.log();
  EXPECT_NE(log.find("refused a command (pacing): NOPERM"), std::string::npos) << log;
  EXPECT_EQ(log.find("refused a command", log.find("refused a command") + 1), std::string::npos)
      << "logged more than once:\n" << log;
  EXPECT_EQ(log.find("pw-limited-4c1d"), std::string::npos);
  EXPECT_EQ(test_support::metric_value(registry_, "slackproxy_redis_reply_errors_total", kPacing),
            3);
}

// A user set without a password still authenticates as that user (an ACL
// user marked nopass), instead of silently staying the default one: here
// its missing EVAL shows it is the user that sends.
TEST_F(RedisAuthTest, AUserWithoutAPasswordIsThatUserNotTheDefaultOne) {
  ASSERT_EQ(server_->admin({"ACL", "SETUSER", "nopass-user", "on", "nopass", "~*", "+@all", "-eval",
                            "-evalsha"}),
            "OK");
  RedisSettings user_only;
  user_only.user = "nopass-user";
  Replica replica(*server_, clock_, registry_, user_only);
  const auto shape = BucketShape::of(1.0, 1, 0ms);
  EXPECT_GT(replica.ask("x", shape, clock_.now()), clock_.now());
  EXPECT_NE(replica.log().find("refused a command (pacing): NOPERM"), std::string::npos)
      << replica.log();
}

// An ACL user that may not SCRIPT LOAD still gets tokens: the scripts then
// go in full, as EVAL, and the refusal is logged and counted once.
TEST_F(RedisAuthTest, AUserWhoMayNotLoadScriptsStillGetsTokens) {
  ASSERT_EQ(server_->admin({"ACL", "SETUSER", "no-script", "on", ">pw-noscript-2b7d", "~*", "+@all",
                            "-script"}),
            "OK");
  RedisSettings user;
  user.user = "no-script";
  user.password = "pw-noscript-2b7d";
  Replica replica(*server_, clock_, registry_, user);
  const auto shape = BucketShape::of(1.0, 1, 0ms);
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(replica.ask("x", shape, clock_.now()), clock_.now()) << replica.log();
    replica.buckets().take("x", shape, clock_.now());
    clock_.advance(2s);
  }
  EXPECT_NE(replica.log().find("NOPERM"), std::string::npos) << replica.log();
  EXPECT_EQ(test_support::metric_value(registry_, "slackproxy_redis_reply_errors_total", kPacing),
            1);
}

}  // namespace
}  // namespace slack_proxy

#include "redis/redis_connection.h"

#include <algorithm>

#include <Poco/Exception.h>
#include <Poco/Net/SocketAddress.h>
#include <Poco/Redis/Error.h>
#include <Poco/Redis/Exception.h>
#include <Poco/Redis/Type.h>
#include <Poco/Timespan.h>

namespace slack_proxy {
namespace {

constexpr std::chrono::milliseconds kFirstBackoff{100};
constexpr std::chrono::milliseconds kMaxBackoff{5000};

Poco::Timespan timespan(std::chrono::milliseconds ms) {
  return Poco::Timespan(static_cast<Poco::Timespan::TimeDiff>(ms.count()) * 1000);
}

}  // namespace

RedisMetrics::RedisMetrics(prometheus::Registry& registry) {
  round_trip_ = &prometheus::BuildHistogram()
                     .Name("slackproxy_redis_round_trip_seconds")
                     .Help("Time from sending a batch of Redis commands to reading every reply")
                     .Register(registry)
                     .Add({}, prometheus::Histogram::BucketBoundaries{
                                  0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.05, 0.25, 1});
  commands_ = &prometheus::BuildCounter()
                   .Name("slackproxy_redis_commands_total")
                   .Help("Redis commands answered (errors Redis itself replied included)")
                   .Register(registry)
                   .Add({});
  errors_ = &prometheus::BuildCounter()
                 .Name("slackproxy_redis_errors_total")
                 .Help("Batches of Redis commands that failed: unreachable, timed out or cut off")
                 .Register(registry)
                 .Add({});
  reply_errors_ = &prometheus::BuildCounter()
                      .Name("slackproxy_redis_reply_errors_total")
                      .Help("Redis commands Redis refused (NOPERM, OOM, ...) or answered unexpectedly")
                      .Register(registry)
                      .Add({});
  connects_ = &prometheus::BuildCounter()
                   .Name("slackproxy_redis_connects_total")
                   .Help("Connections made to Redis (the first one and every reconnection)")
                   .Register(registry)
                   .Add({});
}

void RedisMetrics::round_trip(std::chrono::nanoseconds took, std::size_t commands) {
  round_trip_->Observe(std::chrono::duration<double>(took).count());
  commands_->Increment(static_cast<double>(commands));
}
void RedisMetrics::failed() { errors_->Increment(); }
void RedisMetrics::reply_error() { reply_errors_->Increment(); }
void RedisMetrics::connected(bool up) {
  if (up) connects_->Increment();
}

RedisConnection::RedisConnection(RedisSettings settings, std::shared_ptr<spdlog::logger> log,
                                 std::shared_ptr<RedisMetrics> metrics)
    : settings_(std::move(settings)), log_(std::move(log)), metrics_(std::move(metrics)) {}

RedisConnection::~RedisConnection() {
  try {
    if (client_) client_->disconnect();
  } catch (...) {
  }
}

void RedisConnection::connect() {
  client_ = std::make_unique<Poco::Redis::Client>();
  client_->connect(Poco::Net::SocketAddress(settings_.host, settings_.port),
                   timespan(settings_.connect_timeout));
  client_->setReceiveTimeout(timespan(settings_.command_timeout));
  std::vector<Poco::Redis::Array> setup;
  if (!settings_.password.empty()) {
    Poco::Redis::Array auth;
    auth << "AUTH";
    if (!settings_.user.empty()) auth << settings_.user;
    auth << settings_.password;
    setup.push_back(std::move(auth));
  }
  if (settings_.database != 0) {
    Poco::Redis::Array select;
    select << "SELECT" << std::to_string(settings_.database);
    setup.push_back(std::move(select));
  }
  if (setup.empty()) return;
  const Poco::Redis::Array replies = client_->sendCommands(setup);
  for (std::size_t i = 0; i < replies.size(); ++i) {
    if (replies.getType(i) == Poco::Redis::RedisTypeTraits<Poco::Redis::Error>::TypeId) {
      // Redis' own words ("WRONGPASS invalid username-password pair"),
      // which never repeat the password.
      throw RedisUnavailable(std::string(i == 0 && !settings_.password.empty() ? "AUTH" : "SELECT") +
                             " refused: " + replies.get<Poco::Redis::Error>(i).getMessage());
    }
  }
}

void RedisConnection::reply_error(const Poco::Redis::Array& replies, std::size_t i) {
  metrics_->reply_error();
  if (reply_error_logged_) return;
  reply_error_logged_ = true;
  std::string what = "an answer of another kind than asked for";
  try {
    if (replies.getType(i) == Poco::Redis::RedisTypeTraits<Poco::Redis::Error>::TypeId)
      what = replies.get<Poco::Redis::Error>(i).getMessage();
  } catch (const std::exception&) {
  }
  log_->error("redis at {} refused a command: {}; shared pacing waits until it is accepted "
              "(logged once per connection; slackproxy_redis_reply_errors_total counts them)",
              settings_.where(), what);
}

void RedisConnection::fail(const std::string& why) {
  client_.reset();
  reply_error_logged_ = false;
  metrics_->failed();
  backoff_ = backoff_.count() == 0 ? kFirstBackoff : std::min(kMaxBackoff, backoff_ * 2);
  retry_at_ = std::chrono::steady_clock::now() + backoff_;
  if (up_ || !ever_tried_) {
    log_->error("redis at {} is unreachable: {}; retrying with backoff up to {} s", settings_.where(),
                why, kMaxBackoff.count() / 1000);
  }
  up_ = false;
  ever_tried_ = true;
}

Poco::Redis::Array RedisConnection::pipeline(const std::vector<Poco::Redis::Array>& commands) {
  if (!client_) {
    if (ever_tried_ && !up_ && std::chrono::steady_clock::now() < retry_at_)
      throw RedisUnavailable("redis at " + settings_.where() + " is unreachable (waiting to retry)");
    failing_as_unavailable([&] { connect(); });
    metrics_->connected(true);
    if (!up_ && ever_tried_) log_->info("redis at {} is reachable again", settings_.where());
    up_ = true;
    ever_tried_ = true;
    backoff_ = {};
  }
  const auto started = std::chrono::steady_clock::now();
  return failing_as_unavailable([&] {
    Poco::Redis::Array replies = client_->sendCommands(commands);
    metrics_->round_trip(std::chrono::steady_clock::now() - started, commands.size());
    return replies;
  });
}

}  // namespace slack_proxy

#include "redis/redis_connection.h"

#include <algorithm>

#include <Poco/Exception.h>
#include <Poco/Net/SocketAddress.h>
#include <Poco/Redis/Error.h>
#include <Poco/Redis/Exception.h>
#include <Poco/Redis/Type.h>
#include <Poco/SHA1Engine.h>
#include <Poco/Timespan.h>

namespace slack_proxy {
namespace {

constexpr std::chrono::milliseconds kFirstBackoff{100};
constexpr std::chrono::milliseconds kMaxBackoff{5000};

Poco::Timespan timespan(std::chrono::milliseconds ms) {
  return Poco::Timespan(static_cast<Poco::Timespan::TimeDiff>(ms.count()) * 1000);
}

}  // namespace

std::int64_t redis_time_ms(const Poco::Redis::Array& time) {
  const auto part = [&](std::size_t i) {
    return std::stoll(time.get<Poco::Redis::BulkString>(i).value());
  };
  return part(0) * 1000 + part(1) / 1000;
}

bool is_reply_error(const Poco::Redis::Array& replies, std::size_t i) {
  return replies.getType(i) == Poco::Redis::RedisTypeTraits<Poco::Redis::Error>::TypeId;
}

RedisMetrics::RedisMetrics(prometheus::Registry& registry, const std::string& role) {
  const prometheus::Labels labels{{"role", role}};
  round_trip_ = &prometheus::BuildHistogram()
                     .Name("slackproxy_redis_round_trip_seconds")
                     .Help("Time from sending a batch of Redis commands to reading every reply")
                     .Register(registry)
                     .Add(labels, prometheus::Histogram::BucketBoundaries{
                                  0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.05, 0.25, 1});
  commands_ = &prometheus::BuildCounter()
                   .Name("slackproxy_redis_commands_total")
                   .Help("Redis commands answered (errors Redis itself replied included)")
                   .Register(registry)
                   .Add(labels);
  errors_ = &prometheus::BuildCounter()
                 .Name("slackproxy_redis_errors_total")
                 .Help("Batches of Redis commands that failed: unreachable, timed out or cut off")
                 .Register(registry)
                 .Add(labels);
  reply_errors_ = &prometheus::BuildCounter()
                      .Name("slackproxy_redis_reply_errors_total")
                      .Help("Redis commands Redis refused (NOPERM, OOM, ...) or answered unexpectedly")
                      .Register(registry)
                      .Add(labels);
  connects_ = &prometheus::BuildCounter()
                   .Name("slackproxy_redis_connects_total")
                   .Help("Connections made to Redis (the first one and every reconnection)")
                   .Register(registry)
                   .Add(labels);
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
                                 std::shared_ptr<RedisMetrics> metrics, std::string role)
    : settings_(std::move(settings)),
      log_(std::move(log)),
      metrics_(std::move(metrics)),
      role_(std::move(role)) {}

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
  // A user with no password still authenticates (an ACL user marked
  // `nopass` takes any password; any other answers WRONGPASS), rather than
  // silently staying the default user.
  const bool auth_needed = !settings_.password.empty() || !settings_.user.empty();
  if (auth_needed) {
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
    if (is_reply_error(replies, i)) {
      // Redis' own words ("WRONGPASS invalid username-password pair"),
      // which never repeat the password.
      throw RedisUnavailable(std::string(i == 0 && auth_needed ? "AUTH" : "SELECT") +
                             " refused: " + replies.get<Poco::Redis::Error>(i).getMessage());
    }
  }
}

std::size_t RedisConnection::add_script(std::string text) {
  Poco::SHA1Engine sha1;
  sha1.update(text);
  scripts_.push_back(Script{std::move(text), Poco::DigestEngine::digestToHex(sha1.digest())});
  return scripts_.size() - 1;
}

Poco::Redis::Array RedisConnection::script(std::size_t handle) const {
  const Script& s = scripts_.at(handle);
  Poco::Redis::Array command;
  if (eval_only_) {
    command << "EVAL" << s.text;
  } else {
    command << "EVALSHA" << s.sha;
  }
  return command;
}

void RedisConnection::load_scripts() {
  std::vector<Poco::Redis::Array> loads;
  for (const auto& s : scripts_) {
    Poco::Redis::Array load;
    load << "SCRIPT" << "LOAD" << s.text;
    loads.push_back(std::move(load));
  }
  const Poco::Redis::Array replies = client_->sendCommands(loads);
  scripts_loaded_ = true;
  for (std::size_t i = 0; i < scripts_.size(); ++i) {
    if (replies.getType(i) == Poco::Redis::RedisTypeTraits<Poco::Redis::BulkString>::TypeId)
      continue;
    // Refused (an ACL without SCRIPT): the scripts go in full, as EVAL,
    // which such a user may still run. Counted, and said once.
    eval_only_ = true;
    metrics_->reply_error();
    std::string what = "an answer of another kind than asked for";
    if (is_reply_error(replies, i)) what = replies.get<Poco::Redis::Error>(i).getMessage();
    log_->warn("redis at {} refused SCRIPT LOAD ({}): {}; scripts are sent in full with every "
               "call on this connection instead",
               settings_.where(), role_, what);
    return;
  }
}

std::vector<Poco::Redis::Array> RedisConnection::as_evals(
    const std::vector<Poco::Redis::Array>& commands) const {
  std::vector<Poco::Redis::Array> out;
  out.reserve(commands.size());
  for (const auto& command : commands) {
    const Script* script = nullptr;
    if (command.size() >= 2 && command.get<Poco::Redis::BulkString>(0).value() == "EVALSHA") {
      const std::string sha = command.get<Poco::Redis::BulkString>(1).value();
      for (const auto& s : scripts_)
        if (s.sha == sha) script = &s;
    }
    if (script == nullptr) {
      out.push_back(command);
      continue;
    }
    Poco::Redis::Array eval;
    eval << "EVAL" << script->text;
    for (std::size_t i = 2; i < command.size(); ++i)
      eval << command.get<Poco::Redis::BulkString>(i).value();
    out.push_back(std::move(eval));
  }
  return out;
}

void RedisConnection::reply_error(const Poco::Redis::Array& replies, std::size_t i) {
  metrics_->reply_error();
  std::string what = "an answer of another kind than asked for";
  try {
    if (is_reply_error(replies, i)) what = replies.get<Poco::Redis::Error>(i).getMessage();
  } catch (const std::exception&) {
  }
  if (what.rfind("NOSCRIPT", 0) == 0) {
    // Said on a line of its own, so that it never hides another refusal.
    if (loaded_for_batch_) {
      // Forgotten right after loading (a proxy in front of several Redis
      // servers, say): this connection sends its scripts in full instead.
      if (!eval_only_)
        log_->warn("redis at {} ({}) forgot its scripts right after loading them; they are "
                   "sent in full on this connection",
                   settings_.where(), role_);
      eval_only_ = true;
    } else {
      // The script cache was flushed under us: loaded again before the next batch.
      log_->info("redis at {} ({}) lost its scripts (SCRIPT FLUSH or a restart): loading them "
                 "again",
                 settings_.where(), role_);
      scripts_loaded_ = false;
    }
    return;
  }
  if (reply_error_logged_) return;
  reply_error_logged_ = true;
  log_->error("redis at {} refused a command ({}): {} (logged once per connection; "
              "slackproxy_redis_reply_errors_total counts them)",
              settings_.where(), role_, what);
}

void RedisConnection::fail(const std::string& why) {
  client_.reset();
  scripts_loaded_ = false;
  eval_only_ = false;
  reply_error_logged_ = false;
  metrics_->failed();
  backoff_ = backoff_.count() == 0 ? kFirstBackoff : std::min(kMaxBackoff, backoff_ * 2);
  retry_at_ = std::chrono::steady_clock::now() + backoff_;
  if (up_ || !ever_tried_) {
    log_->error("redis at {} is unreachable ({}): {}; retrying with backoff up to {} s",
                settings_.where(), role_, why, kMaxBackoff.count() / 1000);
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
    if (!up_ && ever_tried_)
      log_->info("redis at {} is reachable again ({})", settings_.where(), role_);
    up_ = true;
    ever_tried_ = true;
    backoff_ = {};
  }
  loaded_for_batch_ = !scripts_loaded_ && !scripts_.empty();
  if (loaded_for_batch_) failing_as_unavailable([&] { load_scripts(); });
  const auto started = std::chrono::steady_clock::now();
  return failing_as_unavailable([&] {
    // A batch built before this connection learned it may not load scripts.
    Poco::Redis::Array replies =
        eval_only_ ? client_->sendCommands(as_evals(commands)) : client_->sendCommands(commands);
    metrics_->round_trip(std::chrono::steady_clock::now() - started, commands.size());
    return replies;
  });
}

}  // namespace slack_proxy

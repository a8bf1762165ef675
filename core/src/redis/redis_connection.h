// One connection to Redis, with the settings of [redis], reconnection with
// backoff, and a log line per change of state (reachable / unreachable), not
// per failed command. The password is a secret: it is sent in AUTH and kept
// out of every message, log line and error.
#ifndef SLACK_PROXY_CORE_REDIS_REDIS_CONNECTION_H
#define SLACK_PROXY_CORE_REDIS_REDIS_CONNECTION_H

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include <Poco/Exception.h>
#include <Poco/Redis/Array.h>
#include <Poco/Redis/Client.h>
#include <prometheus/counter.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>
#include <spdlog/logger.h>

#include "redis/redis_settings.h"

namespace slack_proxy {

// A command failed because Redis could not be reached or did not answer in
// time (not because Redis refused it: that is RedisReplyError).
class RedisUnavailable : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};
// Redis answered with an error reply ("NOSCRIPT ...", "WRONGTYPE ...").
class RedisReplyError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Redis' TIME reply ({seconds, microseconds} as text) in milliseconds.
std::int64_t redis_time_ms(const Poco::Redis::Array& time);
// Whether reply `i` of a batch is an error (NOPERM, OOM, NOSCRIPT, ...).
bool is_reply_error(const Poco::Redis::Array& replies, std::size_t i);

// Round trips and failures, exported as slackproxy_redis_*{role}: one
// connection's, named by what it is for ("pacing", "marks").
class RedisMetrics {
 public:
  RedisMetrics(prometheus::Registry& registry, const std::string& role);
  void round_trip(std::chrono::nanoseconds took, std::size_t commands);
  void failed();
  void reply_error();
  void connected(bool up);

 private:
  prometheus::Histogram* round_trip_;
  prometheus::Counter* commands_;
  prometheus::Counter* errors_;
  prometheus::Counter* reply_errors_;
  prometheus::Counter* connects_;
};

// Not thread-safe: one user at a time (RedisSharedBuckets' thread, or
// RedisSharedMarks').
class RedisConnection {
 public:
  // `role` names what the connection is for in its log lines ("pacing",
  // "marks"), as in its metrics' role label: a replica has one connection
  // per role.
  RedisConnection(RedisSettings settings, std::shared_ptr<spdlog::logger> log,
                  std::shared_ptr<RedisMetrics> metrics, std::string role);
  ~RedisConnection();
  RedisConnection(const RedisConnection&) = delete;
  RedisConnection& operator=(const RedisConnection&) = delete;

  // Sends every command in one write and reads every reply (pipelining).
  // Connects first if needed; when the last attempt failed less than the
  // backoff ago, throws RedisUnavailable without trying. A reply that is an
  // error comes back as a Poco::Redis::Error element, not as an exception.
  Poco::Redis::Array pipeline(const std::vector<Poco::Redis::Array>& commands);

  // Reply `i` of a batch was an error (NOPERM, OOM, a Redis too old for a
  // command) or not of the shape asked for: counted, and logged with Redis'
  // words once per connection. A NOSCRIPT (Redis' script cache flushed
  // under us) has the scripts loaded again before the next batch.
  void reply_error(const Poco::Redis::Array& replies, std::size_t i);

  // A Lua script this connection runs: register it before building commands
  // with script(). It is loaded (SCRIPT LOAD) before the first batch of
  // every connection and then run by its SHA1 (EVALSHA), instead of sending
  // its text with every call.
  std::size_t add_script(std::string text);
  // The start of a command that runs script `handle`, to which the caller
  // appends numkeys, keys and arguments: EVALSHA <sha1>, or EVAL <text> on
  // a connection whose SCRIPT LOAD Redis refused (an ACL without SCRIPT);
  // pipeline() turns a batch built before that refusal into EVALs too.
  Poco::Redis::Array script(std::size_t handle) const;

  bool up() const noexcept { return up_; }
  const RedisSettings& settings() const noexcept { return settings_; }

 private:
  void connect();
  void load_scripts();  // after connect(); never throws for a refusal
  void fail(const std::string& why);
  // Runs `f`; any failure drops the connection (fail()) and comes out as
  // RedisUnavailable.
  template <typename F>
  auto failing_as_unavailable(F&& f) -> decltype(f()) {
    try {
      return f();
    } catch (const RedisUnavailable& e) {
      fail(e.what());
      throw;
    } catch (const Poco::Exception& e) {
      fail(e.displayText());
      throw RedisUnavailable("redis at " + settings_.where() + ": " + e.displayText());
    } catch (const std::exception& e) {
      fail(e.what());
      throw RedisUnavailable("redis at " + settings_.where() + ": " + e.what());
    }
  }

  RedisSettings settings_;
  std::shared_ptr<spdlog::logger> log_;
  std::shared_ptr<RedisMetrics> metrics_;
  std::string role_;
  std::unique_ptr<Poco::Redis::Client> client_;
  bool up_ = false;
  bool ever_tried_ = false;
  bool reply_error_logged_ = false;
  struct Script {
    std::string text;
    std::string sha;  // SHA1 of text, lowercase hex, as Redis names it
  };
  // `commands` with every EVALSHA of ours turned into EVAL <text>.
  std::vector<Poco::Redis::Array> as_evals(const std::vector<Poco::Redis::Array>& commands) const;
  std::vector<Script> scripts_;
  bool scripts_loaded_ = false;  // on this connection
  bool eval_only_ = false;       // this connection's SCRIPT LOAD was refused
  bool loaded_for_batch_ = false;  // the scripts were loaded just before this batch
  std::chrono::steady_clock::time_point retry_at_{};
  std::chrono::milliseconds backoff_{0};
};

}  // namespace slack_proxy

#endif  // SLACK_PROXY_CORE_REDIS_REDIS_CONNECTION_H

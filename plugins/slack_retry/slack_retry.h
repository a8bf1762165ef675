// What a failed send to Slack means: retry later with exponential backoff,
// or give up, following Slack's published transient/permanent error codes.
//
// An outage (Slack or the network down) is not the message's fault, so it
// does not spend the message's retry budget: such a message is retried
// until it is `max_age` old. A long outage must not turn every queued
// message into a dead letter.
#ifndef SLACK_PROXY_PLUGINS_SLACK_RETRY_H
#define SLACK_PROXY_PLUGINS_SLACK_RETRY_H

#include <chrono>
#include <cstdint>
#include <random>
#include <string>

#include <slack_proxy/sdk/host.h>
#include <slack_proxy/sdk/settings.h>
#include <slack_proxy/sdk/stages.h>

namespace slack_proxy::plugins::slack_retry {

struct Settings {
  std::int64_t max_retries = 3;
  std::chrono::milliseconds initial_backoff{1000};
  std::chrono::milliseconds max_backoff{60000};
  double multiplier = 2.0;
  double jitter = 0.2;  // delay is multiplied by a uniform factor in [1-jitter, 1+jitter]
  // Slack says `internal_error` and `fatal_error` mean "some aspect of the
  // operation may have succeeded": retrying them can post a duplicate.
  bool retry_internal_error = true;
  // Outage errors are retried, whatever max_retries says, until the message
  // is this old (host wall clock minus Message::received_at).
  std::chrono::milliseconds max_age{std::chrono::hours(24)};
};

// The settings as the plugin declares them: types, defaults and bounds, which
// the host checks before the factory runs.
inline const sdk::Schema<Settings> kSchema{
    sdk::setting("max_retries", &Settings::max_retries,
                 "retries after the first attempt, for transient (not outage) errors")
        .at_least(0)
        .default_to("3"),
    sdk::setting("initial_backoff", &Settings::initial_backoff, "delay before the first retry")
        .above(0)
        .default_to("1s"),
    sdk::setting("max_backoff", &Settings::max_backoff,
                 "cap on the delay between retries, >= initial_backoff")
        .above(0)
        .default_to("60s"),
    sdk::setting("multiplier", &Settings::multiplier, "delay growth per retry")
        .at_least(1)
        .default_to("2"),
    sdk::setting("jitter", &Settings::jitter, "random spread of each delay (0.2 = +/-20%)")
        .at_least(0)
        .at_most(1)
        .default_to("0.2"),
    sdk::setting("retry_internal_error", &Settings::retry_internal_error,
                 "retry Slack internal_error/fatal_error; may post duplicates, Slack may have "
                 "succeeded")
        .default_to("true"),
    sdk::setting("max_age", &Settings::max_age,
                 "outage errors (no reply, 5xx, service_unavailable, ...) ignore max_retries "
                 "and are retried until the message is this old")
        .above(0)
        .default_to("24h"),
};

// What the schema cannot say (one setting against another, an infinite
// multiplier): throws std::invalid_argument naming the values.
void check_settings(const Settings& settings);

enum class ErrorClass {
  // Trying again cannot help: given up at once.
  Permanent,
  // The message's own trouble that may pass (ratelimited, rate_limited,
  // message_limit_exceeded, team_added_to_org, HTTP 429), or a stage of the
  // pipeline that threw (internal_error_in_sink/_guard/_rate_limiter, a bug
  // more time will not fix): retried while attempts remain under
  // max_retries, then a dead letter to replay once fixed.
  Transient,
  // The service's trouble, not the message's: transport failures with no
  // reply (connection_failed, timeout, tls_error, bad_response), the sink's
  // own local_io_error (a full disk an operator frees), HTTP 5xx,
  // service_unavailable, request_timeout, internal_error/fatal_error when
  // `retry_internal_error`, and back-pressure (the receiver asked us to
  // wait). Retried until the message is max_age old.
  Outage,
};

ErrorClass classify(const sdk::SendResult& result, bool retry_internal_error);

// "24h", "90m", "30s", "1500ms": the largest unit that states `d` exactly.
std::string describe_duration(std::chrono::milliseconds d);

class SlackRetry final : public sdk::RetryPolicy {
 public:
  // `clock` (the host's) tells a message's age; it must outlive the policy.
  // Jitter seeded from std::random_device.
  SlackRetry(const Settings& settings, const sdk::Clock& clock);
  // Fixed seed, so that tests see a reproducible sequence.
  SlackRetry(const Settings& settings, const sdk::Clock& clock, std::uint64_t seed);

  sdk::RetryDecision decide(const sdk::Message& message,
                            const sdk::SendResult& result) override;

 private:
  std::chrono::milliseconds backoff(std::uint32_t attempts);

  sdk::RetryDecision retry(const sdk::Message& message, const sdk::SendResult& result,
                           std::string why);

  Settings settings_;
  const sdk::Clock& clock_;
  std::mt19937_64 random_;
};

}  // namespace slack_proxy::plugins::slack_retry

#endif  // SLACK_PROXY_PLUGINS_SLACK_RETRY_H

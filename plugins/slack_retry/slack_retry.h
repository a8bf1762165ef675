// What a failed send to Slack means: retry later with exponential backoff,
// or give up, following Slack's published transient/permanent error codes.
#ifndef SLACK_PROXY_PLUGINS_SLACK_RETRY_H
#define SLACK_PROXY_PLUGINS_SLACK_RETRY_H

#include <chrono>
#include <cstdint>
#include <random>

#include <slack_proxy/sdk/host.h>
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
};

// Throws std::invalid_argument when a value makes no sense.
Settings parse_settings(const sdk::ConfigView& config);

// True when trying again may succeed: Slack's transient codes (ratelimited,
// rate_limited, message_limit_exceeded, service_unavailable, request_timeout,
// team_added_to_org), internal_error/fatal_error when `retry_internal_error`,
// HTTP 429 and 5xx, and transport failures with no reply (connection_failed,
// timeout, tls_error, bad_response). Everything else is permanent.
bool is_transient(const sdk::SendResult& result, bool retry_internal_error);

class SlackRetry final : public sdk::RetryPolicy {
 public:
  // Jitter seeded from std::random_device.
  explicit SlackRetry(const Settings& settings);
  // Fixed seed, so that tests see a reproducible sequence.
  SlackRetry(const Settings& settings, std::uint64_t seed);

  sdk::RetryDecision decide(const sdk::Message& message,
                            const sdk::SendResult& result) noexcept override;

 private:
  std::chrono::milliseconds backoff(std::uint32_t attempts);

  Settings settings_;
  std::mt19937_64 random_;
};

}  // namespace slack_proxy::plugins::slack_retry

#endif  // SLACK_PROXY_PLUGINS_SLACK_RETRY_H

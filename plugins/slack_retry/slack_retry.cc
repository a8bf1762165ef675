#include "slack_retry.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <sstream>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>

#include <slack_proxy/sdk/outcome.h>

namespace slack_proxy::plugins::slack_retry {

namespace {

// The message's own trouble: retried while max_retries allows.
constexpr std::array<std::string_view, 4> kTransientCodes = {
    "ratelimited", "rate_limited", "message_limit_exceeded", "team_added_to_org"};
// A stage threw (the host reports it so): a bug that waiting will not fix,
// so the retry budget bounds it and the dead letter keeps the message.
constexpr std::array<std::string_view, 3> kStageFailureCodes = {
    sdk::outcome::kInternalErrorInSink, sdk::outcome::kInternalErrorInGuard,
    sdk::outcome::kInternalErrorInRateLimiter};
// Slack saying it is down or slow: an outage, retried until max_age.
constexpr std::array<std::string_view, 2> kOutageCodes = {"service_unavailable",
                                                          "request_timeout"};
constexpr std::array<std::string_view, 2> kMaybeSucceededCodes = {"internal_error", "fatal_error"};
// Codes a sink reports when no usable reply arrived, or its own side
// failed: an outage too.
constexpr std::array<std::string_view, 5> kNoReplyCodes = {
    sdk::outcome::kConnectionFailed, sdk::outcome::kTimeout, sdk::outcome::kTlsError,
    sdk::outcome::kBadResponse, sdk::outcome::kLocalIo};

template <std::size_t N>
bool contains(const std::array<std::string_view, N>& codes, std::string_view code) {
  return std::find(codes.begin(), codes.end(), code) != codes.end();
}

std::string code_of(const sdk::SendResult& result) {
  if (!result.error.empty()) return result.error;
  if (result.http_status != 0) return "http_" + std::to_string(result.http_status);
  return "unknown_error";
}

std::string shortest(double value) {
  std::ostringstream out;
  out << value;
  return out.str();
}

}  // namespace

void check_settings(const Settings& s) {
  if (s.max_backoff < s.initial_backoff) {
    throw std::invalid_argument("max_backoff (" + describe_duration(s.max_backoff) +
                                ") must be >= initial_backoff (" +
                                describe_duration(s.initial_backoff) + ")");
  }
  if (!std::isfinite(s.multiplier)) {
    throw std::invalid_argument("multiplier must be a finite number, got " +
                                shortest(s.multiplier));
  }
}

ErrorClass classify(const sdk::SendResult& result, bool retry_internal_error) {
  // The receiver asked for a pause: nothing is wrong with the message, so it
  // waits (the dispatcher holds it at the head of its lane) without
  // spending the budget, bounded by max_age like an outage.
  if (result.back_pressure) return ErrorClass::Outage;
  // Checked before the status so that a 500 carrying internal_error also
  // honours the duplicate-avoiding choice.
  if (contains(kMaybeSucceededCodes, result.error)) {
    return retry_internal_error ? ErrorClass::Outage : ErrorClass::Permanent;
  }
  if (result.http_status >= 500 && result.http_status <= 599) return ErrorClass::Outage;
  if (result.http_status == 429) return ErrorClass::Transient;
  if (contains(kOutageCodes, result.error)) return ErrorClass::Outage;
  if (contains(kTransientCodes, result.error)) return ErrorClass::Transient;
  if (result.http_status == 0 && contains(kStageFailureCodes, result.error)) {
    return ErrorClass::Transient;
  }
  if (result.http_status == 0 && contains(kNoReplyCodes, result.error)) {
    return ErrorClass::Outage;
  }
  return ErrorClass::Permanent;
}

std::string describe_duration(std::chrono::milliseconds d) {
  const auto ms = d.count();
  if (ms != 0 && ms % 3'600'000 == 0) return std::to_string(ms / 3'600'000) + "h";
  if (ms != 0 && ms % 60'000 == 0) return std::to_string(ms / 60'000) + "m";
  if (ms != 0 && ms % 1'000 == 0) return std::to_string(ms / 1'000) + "s";
  return std::to_string(ms) + "ms";
}

SlackRetry::SlackRetry(const Settings& settings, const sdk::Clock& clock)
    : SlackRetry(settings, clock, std::random_device{}()) {}

SlackRetry::SlackRetry(const Settings& settings, const sdk::Clock& clock, std::uint64_t seed)
    : settings_(settings), clock_(clock), random_(seed) {}

sdk::RetryDecision SlackRetry::decide(const sdk::Message& message,
                                      const sdk::SendResult& result) {
  return sdk::guarded(
      [&] {
        const std::string code = code_of(result);
        const std::string attempt = std::to_string(message.attempts);
        const ErrorClass kind = classify(result, settings_.retry_internal_error);
        if (kind == ErrorClass::Permanent) {
          return sdk::RetryDecision::give_up("permanent error " + code);
        }
        // Without an arrival time the age is unknown; the retry budget is
        // then the only bound left.
        if (kind == ErrorClass::Outage && message.received_at != sdk::WallTime{}) {
          const std::string max_age = describe_duration(settings_.max_age);
          if (clock_.wall_now() - message.received_at > settings_.max_age) {
            return sdk::RetryDecision::give_up("outage outlasted max_age (" + max_age +
                                               "); last error: " + code);
          }
          return retry(message, result,
                       "outage error " + code + ", retry " + attempt +
                           ", retried until the message is " + max_age + " old");
        }
        if (message.attempts > settings_.max_retries) {
          return sdk::RetryDecision::give_up("retries exhausted after " + attempt +
                                             " attempts: " + code);
        }
        return retry(message, result,
                     "transient error " + code + ", retry " + attempt + " of " +
                         std::to_string(settings_.max_retries));
      },
      [](std::string_view what) {
        return sdk::RetryDecision::give_up("retry policy failed: " + std::string(what));
      });
}

sdk::RetryDecision SlackRetry::retry(const sdk::Message& message, const sdk::SendResult& result,
                                     std::string why) {
  // Back-pressure says exactly how long; the dispatcher holds the scope
  // until then, so no backoff of ours is added on top.
  if (result.back_pressure) {
    return sdk::RetryDecision::retry_after(result.retry_after.value_or(std::chrono::milliseconds(0)),
                                           "back-pressure: " + std::move(why));
  }
  auto delay = backoff(message.attempts);
  // Slack may disable apps that keep sending while limited.
  if (result.retry_after) delay = std::max(delay, *result.retry_after);
  return sdk::RetryDecision::retry_after(delay, std::move(why));
}

std::chrono::milliseconds SlackRetry::backoff(std::uint32_t attempts) {
  const double exponent = attempts > 0 ? attempts - 1.0 : 0.0;
  // pow() may overflow to infinity for large exponents; min() then caps it.
  double delay_ms = std::min(static_cast<double>(settings_.max_backoff.count()),
                             static_cast<double>(settings_.initial_backoff.count()) *
                                 std::pow(settings_.multiplier, exponent));
  if (settings_.jitter > 0) {
    std::uniform_real_distribution<double> factor(1 - settings_.jitter, 1 + settings_.jitter);
    delay_ms *= factor(random_);
  }
  return std::chrono::milliseconds(std::llround(delay_ms));
}

}  // namespace slack_proxy::plugins::slack_retry

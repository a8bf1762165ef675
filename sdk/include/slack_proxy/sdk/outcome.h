// Outcome codes: the words a sink (or the host, on a stage's behalf) puts in
// SendResult::error when the receiver gave no usable answer of its own.
//
// A receiver's own codes (Slack's "channel_not_found", "ratelimited") pass
// through unchanged; these are for everything else, so that a retry policy
// can tell "try again" from "never works" without knowing the sink. Codes
// are only ever added. What slack_retry does with each is in its README.
#ifndef SLACK_PROXY_SDK_OUTCOME_H
#define SLACK_PROXY_SDK_OUTCOME_H

#include <string_view>

namespace slack_proxy::sdk::outcome {

// ---- transport: no reply arrived, or none that could be read (transient) --
inline constexpr std::string_view kConnectionFailed = "connection_failed";  // refused, unreachable, reset
inline constexpr std::string_view kTimeout = "timeout";          // connect, send or receive took too long
inline constexpr std::string_view kTlsError = "tls_error";       // handshake or certificate failure
inline constexpr std::string_view kBadResponse = "bad_response"; // a reply that is not the protocol's

// ---- local: the sink's own side failed (transient) ------------------------
// A file, socket or device of the sink's own could not be written: disk full,
// permission changed, mount gone. Usually fixed by an operator, so retried.
inline constexpr std::string_view kLocalIo = "local_io_error";

// ---- the stage itself failed (transient) ----------------------------------
// An exception escaped a sink's send(), or a sink caught a bug of its own.
inline constexpr std::string_view kInternalErrorInSink = "internal_error_in_sink";
// An exception escaped a guard's before_send() or a rate limiter; the host
// reports the attempt with this code and the plugin's name in the detail.
inline constexpr std::string_view kInternalErrorInGuard = "internal_error_in_guard";
inline constexpr std::string_view kInternalErrorInRateLimiter = "internal_error_in_rate_limiter";

// ---- the message cannot be delivered as it is (permanent) -----------------
// The sink could not build a request from it (corrupt payload, missing
// credentials for its workspace). Retrying the same message cannot help.
inline constexpr std::string_view kInvalidMessage = "invalid_message";

// True for the codes above that mean "no answer, or our own fault": worth
// another attempt whatever the receiver is.
constexpr bool is_transient(std::string_view code) noexcept {
  return code == kConnectionFailed || code == kTimeout || code == kTlsError ||
         code == kBadResponse || code == kLocalIo || code == kInternalErrorInSink ||
         code == kInternalErrorInGuard || code == kInternalErrorInRateLimiter;
}

}  // namespace slack_proxy::sdk::outcome

#endif  // SLACK_PROXY_SDK_OUTCOME_H

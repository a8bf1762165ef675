// The stage kinds a plugin can implement, and what the host promises about
// when and how each is called.
//
// A message's life:
//
//   HTTP request --> Authenticator --> parse --> Router* --> queue
//   queue --> lane (one per channel) --> Guard::before_send* --> RateLimiter*
//         --> Sink::send --> Guard::after_result* --> done, or RetryPolicy
//
// Faults stay in the plugin. A stage method may throw: the host catches what
// escapes it (host and plugin share one C++ runtime: the build fingerprint
// guarantees the compiler and standard library, and plugins link the shared
// libstdc++), logs it with the plugin's name, counts it in
// slackproxy_plugin_exceptions_total, and fails only that one request (500
// internal_error) or that one attempt (a transient internal_error_in_<kind>,
// see outcome.h). Do not mark an override noexcept: an exception from a
// noexcept function ends the process before the host can catch it. Where a
// stage can say something better than "internal error", catch inside and
// return it; sdk::guarded() (below) helps.
#ifndef SLACK_PROXY_SDK_STAGES_H
#define SLACK_PROXY_SDK_STAGES_H

#include <chrono>
#include <exception>
#include <optional>
#include <string>
#include <string_view>

#include <slack_proxy/sdk/abi.h>
#include <slack_proxy/sdk/message.h>
#include <slack_proxy/sdk/outcome.h>

namespace slack_proxy::sdk {

enum class StageKind {
  Authenticator = SP_STAGE_AUTHENTICATOR,
  Router = SP_STAGE_ROUTER,
  RateLimiter = SP_STAGE_RATE_LIMITER,
  Guard = SP_STAGE_GUARD,
  Sink = SP_STAGE_SINK,
  RetryPolicy = SP_STAGE_RETRY_POLICY,
};

// Common base so that the host can destroy any stage through the plugin.
class Stage {
 public:
  virtual ~Stage() = default;
};

// Runs `body`; if it throws, returns `on_error(what)` instead. Use it inside
// every stage method and factory so that exceptions stay in the plugin.
template <typename Body, typename OnError>
auto guarded(Body&& body, OnError&& on_error) noexcept -> decltype(body()) {
  try {
    return body();
  } catch (const std::exception& e) {
    return on_error(std::string_view(e.what()));
  } catch (...) {
    return on_error(std::string_view("unknown exception"));
  }
}

// -------------------------------------------------------- authenticator --

// Read-only view of an incoming HTTP request, before its body is read.
class RequestView {
 public:
  virtual ~RequestView() = default;
  virtual std::string_view method() const noexcept = 0;
  virtual std::string_view path() const noexcept = 0;
  // Case-insensitive lookup; nullopt when absent.
  virtual std::optional<std::string> header(std::string_view name) const noexcept = 0;
  virtual std::string remote_address() const noexcept = 0;
};

struct AuthResult {
  bool allowed = false;
  std::string identity;       // who the caller is, when allowed
  int status = 401;           // HTTP status when refused
  std::string error = "not_authed";  // Slack-style error code when refused

  static AuthResult allow(std::string who) { return {true, std::move(who), 200, {}}; }
  static AuthResult deny(int status, std::string error) {
    return {false, {}, status, std::move(error)};
  }
};

// Decides who is calling. Called on ingress threads, concurrently.
class Authenticator : public Stage {
 public:
  static constexpr StageKind kKind = StageKind::Authenticator;
  virtual AuthResult authenticate(const RequestView& request) = 0;
};

// --------------------------------------------------------------- router --

struct RouteResult {
  bool accepted = true;
  int status = 400;     // HTTP status when rejected
  std::string error;    // Slack-style error code when rejected
  std::string detail;   // one human sentence, no secrets

  static RouteResult ok() { return {}; }
  static RouteResult reject(int status, std::string error, std::string detail) {
    return {false, status, std::move(error), std::move(detail)};
  }
};

// Rewrites where a message goes (channel, workspace, attributes) before it is
// queued. Called on ingress threads, concurrently; routers run in the order
// the pipeline lists them. A rejection is answered to the caller and nothing
// is queued.
class Router : public Stage {
 public:
  static constexpr StageKind kKind = StageKind::Router;
  virtual RouteResult route(Message& message) = 0;
};

// ------------------------------------------------------------- send result --

// "Send nothing more to this scope until then": the receiver said it is
// overloaded (Slack's 429 with Retry-After). The dispatcher holds every
// message of the scope until `until`; the retry policy still decides whether
// this message is tried again.
struct BackPressure {
  enum class Scope {
    Channel,    // the message's channel (sdk::channel_key)
    Workspace,  // every channel of the message's workspace
  };
  Scope scope = Scope::Workspace;
  SteadyTime until{};  // on the host's clock (HostServices::clock())
};

// What happened when a sink tried to deliver. Sinks report facts; the retry
// policy decides what they mean.
struct SendResult {
  bool delivered = false;
  // HTTP status of the reply, for sinks that speak HTTP; 0 when there was no
  // HTTP reply (a transport failure, or a sink that does not speak HTTP).
  // Only logs, dead letters and retry policies read it: the dispatcher acts
  // on `back_pressure`, never on a status.
  int http_status = 0;
  // What went wrong: the receiver's own code (Slack's "channel_not_found",
  // "ratelimited"), or one of the codes in outcome.h when there was no usable
  // reply ("connection_failed", "timeout", "local_io_error", ...).
  std::string error;
  // How long the receiver asked us to wait before retrying this message
  // (Retry-After), when it said.
  std::optional<std::chrono::milliseconds> retry_after;
  // One human sentence for logs. Never contains a token or secret URL.
  std::string detail;
  // Set when the receiver asked for a pause (see BackPressure).
  std::optional<BackPressure> back_pressure;

  static SendResult ok(int status = 200) { return {true, status, {}, std::nullopt, {}, {}}; }
  static SendResult failed(int status, std::string error, std::string detail = {}) {
    return {false, status, std::move(error), std::nullopt, std::move(detail), {}};
  }
  // A failure with no HTTP reply behind it, e.g. failure(outcome::kLocalIo, "disk full").
  static SendResult failure(std::string_view code, std::string detail = {}) {
    return {false, 0, std::string(code), std::nullopt, std::move(detail), {}};
  }
};

// --------------------------------------------------------- rate limiter --

// Paces delivery. The dispatcher asks every limiter of the pipeline before a
// send; only when all say "now" does it call on_send() on each and send.
// Called from the dispatcher's scheduling thread only, never concurrently.
class RateLimiter : public Stage {
 public:
  static constexpr StageKind kKind = StageKind::RateLimiter;
  // Earliest time `message` may be sent. A value <= now means "now". Must not
  // consume anything: it may be asked again without sending.
  virtual SteadyTime next_send_time(const Message& message, SteadyTime now) = 0;
  // The message is being sent at `now`: consume its share.
  virtual void on_send(const Message& message, SteadyTime now) = 0;
};

// ---------------------------------------------------------------- guard --

struct GuardVerdict {
  bool allow = true;
  std::string reason;  // why not, when denied (for logs and metrics)

  static GuardVerdict pass() { return {}; }
  static GuardVerdict deny(std::string why) { return {false, std::move(why)}; }
};

// Vetoes sends and learns from their results (the deny-list is one).
// Called from the dispatcher's scheduling thread only, never concurrently.
// A denied message is not sent and counts as "not processed".
class Guard : public Stage {
 public:
  static constexpr StageKind kKind = StageKind::Guard;
  virtual GuardVerdict before_send(const Message& message, SteadyTime now) = 0;
  virtual void after_result(const Message& message, const SendResult& result,
                            SteadyTime now) = 0;
};

// ----------------------------------------------------------------- sink --

// Delivers one message. Blocking is fine: the dispatcher calls it from a
// worker pool, at most once at a time per channel but concurrently across
// channels, so it must be thread-safe. It must bound its own time (connect
// and read timeouts) because a hung send holds a worker.
class Sink : public Stage {
 public:
  static constexpr StageKind kKind = StageKind::Sink;
  virtual SendResult send(const Message& message) = 0;

  // ABI 1.2. Which rate budget `message` draws from: the receiver's limits
  // follow the credential it is sent with (a Slack token's workspace), not
  // the pipeline. Return HostServices::budget_id() of that credential, or ""
  // when this sink has no shared budget. The host asks before the rate
  // limiters and guards run, on the scheduling thread, and puts the answer in
  // the message's kBudgetAttribute; it also keys 429 pauses and the pacing it
  // learns from them by it, so pipelines sharing a token share those too.
  // The host never calls this on a plugin built against ABI 1.0 or 1.1.
  virtual std::string budget_of(const Message& message) {
    (void)message;
    return {};
  }
};

// --------------------------------------------------------- retry policy --

struct RetryDecision {
  enum class Action { Retry, GiveUp };
  Action action = Action::GiveUp;
  std::chrono::milliseconds delay{0};  // wait before the next attempt
  std::string reason;  // e.g. "permanent error channel_not_found", "retries exhausted"

  static RetryDecision retry_after(std::chrono::milliseconds d, std::string why = {}) {
    return {Action::Retry, d, std::move(why)};
  }
  static RetryDecision give_up(std::string why) { return {Action::GiveUp, {}, std::move(why)}; }
};

// Decides what a failed send means. `message.attempts` counts the attempts
// made, including the one that just failed. Called from the dispatcher's
// scheduling thread only, never concurrently.
class RetryPolicy : public Stage {
 public:
  static constexpr StageKind kKind = StageKind::RetryPolicy;
  virtual RetryDecision decide(const Message& message, const SendResult& result) = 0;
};

}  // namespace slack_proxy::sdk

#endif  // SLACK_PROXY_SDK_STAGES_H

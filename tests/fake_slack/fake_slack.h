// A fake Slack Web API server for tests, the demo and benchmarks.
//
// It answers every POST, records it, and replies with a scripted Behaviour:
// ok, an ok:false error code, 429 with Retry-After, any HTTP status, or a
// slow reply. In-process users script it through this class; out-of-process
// users (the `fake-slack` binary, scripts) through the control API on the same
// port:
//   POST /_fake/enqueue   {"status":429,"body":"...","retry_after":2,
//                          "delay_ms":0,"times":1,"channel":"#x"}
//                         or {"error":"channel_not_found"} for an ok:false reply
//   POST /_fake/default   same JSON, replaces the default reply
//   GET  /_fake/requests  recorded requests as a JSON array (never the token)
//   POST /_fake/reset     forget requests and rules
//   POST /_fake/limits    {"channel_rate":1,"channel_burst":3,
//                          "workspace_per_minute":600,"workspace_burst":10,
//                          "retry_after":2,"jitter_tolerance_ms":0}
//                         enforce Slack-like rate limits (see enforce_limits);
//                         omitted keys take Limits' defaults
//   GET  /_fake/stats     {"delivered":N,"rate_limited":N,"early_after_429":N}
// Control requests are not recorded.
//
// HTTPS mode: construct with TlsFiles (a certificate and key, e.g. from
// test_certs.h) and the fake speaks only TLS on its port, control API
// included. url() then names "localhost", the name test certificates carry,
// so that a client checking host names can accept it.
#ifndef SLACK_PROXY_TESTS_FAKE_SLACK_H
#define SLACK_PROXY_TESTS_FAKE_SLACK_H

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "slack_limits.h"
#include "test_certs.h"

namespace Poco::Net {
class HTTPServer;
}
namespace Poco {
class ThreadPool;
}

namespace slack_proxy::testing {

struct RecordedRequest {
  std::string method, path, body, content_type, authorization;  // authorization = full header value
  std::map<std::string, std::string> headers;  // lower-cased names
  std::string channel;  // "channel" field of a JSON body, "" if none
  std::chrono::steady_clock::time_point at;    // when it arrived
};

// A 429 the fake answered in rate-limit mode, and the pause it asked for.
struct RateLimitAnswer {
  std::string workspace;  // always kFakeWorkspace: the fake is one workspace
  std::chrono::steady_clock::time_point answered_at;  // as the reply was written
  int retry_after_seconds = 0;
};

inline constexpr const char* kFakeWorkspace = "T_FAKE";

// Requests arriving this soon after a 429 was answered are taken to have
// been sent before the proxy could read it (other workers' requests already
// on the wire), so they do not count as ignoring it. Generous next to
// loopback latency, small next to a Retry-After of at least 1 s.
inline constexpr std::chrono::milliseconds kInFlightGrace{50};

struct Behaviour {
  int status = 200;
  std::string body = R"({"ok":true})";
  std::string content_type = "application/json; charset=utf-8";
  std::optional<int> retry_after_seconds;      // sets Retry-After
  std::chrono::milliseconds delay{0};          // reply this much later (slow Slack)
  // Reply like chat.postMessage does on success, with the request's channel
  // and a fresh ts, instead of `body`.
  bool echo_message = false;

  static Behaviour ok();                       // 200 {"ok":true,"channel":...,"ts":...}
  static Behaviour error(std::string code);    // 200 {"ok":false,"error":code}
  static Behaviour rate_limited(int retry_after_seconds);  // 429 ratelimited + Retry-After
  static Behaviour http_status(int status);    // e.g. 503 {"ok":false,"error":"service_unavailable"}
  static Behaviour slow(std::chrono::milliseconds delay);  // ok, but late
};

class FakeSlack {
 public:
  explicit FakeSlack(std::uint16_t port = 0);  // 0 = ephemeral port on 127.0.0.1
  // HTTPS mode. start() throws Poco::Exception when the files are unusable.
  FakeSlack(std::uint16_t port, TlsFiles tls);
  ~FakeSlack();                                 // stops
  FakeSlack(const FakeSlack&) = delete;
  FakeSlack& operator=(const FakeSlack&) = delete;

  void start();
  // Fast even while slow replies are pending: they are abandoned unanswered,
  // as a Slack that went away would.
  void stop();
  std::uint16_t port() const;
  // "http://127.0.0.1:<port>/api/chat.postMessage", or in HTTPS mode
  // "https://localhost:<port>/api/chat.postMessage".
  std::string url() const;
  bool tls() const { return tls_.has_value(); }

  void set_default(Behaviour b);                // reply used when no queued rule matches
  // The next `times` requests (only those whose JSON channel == `channel`, if non-empty) get `b`.
  void enqueue(Behaviour b, int times = 1, std::string channel = {});

  std::vector<RecordedRequest> requests() const;  // in arrival order, recorded before any delay
  std::size_t count() const;
  // Blocks until count() >= n or timeout passes; returns count() >= n.
  bool wait_for(std::size_t n, std::chrono::milliseconds timeout) const;
  // Forgets requests, rules, the default and the rate-limited count; limits
  // stay enforced, with every bucket full again.
  void reset();

  // From now on, like Slack: a request over its channel's or the workspace's
  // limit (keyed by its JSON "channel"; the fake is one workspace) gets 429
  // with Retry-After and {"ok":false,"error":"ratelimited"} before any rule
  // or the default applies. It is counted in rate_limited() and nothing else:
  // neither recorded, nor answered(), nor seen by on_request. Throws
  // std::invalid_argument for limits that make no sense.
  void enforce_limits(const Limits& limits);
  std::size_t rate_limited() const;
  std::vector<RateLimitAnswer> rate_limit_answers() const;
  // Requests (admitted or refused) that arrived inside some 429's pause, in
  // [answered_at + kInFlightGrace, answered_at + Retry-After): a sender that
  // honours Retry-After for the workspace sends none. Each counted once.
  std::size_t early_after_429() const;

  // Replies completely written so far: a slow reply counts once it is sent,
  // an abandoned one never. Tells "Slack answered" apart from "Slack was asked".
  std::size_t answered() const;
  bool wait_answered(std::size_t n, std::chrono::milliseconds timeout) const;

  // Called for every recorded request as it arrives, on a server thread (the
  // fake-slack binary prints from here). Set before start().
  void on_request(std::function<void(const RecordedRequest&)> callback);

 private:
  class Handler;
  class HandlerFactory;
  struct Rule {
    Behaviour behaviour;
    int remaining;
    std::string channel;
  };

  // The Retry-After for a request over the limits (taking its tokens when
  // it is not), or nullopt; serialized by mutex_.
  std::optional<int> over_limits(const std::string& channel,
                                 std::chrono::steady_clock::time_point at);
  // Records the request, picks its reply and returns it; serialized by mutex_.
  // Records the request and chooses its answer; `generation` is set to the
  // reset() generation it was recorded in.
  Behaviour admit(RecordedRequest request, std::uint64_t& generation);
  // Counts an answer, unless a reset() came between its request and it (a
  // slow reply to the previous test's sender must not count in this one).
  void note_answered(std::uint64_t generation);
  // Waits `delay` unless stop() comes first; false when stopped.
  bool wait_delay(std::chrono::milliseconds delay) const;
  std::string next_ts();
  std::string requests_json() const;
  std::string stats_json() const;
  std::size_t early_after_429_locked() const;
  void note_rate_limit_answered(int retry_after_seconds);

  std::uint16_t requested_port_;
  std::optional<TlsFiles> tls_;
  std::uint16_t port_ = 0;
  std::chrono::steady_clock::time_point started_at_;
  std::function<void(const RecordedRequest&)> on_request_;

  mutable std::mutex mutex_;
  mutable std::condition_variable changed_;  // a request arrived or was answered, or stop()
  bool stopping_ = false;
  std::vector<RecordedRequest> requests_;
  std::size_t answered_ = 0;
  std::uint64_t generation_ = 0;  // bumped by reset()
  std::deque<Rule> rules_;
  Behaviour default_;
  std::uint64_t ts_counter_ = 0;
  std::optional<SlackLimiter> limiter_;
  std::size_t rate_limited_ = 0;
  // Arrival of every API request while limits are enforced, and each 429
  // the limiter answered: what early_after_429() is computed from.
  std::vector<std::chrono::steady_clock::time_point> limited_arrivals_;
  std::vector<RateLimitAnswer> rate_limit_answers_;

  std::unique_ptr<Poco::ThreadPool> pool_;
  std::unique_ptr<Poco::Net::HTTPServer> server_;
};

}  // namespace slack_proxy::testing

#endif  // SLACK_PROXY_TESTS_FAKE_SLACK_H

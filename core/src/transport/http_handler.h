// The seam between the ingress's HTTP transport and the application behind
// it. The transport reads a request head and opens an exchange with the
// HttpHandler; the handler either answers at once (a refusal, /health) or
// takes the body once the transport has read it whole, and answers through
// a callback, possibly later and from another thread (after a group
// commit). Nothing here knows about Slack or sockets.
#pragma once

#include <cstddef>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include <slack_proxy/sdk/stages.h>

namespace slack_proxy {

struct HttpReply {
  int status = 200;
  std::string body;
  std::string content_type = "application/json; charset=utf-8";
  std::vector<std::pair<std::string, std::string>> headers;
  bool close = false;  // the connection must not carry another request
};

// Where an exchange's reply goes: exactly once, from any thread, either as
// a reply or as a function that builds it. The transport runs a builder on
// the connection's own thread, so a thread that only learns an outcome (the
// queue's writer after a group commit) hands it over and goes back to its
// own work instead of building replies.
class ReplySink {
 public:
  // Makes the reply; never throws.
  using Builder = std::function<HttpReply()>;
  // The transport's side: runs a builder where the connection lives.
  using Deliver = std::function<void(Builder)>;

  static ReplySink deferred(Deliver deliver) { return ReplySink(std::move(deliver)); }

  // A sink that takes the reply itself (a synchronous caller, a test):
  // builders run on the thread that delivers them.
  template <class TakeReply>
    requires std::is_invocable_v<TakeReply&, HttpReply>
  ReplySink(TakeReply take)  // NOLINT(google-explicit-constructor): a callback
      : deliver_([take = std::move(take)](const Builder& build) mutable { take(build()); }) {}

  void operator()(HttpReply reply) const {
    deliver_([reply = std::move(reply)]() mutable { return std::move(reply); });
  }
  void build(Builder builder) const { deliver_(std::move(builder)); }

 private:
  explicit ReplySink(Deliver deliver) : deliver_(std::move(deliver)) {}
  Deliver deliver_;
};

// One request whose head passed the handler's checks, waiting for its body.
// The transport keeps the RequestView it was opened with alive until the
// exchange is destroyed.
class HttpExchange {
 public:
  virtual ~HttpExchange() = default;
  // The largest body this request may carry: the transport refuses a larger
  // one through refuse_body(413) and invites the body (Expect:
  // 100-continue) only when the announced length fits.
  virtual std::size_t max_body_bytes() const noexcept = 0;
  // The body arrived whole. Answers through `reply`, exactly once, maybe
  // before returning, maybe later from another thread. Never throws.
  virtual void finish(std::string body, ReplySink reply) noexcept = 0;
  // The body did not arrive whole: 408 request_timeout, 413
  // request_too_large or 400 invalid_request, with why. Counted and logged
  // like any refusal; the transport closes the connection after it.
  virtual HttpReply refuse_body(int status, std::string_view error,
                                std::string_view detail) noexcept = 0;
};

class HttpHandler {
 public:
  virtual ~HttpHandler() = default;

  // What open() decided: `reply` to answer now without reading a body, or
  // `exchange` to hand the body to.
  struct Opened {
    std::optional<HttpReply> reply;
    std::unique_ptr<HttpExchange> exchange;
  };

  // A request head was read (within the transport's limits). `request`
  // outlives the exchange. A reply given here leaves the body unread: the
  // transport reads past a small one to keep the connection, or closes it.
  // Never throws.
  virtual Opened open(const sdk::RequestView& request) noexcept = 0;

  // Answers a request whose head could not be read (too large, malformed,
  // too slow) or a connection refused before any request (503
  // too_many_connections): `status`, `error` and `detail` say why; counted
  // and logged. The reply closes the connection.
  virtual HttpReply refuse_head(const std::string& remote_address, int status,
                                std::string_view error, std::string_view detail) = 0;
};

}  // namespace slack_proxy

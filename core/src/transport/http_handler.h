// The seam between the ingress's HTTP transport and the application behind
// it: the transport reads a request head, hands it (with its body still on
// the connection, and the request's deadline) to an HttpHandler, and writes
// the HttpReply it gets back. Nothing here knows about Slack.
#pragma once

#include <cstddef>
#include <istream>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <slack_proxy/sdk/stages.h>

namespace slack_proxy {

struct HttpReply {
  int status = 200;
  std::string body;
  std::string content_type = "application/json; charset=utf-8";
  std::vector<std::pair<std::string, std::string>> headers;
  bool close = false;  // the request body was not consumed: drop the connection
};

// How long a request may take to arrive, kept by the connection reading it
// (IngressServer): a client that trickles its head or body in below any
// per-read timeout still cannot hold a thread for longer.
class ReadDeadline {
 public:
  virtual ~ReadDeadline() = default;
  // Stops the clock; the handler calls it once the body is in. False when
  // the deadline passed first: the connection was cut off, so what was read
  // may be incomplete. Later calls give the same answer.
  virtual bool stop() noexcept = 0;
};

class HttpHandler {
 public:
  virtual ~HttpHandler() = default;

  // Answers a request whose head was read. The handler reads the body from
  // `body` (framed by the head: Content-Length, or chunked), within
  // `deadline` when one is given. Never throws.
  virtual HttpReply handle(const sdk::RequestView& request, std::istream& body,
                           ReadDeadline* deadline) noexcept = 0;

  // Answers a request whose head could not be read (too large, malformed,
  // too slow): `status`, `error` and `detail` say why. The reply closes the
  // connection.
  virtual HttpReply refuse_head(const std::string& remote_address, int status,
                                std::string_view error, std::string_view detail) = 0;

  // The largest body the handler reads: the transport invites a body
  // (Expect: 100-continue) only when it is not larger.
  virtual std::size_t max_body_bytes() const noexcept = 0;
};

}  // namespace slack_proxy

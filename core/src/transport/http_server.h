// The ingress's HTTP/1.1 server: event-driven connections over Boost.Asio
// (epoll), each request read by Boost.Beast's parser. A small fixed set of
// event threads serves every connection; a connection holds no thread while
// it is idle, while its request trickles in, or while its reply waits for
// the handler (a group commit): the reply is written when it comes.
//
// It keeps what a connection may cost: the request head's limits (431 /
// 414 / 400 through the handler's refuse_head, so counted and logged
// there), read_timeout from a request's first byte (408), keep_alive_timeout
// between requests, max_keep_alive_requests, max_connections (503
// too_many_connections), and TLS when a context is given (the handshake
// within read_timeout). Pipelined requests are answered in order: a
// connection reads its next request only after answering the last. Each
// connection has one deadline and one Asio timer, re-set only when the
// deadline moves earlier (once per request): no scan over connections, no
// timer work per read. Nothing here knows about Slack.
#pragma once

#include <chrono>
#include <cstddef>
#include <memory>

#include <Poco/Net/Context.h>
#include <Poco/Net/ServerSocket.h>
#include <spdlog/logger.h>

#include "transport/http_handler.h"

namespace slack_proxy {

struct ServerOptions {
  int threads = 1;  // event threads (resolved: at least 1)
  // Open connections; beyond it a new one is answered 503
  // too_many_connections with Retry-After and closed.
  int max_connections = 10'000;
  std::chrono::seconds retry_after{5};  // sent with too_many_connections
  // A request's head and body must arrive within this, counted from its
  // first byte (also the longest a new connection may stay silent, and the
  // TLS handshake's limit).
  std::chrono::milliseconds read_timeout{10'000};
  std::chrono::milliseconds keep_alive_timeout{15'000};  // idle between requests
  int max_keep_alive_requests = 10'000;
  // The request head: more fields, or more bytes (request line included),
  // is 431 headers_too_large. Fixed: a field name 256 bytes, a value 8192
  // (431), the URI 16384 (414 uri_too_long).
  int max_header_fields = 100;
  std::size_t max_header_bytes = 64 << 10;
};

// What a server may have to hold open: max_connections plus what the rest
// of the process uses. Raises the soft RLIMIT_NOFILE towards it (never
// above the hard limit) and returns the limit now in force.
std::size_t raise_open_files_limit(std::size_t needed);

class IngressServer {
 public:
  // Serves `socket` (bound and listening; it is duplicated, so the caller
  // may let it go), speaking TLS when `tls` is given.
  IngressServer(HttpHandler& handler, const Poco::Net::ServerSocket& socket,
                Poco::Net::Context::Ptr tls, const ServerOptions& options,
                std::shared_ptr<spdlog::logger> log);
  ~IngressServer();
  IngressServer(const IngressServer&) = delete;
  IngressServer& operator=(const IngressServer&) = delete;

  // Starts the event threads and accepting.
  void start();
  // Stops accepting; connections already open keep being served.
  void stop();
  // Stops accepting, closes every connection, waits until every reply the
  // handler still owes has come (so no callback outlives the handler), and
  // joins the event threads. Idempotent.
  void stop_all();

  // Connections open now (accepted and not yet closed).
  std::size_t open_connections() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace slack_proxy

// The ingress's HTTP/1.1 server: connections, keep-alive, the limits on a
// request head and the whole-request deadline. It reads each request head
// and hands the request to an HttpHandler (transport/http_handler.h), which
// reads the body and gives the reply; the server knows nothing about Slack.
//
// Poco's HTTPServer reads the request head before any code of ours runs, so
// it can neither bound it (field count, bytes) nor answer a bad one with
// more than a bare 400, and it times out single reads only. This is Poco's
// TCPServer (its thread pool, queue and acceptor) with a connection loop of
// our own: head limits answered 431 / 414 / 400 through the handler's
// refuse_head (so counted and logged there); a whole-request deadline
// enforced by one watchdog thread that shuts a late connection's reading
// side (transport/open_connections.h); keep-alive as before. TLS when
// `socket` is a SecureServerSocket (the handshake runs on the connection's
// thread, within read_timeout).
#pragma once

#include <chrono>
#include <cstddef>
#include <memory>

#include <Poco/Net/ServerSocket.h>
#include <Poco/Net/TCPServer.h>
#include <Poco/ThreadPool.h>
#include <spdlog/logger.h>

#include "transport/http_handler.h"

namespace slack_proxy {

struct ServerOptions {
  int threads = 64;       // connections served at once
  int max_queued = 256;   // accepted connections waiting for a thread
  // A request's head and body must arrive within this, counted from its
  // first byte (also the longest a new connection may stay silent).
  std::chrono::milliseconds read_timeout{10'000};
  std::chrono::milliseconds keep_alive_timeout{15'000};  // idle between requests
  int max_keep_alive_requests = 10'000;
  // The request head: more fields, or more bytes (request line included),
  // is 431 headers_too_large. Poco's own fixed limits: a field name 256
  // bytes, a value 8192, the URI 16384 (414 uri_too_long).
  int max_header_fields = 100;
  std::size_t max_header_bytes = 64 << 10;
};

class OpenConnections;

class IngressServer {
 public:
  IngressServer(HttpHandler& handler, Poco::ThreadPool& threads,
                const Poco::Net::ServerSocket& socket, const ServerOptions& options,
                std::shared_ptr<spdlog::logger> log);
  ~IngressServer();
  IngressServer(const IngressServer&) = delete;
  IngressServer& operator=(const IngressServer&) = delete;

  void start();
  // Stops accepting; connections already open keep being served.
  void stop();
  // Stops accepting and aborts every open connection (each handler still
  // returns before its thread goes back to the pool).
  void stop_all();

 private:
  std::shared_ptr<OpenConnections> connections_;
  std::unique_ptr<Poco::Net::TCPServer> server_;
};

}  // namespace slack_proxy

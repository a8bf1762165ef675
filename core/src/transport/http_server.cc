// The ingress's HTTP/1.1 server and its connection loop (see http_server.h).
#include "transport/http_server.h"

#include <algorithm>
#include <optional>
#include <string>

#include <Poco/Exception.h>
#include <Poco/Net/HTTPHeaderStream.h>
#include <Poco/Net/HTTPRequest.h>
#include <Poco/Net/HTTPServerParams.h>
#include <Poco/Net/HTTPServerResponseImpl.h>
#include <Poco/Net/HTTPServerSession.h>
#include <Poco/Net/NetException.h>
#include <Poco/Net/StreamSocket.h>
#include <Poco/Net/TCPServerConnection.h>
#include <Poco/Net/TCPServerConnectionFactory.h>
#include <Poco/Timespan.h>
#include <Poco/Timestamp.h>

#include "server_params.h"
#include "transport/http_framing.h"
#include "transport/open_connections.h"

namespace slack_proxy {
namespace {

using SteadyClock = std::chrono::steady_clock;
using Live = OpenConnections::Live;

class IngressConnection final : public Poco::Net::TCPServerConnection {
 public:
  IngressConnection(const Poco::Net::StreamSocket& socket, HttpHandler& handler,
                    OpenConnections& connections,
                    const Poco::AutoPtr<Poco::Net::HTTPServerParams>& params,
                    const ServerOptions& options, spdlog::logger& log)
      : TCPServerConnection(socket),
        handler_(handler),
        connections_(connections),
        params_(params),
        options_(options),
        log_(log) {}

  void run() override {
    Live live;
    live.fd = socket().impl()->sockfd();
    if (!connections_.add(live)) return;
    // Before the socket closes: the watchdog must never touch a descriptor
    // that may already belong to another connection.
    struct Unregister {
      OpenConnections& connections;
      Live& live;
      ~Unregister() { connections.remove(live); }
    } unregister{connections_, live};
    try {
      serve(live);
    } catch (const Poco::Exception& e) {
      // Resets, timeouts, failed TLS handshakes (a plain-HTTP client on a
      // TLS port): nobody is left to answer.
      log_.debug("connection from {} ended: {}", remote_, e.displayText());
    } catch (const std::exception& e) {
      log_.debug("connection from {} ended: {}", remote_, e.what());
    }
  }

 private:
  void serve(Live& live) {
    Poco::Net::HTTPServerSession session(socket(), params_);
    remote_ = session.clientAddress().toString();
    try {
      serve(session, live);
    } catch (const Poco::Exception&) {
      // Streams turn a socket error into "Error reading ..."; the session
      // kept the real one (a reset, a TLS handshake failure).
      if (session.networkException() != nullptr) session.networkException()->rethrow();
      throw;
    }
  }

  void serve(Poco::Net::HTTPServerSession& session, Live& live) {
    while (!connections_.stopped() && session.hasMoreRequests()) {
      // From the request's first byte (hasMoreRequests saw it) to its last.
      connections_.arm(live, SteadyClock::now() + options_.read_timeout);
      Poco::Net::HTTPRequest head;
      if (!read_head(session, live, head)) return;
      if (!answer(session, live, head)) return;
    }
  }

  // Reads the next request head into `head`. False when the connection is
  // done with: the client left, or the head was refused (and answered here).
  bool read_head(Poco::Net::HTTPServerSession& session, Live& live, Poco::Net::HTTPRequest& head) {
    head.setFieldLimit(options_.max_header_fields);
    Poco::Net::HTTPHeaderInputStream lines(session);
    HeadLimitBuf limited(*lines.rdbuf(), options_.max_header_bytes);
    std::istream head_stream(&limited);
    std::optional<HttpReply> refused;
    try {
      head.read(head_stream);
    } catch (const Poco::Net::NoMessageException&) {
      return false;  // the client closed before another request
    } catch (const Poco::Net::MessageException& e) {
      const HeadError error = classify_head_error(e, options_.max_header_fields);
      refused = handler_.refuse_head(remote_, error.status, error.error, error.detail);
    }
    // In that order: a head cut off by the deadline or the byte limit
    // often parses "fine", short of what was sent.
    if (connections_.fired(live)) {
      refused = handler_.refuse_head(remote_, 408, "request_timeout",
                                     "the request head did not arrive within read_timeout");
    } else if (limited.exceeded()) {
      refused = handler_.refuse_head(
          remote_, 431, "headers_too_large",
          "the request head is larger than " + std::to_string(options_.max_header_bytes) +
              " bytes");
    } else if (limited.source_ended()) {
      return false;  // the client hung up mid-head: nobody to answer
    }
    if (!refused) return true;
    connections_.disarm(live);
    send_and_close(session, *refused, !connections_.fired(live));
    return false;
  }

  // Has the handler answer the request whose head is `head`. False when the
  // connection must close after it.
  bool answer(Poco::Net::HTTPServerSession& session, Live& live,
              const Poco::Net::HTTPRequest& head) {
    auto body = body_stream(head, session);
    Poco::Net::HTTPServerResponseImpl response(session);
    response.setDate(Poco::Timestamp());
    response.setVersion(head.getVersion());
    response.setKeepAlive(params_->getKeepAlive() && head.getKeepAlive() &&
                          session.canKeepAlive());
    // Invite the body only when it may be read (Poco's server always does).
    const auto length = content_length_of(head);
    if (head.getExpectContinue() && (!length || *length <= handler_.max_body_bytes())) {
      response.sendContinue();
    }
    HeadView view(head, remote_);
    ConnectionDeadline deadline(connections_, live);
    HttpReply reply = handler_.handle(view, *body, &deadline);
    const bool in_time = deadline.stop();
    if (!in_time) reply.close = true;
    write(response, reply, head.getMethod() == Poco::Net::HTTPRequest::HTTP_HEAD);
    if (reply.close) {
      if (in_time && refused_unread(reply)) linger();
      return false;
    }
    session.setKeepAlive(response.getKeepAlive());
    return true;
  }

  static void write(Poco::Net::HTTPServerResponseImpl& response, const HttpReply& reply,
                    bool head_only) {
    response.setStatusAndReason(static_cast<Poco::Net::HTTPResponse::HTTPStatus>(reply.status));
    for (const auto& [k, v] : reply.headers) response.set(k, v);
    response.setContentType(reply.content_type);
    response.setContentLength(static_cast<std::streamsize>(reply.body.size()));
    if (reply.close) response.setKeepAlive(false);
    std::ostream& out = response.send();
    if (!head_only) out.write(reply.body.data(), static_cast<std::streamsize>(reply.body.size()));
    out.flush();
  }

  void send_and_close(Poco::Net::HTTPServerSession& session, const HttpReply& reply,
                      bool linger_after) {
    Poco::Net::HTTPServerResponseImpl response(session);
    response.setDate(Poco::Timestamp());
    response.setVersion(Poco::Net::HTTPMessage::HTTP_1_1);
    write(response, reply, false);
    if (linger_after) linger();
  }

  // Refused for its size before all of it was read: the client is likely
  // still sending.
  static bool refused_unread(const HttpReply& reply) {
    return reply.status == 413 || reply.status == 414 || reply.status == 431;
  }

  // After refusing a request it did not read, the server stops sending and
  // reads (and drops) what is still coming for a moment before closing:
  // closing with unread bytes makes the kernel send a reset, which can
  // destroy the answer before the client has read it. Bounded in time and
  // bytes, so a client cannot hold the thread with it.
  void linger() {
    try {
      auto& socket = this->socket();
      socket.shutdownSend();
      const auto until = SteadyClock::now() + std::min<std::chrono::milliseconds>(
                                                  options_.read_timeout, std::chrono::seconds(2));
      socket.setReceiveTimeout(Poco::Timespan(0, 200'000));
      char sink[16384];
      std::size_t dropped = 0;
      while (dropped < (1u << 20) && SteadyClock::now() < until) {
        const int n = socket.receiveBytes(sink, sizeof(sink));
        if (n <= 0) break;
        dropped += static_cast<std::size_t>(n);
      }
    } catch (...) {
      // A timeout or a reset: either way, done.
    }
  }

  HttpHandler& handler_;
  OpenConnections& connections_;
  Poco::AutoPtr<Poco::Net::HTTPServerParams> params_;
  const ServerOptions& options_;
  spdlog::logger& log_;
  std::string remote_ = "?";
};

class IngressConnectionFactory final : public Poco::Net::TCPServerConnectionFactory {
 public:
  IngressConnectionFactory(HttpHandler& handler, std::shared_ptr<OpenConnections> connections,
                           Poco::AutoPtr<Poco::Net::HTTPServerParams> params, ServerOptions options,
                           std::shared_ptr<spdlog::logger> log)
      : handler_(handler),
        connections_(std::move(connections)),
        params_(std::move(params)),
        options_(options),
        log_(std::move(log)) {}
  Poco::Net::TCPServerConnection* createConnection(const Poco::Net::StreamSocket& socket) override {
    return new IngressConnection(socket, handler_, *connections_, params_, options_, *log_);
  }

 private:
  HttpHandler& handler_;
  std::shared_ptr<OpenConnections> connections_;
  Poco::AutoPtr<Poco::Net::HTTPServerParams> params_;
  ServerOptions options_;
  std::shared_ptr<spdlog::logger> log_;
};

}  // namespace

IngressServer::IngressServer(HttpHandler& handler, Poco::ThreadPool& threads,
                             const Poco::Net::ServerSocket& socket, const ServerOptions& options,
                             std::shared_ptr<spdlog::logger> log)
    : connections_(std::make_shared<OpenConnections>()) {
  Poco::AutoPtr<Poco::Net::HTTPServerParams> params(new Poco::Net::HTTPServerParams);
  params->setMaxThreads(options.threads);
  params->setMaxQueued(options.max_queued);
  params->setKeepAlive(true);
  params->setKeepAliveTimeout(Poco::Timespan(
      std::chrono::duration_cast<std::chrono::microseconds>(options.keep_alive_timeout).count()));
  params->setMaxKeepAliveRequests(options.max_keep_alive_requests);
  // Per read (and the first request's wait); the deadline covers the whole.
  params->setTimeout(Poco::Timespan(
      std::chrono::duration_cast<std::chrono::microseconds>(options.read_timeout).count()));
  params->setServerName("slack-proxy");
  bound_idle_thread_wait(*params);
  server_ = std::make_unique<Poco::Net::TCPServer>(
      new IngressConnectionFactory(handler, connections_, params, options, std::move(log)),
      threads, socket, params);
}

IngressServer::~IngressServer() {
  // The pool's threads are joined by its owner; stopping here keeps any
  // connection from starting after the handler is gone.
  stop_all();
}

void IngressServer::start() { server_->start(); }

void IngressServer::stop() { server_->stop(); }

void IngressServer::stop_all() {
  server_->stop();
  connections_->stop_all();
}

}  // namespace slack_proxy

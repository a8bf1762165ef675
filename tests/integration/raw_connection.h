// A bare TCP connection to the proxy's ingress, for what an HTTP client will
// not do: send broken framing, hold a keep-alive connection open and idle,
// send nothing at all, or tell "the server closed it" apart from "it
// answered". Every read is bounded by a deadline.
#ifndef SLACK_PROXY_TESTS_INTEGRATION_RAW_CONNECTION_H
#define SLACK_PROXY_TESTS_INTEGRATION_RAW_CONNECTION_H

#include <sys/socket.h>

#include <Poco/Exception.h>
#include <Poco/Net/NetException.h>
#include <Poco/Net/SocketAddress.h>
#include <Poco/Net/StreamSocket.h>
#include <Poco/Timespan.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <sstream>
#include <string>

#include "harness.h"

namespace slack_proxy::testing {

struct RawResponse {
  std::string status_line;  // without its CRLF
  int status = 0;
  std::map<std::string, std::string> headers;  // lower-cased names
  std::string body;

  std::optional<std::string> header(const std::string& lower_case_name) const {
    const auto it = headers.find(lower_case_name);
    if (it == headers.end()) return std::nullopt;
    return it->second;
  }
};

class RawConnection {
 public:
  explicit RawConnection(std::uint16_t port)
      : socket_(Poco::Net::SocketAddress("127.0.0.1", port)) {
    // Reads wake this often to check their deadline.
    socket_.setReceiveTimeout(Poco::Timespan(0, 100'000));
  }

  // MSG_NOSIGNAL: a proxy that has closed the connection is an exception
  // here, never a SIGPIPE that ends the test binary.
  void send(const std::string& bytes) {
    std::size_t sent = 0;
    while (sent < bytes.size()) {
      sent += static_cast<std::size_t>(socket_.sendBytes(
          bytes.data() + sent, static_cast<int>(bytes.size() - sent), MSG_NOSIGNAL));
    }
  }

  // One response framed by Content-Length; nullopt when the connection ended
  // first or `timeout` passed.
  std::optional<RawResponse> read_response(std::chrono::milliseconds timeout = kDeadline) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    std::size_t header_end;
    while ((header_end = buffer_.find("\r\n\r\n")) == std::string::npos) {
      if (!receive_until(deadline)) return std::nullopt;
    }
    RawResponse r;
    std::istringstream head(buffer_.substr(0, header_end));
    std::string line;
    std::getline(head, line);
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.size() < 12 || !line.starts_with("HTTP/1.")) return std::nullopt;
    r.status_line = line;
    r.status = std::stoi(line.substr(9, 3));
    while (std::getline(head, line)) {
      if (!line.empty() && line.back() == '\r') line.pop_back();
      const auto colon = line.find(':');
      if (colon == std::string::npos) continue;
      std::string name = line.substr(0, colon);
      std::transform(name.begin(), name.end(), name.begin(),
                     [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
      const auto value = line.find_first_not_of(' ', colon + 1);
      r.headers[name] = value == std::string::npos ? "" : line.substr(value);
    }
    const auto length_header = r.headers.find("content-length");
    const std::size_t length =
        length_header == r.headers.end() ? 0 : std::stoul(length_header->second);
    const std::size_t body_start = header_end + 4;
    while (buffer_.size() < body_start + length) {
      if (!receive_until(deadline)) return std::nullopt;
    }
    r.body = buffer_.substr(body_start, length);
    buffer_.erase(0, body_start + length);
    return r;
  }

  // True once the server has closed the connection (end of stream, or a
  // reset when it closed with bytes of ours unread), false when `timeout`
  // passed with the connection still open. Bytes that arrive meanwhile are
  // kept for read_response (and unread()).
  bool wait_closed(std::chrono::milliseconds timeout = kDeadline) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (true) {
      try {
        char chunk[4096];
        const int n = socket_.receiveBytes(chunk, sizeof(chunk));
        if (n <= 0) return true;
        buffer_.append(chunk, static_cast<std::size_t>(n));
      } catch (const Poco::TimeoutException&) {
        if (std::chrono::steady_clock::now() >= deadline) return false;
      } catch (const Poco::Net::ConnectionResetException&) {
        return true;
      }
    }
  }

  // What arrived after the last response read.
  const std::string& unread() const { return buffer_; }

  // True when the server has neither closed the connection nor sent anything.
  bool open_and_quiet() {
    return buffer_.empty() && !socket_.poll(Poco::Timespan(0), Poco::Net::Socket::SELECT_READ);
  }

 private:
  // Appends what arrives to buffer_; false at end of stream or the deadline.
  bool receive_until(std::chrono::steady_clock::time_point deadline) {
    while (std::chrono::steady_clock::now() < deadline) {
      try {
        char chunk[4096];
        const int n = socket_.receiveBytes(chunk, sizeof(chunk));
        if (n <= 0) return false;
        buffer_.append(chunk, static_cast<std::size_t>(n));
        return true;
      } catch (const Poco::TimeoutException&) {
      }
    }
    return false;
  }

  Poco::Net::StreamSocket socket_;
  std::string buffer_;
};

// --- requests as bytes on the wire ------------------------------------------

// A keep-alive POST of a chat.postMessage body (HTTP/1.1 keeps the
// connection open unless a side says otherwise).
inline std::string post_request(std::uint16_t port, const std::string& body) {
  return "POST / HTTP/1.1\r\nHost: 127.0.0.1:" + std::to_string(port) +
         "\r\nContent-Type: application/json\r\nContent-Length: " + std::to_string(body.size()) +
         "\r\n\r\n" + body;
}

inline std::string health_request(std::uint16_t port) {
  return "GET /health HTTP/1.1\r\nHost: 127.0.0.1:" + std::to_string(port) + "\r\n\r\n";
}

// A POST head to "/" whose body is framed by `framing_headers` (each line
// ending in CRLF): Content-Length, Transfer-Encoding, Expect, ...
inline std::string post_head(const std::string& framing_headers) {
  return "POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n" +
         framing_headers + "\r\n";
}

// `body` as one chunk and the last chunk, for Transfer-Encoding: chunked.
inline std::string chunked(const std::string& body) {
  std::ostringstream out;
  out << std::hex << body.size() << "\r\n" << body << "\r\n0\r\n\r\n";
  return out.str();
}

inline bool says_close(const RawResponse& r) {
  std::string value = r.header("connection").value_or("");
  std::transform(value.begin(), value.end(), value.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return value == "close";
}

}  // namespace slack_proxy::testing

#endif  // SLACK_PROXY_TESTS_INTEGRATION_RAW_CONNECTION_H

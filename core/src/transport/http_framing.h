// Reading one HTTP/1.1 request off a Poco server session: the head within
// our limits (HeadLimitBuf, classify_head_error), seen through the SDK's
// RequestView (HeadView), and its body as the head frames it (body_stream).
// Nothing here knows about Slack.
#pragma once

#include <cstddef>
#include <cstdint>
#include <istream>
#include <memory>
#include <optional>
#include <streambuf>
#include <string>
#include <string_view>

#include <Poco/Net/HTTPRequest.h>
#include <Poco/Net/HTTPServerSession.h>
#include <Poco/Net/NetException.h>

#include <slack_proxy/sdk/stages.h>

namespace slack_proxy {

// A request head as Poco parsed it, seen through the SDK's RequestView.
class HeadView final : public sdk::RequestView {
 public:
  HeadView(const Poco::Net::HTTPRequest& head, const std::string& remote)
      : head_(head), remote_(remote) {}
  std::string_view method() const noexcept override { return head_.getMethod(); }
  std::string_view path() const noexcept override { return head_.getURI(); }
  std::optional<std::string> header(std::string_view name) const noexcept override;
  std::string remote_address() const noexcept override { return remote_; }

 private:
  const Poco::Net::HTTPRequest& head_;
  const std::string& remote_;
};

// Hands the request head through to Poco's parser and ends it (EOF) after
// `limit` bytes, so that no head, however it is spread over lines and
// fields, costs more than that. It takes only what Poco's line reader
// (HTTPHeaderInputStream) already holds, a line at most, and that reader
// never reads past the head, so the body stays unread.
class HeadLimitBuf final : public std::streambuf {
 public:
  HeadLimitBuf(std::streambuf& source, std::size_t limit) : source_(source), limit_(limit) {}
  bool exceeded() const { return exceeded_; }
  bool source_ended() const { return source_ended_; }

 protected:
  int_type underflow() override;

 private:
  std::streambuf& source_;
  std::size_t limit_;
  std::size_t count_ = 0;
  char buffer_[1024];
  bool exceeded_ = false;
  bool source_ended_ = false;
};

// What a head Poco could not read means.
struct HeadError {
  int status;
  std::string_view error;
  std::string detail;
};

// The texts are Poco's fixed messages; nothing the client sent is repeated.
// `max_header_fields` is the limit the head was read with.
HeadError classify_head_error(const Poco::Net::MessageException& e, int max_header_fields);

// A non-negative decimal Content-Length, or nullopt.
std::optional<std::uint64_t> content_length_of(const Poco::Net::HTTPRequest& head);

// The body as framed by the head. RFC 9112: a request with neither
// Content-Length nor Transfer-Encoding has no body (Poco's server would read
// to the end of the connection). An unusable Content-Length gets an empty
// stream: the handler refuses it before reading.
std::unique_ptr<std::istream> body_stream(const Poco::Net::HTTPRequest& head,
                                          Poco::Net::HTTPServerSession& session);

}  // namespace slack_proxy

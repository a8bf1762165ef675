// Reading a request's head within limits and framing its body (see
// http_framing.h).
#include "transport/http_framing.h"

#include <algorithm>
#include <charconv>

#include <Poco/Net/HTTPChunkedStream.h>
#include <Poco/Net/HTTPFixedLengthStream.h>

namespace slack_proxy {
namespace {

// Poco 1.11's fixed limits on a request head (private in MessageHeader and
// HTTPRequest).
constexpr std::size_t kMaxFieldNameBytes = 256;
constexpr std::size_t kMaxFieldValueBytes = 8192;
constexpr std::size_t kMaxUriBytes = 16384;

}  // namespace

std::optional<std::string> HeadView::header(std::string_view name) const noexcept {
  try {
    const auto it = head_.find(std::string(name));  // one case-insensitive lookup
    if (it == head_.end()) return std::nullopt;
    return it->second;
  } catch (...) {
    return std::nullopt;
  }
}

HeadLimitBuf::int_type HeadLimitBuf::underflow() {
  if (gptr() < egptr()) return traits_type::to_int_type(*gptr());
  if (count_ >= limit_) {
    exceeded_ = true;
    return traits_type::eof();
  }
  const auto room = static_cast<std::streamsize>(std::min(sizeof(buffer_), limit_ - count_));
  // One byte makes the source read its next line if it has none.
  const int_type first = source_.sbumpc();
  if (traits_type::eq_int_type(first, traits_type::eof())) {
    source_ended_ = true;
    return first;
  }
  buffer_[0] = traits_type::to_char_type(first);
  std::streamsize n = 1;
  if (const std::streamsize held = source_.in_avail(); held > 0 && room > 1)
    n += source_.sgetn(buffer_ + 1, std::min(held, room - 1));
  count_ += static_cast<std::size_t>(n);
  setg(buffer_, buffer_, buffer_ + n);
  return first;
}

HeadError classify_head_error(const Poco::Net::MessageException& e, int max_header_fields) {
  const std::string& what = e.message();
  if (what.find("Too many header fields") != std::string::npos) {
    return {431, "headers_too_large",
            "more than " + std::to_string(max_header_fields) + " header fields"};
  }
  if (what.find("Field name too long") != std::string::npos) {
    return {431, "headers_too_large",
            "a header field name is longer than " + std::to_string(kMaxFieldNameBytes) +
                " bytes"};
  }
  if (what.find("Field value too long") != std::string::npos) {
    return {431, "headers_too_large",
            "a header field value is longer than " + std::to_string(kMaxFieldValueBytes) +
                " bytes (or has a stray CR)"};
  }
  if (what.find("URI invalid or too long") != std::string::npos) {
    return {414, "uri_too_long",
            "the request URI is longer than " + std::to_string(kMaxUriBytes) + " bytes"};
  }
  return {400, "invalid_request", "malformed request head: " + what};
}

std::optional<std::uint64_t> content_length_of(const Poco::Net::HTTPRequest& head) {
  const auto it = head.find(Poco::Net::HTTPMessage::CONTENT_LENGTH);
  if (it == head.end()) return std::nullopt;
  std::uint64_t n = 0;
  const std::string& v = it->second;
  const auto [end, ec] = std::from_chars(v.data(), v.data() + v.size(), n);
  if (v.empty() || ec != std::errc() || end != v.data() + v.size()) return std::nullopt;
  return n;
}

std::unique_ptr<std::istream> body_stream(const Poco::Net::HTTPRequest& head,
                                          Poco::Net::HTTPServerSession& session) {
  if (head.getChunkedTransferEncoding())
    return std::make_unique<Poco::Net::HTTPChunkedInputStream>(session);
  const auto length = content_length_of(head);
  return std::make_unique<Poco::Net::HTTPFixedLengthInputStream>(
      session, static_cast<Poco::Net::HTTPFixedLengthStreamBuf::ContentLength>(length.value_or(0)));
}

}  // namespace slack_proxy

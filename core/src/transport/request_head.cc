// Limits and meanings for a request head Beast parsed (see request_head.h).
#include "transport/request_head.h"

#include <boost/beast/core/string.hpp>

namespace slack_proxy {
namespace http = boost::beast::http;

namespace {

HeadError uri_too_long() {
  return {414, "uri_too_long",
          "the request URI is longer than " + std::to_string(kMaxUriBytes) + " bytes"};
}

HeadError field_too_long(bool name) {
  return {431, "headers_too_large",
          name ? "a header field name is longer than " + std::to_string(kMaxFieldNameBytes) +
                     " bytes"
               : "a header field value is longer than " + std::to_string(kMaxFieldValueBytes) +
                     " bytes"};
}

// In a head cut off at the byte limit: the request line or a field line
// (the last one possibly unfinished) past its own limit. Beast consumes
// what it has parsed, so `buffered` starts with the request line only when
// that was not parsed yet.
std::optional<HeadError> oversized_part(std::string_view buffered, bool line_parsed) {
  std::size_t start = 0;
  bool first = !line_parsed;
  while (start < buffered.size()) {
    std::size_t end = buffered.find('\n', start);
    if (end == std::string_view::npos) end = buffered.size();
    const std::string_view line = buffered.substr(start, end - start);
    if (line.empty() || line == "\r") break;  // the head's end
    if (first) {
      if (line.size() > kMaxUriBytes) return uri_too_long();
    } else {
      const auto colon = line.find(':');
      const std::size_t name = colon == std::string_view::npos ? line.size() : colon;
      if (name > kMaxFieldNameBytes) return field_too_long(true);
      if (colon != std::string_view::npos && line.size() - colon - 1 > kMaxFieldValueBytes)
        return field_too_long(false);
    }
    first = false;
    start = end + 1;
  }
  return std::nullopt;
}

}  // namespace

std::optional<HeadError> check_head(const RequestHead& head, int max_fields) {
  if (head.target().size() > kMaxUriBytes) return uri_too_long();
  int fields = 0;
  for (const auto& field : head) {
    if (++fields > max_fields) {
      return HeadError{431, "headers_too_large",
                       "more than " + std::to_string(max_fields) + " header fields"};
    }
    if (field.name_string().size() > kMaxFieldNameBytes) return field_too_long(true);
    if (field.value().size() > kMaxFieldValueBytes) return field_too_long(false);
  }
  // Beast frames a request by Content-Length or a final "chunked"; any
  // other Transfer-Encoding would leave the body to be read as the next
  // request (RFC 9112 section 6.3: answer 400 and close).
  if (const auto te = head.find(http::field::transfer_encoding); te != head.end()) {
    const auto value = te->value();
    const bool chunked_last =
        value.size() >= 7 &&
        boost::beast::iequals(value.substr(value.size() - 7), "chunked");
    if (!chunked_last) {
      return HeadError{400, "invalid_request",
                       "only the chunked Transfer-Encoding is accepted"};
    }
  }
  return std::nullopt;
}

HeadError head_error(const boost::beast::error_code& ec, const RequestHead& so_far,
                     std::string_view buffered, std::size_t max_header_bytes) {
  if (ec == http::error::header_limit) {
    // Name the part that is too long when one is, as a reader that checks
    // as it goes would have: the URI, or one field.
    if (auto part = oversized_part(buffered, !so_far.target().empty())) return std::move(*part);
    return {431, "headers_too_large",
            "the request head is larger than " + std::to_string(max_header_bytes) + " bytes"};
  }
  const bool has_length = so_far.find(http::field::content_length) != so_far.end();
  const bool has_encoding = so_far.find(http::field::transfer_encoding) != so_far.end();
  if ((ec == http::error::bad_transfer_encoding && has_length) ||
      (ec == http::error::bad_content_length && has_encoding)) {
    // Both at once is how requests are smuggled past proxies.
    return {400, "invalid_request", "Content-Length and Transfer-Encoding must not both be set"};
  }
  if (ec == http::error::bad_content_length) {
    return {400, "invalid_request", "Content-Length is not a number, or is repeated with another"};
  }
  if (ec == http::error::bad_transfer_encoding) {
    return {400, "invalid_request", "Transfer-Encoding is repeated"};
  }
  // Beast's messages are fixed texts ("bad method", "bad field"): nothing
  // the client sent is repeated.
  return {400, "invalid_request", "malformed request head: " + ec.message()};
}

std::string_view HeadView::method() const noexcept {
  const auto m = head_.method_string();
  return {m.data(), m.size()};
}

std::string_view HeadView::path() const noexcept {
  const auto t = head_.target();
  return {t.data(), t.size()};
}

std::optional<std::string> HeadView::header(std::string_view name) const noexcept {
  try {
    const auto it = head_.find(boost::beast::string_view(name.data(), name.size()));
    if (it == head_.end()) return std::nullopt;
    return std::string(it->value());
  } catch (...) {
    return std::nullopt;
  }
}

}  // namespace slack_proxy

// A request head as Boost.Beast parsed it: the limits the server keeps on
// it beyond Beast's own (field count, field sizes, URI length, framing),
// what a parse error means as an answer, and the SDK's RequestView over
// it. Nothing here knows about Slack.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

#include <boost/beast/http/error.hpp>
#include <boost/beast/http/fields.hpp>
#include <boost/beast/http/message.hpp>

#include <slack_proxy/sdk/stages.h>

namespace slack_proxy {

using RequestHead = boost::beast::http::request_header<>;

// Fixed limits on parts of a head (the whole is max_header_bytes).
inline constexpr std::size_t kMaxFieldNameBytes = 256;
inline constexpr std::size_t kMaxFieldValueBytes = 8192;
inline constexpr std::size_t kMaxUriBytes = 16384;

// Why a head is refused: the status, the Slack-style error and a detail
// that never repeats what the client sent.
struct HeadError {
  int status;
  std::string_view error;
  std::string detail;
};

// A head Beast parsed whole, checked against the limits and framing rules
// Beast does not keep: more than `max_fields` fields or an oversized name
// or value (431), a long URI (414), a Transfer-Encoding other than chunked
// (400: the body's end would be unknown).
std::optional<HeadError> check_head(const RequestHead& head, int max_fields);

// What Beast's error `ec` while reading a head means. `so_far` is what was
// parsed of it (the fields before the error), `buffered` the bytes read and
// not yet consumed by the parser.
HeadError head_error(const boost::beast::error_code& ec, const RequestHead& so_far,
                     std::string_view buffered, std::size_t max_header_bytes);

// The head seen through the SDK's RequestView; both must outlive it.
class HeadView final : public sdk::RequestView {
 public:
  HeadView(const RequestHead& head, const std::string& remote) : head_(head), remote_(remote) {}
  std::string_view method() const noexcept override;
  std::string_view path() const noexcept override;
  std::optional<std::string> header(std::string_view name) const noexcept override;
  std::string remote_address() const noexcept override { return remote_; }

 private:
  const RequestHead& head_;
  const std::string& remote_;
};

}  // namespace slack_proxy

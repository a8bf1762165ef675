// The limits the transport keeps on a request head beyond Beast's parser,
// and what Beast's parse errors are answered with (transport/request_head.h).
#include "transport/request_head.h"

#include <string>

#include <boost/asio/buffer.hpp>
#include <boost/beast/http/empty_body.hpp>
#include <boost/beast/http/parser.hpp>
#include <gtest/gtest.h>

namespace slack_proxy {
namespace {

namespace http = boost::beast::http;

struct Parsed {
  http::request_parser<http::empty_body> parser;
  boost::beast::error_code ec;
  std::string unconsumed;  // what the parser left in the buffer, as the transport sees it
};

// Feeds `text` to Beast's request parser as the transport does (head only,
// `limit` bytes at most).
std::unique_ptr<Parsed> parse(const std::string& text, std::uint32_t limit = 64 << 10) {
  auto p = std::make_unique<Parsed>();
  p->parser.header_limit(limit);
  p->parser.eager(false);
  std::size_t used = 0;
  // Fed as a socket read would fill the buffer: the parser consumes the
  // start line and whole fields as it goes.
  while (!p->ec && used < text.size() && !p->parser.is_header_done()) {
    const std::size_t n =
        p->parser.put(boost::asio::buffer(text.data() + used, text.size() - used), p->ec);
    if (n == 0 && p->ec == http::error::need_more) break;
    used += n;
    if (p->ec == http::error::need_more) p->ec = {};
    if (n == 0) break;
  }
  p->unconsumed = text.substr(used);
  return p;
}

std::string head_with(const std::string& fields) {
  return "POST / HTTP/1.1\r\nHost: x\r\n" + fields + "\r\n";
}

TEST(RequestHeadTest, AWellFormedHeadPassesAndIsSeenThroughTheView) {
  const auto p = parse(head_with("Content-Type: application/json\r\nContent-Length: 2\r\n"));
  ASSERT_FALSE(p->ec) << p->ec.message();
  EXPECT_FALSE(check_head(p->parser.get().base(), 100).has_value());
  const std::string remote = "192.0.2.1:4000";
  HeadView view(p->parser.get().base(), remote);
  EXPECT_EQ(view.method(), "POST");
  EXPECT_EQ(view.path(), "/");
  EXPECT_EQ(view.header("content-type"), "application/json");
  EXPECT_FALSE(view.header("Authorization").has_value());
  EXPECT_EQ(view.remote_address(), remote);
}

TEST(RequestHeadTest, MoreFieldsThanTheLimitIs431) {
  std::string fields;
  for (int i = 0; i < 11; ++i) fields += "X-F" + std::to_string(i) + ": v\r\n";
  const auto p = parse(head_with(fields));
  ASSERT_FALSE(p->ec);
  const auto error = check_head(p->parser.get().base(), 10);
  ASSERT_TRUE(error.has_value());
  EXPECT_EQ(error->status, 431);
  EXPECT_EQ(error->error, "headers_too_large");
  EXPECT_EQ(error->detail, "more than 10 header fields");
}

TEST(RequestHeadTest, AnOversizedFieldNameOrValueIs431) {
  const auto name = parse(head_with(std::string(kMaxFieldNameBytes + 1, 'n') + ": v\r\n"));
  ASSERT_FALSE(name->ec);
  EXPECT_EQ(check_head(name->parser.get().base(), 100)->status, 431);
  const auto value = parse(head_with("X-V: " + std::string(kMaxFieldValueBytes + 1, 'v') + "\r\n"));
  ASSERT_FALSE(value->ec);
  const auto error = check_head(value->parser.get().base(), 100);
  ASSERT_TRUE(error.has_value());
  EXPECT_EQ(error->status, 431);
  EXPECT_NE(error->detail.find("value"), std::string::npos);
}

TEST(RequestHeadTest, ALongUriIs414WhetherItFitsTheHeadLimitOrNot) {
  const std::string uri = "/" + std::string(kMaxUriBytes, 'u');
  const std::string text = "GET " + uri + " HTTP/1.1\r\nHost: x\r\n\r\n";
  const auto fits = parse(text);
  ASSERT_FALSE(fits->ec);
  EXPECT_EQ(check_head(fits->parser.get().base(), 100)->status, 414);
  // Past max_header_bytes before its line even ends.
  const auto over = parse(text, 4096);
  ASSERT_EQ(over->ec, http::error::header_limit);
  const HeadError e = head_error(over->ec, over->parser.get().base(), over->unconsumed, 4096);
  EXPECT_EQ(e.status, 414);
  EXPECT_EQ(e.error, "uri_too_long");
}

TEST(RequestHeadTest, AFieldValuePastTheHeadLimitIs431NamingTheValue) {
  const std::string text = head_with("X-Big: " + std::string(100'000, 'a') + "\r\n");
  const auto p = parse(text, 65536);
  ASSERT_EQ(p->ec, http::error::header_limit);
  const HeadError e = head_error(p->ec, p->parser.get().base(), p->unconsumed, 65536);
  EXPECT_EQ(e.status, 431);
  EXPECT_EQ(e.detail, "a header field value is longer than 8192 bytes");
}

TEST(RequestHeadTest, AHeadOverTheByteLimitIs431SayingTheLimit) {
  std::string fields;
  for (int i = 0; i < 100; ++i) fields += "X-F" + std::to_string(i) + ": " + std::string(60, 'v') + "\r\n";
  const std::string text = head_with(fields);
  const auto p = parse(text, 2048);
  ASSERT_EQ(p->ec, http::error::header_limit);
  const HeadError e = head_error(p->ec, p->parser.get().base(), p->unconsumed, 2048);
  EXPECT_EQ(e.status, 431);
  EXPECT_EQ(e.detail, "the request head is larger than 2048 bytes");
}

TEST(RequestHeadTest, ContentLengthWithTransferEncodingIs400InEitherOrder) {
  for (const std::string fields : {"Content-Length: 5\r\nTransfer-Encoding: chunked\r\n",
                                   "Transfer-Encoding: chunked\r\nContent-Length: 5\r\n"}) {
    const std::string text = head_with(fields);
    const auto p = parse(text);
    ASSERT_TRUE(p->ec) << fields;
    const HeadError e = head_error(p->ec, p->parser.get().base(), p->unconsumed, 64 << 10);
    EXPECT_EQ(e.status, 400);
    EXPECT_EQ(e.detail, "Content-Length and Transfer-Encoding must not both be set") << fields;
  }
}

TEST(RequestHeadTest, AContentLengthThatIsNotANumberIs400) {
  for (const std::string bad : {"-5", "12abc", "99999999999999999999999", "5, 6"}) {
    const std::string text = head_with("Content-Length: " + bad + "\r\n");
    const auto p = parse(text);
    ASSERT_TRUE(p->ec) << bad;
    const HeadError e = head_error(p->ec, p->parser.get().base(), p->unconsumed, 64 << 10);
    EXPECT_EQ(e.status, 400) << bad;
    EXPECT_EQ(e.error, "invalid_request");
  }
}

TEST(RequestHeadTest, ATransferEncodingOtherThanChunkedIs400) {
  const auto p = parse(head_with("Transfer-Encoding: gzip\r\n"));
  ASSERT_FALSE(p->ec);
  const auto error = check_head(p->parser.get().base(), 100);
  ASSERT_TRUE(error.has_value());
  EXPECT_EQ(error->status, 400);
  const auto chunked = parse(head_with("Transfer-Encoding: gzip, chunked\r\n"));
  ASSERT_FALSE(chunked->ec);
  EXPECT_FALSE(check_head(chunked->parser.get().base(), 100).has_value());
}

TEST(RequestHeadTest, AMalformedHeadIs400WithoutRepeatingWhatWasSent) {
  const std::string text = "POST / HTTP/1.1\r\nBad Field xoxb-secret\r\n\r\n";
  const auto p = parse(text);
  ASSERT_TRUE(p->ec);
  const HeadError e = head_error(p->ec, p->parser.get().base(), p->unconsumed, 64 << 10);
  EXPECT_EQ(e.status, 400);
  EXPECT_EQ(e.detail.find("xoxb"), std::string::npos) << e.detail;
}

}  // namespace
}  // namespace slack_proxy

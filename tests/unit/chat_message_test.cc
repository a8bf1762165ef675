// Slack's rules for a chat.postMessage body, applied before anything is queued.
#include "chat_message.h"

#include <cstdio>
#include <string>
#include <string_view>

#include <gtest/gtest.h>

namespace slack_proxy {
namespace {

DecodeError error_of(std::string body, BodyFormat format = BodyFormat::Json,
                     DecodeOptions options = {}) {
  auto result = decode_chat_message(std::move(body), format, options);
  if (auto* e = std::get_if<DecodeError>(&result)) return *e;
  return {0, "(accepted)", ""};
}

ChatMessage accepted(std::string body, BodyFormat format = BodyFormat::Json,
                     DecodeOptions options = {}) {
  auto result = decode_chat_message(std::move(body), format, options);
  if (auto* e = std::get_if<DecodeError>(&result)) {
    ADD_FAILURE() << "refused: " << e->error << " (" << e->detail << ")";
    return {};
  }
  return std::get<ChatMessage>(result);
}

std::string repeat(const std::string& unit, std::size_t n) {
  std::string out;
  for (std::size_t i = 0; i < n; ++i) out += unit;
  return out;
}

std::string blocks(std::size_t n) {
  std::string out = "[";
  for (std::size_t i = 0; i < n; ++i) out += std::string(i ? "," : "") + R"({"type":"divider"})";
  return out + "]";
}

TEST(ChatMessageTest, TextAtTheLimitIsAcceptedAndOneCharacterMoreIsMsgTooLong) {
  const std::string at = repeat("x", kMaxTextCharacters);
  EXPECT_EQ(accepted(R"({"channel":"#a","text":")" + at + R"("})").channel, "#a");
  const auto e = error_of(R"({"channel":"#a","text":")" + at + R"(x"})");
  EXPECT_EQ(e.status, 400);
  EXPECT_EQ(e.error, "msg_too_long");
}

TEST(ChatMessageTest, TextLimitCountsCharactersNotBytes) {
  // 40,000 two-byte characters are 80,000 bytes and still within the limit.
  const std::string at = repeat("\xC3\xA9", kMaxTextCharacters);
  EXPECT_EQ(accepted(R"({"channel":"#a","text":")" + at + R"("})").channel, "#a");
  EXPECT_EQ(error_of(R"({"channel":"#a","text":")" + at + "\xC3\xA9" + R"("})").error,
            "msg_too_long");
}

TEST(ChatMessageTest, FiftyBlocksAreAcceptedAndFiftyOneAreInvalidBlocks) {
  EXPECT_EQ(accepted(R"({"channel":"#a","blocks":)" + blocks(kMaxBlocks) + "}").channel, "#a");
  EXPECT_EQ(error_of(R"({"channel":"#a","blocks":)" + blocks(kMaxBlocks + 1) + "}").error,
            "invalid_blocks");
}

TEST(ChatMessageTest, HundredAttachmentsAreAcceptedAndOneMoreIsTooManyAttachments) {
  auto attachments = [](std::size_t n) {
    std::string out = "[";
    for (std::size_t i = 0; i < n; ++i) out += std::string(i ? "," : "") + R"({"text":"t"})";
    return out + "]";
  };
  EXPECT_EQ(accepted(R"({"channel":"#a","attachments":)" + attachments(100) + "}").channel, "#a");
  EXPECT_EQ(error_of(R"({"channel":"#a","attachments":)" + attachments(101) + "}").error,
            "too_many_attachments");
}

TEST(ChatMessageTest, BlocksThatAreNotAnArrayAreInvalidBlocksFormat) {
  EXPECT_EQ(error_of(R"({"channel":"#a","blocks":{"type":"divider"}})").error,
            "invalid_blocks_format");
  EXPECT_EQ(error_of(R"({"channel":"#a","blocks":"[oops"})").error, "invalid_blocks_format");
}

TEST(ChatMessageTest, BlocksSentAsAJsonStringInAJsonBodyAreForwardedAsJson) {
  const auto m = accepted(R"({"channel":"#a","blocks":"[{\"type\":\"divider\"}]"})");
  EXPECT_EQ(m.payload, R"({"channel":"#a","blocks":[{"type":"divider"}]})");
}

TEST(ChatMessageTest, JsonBodyWithoutChangesIsForwardedByteForByte) {
  const std::string body = "{ \"channel\" : \"#a\",\n \"text\": \"x\", \"n\": 1.50 }";
  EXPECT_EQ(accepted(body).payload, body);
}

TEST(ChatMessageTest, FormBooleansBecomeJsonBooleansAndEverythingElseStrings) {
  const auto m = accepted("channel=%23a&text=1&mrkdwn=0&as_user=true&icon_emoji=%3Azap%3A&x=false",
                          BodyFormat::Form);
  EXPECT_EQ(m.payload,
            R"({"channel":"#a","text":"1","mrkdwn":false,"as_user":true,"icon_emoji":":zap:","x":"false"})");
}

TEST(ChatMessageTest, TokenFieldIsReturnedAsTheCallerTokenAndNeverForwarded) {
  const auto json = accepted(R"({"channel":"#a","text":"x","token":"xoxb-1"})");
  EXPECT_EQ(json.caller_token, "xoxb-1");
  EXPECT_EQ(json.payload, R"({"channel":"#a","text":"x"})");
  const auto form = accepted("token=xoxb-2&channel=%23a&text=x", BodyFormat::Form);
  EXPECT_EQ(form.caller_token, "xoxb-2");
  EXPECT_EQ(form.payload, R"({"channel":"#a","text":"x"})");
}

TEST(ChatMessageTest, AnEscapedTokenKeyIsRemovedKeepingTheCallersMemberOrder) {
  const auto m = accepted(R"({"z":1,"channel":"#a","tok\u0065n":"xoxb-3","text":"x","b":2})");
  EXPECT_EQ(m.caller_token, "xoxb-3");
  EXPECT_EQ(m.payload, R"({"z":1,"channel":"#a","text":"x","b":2})");
}

TEST(ChatMessageTest, DefaultChannelIsUsedOnlyWhenTheBodyNamesNone) {
  DecodeOptions options;
  options.default_channel = "#default";
  EXPECT_EQ(accepted(R"({"text":"x"})", BodyFormat::Json, options).payload,
            R"({"text":"x","channel":"#default"})");
  EXPECT_EQ(accepted(R"({"channel":"#own","text":"x"})", BodyFormat::Json, options).channel, "#own");
  EXPECT_EQ(error_of(R"({"text":"x"})").error, "channel_not_specified");
}

TEST(ChatMessageTest, WebhookPayloadFieldThatIsNotJsonIsInvalidPayload) {
  DecodeOptions options;
  options.webhook_style = true;
  EXPECT_EQ(error_of("payload=%7Bnope", BodyFormat::Form, options).error, "invalid_payload");
}

TEST(ChatMessageTest, FormWithABrokenPercentEscapeIsInvalidFormDataNotAServerError) {
  for (const char* body : {"channel=%23a&text=100%", "channel=%23a&text=%zz", "channel=%2"}) {
    const auto e = error_of(body, BodyFormat::Form);
    EXPECT_EQ(e.status, 400) << body;
    EXPECT_EQ(e.error, "invalid_form_data") << body;
  }
}

TEST(ChatMessageTest, FormFieldsWithoutANameAreDroppedAndTheLastRepeatWins) {
  const auto m = accepted("=orphan&channel=%23a&text=first&text=second&flag", BodyFormat::Form);
  EXPECT_EQ(m.payload, R"({"channel":"#a","text":"second","flag":""})");
}

// ------------------------------------------------------------- UTF-8 --

// A JSON body whose text is `text` (raw bytes, no JSON escaping needed).
std::string with_text(const std::string& text) {
  return R"({"channel":"#a","text":")" + text + R"("})";
}

TEST(ChatMessageTest, ValidMultibyteTextPassesInJsonAndForm) {
  const std::string text = "caf\xC3\xA9 \xE2\x82\xAC \xF0\x9F\x98\x80 \xEF\xBF\xBD \xF4\x8F\xBF\xBF";
  EXPECT_EQ(accepted(with_text(text)).payload, with_text(text));
  const auto form = accepted("channel=%23a&text=caf%C3%A9%20%F0%9F%98%80", BodyFormat::Form);
  EXPECT_EQ(form.payload, "{\"channel\":\"#a\",\"text\":\"caf\xC3\xA9 \xF0\x9F\x98\x80\"}");
}

struct BadUtf8 {
  const char* name;
  std::string bytes;
};

class InvalidUtf8 : public ::testing::TestWithParam<BadUtf8> {};

TEST_P(InvalidUtf8, InAJsonBodyIsInvalidUtf8NamingTheByte) {
  const std::string body = with_text("ok " + GetParam().bytes + " ok");
  const auto e = error_of(body);
  EXPECT_EQ(e.status, 400);
  EXPECT_EQ(e.error, "invalid_utf8");
  // The offending byte's offset: after {"channel":"#a","text":"ok .
  EXPECT_EQ(e.detail, "the body is not valid UTF-8 (byte 27)");
  EXPECT_EQ(invalid_utf8_at(body), 27u);
}

TEST_P(InvalidUtf8, InADecodedFormFieldIsInvalidUtf8NamingTheField) {
  std::string encoded;
  for (unsigned char c : GetParam().bytes) {
    char hex[4];
    std::snprintf(hex, sizeof(hex), "%%%02X", c);
    encoded += hex;
  }
  const auto e = error_of("channel=%23a&text=ok" + encoded, BodyFormat::Form);
  EXPECT_EQ(e.status, 400);
  EXPECT_EQ(e.error, "invalid_utf8");
  EXPECT_EQ(e.detail, "form field 'text' is not valid UTF-8 (decoded byte 2)");
}

INSTANTIATE_TEST_SUITE_P(
    Table, InvalidUtf8,
    ::testing::Values(BadUtf8{"OverlongSlash2", "\xC0\xAF"}, BadUtf8{"OverlongC1", "\xC1\xBF"},
                      BadUtf8{"OverlongSlash3", "\xE0\x80\xAF"},
                      BadUtf8{"OverlongSlash4", "\xF0\x80\x80\xAF"},
                      BadUtf8{"HighSurrogate", "\xED\xA0\x80"},
                      BadUtf8{"LowSurrogate", "\xED\xBF\xBF"},
                      BadUtf8{"AboveU10FFFF", "\xF4\x90\x80\x80"},
                      BadUtf8{"LeadF5", "\xF5\x80\x80\x80"}, BadUtf8{"ByteFF", "\xFF"},
                      BadUtf8{"LoneContinuation", "\x80"},
                      BadUtf8{"TruncatedTwo", "\xC3"},
                      BadUtf8{"TruncatedThree", "\xE2\x82"},
                      BadUtf8{"TruncatedFour", "\xF0\x9F\x98"},
                      BadUtf8{"Latin1", "\xE9t\xE9"}),
    [](const auto& info) { return std::string(info.param.name); });

TEST(ChatMessageTest, InvalidUtf8AtFindsTheFirstBadByteOrNone) {
  EXPECT_EQ(invalid_utf8_at(""), std::string_view::npos);
  EXPECT_EQ(invalid_utf8_at("plain ascii"), std::string_view::npos);
  EXPECT_EQ(invalid_utf8_at("\xC3\xA9\xE2\x82\xAC\xF0\x9F\x98\x80"), std::string_view::npos);
  EXPECT_EQ(invalid_utf8_at("ab\xE2\x82"), 2u);           // truncated at the very end
  EXPECT_EQ(invalid_utf8_at("\xC3\xA9\xC3("), 2u);        // a lead byte without its tail
  EXPECT_EQ(invalid_utf8_at(std::string("a\0b", 3)), std::string_view::npos);  // NUL is UTF-8
}

TEST(ChatMessageTest, TheFuzzersFormInputWithAnInvalidUtf8ChannelIsRefusedNotForwardedAsBadJson) {
  // tests/fuzz/crashes/chat_message-form-invalid-utf8-payload-not-json:
  // the channel decodes to "2\xA3", which used to become a payload no JSON
  // parser accepts.
  const auto e = error_of("=xeeeeeeeeeeeeeeee&&channel=2%a3&text=&text=hi", BodyFormat::Form);
  EXPECT_EQ(e.status, 400);
  EXPECT_EQ(e.error, "invalid_utf8");
  EXPECT_EQ(e.detail, "form field 'channel' is not valid UTF-8 (decoded byte 1)");
}

TEST(ChatMessageTest, AFormFieldNameThatIsNotUtf8IsRefusedWithoutRepeatingIt) {
  const auto e = error_of("channel=%23a&text=x&b%C0%AFd=1", BodyFormat::Form);
  EXPECT_EQ(e.error, "invalid_utf8");
  EXPECT_EQ(e.detail, "a form field name is not valid UTF-8");
}

// -------------------------------------------------------- JSON nesting --

// `depth` arrays, one inside the other.
std::string nested_arrays(std::size_t depth) {
  return std::string(depth, '[') + std::string(depth, ']');
}

// A message whose body is nested exactly `depth` deep (the object is 1).
std::string body_of_depth(std::size_t depth) {
  return R"({"channel":"#a","text":"x","deep":)" + nested_arrays(depth - 1) + "}";
}

TEST(ChatMessageTest, BodyAtTheDepthLimitIsAcceptedAndOneLevelMoreIsInvalidJson) {
  EXPECT_EQ(accepted(body_of_depth(64)).channel, "#a");
  const auto e = error_of(body_of_depth(65));
  EXPECT_EQ(e.status, 400);
  EXPECT_EQ(e.error, "invalid_json");
  EXPECT_EQ(e.detail, "the body nests arrays and objects deeper than 64 levels");
}

TEST(ChatMessageTest, TheDepthLimitIsConfigurableBeyondThePocoParsersOwn) {
  DecodeOptions options;
  options.max_json_depth = 200;  // Poco's parser stops at 128 unless told otherwise
  EXPECT_EQ(accepted(body_of_depth(200), BodyFormat::Json, options).channel, "#a");
  EXPECT_EQ(error_of(body_of_depth(201), BodyFormat::Json, options).error, "invalid_json");
  options.max_json_depth = 3;
  EXPECT_EQ(accepted(body_of_depth(3), BodyFormat::Json, options).channel, "#a");
  EXPECT_EQ(error_of(body_of_depth(4), BodyFormat::Json, options).detail,
            "the body nests arrays and objects deeper than 3 levels");
}

TEST(ChatMessageTest, AHundredThousandNestedArraysAreRefusedWithoutCrashing) {
  const auto e = error_of(R"({"channel":"#a","text":"x","deep":)" + nested_arrays(100'000) + "}");
  EXPECT_EQ(e.error, "invalid_json");
  // Unbalanced, as an attacker would send it: the scan does not care.
  EXPECT_EQ(error_of(std::string(100'000, '[')).error, "invalid_json");
  EXPECT_EQ(error_of(std::string(100'000, '{')).error, "invalid_json");
}

TEST(ChatMessageTest, BracketsInsideStringsDoNotCountTowardsTheDepth) {
  const std::string text = std::string(100, '[') + R"(\"\\)" + std::string(100, '{');
  EXPECT_EQ(accepted(with_text(text)).channel, "#a");
  EXPECT_FALSE(json_nests_deeper_than(R"(["[[[", "\"[[[", {"a":"]]]"}])", 2));
  EXPECT_TRUE(json_nests_deeper_than(R"(["\\", [[]]])", 2));  // the string ended at \\"
}

TEST(ChatMessageTest, DeepJsonInsideAFieldOrTheWebhookPayloadIsRefusedBeforeParsing) {
  const std::string deep = nested_arrays(100'000);
  EXPECT_EQ(error_of(R"({"channel":"#a","blocks":")" + deep + R"("})").error,
            "invalid_blocks_format");
  EXPECT_EQ(error_of("channel=%23a&attachments=" + deep, BodyFormat::Form).error,
            "invalid_attachments");
  DecodeOptions webhook;
  webhook.webhook_style = true;
  const auto e = error_of("payload=" + deep, BodyFormat::Form, webhook);
  EXPECT_EQ(e.error, "invalid_payload");
  EXPECT_EQ(e.detail, "the payload field nests arrays and objects deeper than 64 levels");
}

TEST(ChatMessageTest, Utf8LengthCountsCodePoints) {
  EXPECT_EQ(utf8_length(""), 0u);
  EXPECT_EQ(utf8_length("abc"), 3u);
  EXPECT_EQ(utf8_length("\xC3\xA9\xE2\x82\xAC\xF0\x9F\x98\x80"), 3u);  // é € 😀
}

// A member name with a NUL is read as "channel" by Poco and as another field
// by Slack: the proxy would pace, route and check a channel Slack never sees.
// Found by fuzz_ingress (tests/fuzz/corpus/ingress/nul-in-field-name).
TEST(ChatMessageTest, AMemberOrFieldNameHoldingANulIsRefused) {
  const auto json = error_of(R"({"channel":"#a","text":"x","channel\u0000":"#b"})");
  EXPECT_EQ(json.status, 400);
  EXPECT_EQ(json.error, "invalid_json");
  EXPECT_NE(json.detail.find("NUL"), std::string::npos) << json.detail;

  const auto form = error_of("channel=%23a&text=x&channel%00=%23b", BodyFormat::Form);
  EXPECT_EQ(form.status, 400);
  EXPECT_EQ(form.error, "invalid_form_data");

  DecodeOptions webhook;
  webhook.webhook_style = true;
  const auto payload =
      error_of("payload=%7B%22text%22%3A%22x%22%2C%22channel%5Cu0000%22%3A%22%23b%22%7D",
               BodyFormat::Form, webhook);
  EXPECT_EQ(payload.status, 400);
  EXPECT_EQ(payload.error, "invalid_payload");

  // In a value a NUL is only text, and every parser agrees on it.
  EXPECT_EQ(accepted(R"({"channel":"#a","text":"a\u0000b"})").channel, "#a");
  EXPECT_EQ(accepted("channel=%23a&text=a%00b", BodyFormat::Form).channel, "#a");
}

}  // namespace
}  // namespace slack_proxy

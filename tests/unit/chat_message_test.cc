// Slack's rules for a chat.postMessage body, applied before anything is queued.
#include "chat_message.h"

#include <string>

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

TEST(ChatMessageTest, Utf8LengthCountsCodePoints) {
  EXPECT_EQ(utf8_length(""), 0u);
  EXPECT_EQ(utf8_length("abc"), 3u);
  EXPECT_EQ(utf8_length("\xC3\xA9\xE2\x82\xAC\xF0\x9F\x98\x80"), 3u);  // é € 😀
}

}  // namespace
}  // namespace slack_proxy

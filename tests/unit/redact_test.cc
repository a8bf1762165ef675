#include "redact.h"

#include <memory>
#include <sstream>
#include <string>

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <spdlog/logger.h>
#include <spdlog/sinks/ostream_sink.h>

#include "host_services.h"
#include "log_format.h"

namespace slack_proxy {
namespace {

using ::testing::AllOf;
using ::testing::EndsWith;
using ::testing::HasSubstr;
using ::testing::Not;
using ::testing::StartsWith;

TEST(RedactSecretsTest, BotTokenIsReplacedAndSurroundingTextKept) {
  const std::string out = redact_secrets("token xoxb-1234-5678-abcDEF used");

  EXPECT_THAT(out, AllOf(StartsWith("token "), EndsWith(" used"), Not(HasSubstr("1234-5678-abcDEF"))));
}

TEST(RedactSecretsTest, UserTokenIsReplaced) {
  EXPECT_THAT(redact_secrets("a xoxp-11-22-33-secret b"), AllOf(Not(HasSubstr("11-22-33-secret")),
                                                                  StartsWith("a "), EndsWith(" b")));
}

TEST(RedactSecretsTest, AppTokenIsReplaced) {
  EXPECT_THAT(redact_secrets("a xapp-1-A0-99-secret b"),
              AllOf(Not(HasSubstr("1-A0-99-secret")), StartsWith("a "), EndsWith(" b")));
}

TEST(RedactSecretsTest, BearerCredentialIsReplaced) {
  const std::string out = redact_secrets("Authorization: Bearer abc.DEF-ghi_123\nHost: x");

  EXPECT_THAT(out, AllOf(StartsWith("Authorization: "), EndsWith("\nHost: x"),
                         Not(HasSubstr("abc.DEF-ghi_123"))));
}

TEST(RedactSecretsTest, ACredentialOfOneLetterOrDigitAmongPunctuationIsStillReplaced) {
  EXPECT_EQ(redact_secrets("a xoxb-.-_7 b and Bearer ..x. c"),
            "a xoxb[REDACTED] b and Bearer [REDACTED] c");
}

TEST(RedactSecretsTest, TokenInsideJsonKeepsTheJsonAroundIt) {
  const std::string out = redact_secrets(R"({"token":"xoxb-1-2-secret","text":"hi"})");

  EXPECT_THAT(out, AllOf(StartsWith(R"({"token":")"), EndsWith(R"(","text":"hi"})"),
                         Not(HasSubstr("1-2-secret"))));
}

TEST(RedactSecretsTest, EverySecretInALineIsReplaced) {
  const std::string out = redact_secrets("xoxb-1-first and Bearer second-one and xapp-1-third");

  EXPECT_THAT(out, AllOf(Not(HasSubstr("first")), Not(HasSubstr("second-one")),
                         Not(HasSubstr("third")), HasSubstr(" and ")));
}

TEST(RedactSecretsTest, TextWithoutSecretsIsUnchanged) {
  for (const char* text :
       {"", "hello world", R"({"channel":"#general","text":"deploy done"})",
        "xoxb without a dash", "nothing after a trailing Bearer ", "xox-b-not-a-token",
        "export your Slack bot token (xoxb-...) or set token_env", "a bare xapp- prefix",
        "Bearer ... then"}) {
    EXPECT_EQ(redact_secrets(text), text);
  }
}

TEST(RedactSecretsTest, HoldsSecretSaysWhetherRedactionWouldChangeTheText) {
  for (const char* text :
       {"", "hello world", "xoxb without a dash", "nothing after a trailing Bearer ",
        "xox-b-not-a-token", "token xoxb-1234-5678-abcDEF used", "Bearer abc", "a xapp-1 b",
        "xoxb[REDACTED] and Bearer [REDACTED]"}) {
    EXPECT_EQ(holds_secret(text), redact_secrets(text) != text) << text;
  }
}

// In both [log] formats (log_format.h), a stage's line names the stage and
// carries no token.
class StageLoggerTest : public ::testing::TestWithParam<const char*> {};

TEST_P(StageLoggerTest, LinesNameTheStageAndCarryNoToken) {
  std::ostringstream out;
  auto sink = std::make_shared<spdlog::sinks::ostream_sink_mt>(out);
  auto log = std::make_shared<spdlog::logger>("test", sink);
  log->set_formatter(make_log_formatter(GetParam()));
  StageLogger logger(log, "default/sink");

  logger.warn("posting with xoxb-1-2-secret failed");

  EXPECT_THAT(out.str(), AllOf(HasSubstr("[default/sink]"), HasSubstr("failed"),
                               Not(HasSubstr("1-2-secret")), EndsWith("\n")));
  EXPECT_EQ(out.str().find('\n'), out.str().size() - 1) << "one line";
}

// Whatever the call site did: a message that still holds a secret is
// redacted by the formatter, in both formats.
TEST_P(StageLoggerTest, TheFormatterRedactsALineTheCallSiteDidNot) {
  std::ostringstream out;
  auto log = std::make_shared<spdlog::logger>(
      "test", std::make_shared<spdlog::sinks::ostream_sink_mt>(out));
  log->set_formatter(make_log_formatter(GetParam()));

  log->error("Authorization: Bearer abc.DEF-ghi_123 and xoxp-11-22-33-secret");

  EXPECT_THAT(out.str(), AllOf(HasSubstr("Authorization: Bearer [REDACTED] and xoxp[REDACTED]"),
                               Not(HasSubstr("abc.DEF-ghi_123")), Not(HasSubstr("11-22-33-secret"))));
}

INSTANTIATE_TEST_SUITE_P(BothFormats, StageLoggerTest, ::testing::Values("text", "json"),
                         [](const ::testing::TestParamInfo<const char*>& info) {
                           return std::string(info.param);
                         });

}  // namespace
}  // namespace slack_proxy

#include "redact.h"

#include <memory>
#include <sstream>
#include <string>

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <spdlog/logger.h>
#include <spdlog/sinks/ostream_sink.h>

#include "host_services.h"

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
        "xoxb without a dash", "nothing after a trailing Bearer ", "xox-b-not-a-token"}) {
    EXPECT_EQ(redact_secrets(text), text);
  }
}

TEST(StageLoggerTest, LinesNameTheStageAndCarryNoToken) {
  std::ostringstream out;
  auto sink = std::make_shared<spdlog::sinks::ostream_sink_mt>(out);
  auto log = std::make_shared<spdlog::logger>("test", sink);
  log->set_pattern("%v");
  StageLogger logger(log, "default/sink");

  logger.warn("posting with xoxb-1-2-secret failed");

  EXPECT_THAT(out.str(), AllOf(HasSubstr("[default/sink]"), HasSubstr("failed"),
                               Not(HasSubstr("1-2-secret"))));
}

}  // namespace
}  // namespace slack_proxy

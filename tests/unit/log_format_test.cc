#include "log_format.h"

#include <algorithm>
#include <chrono>
#include <memory>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <Poco/JSON/Object.h>
#include <Poco/JSON/Parser.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <spdlog/logger.h>
#include <spdlog/pattern_formatter.h>
#include <spdlog/sinks/ostream_sink.h>

#include "host_services.h"
#include "log_context.h"

namespace slack_proxy {
namespace {

using namespace std::chrono;
using ::testing::AllOf;
using ::testing::ElementsAre;
using ::testing::EndsWith;
using ::testing::HasSubstr;
using ::testing::Not;
using ::testing::StartsWith;

// 2026-12-05 01:02:03.456789 UTC
spdlog::log_clock::time_point a_time() {
  return sys_days{year{2026} / December / 5} + hours{1} + minutes{2} + seconds{3} +
         microseconds{456789};
}

spdlog::details::log_msg record(std::string_view text,
                                spdlog::level::level_enum level = spdlog::level::info) {
  return spdlog::details::log_msg(a_time(), spdlog::source_loc{}, "slack-proxy", level,
                                  spdlog::string_view_t(text.data(), text.size()));
}

std::string formatted(spdlog::formatter& formatter, const spdlog::details::log_msg& msg) {
  spdlog::memory_buf_t out;
  formatter.format(msg, out);
  return std::string(out.data(), out.size());
}

std::string json_of(std::string_view text, spdlog::level::level_enum level = spdlog::level::info) {
  JsonLogFormatter formatter;
  return formatted(formatter, record(text, level));
}

Poco::JSON::Object::Ptr parsed(const std::string& line) {
  Poco::JSON::Parser parser;
  return parser.parse(line).extract<Poco::JSON::Object::Ptr>();
}

// The member names of a record in the order written (Poco's object sorts them).
std::vector<std::string> names_in_order(const std::string& line) {
  std::vector<std::string> names;
  const auto object = parsed(line);
  std::vector<std::pair<std::size_t, std::string>> at;
  for (const auto& [name, value] : *object) at.emplace_back(line.find("\"" + name + "\":"), name);
  std::sort(at.begin(), at.end());
  for (auto& [pos, name] : at) names.push_back(name);
  return names;
}

// ---------------------------------------------------------------- JSON --

TEST(JsonLogFormatterTest, WritesUtcTimeWithMillisecondsLevelAndMessageOnOneLine) {
  EXPECT_EQ(json_of("queue: state/queue.db"),
            R"({"time":"2026-12-05T01:02:03.456Z","level":"info",)"
            R"("message":"queue: state/queue.db"})"
            "\n");
}

TEST(JsonLogFormatterTest, LevelsAreNamedAsLogLevelNamesThem) {
  const std::vector<std::pair<spdlog::level::level_enum, std::string>> levels = {
      {spdlog::level::trace, "trace"}, {spdlog::level::debug, "debug"},
      {spdlog::level::info, "info"},   {spdlog::level::warn, "warn"},
      {spdlog::level::err, "error"},   {spdlog::level::critical, "critical"}};
  for (const auto& [level, name] : levels)
    EXPECT_EQ(parsed(json_of("x", level))->getValue<std::string>("level"), name) << name;
}

TEST(JsonLogFormatterTest, EscapesEveryCharacterJsonNeedsSoTheRecordStaysOneValidLine) {
  const std::string text =
      "quote \" backslash \\ newline \n cr \r tab \t bell \x07 esc \x1b del \x7f "
      "e-acute \xc3\xa9 line separator \xe2\x80\xa8 end";
  const std::string line = json_of(text);

  EXPECT_EQ(parsed(line)->getValue<std::string>("message"), text);
  // One line: its only newline ends it, and no other control character is raw.
  EXPECT_EQ(line.find('\n'), line.size() - 1);
  for (std::size_t i = 0; i + 1 < line.size(); ++i)
    EXPECT_GE(static_cast<unsigned char>(line[i]), 0x20) << "raw control byte at " << i;
  // A NUL too (compared as text: not every parser keeps one).
  EXPECT_THAT(json_of(std::string_view("a\0b", 3)), HasSubstr(R"("message":"a\u0000b")"));
}

TEST(JsonLogFormatterTest, BytesThatAreNotUtf8BecomeTheReplacementCharacter) {
  // A lone continuation byte, a truncated sequence, an overlong '/', a surrogate.
  const std::string line = json_of("a\x80 b\xe2\x82 c\xc0\xaf d\xed\xa0\x80 e");

  EXPECT_EQ(parsed(line)->getValue<std::string>("message"),
            "a\xef\xbf\xbd b\xef\xbf\xbd\xef\xbf\xbd c\xef\xbf\xbd\xef\xbf\xbd "
            "d\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd e");
}

TEST(JsonLogFormatterTest, WithoutAScopeARecordHasNoFields) {
  ASSERT_EQ(LogScope::innermost(), nullptr);
  EXPECT_THAT(names_in_order(json_of("x")), ElementsAre("time", "level", "message"));
}

TEST(JsonLogFormatterTest, TheScopesFieldsFollowTheMessageInAFixedOrder) {
  const LogScope scope({.pipeline = "slack",
                        .channel = "#alerts",
                        .message_id = "0a1b2c3d4e5f6a7b-12",
                        .client = "team-a",
                        .remote = "10.0.0.5:51234",
                        .error = "channel_not_found"});

  EXPECT_EQ(json_of("message 0a1b2c3d4e5f6a7b-12 to #alerts failed", spdlog::level::err),
            R"({"time":"2026-12-05T01:02:03.456Z","level":"error",)"
            R"("message":"message 0a1b2c3d4e5f6a7b-12 to #alerts failed","pipeline":"slack",)"
            R"("channel":"#alerts","message_id":"0a1b2c3d4e5f6a7b-12","client":"team-a",)"
            R"("remote":"10.0.0.5:51234","error":"channel_not_found"})"
            "\n");
}

TEST(JsonLogFormatterTest, AnEmptyFieldIsLeftOut) {
  const LogScope scope({.pipeline = "slack", .error = "no_text"});

  EXPECT_THAT(names_in_order(json_of("x")),
              ElementsAre("time", "level", "message", "pipeline", "error"));
}

TEST(JsonLogFormatterTest, AnInnerScopeAddsToTheOuterAndWinsWhereBothSayOnlyWhileItLives) {
  const LogScope outer({.pipeline = "slack", .channel = "#alerts", .client = "team-a"});
  {
    const LogScope inner({.channel = "#routed", .error = "denied"});
    const auto record = parsed(json_of("x"));
    EXPECT_EQ(record->getValue<std::string>("pipeline"), "slack");
    EXPECT_EQ(record->getValue<std::string>("channel"), "#routed");
    EXPECT_EQ(record->getValue<std::string>("client"), "team-a");
    EXPECT_EQ(record->getValue<std::string>("error"), "denied");
  }
  const auto record = parsed(json_of("x"));
  EXPECT_EQ(record->getValue<std::string>("channel"), "#alerts");
  EXPECT_FALSE(record->has("error"));
}

TEST(JsonLogFormatterTest, AScopeBelongsToItsThread) {
  const LogScope scope({.pipeline = "slack", .channel = "#alerts"});
  std::string elsewhere;
  std::thread([&] { elsewhere = json_of("from another thread"); }).join();

  EXPECT_THAT(names_in_order(elsewhere), ElementsAre("time", "level", "message"));
  EXPECT_EQ(parsed(json_of("here"))->getValue<std::string>("channel"), "#alerts");
}

TEST(JsonLogFormatterTest, AHostileChannelNameCannotForgeAFieldOrEndTheLine) {
  const std::string channel =
      "#x\",\"level\":\"debug\",\"error\":\"none\"}\n{\"time\":\"forged\",\"message\":\"\\";
  const LogScope scope({.pipeline = "slack", .channel = channel, .error = "channel_not_found"});
  const std::string line = json_of("failed", spdlog::level::err);

  EXPECT_EQ(line.find('\n'), line.size() - 1);
  const auto record = parsed(line);
  EXPECT_EQ(record->getValue<std::string>("level"), "error");
  EXPECT_EQ(record->getValue<std::string>("channel"), channel);
  EXPECT_EQ(record->getValue<std::string>("error"), "channel_not_found");
  EXPECT_EQ(record->getValue<std::string>("time"), "2026-12-05T01:02:03.456Z");
  EXPECT_THAT(names_in_order(line),
              ElementsAre("time", "level", "message", "pipeline", "channel", "error"));
}

TEST(JsonLogFormatterTest, RedactsSecretsInTheMessageAndInEveryField) {
  const LogScope scope({.channel = "#xoxb-1-2-channel-secret", .error = "Bearer abc-error-secret"});
  const std::string line = json_of("sent with xoxb-1-2-message-secret");

  EXPECT_THAT(line, AllOf(Not(HasSubstr("message-secret")), Not(HasSubstr("channel-secret")),
                          Not(HasSubstr("error-secret"))));
  const auto record = parsed(line);
  EXPECT_EQ(record->getValue<std::string>("message"), "sent with xoxb[REDACTED]");
  EXPECT_EQ(record->getValue<std::string>("channel"), "#xoxb[REDACTED]");
  EXPECT_EQ(record->getValue<std::string>("error"), "Bearer [REDACTED]");
}

TEST(JsonLogFormatterTest, AStagesLineThroughTheLoggerCarriesTheFieldsOfItsThread) {
  std::ostringstream out;
  auto log = std::make_shared<spdlog::logger>(
      "slack-proxy", std::make_shared<spdlog::sinks::ostream_sink_mt>(out));
  log->set_formatter(make_log_formatter("json"));
  StageLogger stage(log, "slack/slack_sink");
  {
    const LogScope scope({.pipeline = "slack", .channel = "#alerts", .message_id = "m-1"});
    stage.warn("posting with xoxb-1-2-secret failed");
  }
  stage.info("no scope now");

  const auto lines = [&] {
    std::vector<std::string> v;
    std::istringstream in(out.str());
    for (std::string l; std::getline(in, l);) v.push_back(l);
    return v;
  }();
  ASSERT_EQ(lines.size(), 2u) << out.str();
  const auto first = parsed(lines[0]);
  EXPECT_THAT(first->getValue<std::string>("message"),
              AllOf(StartsWith("[slack/slack_sink] posting with "), Not(HasSubstr("1-2-secret"))));
  EXPECT_EQ(first->getValue<std::string>("level"), "warn");
  EXPECT_EQ(first->getValue<std::string>("pipeline"), "slack");
  EXPECT_EQ(first->getValue<std::string>("channel"), "#alerts");
  EXPECT_EQ(first->getValue<std::string>("message_id"), "m-1");
  EXPECT_THAT(names_in_order(lines[1]), ElementsAre("time", "level", "message"));
}

// ---------------------------------------------------------------- text --

TEST(TextLogFormatterTest, WritesWhatThePatternAlwaysWroteFieldsOrNot) {
  spdlog::pattern_formatter pattern(kTextLogPattern);
  TextLogFormatter text;
  const LogScope scope({.pipeline = "slack", .channel = "#alerts", .error = "no_text"});
  for (const auto level : {spdlog::level::info, spdlog::level::warn, spdlog::level::err}) {
    const auto msg = record("POST pipeline 'slack' from 127.0.0.1:5000: 400 no_text", level);
    const std::string expected = formatted(pattern, msg);
    const std::size_t color_start = msg.color_range_start;
    const std::size_t color_end = msg.color_range_end;
    msg.color_range_start = msg.color_range_end = 0;  // as the colour sink does before each line

    EXPECT_EQ(formatted(text, msg), expected);
    // Where the colour sink paints the level.
    EXPECT_EQ(msg.color_range_start, color_start);
    EXPECT_EQ(msg.color_range_end, color_end);
  }
}

TEST(TextLogFormatterTest, RedactsASecretInTheMessageAndStillMarksTheLevelForColour) {
  spdlog::pattern_formatter pattern(kTextLogPattern);
  TextLogFormatter text;
  const auto clean = record("token xoxb[REDACTED] used", spdlog::level::warn);
  const std::string expected = formatted(pattern, clean);
  const auto msg = record("token xoxb-1-2-secret used", spdlog::level::warn);

  EXPECT_EQ(formatted(text, msg), expected);
  EXPECT_EQ(msg.color_range_start, clean.color_range_start);
  EXPECT_EQ(msg.color_range_end, clean.color_range_end);
  EXPECT_LT(msg.color_range_start, msg.color_range_end);
}

TEST(TextLogFormatterTest, TheTimeIsLocalWithItsOffsetAsBefore) {
  TextLogFormatter text;
  std::string line = formatted(text, record("x"));
  ASSERT_THAT(line, EndsWith("\n"));
  line.pop_back();
  // Whatever the machine's zone: the day may differ, and a zone may be off by half an hour.
  EXPECT_THAT(line, ::testing::MatchesRegex(R"(2026-12-0[456]T[0-9]{2}:[0-9]{2}:03\.456)"
                                            R"([+-][0-9]{2}:[0-9]{2} info  x)"));
}

// ------------------------------------------------------------- factory --

TEST(MakeLogFormatterTest, NamesTextAndJsonAndRefusesAnythingElse) {
  EXPECT_NE(dynamic_cast<TextLogFormatter*>(make_log_formatter("text").get()), nullptr);
  EXPECT_NE(dynamic_cast<JsonLogFormatter*>(make_log_formatter("json").get()), nullptr);
  EXPECT_THROW(make_log_formatter("logfmt"), std::invalid_argument);
  EXPECT_NE(dynamic_cast<JsonLogFormatter*>(JsonLogFormatter().clone().get()), nullptr);
  EXPECT_NE(dynamic_cast<TextLogFormatter*>(TextLogFormatter().clone().get()), nullptr);
}

}  // namespace
}  // namespace slack_proxy

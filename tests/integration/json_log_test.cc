// [log] format = "json" end to end: every line the proxy writes is one JSON
// object (time, level, message), and the lines an operator acts on (a
// delivery given up, a channel parked, a refusal, a failed authentication,
// a start that failed) carry their pipeline, channel, client and error as
// fields, with no token or key anywhere.
#include <gtest/gtest.h>
#include <signal.h>

#include <algorithm>
#include <functional>
#include <regex>
#include <string>
#include <vector>

#include "proxy_test.h"

namespace slack_proxy::testing {
namespace {

constexpr const char* kTeamKey = "kt-4c1e9a7f3b2d8e6a0f5c";

std::string json_log_settings() { return "format = \"json\"\n"; }

// Every non-empty line of `log`, each parsed; a line that is not a JSON
// object with a time (RFC 3339, UTC, milliseconds), a level and a message
// fails the test.
std::vector<Poco::JSON::Object::Ptr> records_of(const std::string& log) {
  static const std::regex kTime(R"(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z)");
  std::vector<Poco::JSON::Object::Ptr> records;
  for (const auto& line : non_empty_lines(log)) {
    Poco::JSON::Object::Ptr record;
    try {
      record = parse_object(line);
    } catch (const std::exception&) {
      ADD_FAILURE() << "not a JSON object: " << line;
      continue;
    }
    EXPECT_TRUE(std::regex_match(record->optValue<std::string>("time", ""), kTime)) << line;
    EXPECT_FALSE(record->optValue<std::string>("level", "").empty()) << line;
    EXPECT_TRUE(record->has("message")) << line;
    records.push_back(record);
  }
  return records;
}

std::string field(const Poco::JSON::Object::Ptr& record, const std::string& name) {
  return record->optValue<std::string>(name, "");
}

// The one record whose message contains `needle`.
Poco::JSON::Object::Ptr the_record(const std::vector<Poco::JSON::Object::Ptr>& records,
                                   const std::string& needle) {
  Poco::JSON::Object::Ptr found;
  for (const auto& r : records) {
    if (field(r, "message").find(needle) == std::string::npos) continue;
    EXPECT_TRUE(found.isNull()) << "two records say \"" << needle << "\"";
    found = r;
  }
  if (found.isNull()) throw std::runtime_error("no record says \"" + needle + "\"");
  return found;
}

class JsonLogTest : public ProxyTest {};

TEST_F(JsonLogTest, FailuresAndRefusalsAreRecordsWithTheirFieldsAndNoSecret) {
  slack.enqueue(Behaviour::error("channel_not_found"), 1, "#gone");
  slack.enqueue(Behaviour::error("channel_not_found"), 1, "#gone-too");
  ProxyConfig c = config();
  c.log_settings = json_log_settings();
  c.log_level = "debug";  // for the line that accepts a message
  // A second pipeline whose callers authenticate: its lines name the caller.
  const std::string text =
      c.toml() + "\n[[pipeline]]\nname = \"teams\"\npaths = [\"/teams\"]\n" + stage("bearer_auth") +
      ProxyConfig::fast_retry_stages() + stage("slack_sink", "url = \"" + slack.url() + "\"\n");
  Environment env = default_environment();
  env.push_back(std::string("SLACK_PROXY_CLIENT_KEYS=team-a=") + kTeamKey);
  auto& p = start(text, env);

  ASSERT_EQ(p.post(message("#gone", "to-gone")).status, 200);
  HttpRequest as_team;
  as_team.method = "POST";
  as_team.url = p.url("/teams");
  as_team.content_type = "application/json";
  as_team.body = message("#gone-too", "to-gone-too");
  as_team.headers = {{"Authorization", std::string("Bearer ") + kTeamKey}};
  ASSERT_EQ(http_send(as_team).status, 200);
  ASSERT_TRUE(p.wait_for_metric(kDeadLetters, 2));
  // Refusals: no text, and a wrong key.
  ASSERT_EQ(p.post(R"({"channel":"#alerts"})").status, 400);
  as_team.headers = {{"Authorization", "Bearer kt-not-the-key-of-anyone"}};
  ASSERT_EQ(http_send(as_team).status, 401);
  ASSERT_TRUE(p.wait_for_log("invalid_auth"));
  p.signal(SIGTERM);
  ASSERT_TRUE(p.wait_exit(kDeadline).has_value());

  const std::string log = p.log();
  const auto records = records_of(log);
  ASSERT_GT(records.size(), 5u) << log;

  // The delivery given up, on the dispatcher's thread.
  const auto failed = the_record(records, "to #gone failed after");
  EXPECT_EQ(field(failed, "level"), "error");
  EXPECT_EQ(field(failed, "pipeline"), "slack");
  EXPECT_EQ(field(failed, "channel"), "#gone");
  EXPECT_EQ(field(failed, "error"), "channel_not_found");
  EXPECT_FALSE(field(failed, "message_id").empty());
  EXPECT_NE(field(failed, "message").find(field(failed, "message_id")), std::string::npos)
      << "the id is the one the message names";
  EXPECT_FALSE(failed->has("client")) << "no authenticator on this pipeline";
  // The ingress's line that accepted it, on another thread, names the same message.
  const auto accepted = std::find_if(records.begin(), records.end(), [](const auto& r) {
    return field(r, "message").rfind("accepted message ", 0) == 0 && field(r, "channel") == "#gone";
  });
  ASSERT_NE(accepted, records.end()) << log;
  EXPECT_EQ(field(*accepted, "message_id"), field(failed, "message_id"));
  EXPECT_EQ(field(*accepted, "pipeline"), "slack");
  EXPECT_EQ(field(*accepted, "remote").rfind("127.0.0.1:", 0), 0u) << field(*accepted, "remote");

  // A plugin's line through the host's logger, on the same thread.
  const auto parked = the_record(records, "[slack/deny_list] parking channel #gone ");
  EXPECT_EQ(field(parked, "pipeline"), "slack");
  EXPECT_EQ(field(parked, "channel"), "#gone");
  EXPECT_EQ(field(parked, "error"), "channel_not_found");

  // An authenticated caller's failure names the caller.
  const auto team_failed = the_record(records, "to #gone-too failed after");
  EXPECT_EQ(field(team_failed, "pipeline"), "teams");
  EXPECT_EQ(field(team_failed, "client"), "team-a");
  EXPECT_EQ(field(team_failed, "error"), "channel_not_found");

  // Refusals, on the ingress's threads.
  const auto no_text = the_record(records, "400 no_text");
  EXPECT_EQ(field(no_text, "level"), "warn");
  EXPECT_EQ(field(no_text, "pipeline"), "slack");
  EXPECT_FALSE(no_text->has("channel")) << "a body that does not decode names none";
  EXPECT_EQ(field(no_text, "error"), "no_text");
  EXPECT_EQ(field(no_text, "remote").rfind("127.0.0.1:", 0), 0u) << field(no_text, "remote");
  const auto refused = the_record(records, "401 invalid_auth");
  EXPECT_EQ(field(refused, "pipeline"), "teams");
  EXPECT_EQ(field(refused, "error"), "invalid_auth");
  EXPECT_FALSE(refused->has("client")) << "nobody was authenticated";

  // Lines about no one request carry no fields.
  const auto stopped = std::find_if(records.begin(), records.end(),
                                    [](const auto& r) { return field(r, "message") == "stopped"; });
  ASSERT_NE(stopped, records.end()) << log;
  EXPECT_EQ((*stopped)->size(), 3u) << "time, level and message only";

  for (const char* secret : {kTestToken, kTeamKey})
    EXPECT_EQ(log.find(secret), std::string::npos) << "a secret in the log";
}

TEST_F(JsonLogTest, AStartThatFailsSaysWhyInARecordToo) {
  ProxyConfig c = config();
  c.log_settings = json_log_settings();
  ProxyProcess p(c.toml(), Environment{});  // no SLACK_TOKEN
  p.spawn();
  const auto code = p.wait_exit(kDeadline);
  ASSERT_TRUE(code.has_value()) << "it started; log:\n" << p.log();
  EXPECT_EQ(*code, 2) << p.log();

  const auto records = records_of(p.log());
  const auto why = the_record(records, "cannot start: ");
  EXPECT_EQ(field(why, "level"), "critical");
  EXPECT_NE(field(why, "message").find("SLACK_TOKEN"), std::string::npos) << field(why, "message");
}

}  // namespace
}  // namespace slack_proxy::testing

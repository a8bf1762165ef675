#include "json_text.h"

#include <gtest/gtest.h>

namespace slack_proxy {
namespace {

TEST(RemoveTopLevelMemberTest, RemovesAMemberInTheMiddleKeepingEveryOtherByte) {
  EXPECT_EQ(remove_top_level_member(R"({"a": 1.0, "token": "x", "b" : [1,2]})", "token"),
            R"({"a": 1.0, "b" : [1,2]})");
}

TEST(RemoveTopLevelMemberTest, RemovesTheFirstAndTheLastMember) {
  EXPECT_EQ(remove_top_level_member(R"({"token":"x","a":1})", "token"), R"({"a":1})");
  EXPECT_EQ(remove_top_level_member(R"({"a":1,"token":"x"})", "token"), R"({"a":1})");
}

TEST(RemoveTopLevelMemberTest, RemovesTheOnlyMemberAndEveryDuplicate) {
  EXPECT_EQ(remove_top_level_member(R"({"token":"x"})", "token"), R"({})");
  EXPECT_EQ(remove_top_level_member(R"({"token":1,"a":2,"token":3})", "token"), R"({"a":2})");
}

TEST(RemoveTopLevelMemberTest, LeavesNestedMembersWithTheSameNameAlone) {
  EXPECT_EQ(remove_top_level_member(R"({"a":{"token":"keep"},"token":"x"})", "token"),
            R"({"a":{"token":"keep"}})");
  EXPECT_EQ(remove_top_level_member(R"({"a":{"token":"keep"}})", "token"), std::nullopt);
}

TEST(RemoveTopLevelMemberTest, StringsWithBracesQuotesAndCommasDoNotConfuseIt) {
  EXPECT_EQ(remove_top_level_member(R"({"t":"}{,\"]","token":"x","u":"[\\"})", "token"),
            R"({"t":"}{,\"]","u":"[\\"})");
}

TEST(RemoveTopLevelMemberTest, RefusesWhatIsNotAWellFormedObject) {
  for (const char* bad : {"", "[]", "{", R"({"token")", R"({"token":})", R"({"a":1 "token":2})",
                          R"({"token":"unterminated})", R"({"a":[1,2})", "{}"}) {
    EXPECT_EQ(remove_top_level_member(bad, "token"), std::nullopt) << bad;
  }
}

TEST(RemoveTopLevelMemberTest, AnEscapedKeyIsNotMatched) {
  EXPECT_EQ(remove_top_level_member(R"({"tok\u0065n":"x"})", "token"), std::nullopt);
}

TEST(ReplaceTopLevelMemberTest, ReplacesTheValueKeepingEveryOtherByte) {
  EXPECT_EQ(replace_top_level_member(R"({"a": 1.0, "channel" : "#x", "b":{"channel":"#n"}})",
                                     "channel", R"("#y")"),
            R"({"a": 1.0, "channel" : "#y", "b":{"channel":"#n"}})");
}

TEST(ReplaceTopLevelMemberTest, ReplacesEveryPlainDuplicate) {
  EXPECT_EQ(replace_top_level_member(R"({"channel":"#x","channel":"#asked"})", "channel",
                                     R"("#forced")"),
            R"({"channel":"#forced","channel":"#forced"})");
}

// An escaped key may decode to `key` and keep its own value: the text edit
// must not claim success, or a receiver keeping the last member sees "#asked".
TEST(ReplaceTopLevelMemberTest, AnyEscapedTopLevelKeyLeavesItToAParser) {
  for (const char* json : {R"({"channel":"#x","ch\u0061nnel":"#asked"})",
                           R"({"ch\u0061nnel":"#asked"})",
                           R"({"channel":"#x","te\u0078t":"hi"})"}) {
    EXPECT_EQ(replace_top_level_member(json, "channel", R"("#forced")"), std::nullopt) << json;
  }
  // Escapes inside values and nested keys are no such risk.
  EXPECT_EQ(replace_top_level_member(R"({"channel":"#x","t":"\"q\"","o":{"k\u0065y":1}})",
                                     "channel", R"("#y")"),
            R"({"channel":"#y","t":"\"q\"","o":{"k\u0065y":1}})");
}

// Poco's parser cuts a member name at a NUL, so "channel\u0000x" would be a
// second "channel" to the proxy and another field to Slack.
TEST(MemberNameHoldsNulTest, FindsAnEscapedNulInAnyMemberName) {
  for (const char* json : {R"({"channel\u0000":"#b"})", R"({"a":1,"o":{"k\u0000" : 2}})",
                           R"({"x\"\u0000y":1})", "{\"\\u0000\"\t:1}"}) {
    EXPECT_TRUE(json_member_name_holds_nul(json)) << json;
  }
}

TEST(MemberNameHoldsNulTest, IgnoresNulInValuesAndAnEscapedBackslashBeforeU0000) {
  for (const char* json : {R"({"text":"a\u0000b"})", R"({"text":"\\u0000"})",
                           R"({"a\\u0000":1})", R"({"l":["\u0000"]})", R"({"k\u0001":1})",
                           R"({"cut\u0000)"}) {
    EXPECT_FALSE(json_member_name_holds_nul(json)) << json;
  }
}

}  // namespace
}  // namespace slack_proxy

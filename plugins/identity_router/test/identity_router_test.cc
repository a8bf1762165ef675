#include <stdexcept>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <slack_proxy/sdk/testing/fakes.h>

#include "identity_router.h"

namespace slack_proxy::plugins::identity_router {
namespace {

using sdk::testing::MapConfig;
using Routes = std::vector<std::string>;

IdentityRouter router(Routes routes, const std::string& default_workspace = "") {
  return IdentityRouter(Settings{std::move(routes), default_workspace});
}

sdk::Message from(const std::string& caller, const std::string& channel) {
  sdk::Message m;
  m.id = "m-1";
  m.caller = caller;
  m.channel = channel;
  m.original_channel = channel;
  m.payload = R"({"channel":")" + channel + R"(","text":"hi"})";
  return m;
}

// The workspace `r` picks for caller and channel; "REJECTED" when it refuses.
std::string workspace_for(IdentityRouter& r, const std::string& caller,
                          const std::string& channel) {
  auto m = from(caller, channel);
  const auto result = r.route(m);
  return result.accepted ? m.workspace : "REJECTED";
}

// What parse_routes refused with; "" when it accepted.
std::string refusal(Routes routes, const std::string& default_workspace = "") {
  try {
    parse_routes(Settings{std::move(routes), default_workspace});
    return {};
  } catch (const std::invalid_argument& e) {
    return e.what();
  }
}

TEST(IdentityRouterSettings, SchemaRequiresRoutesAndDefaultsToNoWorkspace) {
  ASSERT_EQ(kSchema.size(), 2u);
  EXPECT_STREQ(kSchema.data()[0].key, "routes");
  EXPECT_EQ(kSchema.data()[0].type, SP_VALUE_STRING_LIST);
  EXPECT_EQ(kSchema.data()[0].required, 1);
  EXPECT_STREQ(kSchema.data()[1].key, "default_workspace");
  EXPECT_STREQ(kSchema.data()[1].default_value, "");
}

TEST(IdentityRouterSettings, ReadsRoutesAndDefaultWorkspace) {
  const Settings s = kSchema.read(MapConfig()
                                      .set("routes", MapConfig::Value{Routes{"team-a -> acme"}})
                                      .set("default_workspace", "beta"));
  EXPECT_EQ(s.routes, Routes{"team-a -> acme"});
  EXPECT_EQ(s.default_workspace, "beta");
}

// ---------------------------------------------------------------- parse --

TEST(IdentityRouterParse, ReadsAClientOnlyRoute) {
  const auto route = parse_route("team-a -> acme");
  EXPECT_EQ(route.client, "team-a");
  EXPECT_FALSE(route.channel_glob.has_value());
  EXPECT_EQ(route.workspace, "acme");
}

TEST(IdentityRouterParse, ReadsAClientAndChannelGlobRoute) {
  const auto route = parse_route("team-b #ops-* -> beta");
  EXPECT_EQ(route.client, "team-b");
  EXPECT_EQ(route.channel_glob, "#ops-*");
  EXPECT_EQ(route.workspace, "beta");
}

TEST(IdentityRouterParse, ReadsAnyClientAndToleratesExtraSpacing) {
  const auto route = parse_route("  *\t#alerts   ->   acme.prod_1  ");
  EXPECT_EQ(route.client, "*");
  EXPECT_EQ(route.channel_glob, "#alerts");
  EXPECT_EQ(route.workspace, "acme.prod_1");
  EXPECT_EQ(parse_route("*->acme").client, "*");
}

TEST(IdentityRouterParse, NamesTheEntryIndexAndWhatIsWrong) {
  struct Case {
    std::string entry;
    std::string problem;
  };
  const std::vector<Case> cases = {
      {"team-a acme", "has no \"->\""},
      {"team-a -> acme -> beta", "has more than one \"->\""},
      {" -> acme", "names no client"},
      {"team-a #a #b -> acme", "has 3 words before \"->\""},
      {"team-a ->", "names no workspace"},
      {"team-a -> acme beta", "has 2 words after \"->\""},
      {"team-* -> acme", "has client \"team-*\", which is neither * nor a name"},
      {"team-a -> acme!", "has workspace \"acme!\", which is not a name"},
      {"team-a -> " + std::string(65, 'w'), "which is not a name of 1 to 64 characters"},
      {"team-a -> caller-0123abcd", "starts with \"caller-\", a prefix reserved"},
  };
  for (const auto& c : cases) {
    const std::string why = refusal({"ok -> fine", c.entry});
    EXPECT_EQ(why.rfind("routes[1] \"" + c.entry + "\" ", 0), 0u) << why;
    EXPECT_NE(why.find(c.problem), std::string::npos) << c.entry << " -> " << why;
  }
}

TEST(IdentityRouterParse, AcceptsAWorkspaceNameOfExactly64Characters) {
  EXPECT_EQ(parse_route("a -> " + std::string(64, 'w')).workspace, std::string(64, 'w'));
}

TEST(IdentityRouterParse, RefusesARouteAnEarlierOneMakesUnreachable) {
  EXPECT_NE(refusal({"* -> acme", "team-a -> beta"})
                .find("routes[1] \"team-a -> beta\" can never match: routes[0] \"* -> acme\""),
            std::string::npos);
  EXPECT_NE(refusal({"team-b -> acme", "team-b #ops-* -> beta"}).find("can never match"),
            std::string::npos);
  EXPECT_NE(refusal({"team-b * -> acme", "team-b #ops-* -> beta"}).find("can never match"),
            std::string::npos);
  EXPECT_NE(refusal({"team-b #ops-* -> acme", "team-b #ops-* -> beta"}).find("can never match"),
            std::string::npos);
  // Overlapping, but each can still match something: fine.
  EXPECT_EQ(refusal({"team-b #ops-* -> beta", "team-b -> acme", "* -> acme"}), "");
  EXPECT_EQ(refusal({"* #ops-* -> beta", "team-a -> acme"}), "");
}

TEST(IdentityRouterParse, ChecksTheDefaultWorkspace) {
  EXPECT_NE(refusal({"a -> b"}, "no spaces").find("default_workspace \"no spaces\" is not a name"),
            std::string::npos);
  EXPECT_NE(refusal({"a -> b"}, "caller-x").find("reserved"), std::string::npos);
}

TEST(IdentityRouterParse, RefusesNoRoutesWithoutADefaultWorkspace) {
  EXPECT_EQ(refusal({}),
            "routes is empty and default_workspace is not set: every message would be refused");
  EXPECT_EQ(refusal({}, "acme"), "");
}

// ---------------------------------------------------------------- glob --

TEST(IdentityRouterGlob, StarMatchesAnyRunIncludingNone) {
  EXPECT_TRUE(glob_match("#ops-*", "#ops-"));
  EXPECT_TRUE(glob_match("#ops-*", "#ops-db-1"));
  EXPECT_TRUE(glob_match("*", ""));
  EXPECT_TRUE(glob_match("#*-alerts", "#db-prod-alerts"));
  EXPECT_TRUE(glob_match("*a*b*", "xxaxxbxx"));
  EXPECT_FALSE(glob_match("#ops-*", "#ops"));
  EXPECT_FALSE(glob_match("#ops-*", "#dev-ops-1"));
  EXPECT_FALSE(glob_match("*a*b", "xxaxxbxxa"));
}

TEST(IdentityRouterGlob, QuestionMarkMatchesExactlyOneCharacter) {
  EXPECT_TRUE(glob_match("#ops-?", "#ops-1"));
  EXPECT_FALSE(glob_match("#ops-?", "#ops-"));
  EXPECT_FALSE(glob_match("#ops-?", "#ops-12"));
  // One character, not one byte: "é" is two bytes in UTF-8.
  EXPECT_TRUE(glob_match("#caf?", "#caf\xC3\xA9"));
  EXPECT_FALSE(glob_match("#caf??", "#caf\xC3\xA9"));
  EXPECT_TRUE(glob_match("*?", "\xC3\xA9"));
}

TEST(IdentityRouterGlob, EverythingElseMatchesItselfExactly) {
  EXPECT_TRUE(glob_match("#alerts", "#alerts"));
  EXPECT_FALSE(glob_match("#alerts", "#Alerts"));
  EXPECT_FALSE(glob_match("#alerts", "alerts"));
  EXPECT_FALSE(glob_match("#alerts", "#alerts2"));
  EXPECT_FALSE(glob_match("", "x"));
}

TEST(IdentityRouterGlob, StaysFastOnAPathologicalPattern) {
  // Backtracking engines take exponential time on this; ours is linear-ish.
  const std::string text(10000, 'a');
  EXPECT_FALSE(glob_match("*a*a*a*a*a*a*a*a*b", text));
}

// --------------------------------------------------------------- route --

// The example from issue #5.
const Routes kIssueExample = {"team-a -> acme", "team-b #ops-* -> beta", "team-b -> acme",
                              "* -> acme"};

TEST(IdentityRouter, RoutesAClientToItsWorkspace) {
  auto r = router({"team-a -> acme", "team-b -> beta"});
  EXPECT_EQ(workspace_for(r, "team-a", "#general"), "acme");
  EXPECT_EQ(workspace_for(r, "team-b", "#general"), "beta");
}

TEST(IdentityRouter, RoutesByClientAndChannelGlob) {
  auto r = router(kIssueExample);
  EXPECT_EQ(workspace_for(r, "team-b", "#ops-db"), "beta");
  EXPECT_EQ(workspace_for(r, "team-b", "#ops-"), "beta");
  EXPECT_EQ(workspace_for(r, "team-b", "#general"), "acme");
  EXPECT_EQ(workspace_for(r, "team-b", "ops-db"), "acme");  // the glob asks for the '#'
  EXPECT_EQ(workspace_for(r, "team-a", "#ops-db"), "acme");  // the glob route is team-b's
}

TEST(IdentityRouter, AnyClientMatchesEveryCallerAndNone) {
  auto r = router(kIssueExample);
  EXPECT_EQ(workspace_for(r, "team-c", "#general"), "acme");
  EXPECT_EQ(workspace_for(r, "", "#general"), "acme");
}

TEST(IdentityRouter, ANamedClientNeverMatchesAMessageWithoutCaller) {
  auto r = router({"team-a -> acme"});
  EXPECT_EQ(workspace_for(r, "", "#general"), "REJECTED");
}

TEST(IdentityRouter, FirstMatchWins) {
  auto ops_first = router({"* #ops-* -> beta", "team-a -> acme"});
  auto team_first = router({"team-a -> acme", "* #ops-* -> beta"});
  EXPECT_EQ(workspace_for(ops_first, "team-a", "#ops-1"), "beta");
  EXPECT_EQ(workspace_for(team_first, "team-a", "#ops-1"), "acme");
  // Where only one route matches, order changes nothing.
  EXPECT_EQ(workspace_for(ops_first, "team-a", "#general"), "acme");
  EXPECT_EQ(workspace_for(team_first, "team-z", "#ops-1"), "beta");
}

TEST(IdentityRouter, MatchesTheChannelAnEarlierRouterSet) {
  auto r = router({"* #ops-* -> beta", "* -> acme"});
  auto m = from("team-a", "#general");
  m.channel = "#ops-override";  // e.g. channel_override ran first
  ASSERT_TRUE(r.route(m).accepted);
  EXPECT_EQ(m.workspace, "beta");
}

TEST(IdentityRouter, SetsTheWorkspaceAttributeToo) {
  auto r = router(kIssueExample);
  auto m = from("team-b", "#ops-1");
  m.attributes["other"] = "kept";
  ASSERT_TRUE(r.route(m).accepted);
  EXPECT_EQ(m.workspace, "beta");
  EXPECT_EQ(m.attributes.at(kWorkspaceAttribute), "beta");
  EXPECT_EQ(m.attributes.at("other"), "kept");
}

TEST(IdentityRouter, ChangesNeitherChannelNorPayload) {
  auto r = router(kIssueExample);
  auto m = from("team-b", "#ops-1");
  const auto before = m;
  r.route(m);
  EXPECT_EQ(m.channel, before.channel);
  EXPECT_EQ(m.original_channel, before.original_channel);
  EXPECT_EQ(m.payload, before.payload);
  EXPECT_EQ(m.caller, before.caller);
}

TEST(IdentityRouter, RejectsAMessageNoRouteMatchesWith403NotAllowed) {
  auto r = router({"team-a -> acme", "team-b #ops-* -> beta"});
  auto m = from("team-b", "#general");
  const auto result = r.route(m);
  EXPECT_FALSE(result.accepted);
  EXPECT_EQ(result.status, 403);
  EXPECT_EQ(result.error, "not_allowed");
  EXPECT_EQ(result.detail, "no route for this client and channel");
  EXPECT_EQ(m.workspace, "");
  EXPECT_EQ(m.attributes.count(kWorkspaceAttribute), 0u);
}

TEST(IdentityRouter, SendsAMessageNoRouteMatchesToTheDefaultWorkspace) {
  auto r = router({"team-a -> acme", "team-b #ops-* -> beta"}, "fallback");
  auto m = from("team-b", "#general");
  ASSERT_TRUE(r.route(m).accepted);
  EXPECT_EQ(m.workspace, "fallback");
  EXPECT_EQ(m.attributes.at(kWorkspaceAttribute), "fallback");
  // A matching route still wins over the default.
  EXPECT_EQ(workspace_for(r, "team-a", "#general"), "acme");
}

TEST(IdentityRouter, WithNoRoutesSendsEverythingToTheDefaultWorkspace) {
  auto r = router({}, "acme");
  EXPECT_EQ(workspace_for(r, "", "#x"), "acme");
  EXPECT_EQ(workspace_for(r, "team-a", "#y"), "acme");
}

}  // namespace
}  // namespace slack_proxy::plugins::identity_router

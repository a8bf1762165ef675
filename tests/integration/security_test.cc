// Issue #5 end to end, against the real binary: callers authenticate with
// bearer_auth, identity_router sends each team to its own Slack workspace
// and token, token_bucket paces per caller, a passthrough pipeline never
// forwards the proxy's key, the admin API needs its own key, and a full
// run with every kind of secret leaves none of them (nor a 12-character
// piece of one) in the log, the SQLite files, the admin API, the metrics or
// any error reply.
#include <gtest/gtest.h>
#include <signal.h>

#include <Poco/JSON/Array.h>

#include <algorithm>
#include <filesystem>
#include <functional>
#include <map>
#include <regex>
#include <set>
#include <sstream>
#include <string_view>
#include <unordered_map>
#include <utility>

#include "proxy_test.h"

namespace slack_proxy::testing {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

constexpr const char* kClientRequests = "slackproxy_client_requests_total";

// Callers' keys (bearer_auth wants at least 16 characters) and workspace
// tokens for the tests before the redaction grep, which has its own set.
constexpr const char* kKeyA = "ka-0f4e8a2c6b1d9e3f7a5c";  // team-a, keys file
constexpr const char* kKeyB = "kb-7d3b9f1e5a2c8d4b6e0f";  // team-b, environment
constexpr const char* kKeyC = "kc-2a6e0c4f8b3d7a1e5c9b";  // team-c, keys file
constexpr const char* kKeyD = "kd-9c3f7b1d5e0a4c8f2b6d";  // team-d, keys file, no route
constexpr const char* kAcmeToken = "xoxb-acme-5150-1c9e7a3f";
constexpr const char* kBetaToken = "xoxb-beta-6261-2d0f8b4a";
constexpr const char* kGammaToken = "xoxb-gamma-7372-3e1a9c5b";  // from a file
// SLACK_PROXY_ADMIN_KEY of these tests' proxies.
constexpr const char* kAdminKeyHere = "adm-e2e5-6a1f0c8d3b7e2f94";

std::string client_series(const std::string& client, const std::string& outcome) {
  return std::string(kClientRequests) + "{client=\"" + client + "\",outcome=\"" + outcome + "\"}";
}

std::string bearer(const std::string& credential) { return "Bearer " + credential; }

// A key that shares its first 16 characters with `key`: what a typo, or an
// attacker who saw part of it, sends.
std::string near_miss(const std::string& key) { return key.substr(0, 16) + "0000000000000000"; }

HttpResponse send(const std::string& method, const std::string& url, const std::string& body = {},
                  std::map<std::string, std::string> headers = {},
                  const std::string& content_type = "application/json") {
  HttpRequest request;
  request.method = method;
  request.url = url;
  request.body = body;
  if (!body.empty()) request.content_type = content_type;
  request.headers = std::move(headers);
  return http_send(request);
}

HttpResponse post_as(const ProxyProcess& p, const std::string& key, const std::string& body,
                     const std::string& path = "/") {
  return send("POST", p.url(path), body, {{"Authorization", bearer(key)}});
}

// The admin API, on the metrics listener; `authorization` is the whole
// header value, none when empty.
HttpResponse admin(const ProxyProcess& p, const std::string& target,
                   const std::string& authorization = bearer(kAdminKeyHere),
                   const std::string& method = "GET") {
  std::map<std::string, std::string> headers;
  if (!authorization.empty()) headers["Authorization"] = authorization;
  return send(method, p.metrics_url(target), {}, std::move(headers));
}

// text -> the Authorization header it reached Slack with (every request
// the fake recorded; a text seen twice keeps the last).
std::map<std::string, std::string> authorization_by_text(const FakeSlack& slack) {
  std::map<std::string, std::string> out;
  for (const auto& r : slack.requests()) out[text_of(r)] = r.authorization;
  return out;
}

// --------------------------------------------------------- config text --

struct HostSettings {
  std::string queue = "backend = \"memory\"\ncapacity = 1000\n";
  std::string log_level = "debug";
  std::string log_format = "text";
  std::string shutdown_timeout = "5s";
};

// Everything but the pipelines; the listen addresses are ProxyProcess's
// placeholders.
std::string host_toml(const HostSettings& h = {}) {
  return "[server]\nlisten = \"@LISTEN@\"\nthreads = 16\n\n"
         "[metrics]\nlisten = \"@METRICS@\"\n\n"
         "[queue]\n" +
         h.queue +
         "\n[dispatcher]\nworkers = 8\nshutdown_timeout = \"" + h.shutdown_timeout +
         "\"\n\n[log]\nlevel = \"" + h.log_level + "\"\nformat = \"" + h.log_format + "\"\n";
}

std::string pipeline(const std::string& name, const std::string& settings,
                     const std::string& stages) {
  return "\n[[pipeline]]\nname = \"" + name + "\"\n" + settings + "\n" + stages;
}

std::string quoted(const std::string& s) { return "\"" + s + "\""; }

std::string bearer_auth_stage(const std::filesystem::path& keys_file, bool path_keys = false) {
  return stage("bearer_auth", "keys_file = " + quoted(keys_file.string()) + "\n" +
                                  (path_keys ? "path_keys = true\n" : ""));
}

// Gives up at once on permanent errors, retries transient ones quickly.
std::string retry_stages() {
  return stage("deny_list", "ttl = \"15m\"\n") +
         stage("slack_retry",
               "max_retries = 3\ninitial_backoff = \"50ms\"\nmax_backoff = \"200ms\"\njitter = 0.0\n");
}

// A message whose text needs no escaping, as a form body (what the SDKs send).
std::string form(const std::vector<std::pair<std::string, std::string>>& fields) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  for (const auto& [name, value] : fields) {
    if (!out.empty()) out += '&';
    out += name + '=';
    for (const unsigned char c : value) {
      if (std::isalnum(c) || c == '-' || c == '_' || c == '.') {
        out += static_cast<char>(c);
      } else {
        out += '%';
        out += kHex[c >> 4];
        out += kHex[c & 0xF];
      }
    }
  }
  return out;
}

constexpr const char* kForm = "application/x-www-form-urlencoded";

// A fake Slack, a directory of secrets files, and the environment every
// proxy of these tests gets: SLACK_TOKEN, the admin key, team-b's key and
// two workspace tokens.
class SecurityTest : public ProxyTest {
 protected:
  void SetUp() override {
    ProxyTest::SetUp();
    keys_file_ = secrets_.write("clients.keys",
                                "# name key\n"
                                "team-a " + std::string(kKeyA) + "\n" +
                                    "team-c " + kKeyC + "  # a comment\n" + "team-d " + kKeyD + "\n");
    gamma_token_file_ = secrets_.write("gamma.token", std::string(kGammaToken) + "\n");
  }

  Environment environment() const {
    Environment env{std::string("SLACK_TOKEN=") + kTestToken,
                    std::string("SLACK_PROXY_ADMIN_KEY=") + kAdminKeyHere};
    env.push_back(std::string("SLACK_PROXY_CLIENT_KEYS=team-b=") + kKeyB);
    env.push_back(std::string("SLACK_TOKEN_ACME=") + kAcmeToken);
    env.push_back(std::string("SLACK_TOKEN_BETA=") + kBetaToken);
    return env;
  }

  std::string sink(const std::string& settings = {}) const {
    return stage("slack_sink", "url = " + quoted(slack.url()) + "\n" + settings);
  }

  ProxyProcess& start_text(const std::string& text) { return start(text, environment()); }

  TempDir secrets_;
  std::filesystem::path keys_file_;
  std::filesystem::path gamma_token_file_;
};

// ------------------------------------------------- 1. accept / reject --

TEST_F(SecurityTest, AuthAcceptsKnownKeysRefusesOthersWith401AndNeverQueuesARefusedBody) {
  auto& p = start_text(
      host_toml() +
      pipeline("teams", R"(paths = ["/", "/api/chat.postMessage"])",
               bearer_auth_stage(keys_file_) + retry_stages() + sink()) +
      pipeline("hooks", "paths = [\"/services/*\"]\nstyle = \"webhook\"\ndefault_channel = \"#hooks\"",
               bearer_auth_stage(keys_file_, /*path_keys=*/true) + retry_stages() + sink()));

  // A key from the file and one from the environment.
  const HttpResponse a1 = post_as(p, kKeyA, message("#auth", "a-1"));
  ASSERT_EQ(a1.status, 200) << a1.body;
  EXPECT_TRUE(ok_of(a1));
  ASSERT_EQ(post_as(p, kKeyB, message("#auth", "b-1")).status, 200);

  // No key, another scheme, a wrong key: refused, each naming the scheme it wants.
  const HttpResponse none = send("POST", p.url("/"), message("#auth", "refused-no-key"));
  EXPECT_EQ(none.status, 401);
  EXPECT_EQ(error_of(none), "not_authed");
  ASSERT_TRUE(none.header("www-authenticate").has_value());
  EXPECT_EQ(none.header("www-authenticate")->rfind("Bearer", 0), 0u) << *none.header("www-authenticate");

  const HttpResponse basic = send("POST", p.url("/"), message("#auth", "refused-basic"),
                                  {{"Authorization", std::string("Basic ") + kKeyA}});
  EXPECT_EQ(basic.status, 401);
  EXPECT_EQ(error_of(basic), "not_authed");

  const HttpResponse wrong = post_as(p, near_miss(kKeyA), message("#auth", "refused-wrong-key"));
  EXPECT_EQ(wrong.status, 401);
  EXPECT_EQ(error_of(wrong), "invalid_auth");
  EXPECT_TRUE(wrong.header("www-authenticate").has_value());

  // On a Web API path the refusal is Slack's own: HTTP 200 with ok:false.
  const HttpResponse api = post_as(p, near_miss(kKeyB), message("#auth", "refused-api"),
                                   "/api/chat.postMessage");
  EXPECT_EQ(api.status, 200);
  EXPECT_FALSE(ok_of(api));
  EXPECT_EQ(error_of(api), "invalid_auth");

  // Webhook-style callers put the key in the path.
  const HttpResponse hook = send("POST", p.url(std::string("/services/") + kKeyA),
                                 R"({"text":"hook-1"})");
  EXPECT_EQ(hook.status, 200) << hook.body;
  EXPECT_EQ(hook.body, "ok");
  const HttpResponse bad_hook = send("POST", p.url("/services/" + near_miss(kKeyA)),
                                     R"({"text":"refused-hook"})");
  EXPECT_EQ(bad_hook.status, 401);
  EXPECT_EQ(bad_hook.body, "invalid_auth");
  // The header is the one judged when both are present.
  const HttpResponse header_wins =
      send("POST", p.url(std::string("/services/") + kKeyA), R"({"text":"refused-header-wins"})",
           {{"Authorization", bearer(near_miss(kKeyA))}});
  EXPECT_EQ(header_wins.status, 401);

  // Last, on the same channel as the refusals: #auth is one FIFO lane, so
  // once a-2 has reached Slack anything queued before it would have too.
  ASSERT_EQ(post_as(p, kKeyA, message("#auth", "a-2")).status, 200);
  ASSERT_TRUE(wait_for_texts(slack, {"a-1", "b-1", "a-2", "hook-1"}));

  std::vector<std::string> auth_lane;
  std::multiset<std::string> all;
  for (const auto& r : slack.requests()) {
    all.insert(text_of(r));
    if (r.channel == "#auth") auth_lane.push_back(text_of(r));
  }
  EXPECT_EQ(auth_lane, (std::vector<std::string>{"a-1", "b-1", "a-2"}));
  EXPECT_EQ(all, (std::multiset<std::string>{"a-1", "b-1", "a-2", "hook-1"}))
      << "a refused request reached Slack";

  const std::string m = p.metrics();
  EXPECT_EQ(metric(m, client_series("team-a", "accepted")), 3) << m;  // a-1, a-2, hook-1
  EXPECT_EQ(metric(m, client_series("team-b", "accepted")), 1) << m;
  EXPECT_EQ(metric(m, series(kReceived, "#auth")), 3) << m;
  EXPECT_EQ(metric(m, rejected("not_authed")), 2) << m;
  EXPECT_EQ(metric(m, rejected("invalid_auth")), 4) << m;
  // A refused caller has no identity to count under.
  EXPECT_EQ(m.find("outcome=\"invalid_auth\""), std::string::npos) << m;
}

// ------------------------------------------------ 2. identity routing --

TEST_F(SecurityTest, IdentityRouterDeliversEachTeamWithItsOwnWorkspacesTokenAndRefusesUnrouted) {
  auto& p = start_text(
      host_toml() +
      pipeline("teams", R"(paths = ["/", "/api/chat.postMessage"])",
               bearer_auth_stage(keys_file_) +
                   stage("identity_router",
                         R"(routes = ["team-a -> acme", "team-b -> beta", "team-c -> gamma"])"
                         "\n") +
                   retry_stages() +
                   sink(R"(workspace_tokens = ["acme=SLACK_TOKEN_ACME", "beta=SLACK_TOKEN_BETA"])"
                        "\nworkspace_token_files = [\"gamma=" +
                        gamma_token_file_.string() + "\"]\n")));

  // All on one channel name: the workspaces keep them apart, not the channel.
  const std::vector<std::pair<const char*, std::string>> sent{
      {kKeyA, "a-1"}, {kKeyB, "b-1"}, {kKeyC, "c-1"}, {kKeyA, "a-2"}, {kKeyB, "b-2"}};
  for (const auto& [key, text] : sent) {
    const HttpResponse r = post_as(p, key, message("#shared", text));
    ASSERT_EQ(r.status, 200) << text << ": " << r.body;
  }
  const HttpResponse unrouted = post_as(p, kKeyD, message("#shared", "d-1"));
  EXPECT_EQ(unrouted.status, 403) << unrouted.body;
  EXPECT_EQ(error_of(unrouted), "not_allowed");

  ASSERT_TRUE(wait_for_texts(slack, {"a-1", "a-2", "b-1", "b-2", "c-1"}));
  const std::map<char, std::string> token_of_team{
      {'a', kAcmeToken}, {'b', kBetaToken}, {'c', kGammaToken}};
  std::map<char, int> per_team;
  for (const auto& r : slack.requests()) {
    const std::string text = text_of(r);
    ASSERT_NE(text, "d-1") << "the unrouted client's message reached Slack";
    const char team = text.at(0);
    ++per_team[team];
    // Not EXPECT_EQ on the header: a failure must not print the tokens.
    EXPECT_TRUE(r.authorization == bearer(token_of_team.at(team)))
        << text << " reached Slack with another workspace's token (or none)";
    EXPECT_TRUE(r.authorization != bearer(kTestToken)) << text << " used the default token";
  }
  EXPECT_EQ(per_team, (std::map<char, int>{{'a', 2}, {'b', 2}, {'c', 1}}));
}

// slackproxy_client_requests_total counts "accepted, duplicate or the error
// code" of every authenticated request; a router's refusal is one of them.
TEST_F(SecurityTest, ClientRequestsMetricCountsARoutersRefusalUnderTheCallersName) {
  auto& p = start_text(
      host_toml() +
      pipeline("teams", R"(paths = ["/"])",
               bearer_auth_stage(keys_file_) +
                   stage("identity_router", R"(routes = ["team-a -> acme"])"
                                            "\n") +
                   retry_stages() + sink(R"(workspace_tokens = ["acme=SLACK_TOKEN_ACME"])"
                                         "\n")));
  ASSERT_EQ(post_as(p, kKeyA, message("#m", "a-1")).status, 200);
  const HttpResponse unrouted = post_as(p, kKeyD, message("#m", "d-1"));
  ASSERT_EQ(unrouted.status, 403) << unrouted.body;
  const HttpResponse bad = post_as(p, kKeyD, R"({"channel":"#m"})");
  ASSERT_EQ(bad.status, 400) << bad.body;

  const std::string m = p.metrics();
  std::string family;  // what a failure shows
  for (const auto& line : non_empty_lines(m))
    if (line.rfind(kClientRequests, 0) == 0) family += line + "\n";
  EXPECT_EQ(metric(m, client_series("team-a", "accepted")), 1) << family;
  EXPECT_EQ(metric(m, client_series("team-d", "no_text")), 1) << family;
  EXPECT_EQ(metric(m, client_series("team-d", "not_allowed")), 1) << family;
}

// ---------------------------------------------- 3. per-client buckets --

TEST_F(SecurityTest, PerClientBucketLetsTeamBThroughWhileTeamAWaitsOnItsOwn) {
  HostSettings h;
  h.shutdown_timeout = "1s";
  // 2 at once per caller, then one every 1000 s: whatever a caller sends
  // beyond its burst stays queued for the rest of the test.
  auto& p = start_text(
      host_toml(h) +
      pipeline("teams", R"(paths = ["/"])",
               bearer_auth_stage(keys_file_) +
                   stage("token_bucket", "key = \"client\"\nrate = 0.001\nburst = 2\n") +
                   retry_stages() + sink()));

  // team-a spends its burst and more, across two channels (so it is the
  // caller's bucket that holds them, not a channel's)...
  for (const auto& [channel, text] : std::vector<std::pair<std::string, std::string>>{
           {"#a-x", "a-1"}, {"#a-y", "a-2"}, {"#a-x", "a-3"}, {"#a-y", "a-4"}})
    ASSERT_EQ(post_as(p, kKeyA, message(channel, text)).status, 200);
  // ...and team-b, after it, is not held behind it.
  ASSERT_EQ(post_as(p, kKeyB, message("#b", "b-1")).status, 200);
  ASSERT_EQ(post_as(p, kKeyB, message("#b", "b-2")).status, 200);
  ASSERT_TRUE(wait_for_texts(slack, {"b-1", "b-2"}));

  // The drain proves what the dispatcher still held: a-3 and a-4, neither
  // in flight, with team-b's whole burst delivered.
  p.signal(SIGTERM);
  const auto code = p.wait_exit(kDeadline);
  ASSERT_TRUE(code.has_value()) << "still running after SIGTERM; log:\n" << p.log();
  EXPECT_EQ(*code, 0) << p.log();
  EXPECT_NE(p.log().find("2 message(s) left undelivered (0 in flight)"), std::string::npos)
      << p.log();

  // Slack saw team-a's burst (the head of each of its lanes) and all of
  // team-b's, nothing else.
  std::multiset<std::string> delivered;
  for (const auto& r : slack.requests()) delivered.insert(text_of(r));
  EXPECT_EQ(delivered, (std::multiset<std::string>{"a-1", "a-2", "b-1", "b-2"}));
}

// ---------------------------------------------- 4. passthrough + auth --

TEST_F(SecurityTest, PassthroughWithAuthDeliversWithTheBodyTokenAndNeverForwardsTheProxyKey) {
  constexpr const char* kCallerBody = "xoxp-caller-body-8484-4f2b6d0e";
  constexpr const char* kCallerForm = "xoxp-caller-form-9595-5a3c7e1f";
  auto& p = start_text(host_toml() +
                       pipeline("passthrough",
                                "paths = [\"/\", \"/api/chat.postMessage\"]\n"
                                "delivery_token = \"caller\"",
                                bearer_auth_stage(keys_file_) + retry_stages() + sink()));

  const std::string json = R"({"channel":"#pass","text":"json-1","token":")" +
                           std::string(kCallerBody) + R"("})";
  const HttpResponse r1 = post_as(p, kKeyA, json);
  ASSERT_EQ(r1.status, 200) << r1.body;
  const HttpResponse r2 =
      send("POST", p.url("/api/chat.postMessage"),
           form({{"channel", "#pass"}, {"text", "form-1"}, {"token", kCallerForm}}),
           {{"Authorization", bearer(kKeyB)}}, kForm);
  ASSERT_EQ(r2.status, 200) << r2.body;
  ASSERT_TRUE(ok_of(r2)) << r2.body;

  // Authenticated, but no Slack token of its own: the proxy key is not one.
  const HttpResponse no_token = post_as(p, kKeyA, message("#pass", "refused-no-token"));
  EXPECT_EQ(no_token.status, 401) << no_token.body;
  EXPECT_EQ(error_of(no_token), "not_authed");
  // Not authenticated, even though it carries a Slack token.
  const HttpResponse no_key = send("POST", p.url("/"), json);
  EXPECT_EQ(no_key.status, 401);
  EXPECT_EQ(error_of(no_key), "not_authed");

  ASSERT_TRUE(wait_for_texts(slack, {"json-1", "form-1"}));
  const auto by_text = authorization_by_text(slack);
  EXPECT_EQ(by_text.size(), 2u) << "a refused request reached Slack";
  EXPECT_TRUE(by_text.at("json-1") == bearer(kCallerBody)) << "json-1: not the body's token";
  EXPECT_TRUE(by_text.at("form-1") == bearer(kCallerForm)) << "form-1: not the form's token";
  for (const auto& r : slack.requests()) {
    for (const char* key : {kKeyA, kKeyB}) {
      EXPECT_EQ(r.authorization.find(key), std::string::npos) << "a proxy key reached Slack";
      EXPECT_EQ(r.body.find(key), std::string::npos) << "a proxy key reached Slack";
      for (const auto& [name, value] : r.headers)
        EXPECT_EQ(value.find(key), std::string::npos) << "a proxy key reached Slack in " << name;
    }
    // The token travels as a credential, never as message content.
    EXPECT_FALSE(parse_object(r.body)->has("token")) << r.body;
  }
}

// ------------------------------------------------- 5. admin protection --

TEST_F(SecurityTest, AdminApiNeedsTheAdminKeyWhileMetricsAndHealthStayOpen) {
  auto& p = start_text(config().toml());
  const HttpResponse none = admin(p, "/admin/dead-letters", "");
  EXPECT_EQ(none.status, 401) << none.body;
  EXPECT_EQ(error_of(none), "not_authed");
  ASSERT_TRUE(none.header("www-authenticate").has_value());
  EXPECT_EQ(none.header("www-authenticate")->rfind("Bearer", 0), 0u);

  const HttpResponse wrong = admin(p, "/admin/dead-letters", bearer(near_miss(kAdminKeyHere)));
  EXPECT_EQ(wrong.status, 401) << wrong.body;
  EXPECT_EQ(error_of(wrong), "invalid_auth");
  EXPECT_TRUE(wrong.header("www-authenticate").has_value());

  // A client key or Slack's token is not the admin key either.
  EXPECT_EQ(admin(p, "/admin/dead-letters", bearer(kTestToken)).status, 401);
  EXPECT_EQ(admin(p, "/admin/dead-letters", std::string("Basic ") + kAdminKeyHere).status, 401);
  // Nor does a refused request reach the API: a delete without the key deletes nothing.
  EXPECT_EQ(admin(p, "/admin/dead-letters?all=true", "", "DELETE").status, 401);

  const HttpResponse right = admin(p, "/admin/dead-letters");
  EXPECT_EQ(right.status, 200) << right.body;
  EXPECT_TRUE(ok_of(right));
  EXPECT_EQ(admin(p, "/admin/queue").status, 200);

  EXPECT_EQ(http_get(p.metrics_url("/metrics")).status, 200);
  EXPECT_EQ(http_get(p.metrics_url("/health")).status, 200);
}

TEST_F(SecurityTest, AdminApiIsDisabledWithoutAnAdminKeyButMetricsAndHealthServe) {
  // The default environment without SLACK_PROXY_ADMIN_KEY.
  proxy = std::make_unique<ProxyProcess>(config(),
                                         Environment{std::string("SLACK_TOKEN=") + kTestToken});
  ASSERT_TRUE(proxy->start());
  for (const std::string& authorization : {std::string(), bearer(kAdminKeyHere)}) {
    const HttpResponse r = admin(*proxy, "/admin/dead-letters", authorization);
    EXPECT_EQ(r.status, 403) << r.body;
    EXPECT_EQ(error_of(r), "admin_disabled");
  }
  EXPECT_EQ(http_get(proxy->metrics_url("/metrics")).status, 200);
  EXPECT_EQ(http_get(proxy->metrics_url("/health")).status, 200);
  EXPECT_NE(proxy->log().find("admin API is off"), std::string::npos) << proxy->log();
}

TEST_F(SecurityTest, AMetricsListenerOnAllInterfacesWithoutPublicRefusesToStart) {
  // The usual config with its [metrics] listen line replaced.
  auto with_metrics = [&](const std::string& lines) {
    const std::string loopback = "listen = \"@METRICS@\"";
    std::string text = config().toml();
    const auto at = text.find(loopback);
    if (at == std::string::npos) throw std::logic_error("no metrics listen line in:\n" + text);
    return text.replace(at, loopback.size(), lines);
  };
  const std::string everywhere = "listen = \"0.0.0.0:" + std::to_string(free_port()) + "\"";

  ProxyProcess refused(with_metrics(everywhere));
  refused.spawn();
  const auto code = refused.wait_exit(kDeadline);
  ASSERT_TRUE(code.has_value()) << "it started; log:\n" << refused.log();
  EXPECT_EQ(*code, 2) << refused.log();
  EXPECT_NE(refused.log().find("public = true"), std::string::npos) << refused.log();
  EXPECT_NE(refused.log().find("0.0.0.0"), std::string::npos) << refused.log();

  // Saying so explicitly is accepted.
  const CommandResult validated = run_validate(with_metrics(everywhere + "\npublic = true"));
  EXPECT_EQ(validated.exit_code, 0) << validated.output;
}

// -------------------------------------------------- 6. redaction grep --

struct Secret {
  std::string name;  // what a failure says
  std::string value;
};

// Finds any secret, or any 12-character piece of one, in a text: a log line
// that cut a key short or printed its first characters is a leak too.
class LeakScanner {
 public:
  static constexpr std::size_t kPiece = 12;

  explicit LeakScanner(std::vector<Secret> secrets) : secrets_(std::move(secrets)) {
    // pieces_ views secrets_' strings: never copy or move a scanner.
    for (std::size_t i = 0; i < secrets_.size(); ++i) {
      const std::string_view v = secrets_[i].value;
      if (v.size() < kPiece) throw std::logic_error(secrets_[i].name + " is too short to scan for");
      for (std::size_t at = 0; at + kPiece <= v.size(); ++at) {
        auto [it, fresh] = pieces_.emplace(v.substr(at, kPiece), i);
        if (!fresh && it->second != i)
          throw std::logic_error(secrets_[i].name + " shares a piece with " + secrets_[it->second].name);
      }
    }
  }

  LeakScanner(const LeakScanner&) = delete;
  LeakScanner& operator=(const LeakScanner&) = delete;

  // Names of the secrets with a piece in `text`.
  std::set<std::string> found_in(std::string_view text) const {
    std::set<std::string> names;
    for (std::size_t at = 0; at + kPiece <= text.size(); ++at)
      if (auto it = pieces_.find(text.substr(at, kPiece)); it != pieces_.end())
        names.insert(secrets_[it->second].name);
    return names;
  }

  // Fails the test for every secret in `text`, naming the place and the
  // secret, never its value.
  void expect_clean(const std::string& place, std::string_view text) const {
    for (const auto& name : found_in(text))
      ADD_FAILURE() << place << " contains " << name << " (or a 12-character piece of it)";
  }

 private:
  std::vector<Secret> secrets_;
  std::unordered_map<std::string_view, std::size_t> pieces_;  // views into secrets_
};

// A reply as the grep sees it: status line, every header, the body.
std::string reply_text(const HttpResponse& r) {
  std::string out = std::to_string(r.status) + "\n";
  for (const auto& [name, value] : r.headers) out += name + ": " + value + "\n";
  return out + "\n" + r.body;
}

// Every admin reply the grep must see: the whole dead-letter list (paged)
// and each record shown alone, with its payload, and the queue.
std::vector<std::pair<std::string, HttpResponse>> admin_replies(const ProxyProcess& p,
                                                                const std::string& admin_key,
                                                                const std::string& run,
                                                                std::size_t expected_records) {
  std::vector<std::pair<std::string, HttpResponse>> out;
  std::vector<std::string> ids;
  std::string after;
  for (int page = 0; page < 100; ++page) {
    const std::string target =
        "/admin/dead-letters?limit=2" + (after.empty() ? "" : "&after=" + after);
    const HttpResponse r = admin(p, target, bearer(admin_key));
    EXPECT_EQ(r.status, 200) << r.body;
    out.emplace_back("admin reply to GET " + target + " (" + run + ")", r);
    if (r.status != 200) break;
    const auto body = parse_object(r.body);
    const auto array = body->getArray("dead_letters");
    for (std::size_t i = 0; array && i < array->size(); ++i)
      ids.push_back(array->getObject(i)->getValue<std::string>("id"));
    after = body->optValue<std::string>("next_after", "");
    if (after.empty()) break;
  }
  EXPECT_EQ(ids.size(), expected_records) << run;
  for (const auto& id : ids) {
    const HttpResponse r = admin(p, "/admin/dead-letters/" + id, bearer(admin_key));
    EXPECT_EQ(r.status, 200) << r.body;
    out.emplace_back("admin reply to GET /admin/dead-letters/" + id + " (" + run + ")", r);
  }
  out.emplace_back("admin reply to GET /admin/queue (" + run + ")", admin(p, "/admin/queue", bearer(admin_key)));
  return out;
}

// Every line of a log written with [log] format = "json" is one JSON object
// with a time, a level and a message: the grep read records, not fragments.
void expect_json_records(const std::string& place, const std::string& log) {
  std::size_t records = 0;
  for (const auto& line : non_empty_lines(log)) {
    try {
      const auto record = parse_object(line);
      for (const char* name : {"time", "level", "message"})
        EXPECT_TRUE(record->has(name)) << place << ": no " << name << " in " << line;
      ++records;
    } catch (const std::exception&) {
      ADD_FAILURE() << place << ": not a JSON object: " << line;
    }
  }
  EXPECT_GT(records, 10u) << place;
}

// The grep runs once for each [log] format: what one redacts, the other must too.
class RedactionGrepTest : public SecurityTest, public ::testing::WithParamInterface<std::string> {};

INSTANTIATE_TEST_SUITE_P(BothLogFormats, RedactionGrepTest, ::testing::Values("text", "json"),
                         [](const ::testing::TestParamInfo<std::string>& info) {
                           return info.param;
                         });

TEST_P(RedactionGrepTest, FindsNoSecretInLogsQueueFilesAdminApiMetricsOrReplies) {
  // The fixed set, every one of them used below. Values are unlike each
  // other and anything the proxy prints, so a 12-character piece of one in
  // any output can only be a leak.
  const std::string kSlackToken = "xoxb-7201-e3c9a1f4d8b2-Qm4vT9zK";
  const std::string kAcme = "xoxb-8302-a7d1c5e9b3f0-Wp2nR6yL";
  const std::string kBeta = "xoxb-9403-f2b8e4a6c1d7-Hs5kJ3xV";
  const std::string kFileToken = "xoxb-1504-c6e0b4d2a8f3-Zt7mN1qB";
  const std::string kClientFile = "ka-5c8e1f3a9d7b2e4c6a0f8d1b";  // team-a
  const std::string kClientEnv = "kb-9e2d4c6a8f0b1d3e5c7a9f2e";   // team-b
  const std::string kAdmin = "adm-3f7b9d1e5c2a8f4d6b0e1c7a";
  const std::string kCallerBody = "xoxp-2605-b9d3f7a1e5c8-Ur8gF2wD";
  const std::string kCallerHeader = "xoxp-3706-d4a8c2e6f0b9-Ye6hM4sC";
  const std::string kQueueKey = "5b2e8d1f4a7c0e3b6d9f2a5c8e1b4d7f0a3c6e9b2d5f8a1c4e7b0d3f6a9c2e5b";
  LeakScanner scanner({{"SLACK_TOKEN", kSlackToken},
                       {"workspace token acme (SLACK_TOKEN_ACME)", kAcme},
                       {"workspace token beta (SLACK_TOKEN_BETA)", kBeta},
                       {"token_file token", kFileToken},
                       {"client key team-a (keys file)", kClientFile},
                       {"client key team-b (environment)", kClientEnv},
                       {"admin key", kAdmin},
                       {"caller token in a body field", kCallerBody},
                       {"caller token in Authorization", kCallerHeader},
                       {"SLACK_PROXY_QUEUE_KEY", kQueueKey}});
  // The scanner is armed: a near miss of a key is caught as that key.
  ASSERT_EQ(scanner.found_in("x" + near_miss(kClientFile) + "x"),
            std::set<std::string>{"client key team-a (keys file)"});

  TempDir state;  // only the SQLite files live here
  const auto db_dir = state.path() / "db";
  const std::string keys_file = secrets_.write("redact.keys", "team-a " + kClientFile + "\n").string();
  const std::string token_file = secrets_.write("hooks.token", kFileToken + "\n").string();

  HostSettings h;
  h.queue = "backend = \"sqlite\"\npath = " + quoted((db_dir / "queue.db").string()) +
            "\nsync = \"full\"\ncapacity = 1000\n";
  h.log_level = "trace";
  h.log_format = GetParam();
  h.shutdown_timeout = "1s";
  const std::string text =
      host_toml(h) +
      pipeline("teams", R"(paths = ["/", "/api/chat.postMessage"])",
               stage("bearer_auth", "keys_file = " + quoted(keys_file) + "\n") +
                   stage("identity_router", R"(routes = ["team-a -> acme", "team-b -> beta"])"
                                            "\n") +
                   retry_stages() +
                   sink(R"(workspace_tokens = ["acme=SLACK_TOKEN_ACME", "beta=SLACK_TOKEN_BETA"])"
                        "\n")) +
      pipeline("hooks", "paths = [\"/services/*\"]\nstyle = \"webhook\"\ndefault_channel = \"#hooks\"",
               stage("bearer_auth", "keys_file = " + quoted(keys_file) + "\npath_keys = true\n") +
                   retry_stages() + sink("token_file = " + quoted(token_file) + "\n")) +
      pipeline("open", R"(paths = ["/open"])", retry_stages() + sink()) +
      pipeline("passthrough", "paths = [\"/caller\"]\ndelivery_token = \"caller\"",
               retry_stages() + sink());
  const Environment env{"SLACK_TOKEN=" + kSlackToken,
                        "SLACK_TOKEN_ACME=" + kAcme,
                        "SLACK_TOKEN_BETA=" + kBeta,
                        "SLACK_PROXY_CLIENT_KEYS=team-b=" + kClientEnv,
                        "SLACK_PROXY_ADMIN_KEY=" + kAdmin,
                        "SLACK_PROXY_QUEUE_KEY=" + kQueueKey};

  std::vector<std::pair<std::string, HttpResponse>> replies;  // every reply but plain successes
  auto keep = [&](const std::string& what, HttpResponse r) {
    replies.emplace_back("reply to " + what, r);
    return r;
  };
  auto post = [&](const ProxyProcess& p, const std::string& path, const std::string& body,
                  std::map<std::string, std::string> headers = {},
                  const std::string& content_type = "application/json") {
    return send("POST", p.url(path), body, std::move(headers), content_type);
  };
  auto scan_db_dir = [&](const std::string& when) {
    std::size_t files = 0;
    for (const auto& entry : std::filesystem::directory_iterator(db_dir)) {
      if (!entry.is_regular_file()) continue;
      ++files;
      scanner.expect_clean(entry.path().filename().string() + " " + when, read_file(entry.path()));
    }
    EXPECT_GE(files, 1u) << "no SQLite file to scan " << when;
  };

  // ------------------------------------------------------------ run 1 --
  slack.enqueue(Behaviour::error("invalid_auth"), 1, "#redact-perm-a");
  Behaviour echoes;  // a reply that quotes the token it was sent with
  echoes.body = R"({"ok":false,"error":"invalid_auth","detail":"token )" + kBeta + R"( revoked"})";
  slack.enqueue(echoes, 1, "#redact-perm-b");
  slack.enqueue(Behaviour::error("channel_not_found"), 1, "#redact-gone");

  ProxyProcess first(text, env);
  ASSERT_TRUE(first.start());

  // Successes, each with a different secret doing the work.
  const std::map<std::string, std::string> a_key{{"Authorization", bearer(kClientFile)}};
  const std::map<std::string, std::string> b_key{{"Authorization", bearer(kClientEnv)}};
  const std::map<std::string, std::string> caller{{"Authorization", bearer(kCallerHeader)}};
  const std::string body_token = R"(,"token":")" + kCallerBody + R"("})";
  ASSERT_EQ(post(first, "/", message("#redact-a", "ok-a"), a_key).status, 200);
  ASSERT_EQ(post(first, "/api/chat.postMessage", message("#redact-b", "ok-b"), b_key).status, 200);
  ASSERT_EQ(post(first, "/services/" + kClientFile, R"({"text":"ok-hook"})").status, 200);
  // A token field on a proxy-token pipeline is dropped, not used.
  ASSERT_EQ(post(first, "/open", R"({"channel":"#redact-open","text":"ok-open")" + body_token).status,
            200);
  ASSERT_EQ(post(first, "/caller", message("#redact-caller", "ok-caller-header"), caller).status, 200);
  ASSERT_EQ(post(first, "/caller", R"({"channel":"#redact-caller","text":"ok-caller-body")" + body_token)
                .status,
            200);
  ASSERT_EQ(post(first, "/caller",
                 form({{"channel", "#redact-caller"}, {"text", "ok-caller-form"}, {"token", kCallerBody}}),
                 {}, kForm)
                .status,
            200);
  ASSERT_TRUE(wait_for_texts(slack, {"ok-a", "ok-b", "ok-hook", "ok-open", "ok-caller-header",
                                     "ok-caller-body", "ok-caller-form"}));
  {
    // Every secret meant for Slack was in play (compared, never printed).
    const auto used = authorization_by_text(slack);
    EXPECT_TRUE(used.at("ok-a") == bearer(kAcme)) << "ok-a";
    EXPECT_TRUE(used.at("ok-b") == bearer(kBeta)) << "ok-b";
    EXPECT_TRUE(used.at("ok-hook") == bearer(kFileToken)) << "ok-hook";
    EXPECT_TRUE(used.at("ok-open") == bearer(kSlackToken)) << "ok-open";
    EXPECT_TRUE(used.at("ok-caller-header") == bearer(kCallerHeader)) << "ok-caller-header";
    EXPECT_TRUE(used.at("ok-caller-body") == bearer(kCallerBody)) << "ok-caller-body";
    EXPECT_TRUE(used.at("ok-caller-form") == bearer(kCallerBody)) << "ok-caller-form";
  }

  // Permanent failures: dead letters, one of them a caller's (its token sealed).
  ASSERT_EQ(post(first, "/", message("#redact-perm-a", "perm-a"), a_key).status, 200);
  ASSERT_EQ(post(first, "/", message("#redact-perm-b", "perm-b"), b_key).status, 200);
  ASSERT_EQ(post(first, "/caller", message("#redact-gone", "gone-1"), caller).status, 200);
  ASSERT_EQ(post(first, "/caller", message("#redact-gone", "gone-2"), caller).status, 200);  // deny-listed
  ASSERT_TRUE(first.wait_for_metric(kDeadLetters, 4));

  // Refusals: keys that share a prefix with real ones, Slack's token as a key, none.
  EXPECT_EQ(keep("a near miss of team-a's key",
                 post(first, "/", message("#redact-x", "x"), {{"Authorization", bearer(near_miss(kClientFile))}}))
                .status,
            401);
  EXPECT_FALSE(ok_of(keep("a near miss of team-b's key on the Web API path",
                          post(first, "/api/chat.postMessage", message("#redact-x", "x"),
                               {{"Authorization", bearer(near_miss(kClientEnv))}}))));
  EXPECT_EQ(keep("SLACK_TOKEN as a client key",
                 post(first, "/", message("#redact-x", "x"), {{"Authorization", bearer(kSlackToken)}}))
                .status,
            401);
  EXPECT_EQ(keep("no key", post(first, "/", message("#redact-x", "x"))).status, 401);
  EXPECT_EQ(keep("a near miss of team-a's key in the path",
                 post(first, "/services/" + near_miss(kClientFile), R"({"text":"x"})"))
                .status,
            401);
  EXPECT_EQ(keep("a near-miss path key with a token in the query",
                 post(first, "/services/" + near_miss(kClientFile) + "?token=" + kCallerHeader,
                      R"({"text":"x"})"))
                .status,
            401);
  // Bad requests whose bodies hold secrets.
  EXPECT_EQ(keep("no text, a caller token in the body",
                 post(first, "/open", R"({"channel":"#redact-x")" + body_token))
                .status,
            400);
  EXPECT_EQ(keep("broken JSON holding SLACK_TOKEN",
                 post(first, "/open", R"({"channel":"#redact-x","token":")" + kSlackToken + R"(","text":)"))
                .status,
            400);
  EXPECT_EQ(keep("blocks that are not JSON, holding a workspace token",
                 post(first, "/open", R"({"channel":"#redact-x","text":"x","blocks":")" + kAcme + R"("})"))
                .status,
            400);
  EXPECT_EQ(keep("a form without text, holding the caller's header token",
                 post(first, "/caller", form({{"channel", "#redact-x"}, {"token", kCallerHeader}}), {}, kForm))
                .status,
            400);
  EXPECT_EQ(keep("broken JSON holding the queue key, from team-a",
                 post(first, "/", R"({"channel":"#redact-x","text":")" + kQueueKey, a_key))
                .status,
            400);
  EXPECT_EQ(keep("a text/plain body holding the admin key",
                 post(first, "/open", "token=" + kAdmin, {}, "text/plain"))
                .status,
            415);
  // Query strings and paths with secrets.
  EXPECT_EQ(keep("broken JSON with a token in the query",
                 post(first, "/open?token=" + kCallerHeader, "{broken"))
                .status,
            400);
  keep("a passthrough message with its token only in the query",
       post(first, "/caller?token=" + kCallerBody, message("#redact-x", "x")));
  EXPECT_EQ(keep("GET with a token in the query",
                 send("GET", first.url("/open?token=" + kSlackToken)))
                .status,
            405);
  EXPECT_EQ(keep("an unknown path holding a key and a token",
                 post(first, "/nowhere/" + kClientEnv + "?token=" + kSlackToken, message("#redact-x", "x")))
                .status,
            404);
  // The admin API, refused and accepted, with secrets in the query.
  EXPECT_EQ(keep("admin, no key, the admin key in the query",
                 admin(first, "/admin/dead-letters?token=" + kAdmin, ""))
                .status,
            401);
  EXPECT_EQ(keep("admin, a near miss of the admin key",
                 admin(first, "/admin/dead-letters", bearer(near_miss(kAdmin))))
                .status,
            401);
  EXPECT_EQ(keep("admin, a filter holding a caller token",
                 admin(first, "/admin/dead-letters?channel=" + kCallerHeader, bearer(kAdmin)))
                .status,
            200);
  EXPECT_EQ(keep("admin, an unknown parameter holding a token",
                 admin(first, "/admin/dead-letters?token=" + kCallerBody, bearer(kAdmin)))
                .status,
            400);
  for (auto& entry : admin_replies(first, kAdmin, "run 1", 4)) replies.push_back(std::move(entry));
  replies.emplace_back("GET /metrics (run 1)", http_get(first.metrics_url("/metrics")));

  // An outage, then SIGTERM: what is queued stays on disk, the callers'
  // tokens sealed under SLACK_PROXY_QUEUE_KEY.
  slack.set_default(Behaviour::http_status(503));
  const std::size_t before_outage = slack.count();
  ASSERT_EQ(post(first, "/", message("#redact-drain-a", "drain-a"), a_key).status, 200);
  ASSERT_EQ(post(first, "/", message("#redact-drain-b", "drain-b"), b_key).status, 200);
  ASSERT_EQ(post(first, "/services/" + kClientFile, R"({"text":"drain-hook"})").status, 200);
  ASSERT_EQ(post(first, "/caller", message("#redact-drain-c", "drain-c"), caller).status, 200);
  ASSERT_EQ(post(first, "/caller", R"({"channel":"#redact-drain-d","text":"drain-d")" + body_token)
                .status,
            200);
  ASSERT_TRUE(slack.wait_for(before_outage + 5, kDeadline)) << "the outage was never tried";
  scan_db_dir("while run 1 is running");

  first.signal(SIGTERM);
  const auto code = first.wait_exit(kDeadline);
  ASSERT_TRUE(code.has_value()) << "still running after SIGTERM";
  EXPECT_EQ(*code, 0);
  EXPECT_NE(first.log().find("5 message(s) left undelivered"), std::string::npos)
      << "the drain did not leave the outage's messages on disk";
  scan_db_dir("after run 1");

  // ------------------------------------------------------------ run 2 --
  slack.reset();  // Slack is back
  ProxyProcess second(text, env);
  ASSERT_TRUE(second.start());
  EXPECT_NE(second.log().find("recovered 5 message(s)"), std::string::npos);
  ASSERT_TRUE(wait_for_texts(slack, {"drain-a", "drain-b", "drain-hook", "drain-c", "drain-d"}));
  {
    // Recovered from disk with the right token, the callers' unsealed.
    const auto used = authorization_by_text(slack);
    EXPECT_TRUE(used.at("drain-a") == bearer(kAcme)) << "drain-a";
    EXPECT_TRUE(used.at("drain-b") == bearer(kBeta)) << "drain-b";
    EXPECT_TRUE(used.at("drain-hook") == bearer(kFileToken)) << "drain-hook";
    EXPECT_TRUE(used.at("drain-c") == bearer(kCallerHeader)) << "drain-c";
    EXPECT_TRUE(used.at("drain-d") == bearer(kCallerBody)) << "drain-d";
  }
  for (auto& entry : admin_replies(second, kAdmin, "run 2", 4)) replies.push_back(std::move(entry));
  replies.emplace_back("GET /metrics (run 2)", http_get(second.metrics_url("/metrics")));
  second.signal(SIGTERM);
  const auto code2 = second.wait_exit(kDeadline);
  ASSERT_TRUE(code2.has_value()) << "still running after SIGTERM";
  EXPECT_EQ(*code2, 0);
  scan_db_dir("after run 2");

  // ------------------------------------------------------------- grep --
  const std::string log1 = first.log();
  const std::string log2 = second.log();
  scanner.expect_clean("the log of run 1", log1);
  scanner.expect_clean("the log of run 2", log2);
  for (const auto& [place, reply] : replies) scanner.expect_clean(place, reply_text(reply));

  // What makes the grep mean something: the refusals were all logged (none
  // suppressed by the log throttle), the failures too, and the run kept
  // going through all of it.
  for (const char* needle : {"invalid_auth", "not_authed", "no_text", "invalid_json",
                             "invalid_blocks_format", "unsupported_media_type", "not_found",
                             "method_not_allowed", "dead letter"})
    EXPECT_NE(log1.find(needle), std::string::npos) << "run 1 never logged " << needle;
  EXPECT_EQ(log1.find("suppressed"), std::string::npos)
      << "some refusals were not logged, so the grep did not see them";
  if (GetParam() == "json") {
    expect_json_records("the log of run 1", log1);
    expect_json_records("the log of run 2", log2);
  }
}

// ---------------------------------------------- 7. the example config --

TEST(MultiTenantExample, ValidatesWithoutAnyEnvironmentAndHoldsNoSecret) {
  const std::string path = std::string(SP_SOURCE_DIR) + "/config/multi-tenant.toml";
  const std::string text = read_file(path);
  ASSERT_FALSE(text.empty()) << "cannot read " << path;
  const CommandResult r = run_proxy_command({"validate", path}, Environment{});
  EXPECT_EQ(r.exit_code, 0) << r.output;

  // What it shows is what it says it shows.
  for (const char* plugin : {"bearer_auth", "identity_router", "token_bucket", "slack_sink"})
    EXPECT_NE(text.find("plugin = \"" + std::string(plugin) + "\""), std::string::npos) << plugin;
  EXPECT_NE(text.find("key = \"client\""), std::string::npos);
  EXPECT_NE(text.find("workspace_tokens"), std::string::npos);
  EXPECT_NE(text.find("backend = \"sqlite\""), std::string::npos);
  // Nothing shaped like a Slack token, and no key: bearer_auth has no
  // setting for one, and the admin key comes from the environment.
  EXPECT_FALSE(std::regex_search(text, std::regex("(xox[abeprs]|xapp)-[0-9A-Za-z]{4,}")))
      << "something shaped like a Slack token in the example";
  EXPECT_FALSE(std::regex_search(text, std::regex(R"(\bsha256:[0-9a-fA-F]{64})")))
      << "a key digest in the example";
}

}  // namespace
}  // namespace slack_proxy::testing

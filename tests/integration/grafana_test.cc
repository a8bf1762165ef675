// Grafana's Slack contact point as a client of the proxy: the exact JSON it
// sends, the Authorization: Bearer it carries, and the replies it counts as
// delivered.
//
// Source: grafana/alerting (the Go module grafana/grafana's unified alerting
// imports), receivers/slack/v1/slack.go at commit 0fca94bf and its
// config.go (defaults: username "Grafana", the default title and text
// templates, color #D63232 when firing); the older receivers/slack/slack.go
// at 0025eb4f builds the same body. What it sends: json.Marshal of a message
// {channel, text, username, icon_emoji, icon_url, attachments, blocks,
// thread_ts} with every field but `attachments` omitted when empty, and one
// attachment {title, title_link, text, image_url, fallback, fields, footer,
// footer_icon, color, ts, pretext, mrkdwn_in} (`text`, `fallback`, `footer`,
// `footer_icon` always present). Go escapes "<", ">" and "&" as \u003c,
// \u003e, \u0026 and leaves other UTF-8 alone; json.Marshal adds no
// trailing newline. Headers: Content-Type "application/json; charset=utf-8",
// User-Agent "Grafana", and "Authorization: Bearer <token>" when a token is
// set (chat.postMessage); none for an incoming-webhook URL, where the image
// goes in image_url instead.
//
// What it accepts (sendSlackMessage / errorForStatusCode there): a status
// below 200, 3xx or 5xx is an error; otherwise, when the Content-Type starts
// with application/json, the body must be non-empty JSON with "ok": true;
// any other reply must be exactly "ok". So a 4xx JSON reply with ok:false is
// a failure too, and nothing but those two replies counts as delivered.
#include <gtest/gtest.h>

#include <string>

#include "proxy_test.h"

namespace slack_proxy::testing {
namespace {

using namespace std::chrono_literals;

// A Grafana-managed rule's firing alert through a token (chat.postMessage)
// contact point with the default title and text templates, mentionChannel
// "here" and one mentioned user, as json.Marshal writes it.
constexpr const char* kGrafanaApiPayload =
    R"json({"channel":"#alerts","username":"Grafana","icon_emoji":":grafana:",)json"
    R"json("attachments":[{"title":"[FIRING:1] HighCPU Infrastructure (db-1)",)json"
    R"json("title_link":"https://grafana.example.com/alerting/grafana/ddx7k2/view?orgId=1",)json"
    R"json("text":"**Firing**\n\nValue: A=97.5\nLabels:\n - alertname = HighCPU\n)json"
    R"json( - grafana_folder = Infrastructure\n - instance = db-1\nAnnotations:\n)json"
    R"json( - summary = CPU \u003e 95% for 5m on db-1 (zürich) \u0026 rising\n)json"
    R"json(Source: https://grafana.example.com/alerting/grafana/ddx7k2/view?orgId=1\n)json"
    R"json(Silence: https://grafana.example.com/alerting/silence/new?alertmanager=grafana)json"
    R"json(\u0026matcher=__alert_rule_uid__%3Dddx7k2\u0026matcher=instance%3Ddb-1\u0026orgId=1\n)json"
    R"json(Dashboard: https://grafana.example.com/d/host-overview?orgId=1\n)json"
    R"json(Panel: https://grafana.example.com/d/host-overview?orgId=1\u0026viewPanel=2\n",)json"
    R"json("fallback":"[FIRING:1] HighCPU Infrastructure (db-1)","footer":"Grafana v11.3.0",)json"
    R"json("footer_icon":"https://grafana.com/static/assets/img/fav32.png","color":"#D63232",)json"
    R"json("ts":1732741200,"pretext":"\u003c!here|here\u003e \u003c@U024BE7LH\u003e",)json"
    R"json("mrkdwn_in":["pretext"]}]})json";

// The same alert resolved, through an incoming-webhook contact point with no
// recipient: no channel (the webhook's own), the panel image by URL.
constexpr const char* kGrafanaWebhookPayload =
    R"json({"username":"Grafana","attachments":[{)json"
    R"json("title":"[RESOLVED] HighCPU Infrastructure (db-1)",)json"
    R"json("title_link":"https://grafana.example.com/alerting/grafana/ddx7k2/view?orgId=1",)json"
    R"json("text":"**Resolved**\n\nValue: A=12.25\nLabels:\n - alertname = HighCPU\n)json"
    R"json( - grafana_folder = Infrastructure\n - instance = db-1\n",)json"
    R"json("image_url":"https://grafana.example.com/render/d-solo/host-overview?panelId=2)json"
    R"json(\u0026width=1000",)json"
    R"json("fallback":"[RESOLVED] HighCPU Infrastructure (db-1)","footer":"Grafana v11.3.0",)json"
    R"json("footer_icon":"https://grafana.com/static/assets/img/fav32.png","color":"#36a64f",)json"
    R"json("ts":1732741500}]})json";

constexpr const char* kGrafanaToken = "xoxb-grafana-contact-point-token";
constexpr const char* kWebhookChannel = "#grafana-webhook";
// bearer_auth wants keys of at least 16 characters.
constexpr const char* kGrafanaCallerKey = "grafana-caller-key-5b1e0c9a";

// What Grafana's HTTP client sends.
const ClientLike kGrafana{"application/json; charset=utf-8", "Grafana"};

// Grafana's test for a JSON reply: Content-Type starting with
// application/json, a non-empty JSON body, "ok": true.
::testing::AssertionResult grafana_accepts_json(const HttpResponse& r) {
  if (r.status < 200 || (r.status >= 300 && r.status < 400) || r.status >= 500)
    return ::testing::AssertionFailure() << "status " << r.status << " is an error to Grafana";
  const std::string type = r.header("content-type").value_or("");
  if (type.rfind("application/json", 0) != 0)
    return ::testing::AssertionFailure() << "Content-Type '" << type << "' is not JSON";
  if (r.body.empty()) return ::testing::AssertionFailure() << "empty JSON reply";
  if (!ok_of(r)) return ::testing::AssertionFailure() << "ok is not true: " << r.body;
  return ::testing::AssertionSuccess();
}

class GrafanaTest : public ProxyTest {
 protected:
  // ProxyConfig's API pipeline on "/" and "/api/chat.postMessage" (where
  // Grafana's endpointUrl points) plus an incoming-webhook one.
  ProxyProcess& start_with_webhook(const ProxyConfig& c, Environment env = default_environment()) {
    return start(c.toml() + webhook_pipeline(slack.url(), kWebhookChannel,
                                             ProxyConfig::fast_retry_stages()),
                 std::move(env));
  }

  // The one request the fake got, taken once the proxy has recorded the
  // message's outcome and has nothing queued, so a late duplicate would be
  // counted too.
  RecordedRequest only_delivery(const std::string& channel) {
    EXPECT_TRUE(proxy->wait_for_metric(series(kSucceeded, channel), 1));
    EXPECT_TRUE(proxy->wait_for_metric(kQueueSize, 0));
    const auto got = slack.requests();
    EXPECT_EQ(got.size(), 1u) << "exactly one message reaches Slack";
    if (got.empty()) throw std::runtime_error("nothing reached the fake Slack");
    return got.front();
  }
};

TEST_F(GrafanaTest, TokenContactPointGetsJsonOkTrueAndEveryFieldArrivesUnchanged) {
  auto& p = start_with_webhook(config());
  const HttpResponse r =
      post_like(kGrafana, p, "/api/chat.postMessage", kGrafanaApiPayload, kGrafanaToken);
  EXPECT_EQ(r.status, 200) << r.body;
  EXPECT_TRUE(grafana_accepts_json(r));

  const RecordedRequest got = only_delivery("#alerts");
  EXPECT_EQ(got.channel, "#alerts");
  EXPECT_EQ(canonical_json(got.body), canonical_json(kGrafanaApiPayload));
  // delivery_token = "proxy" (the default): Slack sees the proxy's token,
  // never the one Grafana carried.
  EXPECT_EQ(got.authorization, std::string("Bearer ") + kTestToken);
  EXPECT_EQ(got.body.find(kGrafanaToken), std::string::npos);
  EXPECT_EQ(p.log().find(kGrafanaToken), std::string::npos) << "Grafana's token in the log";
}

TEST_F(GrafanaTest, CallerTokenPipelineDeliversWithGrafanasOwnBearerToken) {
  ProxyConfig c = config();
  c.pipeline_settings = "delivery_token = \"caller\"";
  auto& p = start_with_webhook(c);
  const HttpResponse r =
      post_like(kGrafana, p, "/api/chat.postMessage", kGrafanaApiPayload, kGrafanaToken);
  EXPECT_TRUE(grafana_accepts_json(r)) << r.body;

  const RecordedRequest got = only_delivery("#alerts");
  EXPECT_EQ(got.authorization, std::string("Bearer ") + kGrafanaToken);
  EXPECT_EQ(canonical_json(got.body), canonical_json(kGrafanaApiPayload));
  EXPECT_EQ(p.log().find(kGrafanaToken), std::string::npos) << "Grafana's token in the log";
}

// Grafana's token field can hold a bearer_auth caller key instead of a Slack
// token: the proxy then authenticates Grafana and delivers with its own.
TEST_F(GrafanaTest, CallerKeyInTheTokenFieldIsCheckedAndAWrongOneIsAFailureToGrafana) {
  ProxyConfig c = config();
  c.stages = stage("bearer_auth") + ProxyConfig::fast_retry_stages();
  Environment env = default_environment();
  env.push_back(std::string("SLACK_PROXY_CLIENT_KEYS=grafana=") + kGrafanaCallerKey);
  auto& p = start_with_webhook(c, env);

  const HttpResponse wrong =
      post_like(kGrafana, p, "/api/chat.postMessage", kGrafanaApiPayload, "not-the-grafana-key-0000");
  // Slack's Web API style: HTTP 200 with ok:false, which Grafana reports as
  // a failed notification (it parses the JSON and finds no ok:true).
  EXPECT_FALSE(grafana_accepts_json(wrong));
  EXPECT_EQ(wrong.header("content-type").value_or("").rfind("application/json", 0), 0u);
  EXPECT_FALSE(ok_of(wrong));
  EXPECT_EQ(error_of(wrong), "invalid_auth");

  const HttpResponse right =
      post_like(kGrafana, p, "/api/chat.postMessage", kGrafanaApiPayload, kGrafanaCallerKey);
  EXPECT_TRUE(grafana_accepts_json(right));
  const RecordedRequest got = only_delivery("#alerts");
  EXPECT_EQ(got.authorization, std::string("Bearer ") + kTestToken);
  EXPECT_EQ(canonical_json(got.body), canonical_json(kGrafanaApiPayload));
  EXPECT_EQ(p.log().find(kGrafanaCallerKey), std::string::npos) << "the caller key in the log";
}

TEST_F(GrafanaTest, WebhookContactPointGetsExactlyOkAndThePayloadGoesToTheWebhooksChannel) {
  auto& p = start_with_webhook(config());
  // Not JSON, so Grafana needs the body to be exactly "ok".
  EXPECT_TRUE(plain_ok(post_like(kGrafana, p, kWebhookPath, kGrafanaWebhookPayload)));

  const RecordedRequest got = only_delivery(kWebhookChannel);
  EXPECT_EQ(got.channel, kWebhookChannel);
  // Grafana named no channel; the webhook's is added and nothing else changes.
  auto expected = parse_object(kGrafanaWebhookPayload);
  expected->set("channel", kWebhookChannel);
  EXPECT_EQ(canonical_json(got.body), canonical_json(expected));
}

TEST_F(GrafanaTest, QueueFullIsA5xxThatGrafanaCountsAsFailed) {
  ProxyConfig c = config();
  c.queue_capacity = 1;
  c.queue_retry_after = "5s";
  c.stages = paused_bucket() + ProxyConfig::fast_retry_stages();
  auto& p = start_with_webhook(c);
  ASSERT_TRUE(grafana_accepts_json(
      post_like(kGrafana, p, "/api/chat.postMessage", kGrafanaApiPayload, kGrafanaToken)));
  ASSERT_TRUE(p.wait_for_metric(series(kSucceeded, "#alerts"), 1));
  ASSERT_TRUE(grafana_accepts_json(
      post_like(kGrafana, p, "/api/chat.postMessage", kGrafanaApiPayload, kGrafanaToken)));

  const HttpResponse full =
      post_like(kGrafana, p, "/api/chat.postMessage", kGrafanaApiPayload, kGrafanaToken);
  EXPECT_EQ(full.status, 503);
  EXPECT_FALSE(grafana_accepts_json(full));
  EXPECT_EQ(full.header("retry-after"), "5");
  EXPECT_EQ(error_of(full), "queue_full");
}

}  // namespace
}  // namespace slack_proxy::testing

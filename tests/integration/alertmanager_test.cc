// Prometheus Alertmanager's slack_configs as a client of the proxy: the exact
// JSON it sends (prometheus/alertmanager notify/slack), the replies it counts
// as delivered, the 5xx it retries, and the real Debian binary end to end.
//
// What Alertmanager accepts (notify/slack/slack.go): any 2xx; then, from
// v0.26, a JSON reply must say "ok":true and any other reply must be exactly
// "ok". Only a 5xx is retried: a 4xx or 429 drops the notification until the
// next group interval.
#include <Poco/Exception.h>
#include <Poco/JSON/Array.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <optional>
#include <thread>

#include "proxy_test.h"

namespace slack_proxy::testing {
namespace {

using namespace std::chrono_literals;

// Byte for byte what Alertmanager's Go json.Encoder writes for a
// slack_configs receiver using every field: struct field order, "<", ">" and
// "&" escaped as \u003c \u003e \u0026, UTF-8 left as is, and a trailing
// newline. `text` (message_text) is the newest field; `ts` is only sent when
// editing a message. `short` is always present: Alertmanager fills it from
// short_fields.
constexpr const char* kAlertmanagerPayload =
    R"json({"channel":"#alerts","username":"Alertmanager","icon_emoji":":rotating_light:",)json"
    R"json("icon_url":"https://avatars3.githubusercontent.com/u/3380462","link_names":true,)json"
    R"json("text":"\u003c!here\u003e 1 alert firing","attachments":[{)json"
    R"json("title":"[FIRING:1] HighLatency api-gateway (critical)",)json"
    R"json("title_link":)json"
    R"json("https://alertmanager.example.com/#/alerts?receiver=slack\u0026silenced=false",)json"
    R"json("pretext":"*Production* alerts",)json"
    R"json("text":"*Alert:* HighLatency - `critical`\n)json"
    R"json(*Description:* p99 latency above 2s for 5m\n)json"
    R"json(*Runbook:* \u003chttps://runbooks.example.com/HighLatency|:notebook:\u003e\n",)json"
    R"json("fallback":"[FIRING:1] HighLatency api-gateway (critical) | )json"
    R"json(https://alertmanager.example.com/#/alerts?receiver=slack\u0026silenced=false",)json"
    R"json("callback_id":"alertmanager-HighLatency",)json"
    R"json("fields":[{"title":"Severity","value":"critical","short":true},)json"
    R"json({"title":"Instance","value":"api-gateway-7d9f:9100","short":true},)json"
    R"json({"title":"Summary","value":"Latency \u003e 2s \"p99\" in zürich","short":false}],)json"
    R"json("actions":[{"type":"button","text":"Runbook :green_book:",)json"
    R"json("url":"https://runbooks.example.com/HighLatency","style":"primary"},)json"
    R"json({"type":"button","text":"Silence :no_bell:","name":"silence","value":"HighLatency",)json"
    R"json("confirm":{"text":"Silence this alert for 1h?","title":"Silence","ok_text":"Yes",)json"
    R"json("dismiss_text":"No"}}],)json"
    R"json("image_url":)json"
    R"json("https://grafana.example.com/render/d-solo/api?panelId=2\u0026width=1000",)json"
    R"json("thumb_url":"https://grafana.example.com/public/img/grafana_icon.svg",)json"
    R"json("footer":"Alertmanager | prod-eu-1","color":"danger",)json"
    R"json("mrkdwn_in":["fallback","pretext","text"]}]})json"
    "\n";

// Where a payload without a channel goes on the webhook pipeline.
constexpr const char* kWebhookDefaultChannel = "#webhook-default";

// What Alertmanager's HTTP client sends: a JSON POST with its User-Agent and,
// for chat.postMessage, the Bearer token from http_config.
const ClientLike kAlertmanager{"application/json", "Alertmanager/0.27.0"};

class AlertmanagerTest : public ProxyTest {
 protected:
  // ProxyConfig's API pipeline on "/" plus the webhook one.
  ProxyProcess& start_with_webhook(const ProxyConfig& c, const std::string& webhook_stages = {}) {
    return start(c.toml() + webhook_pipeline(slack.url(), kWebhookDefaultChannel, webhook_stages));
  }
};

// ------------------------------------------------- chat.postMessage style --

TEST_F(AlertmanagerTest, ApiStyleAnswersJsonOkTrueAndForwardsEveryFieldUnchanged) {
  auto& p = start_with_webhook(config());
  const HttpResponse r =
      post_like(kAlertmanager, p, "/", kAlertmanagerPayload, "xoxb-alertmanager-own");
  ASSERT_EQ(r.status, 200) << r.body;
  // Alertmanager >= 0.26 parses a reply whose Content-Type starts with
  // application/json and needs "ok":true in it.
  EXPECT_EQ(r.header("content-type").value_or("").rfind("application/json", 0), 0u)
      << r.header("content-type").value_or("(none)");
  EXPECT_TRUE(ok_of(r)) << r.body;

  ASSERT_TRUE(slack.wait_for(1, kDeadline));
  const RecordedRequest got = slack.requests().front();
  EXPECT_EQ(got.channel, "#alerts");
  EXPECT_EQ(canonical_json(got.body), canonical_json(kAlertmanagerPayload));
  // The proxy's token by default, not the one Alertmanager carried.
  EXPECT_EQ(got.authorization, std::string("Bearer ") + kTestToken);
  EXPECT_EQ(slack.requests().size(), 1u);
}

TEST_F(AlertmanagerTest, ApiStyleQueueFullIs503WithRetryAfterSoAlertmanagerRetries) {
  ProxyConfig c = config();
  c.queue_capacity = 1;
  c.queue_retry_after = "5s";
  c.stages = paused_bucket() + ProxyConfig::fast_retry_stages();
  auto& p = start_with_webhook(c);
  ASSERT_EQ(post_like(kAlertmanager, p, "/", kAlertmanagerPayload).status, 200);
  ASSERT_TRUE(p.wait_for_metric(series(kSucceeded, "#alerts"), 1));
  ASSERT_EQ(post_like(kAlertmanager, p, "/", kAlertmanagerPayload).status, 200);

  const HttpResponse full = post_like(kAlertmanager, p, "/", kAlertmanagerPayload);
  EXPECT_EQ(full.status, 503);
  EXPECT_EQ(full.header("retry-after"), "5");
  EXPECT_FALSE(ok_of(full));
  EXPECT_EQ(error_of(full), "queue_full");
}

// ------------------------------------------------ incoming-webhook style --

TEST_F(AlertmanagerTest, WebhookStyleAnswersPlainOkAndForwardsEveryFieldUnchanged) {
  auto& p = start_with_webhook(config());
  // Not JSON, so Alertmanager needs the body to be exactly "ok".
  ASSERT_TRUE(plain_ok(post_like(kAlertmanager, p, kWebhookPath, kAlertmanagerPayload)));

  ASSERT_TRUE(slack.wait_for(1, kDeadline));
  const RecordedRequest got = slack.requests().front();
  // The payload names its channel, so the pipeline's default_channel stays unused.
  EXPECT_EQ(got.channel, "#alerts");
  EXPECT_EQ(canonical_json(got.body), canonical_json(kAlertmanagerPayload));
  EXPECT_EQ(slack.requests().size(), 1u);
}

TEST_F(AlertmanagerTest, WebhookStyleQueueFullIs503WithRetryAfterSoAlertmanagerRetries) {
  ProxyConfig c = config();
  c.queue_capacity = 1;
  c.queue_retry_after = "5s";
  auto& p = start_with_webhook(c, paused_bucket());
  ASSERT_EQ(post_like(kAlertmanager, p, kWebhookPath, kAlertmanagerPayload).status, 200);
  ASSERT_TRUE(p.wait_for_metric(series(kSucceeded, "#alerts"), 1));
  ASSERT_EQ(post_like(kAlertmanager, p, kWebhookPath, kAlertmanagerPayload).status, 200);

  const HttpResponse full = post_like(kAlertmanager, p, kWebhookPath, kAlertmanagerPayload);
  EXPECT_EQ(full.status, 503);
  EXPECT_EQ(full.header("retry-after"), "5");
  EXPECT_EQ(full.body, "queue_full");
}

// ------------------------------------------------- the real Alertmanager --

// Alertmanager dispatches on its own schedule; even with group_wait 0s give
// it room on a loaded machine.
constexpr auto kAlertmanagerDeadline = 60s;

TEST_F(AlertmanagerTest, RealAlertmanagerDeliversAnAlertThroughTheWebhookPipeline) {
  // Debian's package names the binary prometheus-alertmanager; upstream's
  // tarball names it alertmanager.
  SP_REQUIRE_TOOL(binary, "prometheus-alertmanager", "prometheus-alertmanager", "alertmanager");
  auto& p = start_with_webhook(config());

  TempDir dir;
  const std::uint16_t port = free_port();
  const std::string base = "http://127.0.0.1:" + std::to_string(port);
  // group_wait 0s sends as soon as the alert arrives; repeat_interval keeps it
  // from being sent twice during the test.
  const auto config_file =
      dir.write("alertmanager.yml",
                "route:\n"
                "  receiver: proxy\n"
                "  group_by: ['alertname']\n"
                "  group_wait: 0s\n"
                "  group_interval: 1s\n"
                "  repeat_interval: 1h\n"
                "receivers:\n"
                "- name: proxy\n"
                "  slack_configs:\n"
                "  - api_url: " +
                    p.url(kWebhookPath) +
                    "\n"
                    "    channel: '#alertmanager'\n"
                    "    title: '{{ .CommonLabels.alertname }} on {{ .CommonLabels.instance }}'\n"
                    "    text: '{{ .CommonAnnotations.summary }}'\n");
  ChildProcess alertmanager({binary.string(), "--config.file=" + config_file.string(),
                             "--storage.path=" + (dir.path() / "data").string(),
                             "--web.listen-address=127.0.0.1:" + std::to_string(port),
                             // An empty address turns clustering (gossip on 9094) off.
                             "--cluster.listen-address="},
                            {}, dir.path() / "alertmanager.log");

  const auto ready_by = std::chrono::steady_clock::now() + kStartupDeadline;
  for (;;) {
    ASSERT_TRUE(alertmanager.running()) << alertmanager.output();
    try {
      if (http_get(base + "/-/ready").status == 200) break;
    } catch (const Poco::Exception&) {
      // Not listening yet.
    }
    ASSERT_LT(std::chrono::steady_clock::now(), ready_by) << "alertmanager not ready; log:\n"
                                                          << alertmanager.output();
    std::this_thread::sleep_for(20ms);
  }

  const HttpResponse posted = http_post(
      base + "/api/v2/alerts",
      R"([{"labels":{"alertname":"ProxyEndToEnd","instance":"db-1:9100","severity":"critical"},)"
      R"("annotations":{"summary":"Disk > 90% & rising"}}])");
  ASSERT_EQ(posted.status, 200) << posted.body;

  ASSERT_TRUE(slack.wait_for(1, kAlertmanagerDeadline)) << alertmanager.output();
  const RecordedRequest got = slack.requests().front();
  EXPECT_EQ(got.channel, "#alertmanager");
  const auto body = parse_object(got.body);
  const auto attachment = body->getArray("attachments")->getObject(0);
  EXPECT_EQ(attachment->getValue<std::string>("title"), "ProxyEndToEnd on db-1:9100");
  EXPECT_EQ(attachment->getValue<std::string>("text"), "Disk > 90% & rising");

  // Alertmanager itself counted the notification as sent, not failed.
  const std::string sent = "alertmanager_notifications_total{integration=\"slack\"}";
  const auto counted_by = std::chrono::steady_clock::now() + kDeadline;
  std::string metrics;
  do {
    metrics = http_get(base + "/metrics").body;
    if (find_metric(metrics, sent).value_or(0) >= 1) break;  // absent: not sent yet
    std::this_thread::sleep_for(20ms);
  } while (std::chrono::steady_clock::now() < counted_by);
  EXPECT_EQ(metric(metrics, sent), 1) << metrics;
  // Summed: newer releases add a `reason` label to failures.
  EXPECT_TRUE(family_sums_to_zero(metrics, "alertmanager_notifications_failed_total"))
      << alertmanager.output();
  EXPECT_EQ(slack.requests().size(), 1u);
}

}  // namespace
}  // namespace slack_proxy::testing

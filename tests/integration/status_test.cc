// GET /status.json (core/src/status_api.h) on the real binary: what an
// operator reads there matches what the proxy is doing.
#include <gtest/gtest.h>

#include <map>
#include <set>
#include <thread>
#include <utility>
#include <string>

#include "proxy_test.h"

namespace slack_proxy::testing {
namespace {

using namespace std::chrono_literals;

// status.json as anyone reads it, or with the admin key.
Poco::JSON::Object::Ptr status_of(const ProxyProcess& p, bool with_key = false) {
  const HttpResponse r =
      with_key ? admin_request(p, "GET", "/status.json") : http_get(p.metrics_url("/status.json"));
  EXPECT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.body.find("\"payload\""), std::string::npos) << "no payload, ever: " << r.body;
  EXPECT_EQ(r.body.find(kTestToken), std::string::npos) << "no token, ever";
  return parse_object(r.body);
}

// The lane of `channel` in status.json's lanes.shown, if there.
Poco::JSON::Object::Ptr lane_of(const Poco::JSON::Object::Ptr& status, const std::string& channel) {
  const auto lanes = status->getObject("lanes")->getArray("shown");
  for (std::size_t i = 0; i < lanes->size(); ++i) {
    const auto lane = lanes->getObject(static_cast<unsigned>(i));
    if (lane->getValue<std::string>("channel") == channel) return lane;
  }
  return nullptr;
}

class StatusTest : public ProxyTest {};

// A backlog behind a bucket, a parked channel, a dead letter, deliveries:
// each shows where the page reads it, with the reason and the time left.
TEST_F(StatusTest, StatusJsonShowsTheBacklogWhyItWaitsParkedChannelsDeadLettersAndPlugins) {
  slack.enqueue(Behaviour::error("channel_not_found"), 1, "#gone");
  ProxyConfig c = config();
  c.stages = stage("token_bucket", "key = \"channel\"\nrate = 0.001\nburst = 1\n") +
             ProxyConfig::fast_retry_stages();
  auto& p = start(c);
  for (int i = 0; i < 4; ++i) ASSERT_EQ(p.post(message("#backlog", "b" + std::to_string(i))).status, 200);
  ASSERT_EQ(p.post(message("#gone", "to a dead channel")).status, 200);
  ASSERT_TRUE(wait_for_texts(slack, {"b0", "to a dead channel"}));
  ASSERT_TRUE(p.wait_for_metric(kDeadLetters, 1));

  Poco::JSON::Object::Ptr status;
  Poco::JSON::Object::Ptr backlog;
  // The first message's delivery is recorded a moment after the fake saw it.
  const auto deadline = std::chrono::steady_clock::now() + kDeadline;
  for (;;) {
    status = status_of(p, /*with_key=*/true);
    backlog = lane_of(status, "#backlog");
    if ((backlog && backlog->getValue<int>("queued") == 3) ||
        std::chrono::steady_clock::now() > deadline)
      break;
    std::this_thread::sleep_for(20ms);  // polling, bounded by the deadline
  }
  ASSERT_TRUE(backlog) << "no #backlog lane";
  EXPECT_EQ(backlog->getValue<int>("queued"), 3);
  EXPECT_EQ(backlog->getValue<std::string>("pipeline"), "slack");
  EXPECT_EQ(backlog->getValue<std::string>("state"), "waiting");
  EXPECT_EQ(backlog->getValue<std::string>("reason"), "rate_limit");
  EXPECT_GT(backlog->getValue<double>("seconds_left"), 900) << "one token per 1000 s";
  EXPECT_GE(backlog->getValue<double>("oldest_age_seconds"), 0);
  EXPECT_EQ(status->getObject("queue")->getValue<int>("size"), 3);
  EXPECT_EQ(status->getObject("queue")->getValue<std::string>("backend"), "memory");

  const auto parked = status->getArray("parked");
  ASSERT_EQ(parked->size(), 1u) << canonical_json(status);
  EXPECT_EQ(parked->getObject(0)->getValue<std::string>("channel"), "#gone");
  EXPECT_EQ(parked->getObject(0)->getValue<std::string>("stage"), "deny_list");
  EXPECT_EQ(parked->getObject(0)->getValue<std::string>("note"), "channel_not_found");
  EXPECT_GT(parked->getObject(0)->getValue<double>("seconds_left"), 0);

  const auto letters = status->getObject("dead_letters");
  EXPECT_EQ(letters->getValue<int>("total"), 1);
  EXPECT_EQ(letters->getArray("dead_letters")->getObject(0)->getValue<std::string>("error"),
            "channel_not_found");

  std::map<std::string, std::pair<int, int>> recent;  // channel -> delivered, failed
  const auto lanes = status->getObject("recent")->getArray("lanes");
  for (std::size_t i = 0; i < lanes->size(); ++i) {
    const auto r = lanes->getObject(static_cast<unsigned>(i));
    recent[r->getValue<std::string>("channel")] = {r->getValue<int>("delivered"),
                                                   r->getValue<int>("failed")};
  }
  EXPECT_EQ(recent["#backlog"], std::make_pair(1, 0)) << canonical_json(status);
  EXPECT_EQ(recent["#gone"], std::make_pair(0, 1)) << canonical_json(status);

  // Without the key: the dead letters' total, not their details.
  const auto open = status_of(p)->getObject("dead_letters");
  EXPECT_EQ(open->getValue<int>("total"), 1);
  EXPECT_FALSE(open->has("dead_letters"));

  std::set<std::string> plugins;
  const auto loaded = status->getArray("plugins");
  for (std::size_t i = 0; i < loaded->size(); ++i)
    plugins.insert(loaded->getObject(static_cast<unsigned>(i))->getValue<std::string>("name"));
  EXPECT_EQ(plugins, (std::set<std::string>{"token_bucket", "slack_retry", "deny_list",
                                           "slack_sink"}));
  EXPECT_EQ(status->getObject("config")->getValue<std::string>("file"), p.config_path().string());
  EXPECT_EQ(status->getObject("config")->getValue<std::string>("digest").size(), 12u);
  EXPECT_TRUE(status->getObject("config")->isNull("last_reload"));

  const HttpResponse page = http_get(p.metrics_url("/status"));
  EXPECT_EQ(page.status, 200);
  EXPECT_EQ(page.header("content-type").value_or(""), "text/html; charset=utf-8");
  EXPECT_NE(page.header("content-security-policy").value_or("").find("default-src 'none'"),
            std::string::npos);
}

// The last reload shows, with its lines; a refused one too.
TEST_F(StatusTest, StatusJsonShowsTheLastReload) {
  auto& p = start(config());
  ASSERT_EQ(admin_request(p, "POST", "/admin/reload").status, 200);
  auto reload = status_of(p)->getObject("config")->getObject("last_reload");
  ASSERT_TRUE(reload);
  EXPECT_TRUE(reload->getValue<bool>("ok"));
  EXPECT_EQ(reload->getArray("changes")->getElement<std::string>(0), "no setting changed");

  p.rewrite_config("[[pipeline]\n");
  ASSERT_EQ(admin_request(p, "POST", "/admin/reload").status, 409);
  reload = status_of(p, /*with_key=*/true)->getObject("config")->getObject("last_reload");
  EXPECT_FALSE(reload->getValue<bool>("ok"));
  EXPECT_GE(reload->getArray("errors")->size(), 1u);
  // A plugin's refusal may quote a setting: the errors need the key.
  reload = status_of(p)->getObject("config")->getObject("last_reload");
  EXPECT_FALSE(reload->getValue<bool>("ok"));
  EXPECT_FALSE(reload->has("errors"));
}

// [admin] status_public = false: the JSON needs the admin key; the page
// itself (which asks for the key) is still served.
TEST_F(StatusTest, WithStatusPublicOffTheJsonNeedsTheAdminKey) {
  auto& p = start(config().toml() + "\n[admin]\nstatus_public = false\n");
  EXPECT_EQ(http_get(p.metrics_url("/status.json")).status, 401);
  EXPECT_EQ(admin_request(p, "GET", "/status.json").status, 200);
  EXPECT_EQ(http_get(p.metrics_url("/status")).status, 200);
}

}  // namespace
}  // namespace slack_proxy::testing

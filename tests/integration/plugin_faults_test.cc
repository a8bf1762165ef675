// Faults stay in the plugin, on the real binary: an exception escaping a
// stage method (outside sdk::guarded) fails only the request or the attempt
// it touched, is logged with the plugin's name, is counted in
// slackproxy_plugin_exceptions_total, and the proxy carries on. The throwing
// stages are tests/abi_plugins' faulty_router and faulty_sink, which throw
// for #boom only, so every other message shows the same proxy still serving.
#include <gtest/gtest.h>

#include <string>

#include "proxy_test.h"

namespace slack_proxy::testing {
namespace {

constexpr const char* kPluginExceptions = "slackproxy_plugin_exceptions_total";

// `slackproxy_plugin_exceptions_total{pipeline=...,stage=...,method=...}`
std::string plugin_exceptions(const std::string& pipeline, const std::string& stage,
                              const std::string& method) {
  return std::string(kPluginExceptions) + "{pipeline=\"" + pipeline + "\",stage=\"" + stage +
         "\",method=\"" + method + "\"}";
}

// Named unlike its plugin, so that the log and the metric can be seen to
// say which is which.
constexpr const char* kRouterStage = "router_under_test";
constexpr const char* kSinkStage = "sink_under_test";
constexpr int kSinkMaxRetries = 2;

class PluginFaultTest : public ProxyTest {
 protected:
  // ProxyConfig's pipeline "slack" on "/", with faulty_router first.
  ProxyConfig with_faulty_router() const {
    ProxyConfig c = config();
    c.plugin_paths = {SP_TEST_PLUGIN_DIR};
    c.stages = stage("faulty_router", std::string("name = \"") + kRouterStage + "\"\n") +
               ProxyConfig::fast_retry_stages();
    return c;
  }

  // ProxyConfig's pipeline "slack" on "/" (to the fake Slack), and a
  // pipeline "faulty" on "/faulty" that delivers through faulty_sink and
  // retries kSinkMaxRetries times, quickly.
  std::string with_faulty_sink() const {
    ProxyConfig c = config();
    c.plugin_paths = {SP_TEST_PLUGIN_DIR};
    return c.toml() + "\n[[pipeline]]\nname = \"faulty\"\npaths = [\"/faulty\"]\n" +
           stage("slack_retry", "max_retries = " + std::to_string(kSinkMaxRetries) +
                                    "\ninitial_backoff = \"20ms\"\nmax_backoff = \"50ms\"\n"
                                    "jitter = 0.0\n") +
           stage("faulty_sink", std::string("name = \"") + kSinkStage + "\"\n");
  }
};

TEST_F(PluginFaultTest, ARouterThatThrowsFailsThatRequestWith500AndTheNextOneIsDelivered) {
  auto& p = start(with_faulty_router());

  const HttpResponse boom = p.post(message("#boom", "explodes"));
  EXPECT_EQ(boom.status, 500) << boom.body;
  EXPECT_EQ(canonical_json(boom.body), R"({"error":"internal_error","ok":false})") << boom.body;
  EXPECT_TRUE(p.wait_for_log(std::string("stage '") + kRouterStage +
                             "' (plugin faulty_router) threw from route(): "
                             "faulty_router exploded on #boom"));
  EXPECT_TRUE(p.wait_for_metric(plugin_exceptions("slack", kRouterStage, "route"), 1));
  EXPECT_TRUE(p.wait_for_metric(rejected("internal_error"), 1));

  // The same proxy serves the next request and delivers it.
  const HttpResponse next = p.post(message("#general", "after the fault"));
  EXPECT_EQ(next.status, 200) << next.body;
  EXPECT_TRUE(wait_for_texts(slack, {"after the fault"}));
  EXPECT_TRUE(p.wait_for_metric(series(kSucceeded, "#general"), 1));

  // The failed request reached neither the queue nor Slack.
  const std::string m = p.metrics();
  EXPECT_TRUE(metric_is_zero(m, series(kReceived, "#boom")));
  for (const auto& r : slack.requests()) EXPECT_NE(r.channel, "#boom") << r.body;
  EXPECT_EQ(metric(m, plugin_exceptions("slack", kRouterStage, "route")), 1);
}

TEST_F(PluginFaultTest, ASinkThatThrowsFailsEachAttemptUntilADeadLetterWhileTheProxyDeliversOn) {
  auto& p = start(with_faulty_sink());
  const int attempts = 1 + kSinkMaxRetries;

  const HttpResponse accepted = p.post(message("#boom", "explodes"), "/faulty");
  ASSERT_EQ(accepted.status, 200) << accepted.body;
  // Each attempt threw and was retried as a transient failure, then given up.
  EXPECT_TRUE(p.wait_for_metric(series(kFailed, "#boom"), 1));
  EXPECT_TRUE(p.wait_for_metric(series(kRetried, "#boom"), kSinkMaxRetries));
  EXPECT_TRUE(p.wait_for_metric(plugin_exceptions("faulty", kSinkStage, "send"), attempts));
  EXPECT_TRUE(p.wait_for_metric(kDeadLetters, 1));
  EXPECT_TRUE(p.wait_for_log(std::string("stage '") + kSinkStage +
                             "' (plugin faulty_sink) threw from send(): "
                             "faulty_sink exploded on #boom"));

  const HttpResponse list = admin_request(p, "GET", "/admin/dead-letters");
  ASSERT_EQ(list.status, 200) << list.body;
  const auto letters = parse_object(list.body)->getArray("dead_letters");
  ASSERT_TRUE(letters) << list.body;
  ASSERT_EQ(letters->size(), 1u) << list.body;
  const auto letter = letters->getObject(0);
  EXPECT_EQ(letter->getValue<std::string>("pipeline"), "faulty");
  EXPECT_EQ(letter->getValue<std::string>("channel"), "#boom");
  EXPECT_EQ(letter->getValue<std::string>("kind"), "failed");
  EXPECT_EQ(letter->getValue<std::string>("error"), "internal_error_in_sink");
  EXPECT_EQ(letter->getValue<int>("attempts"), attempts);
  EXPECT_NE(letter->getValue<std::string>("reason").find("retries exhausted"), std::string::npos)
      << list.body;

  // The same proxy keeps answering and delivering, through both pipelines.
  EXPECT_EQ(p.post(message("#fine", "through the faulty sink"), "/faulty").status, 200);
  EXPECT_TRUE(p.wait_for_metric(series(kSucceeded, "#fine"), 1));
  EXPECT_EQ(p.post(message("#general", "to the fake Slack")).status, 200);
  EXPECT_TRUE(wait_for_texts(slack, {"to the fake Slack"}));
  EXPECT_EQ(metric(p.metrics(), plugin_exceptions("faulty", kSinkStage, "send")), attempts);
}

}  // namespace
}  // namespace slack_proxy::testing

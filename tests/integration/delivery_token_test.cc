// Which token reaches Slack: the proxy's own SLACK_TOKEN by default, or with
// `delivery_token = "caller"` the caller's, taken as Slack takes it (the
// Authorization header, else the body's `token`). Either way no caller token
// may reach the proxy's log.
#include <gtest/gtest.h>

#include <string>

#include "proxy_test.h"

namespace slack_proxy::testing {
namespace {

constexpr const char* kCallerA = "xoxb-caller-A";
constexpr const char* kCallerB = "xoxb-caller-B-in-the-body";

class DeliveryTokenTest : public ProxyTest {
 protected:
  HttpResponse post_with_bearer(const std::string& token, const std::string& body) {
    HttpRequest request;
    request.method = "POST";
    request.url = proxy->url("/api/chat.postMessage");
    request.body = body;
    request.content_type = "application/json; charset=utf-8";
    request.headers = {{"Authorization", "Bearer " + token}};
    return http_send(request);
  }

  // The Authorization header of the only request the fake received.
  std::string delivered_authorization() {
    EXPECT_TRUE(slack.wait_for(1, kDeadline));
    const auto requests = slack.requests();
    EXPECT_EQ(requests.size(), 1u);
    return requests.empty() ? std::string() : requests.front().authorization;
  }

  void expect_log_free_of_caller_tokens() {
    const std::string log = proxy->log();
    // Not EXPECT_EQ on find(): a failure must not print the log's secrets.
    EXPECT_TRUE(log.find(kCallerA) == std::string::npos) << "caller token A in the log";
    EXPECT_TRUE(log.find(kCallerB) == std::string::npos) << "caller token B in the log";
  }

  ProxyConfig caller_config() const {
    ProxyConfig c = config();
    c.pipeline_settings = "delivery_token = \"caller\"";
    c.log_level = "debug";  // the most the proxy ever logs
    return c;
  }
};

TEST_F(DeliveryTokenTest, CallerPipelineDeliversWithTheCallersBearerToken) {
  start(caller_config());
  ASSERT_EQ(post_with_bearer(kCallerA, message("#a", "hello")).status, 200);
  EXPECT_TRUE(delivered_authorization() == std::string("Bearer ") + kCallerA)
      << "the fake did not receive the caller's header token";
  expect_log_free_of_caller_tokens();
}

TEST_F(DeliveryTokenTest, CallerPipelineDeliversWithTheBodyTokenWhenThereIsNoHeader) {
  start(caller_config());
  const std::string body =
      R"({"channel":"#a","text":"hello","token":")" + std::string(kCallerB) + R"("})";
  ASSERT_EQ(proxy->post(body, "/api/chat.postMessage").status, 200);
  EXPECT_TRUE(delivered_authorization() == std::string("Bearer ") + kCallerB)
      << "the fake did not receive the caller's body token";
  expect_log_free_of_caller_tokens();
}

TEST_F(DeliveryTokenTest, DefaultPipelineDeliversWithTheProxysTokenEvenWhenTheCallerSendsOne) {
  ProxyConfig c = config();
  c.log_level = "debug";
  start(c);
  ASSERT_EQ(post_with_bearer(kCallerA, message("#a", "hello")).status, 200);
  EXPECT_TRUE(delivered_authorization() == std::string("Bearer ") + kTestToken)
      << "the fake did not receive the proxy's own token";
  expect_log_free_of_caller_tokens();
}

}  // namespace
}  // namespace slack_proxy::testing

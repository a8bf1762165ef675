// The host's HTTP client (core/src/http/http_client.h), the one every HTTP
// sink gets from HostServices::http_client(): proxies from the environment
// (which one a URL uses, and real exchanges through a local proxy, CONNECT
// included), Retry-After, the reply cap, secrets kept out of details, and
// settings it refuses. TLS verification and timeouts are also exercised
// through slack_sink's tests, which use this client against the fake Slack.
#include "http/http_client.h"

#include <atomic>
#include <filesystem>
#include <mutex>
#include <sstream>
#include <vector>
#include <chrono>
#include <memory>
#include <string>
#include <thread>

#include <Poco/Base64Encoder.h>
#include <Poco/Net/ServerSocket.h>
#include <Poco/Net/SocketAddress.h>
#include <Poco/Net/StreamSocket.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <slack_proxy/sdk/testing/fakes.h>

#include "fake_slack.h"
#include "test_certs.h"

namespace slack_proxy {
namespace {

using namespace std::chrono_literals;
using slack_proxy::testing::Behaviour;
using slack_proxy::testing::FakeSlack;
using slack_proxy::testing::TestCertificates;

constexpr const char* kProxyPassword = "pr0xy-S3cret-pass";

std::shared_ptr<sdk::HttpClient> client(const sdk::testing::FakeClock& clock,
                                        const ProxyEnvironment& proxies = {},
                                        sdk::HttpClientSettings settings = {}) {
  std::string error;
  auto made = make_http_client(settings, clock, proxies, error);
  EXPECT_TRUE(made) << error;
  return made;
}

sdk::HttpRequest post(const std::string& url, std::string body = R"({"text":"hi"})") {
  sdk::HttpRequest request;
  request.url = url;
  request.body = std::move(body);
  return request;
}

// A one-connection HTTP proxy on 127.0.0.1. It records the request head it
// gets; for CONNECT it opens the tunnel to `tunnel_to` and relays bytes both
// ways, otherwise it answers 200 "ok" itself.
class TinyProxy {
 public:
  explicit TinyProxy(std::uint16_t tunnel_to = 0)
      : server_(Poco::Net::SocketAddress("127.0.0.1", 0)), tunnel_to_(tunnel_to) {
    thread_ = std::thread([this] { serve(); });
  }
  ~TinyProxy() {
    server_.close();
    if (thread_.joinable()) thread_.join();
  }
  std::uint16_t port() const { return server_.address().port(); }
  std::string head() const {
    std::lock_guard lock(mutex_);
    return head_;
  }

 private:
  void serve() {
    try {
      Poco::Net::StreamSocket client = server_.acceptConnection();
      client.setReceiveTimeout(Poco::Timespan(10, 0));
      std::string head;
      char c = 0;
      while (head.find("\r\n\r\n") == std::string::npos && client.receiveBytes(&c, 1) == 1) {
        head.push_back(c);
      }
      {
        std::lock_guard lock(mutex_);
        head_ = head;
      }
      if (head.rfind("CONNECT ", 0) == 0) {
        Poco::Net::StreamSocket target(Poco::Net::SocketAddress("127.0.0.1", tunnel_to_));
        send_all(client, "HTTP/1.1 200 Connection established\r\n\r\n");
        relay(client, target);
      } else {
        send_all(client, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok");
      }
    } catch (...) {
      // The test's assertions say what went wrong.
    }
  }
  static void send_all(Poco::Net::StreamSocket& s, const std::string& text) {
    s.sendBytes(text.data(), static_cast<int>(text.size()));
  }
  // Copies bytes both ways until either side closes (or 10 s of silence).
  static void relay(Poco::Net::StreamSocket& a, Poco::Net::StreamSocket& b) {
    char buffer[16 * 1024];
    for (;;) {
      pollfd fds[2] = {{a.impl()->sockfd(), POLLIN, 0}, {b.impl()->sockfd(), POLLIN, 0}};
      if (::poll(fds, 2, 10000) <= 0) return;
      for (int i = 0; i < 2; ++i) {
        if ((fds[i].revents & (POLLIN | POLLHUP | POLLERR)) == 0) continue;
        auto& from = i == 0 ? a : b;
        auto& to = i == 0 ? b : a;
        const int n = from.receiveBytes(buffer, sizeof buffer);
        if (n <= 0) return;
        to.sendBytes(buffer, n);
      }
    }
  }

  Poco::Net::ServerSocket server_;
  std::uint16_t tunnel_to_;
  mutable std::mutex mutex_;
  std::string head_;
  std::thread thread_;
};

std::string basic(const std::string& user, const std::string& password) {
  std::ostringstream out;
  Poco::Base64Encoder encoder(out);
  encoder << user << ':' << password;
  encoder.close();
  return "Basic " + out.str();
}

// ------------------------------------------------------ proxy decisions --

TEST(HttpClientProxy, EachSchemeUsesItsOwnVariable) {
  ProxyEnvironment env;
  env.https_proxy = "http://secure-proxy:3128";
  env.http_proxy = "plain-proxy:8080";  // curl's scheme-less form
  const auto https = proxy_for(env, "https", "slack.com", 443);
  ASSERT_TRUE(https);
  EXPECT_EQ(https->where(), "secure-proxy:3128");
  const auto http = proxy_for(env, "http", "slack.com", 80);
  ASSERT_TRUE(http);
  EXPECT_EQ(http->where(), "plain-proxy:8080");
  env.http_proxy.clear();
  EXPECT_FALSE(proxy_for(env, "http", "slack.com", 80));
}

TEST(HttpClientProxy, NoProxyMatchesHostsAndTheirSubdomains) {
  const std::string list = " internal.example , .corp.example,hooks.slack.com:8443,[::2]";
  EXPECT_TRUE(no_proxy_matches(list, "internal.example", 443));
  EXPECT_TRUE(no_proxy_matches(list, "api.INTERNAL.example", 443));
  EXPECT_TRUE(no_proxy_matches(list, "corp.example", 443));
  EXPECT_TRUE(no_proxy_matches(list, "a.b.corp.example", 443));
  EXPECT_FALSE(no_proxy_matches(list, "notinternal.example", 443));
  EXPECT_FALSE(no_proxy_matches(list, "slack.com", 443));
  EXPECT_TRUE(no_proxy_matches(list, "hooks.slack.com", 8443));
  EXPECT_FALSE(no_proxy_matches(list, "hooks.slack.com", 443));  // another port
  EXPECT_TRUE(no_proxy_matches(list, "::2", 443));
  EXPECT_TRUE(no_proxy_matches("*", "anything.at.all", 1));
  EXPECT_FALSE(no_proxy_matches("", "slack.com", 443));
}

TEST(HttpClientProxy, NoProxyAndLoopbackHostsGoDirect) {
  ProxyEnvironment env;
  env.https_proxy = "http://proxy:3128";
  env.no_proxy = "slack.com";
  EXPECT_FALSE(proxy_for(env, "https", "hooks.slack.com", 443));
  EXPECT_TRUE(proxy_for(env, "https", "example.com", 443));
  // No proxy could reach this machine's loopback.
  for (const char* host : {"localhost", "127.0.0.1", "127.1.2.3", "::1"}) {
    EXPECT_FALSE(proxy_for(env, "https", host, 443)) << host;
  }
}

TEST(HttpClientProxy, ReadsCredentialsAndNeverRepeatsABadValue) {
  ProxyEnvironment env;
  env.https_proxy = std::string("http://svc:") + kProxyPassword + "@proxy:3128";
  const auto route = proxy_for(env, "https", "slack.com", 443);
  ASSERT_TRUE(route);
  EXPECT_EQ(route->username, "svc");
  EXPECT_EQ(route->password, kProxyPassword);
  EXPECT_EQ(route->where().find(kProxyPassword), std::string::npos);

  env.https_proxy = std::string("https://svc:") + kProxyPassword + "@proxy:3128";
  sdk::testing::FakeClock clock;
  std::string error;
  EXPECT_FALSE(make_http_client({}, clock, env, error));
  EXPECT_NE(error.find("HTTPS_PROXY"), std::string::npos) << error;
  EXPECT_EQ(error.find(kProxyPassword), std::string::npos) << error;
}

TEST(HttpClientProxy, ReadsTheProcessEnvironmentLowerCaseFirst) {
  ::setenv("https_proxy", "http://lower:1", 1);
  ::setenv("HTTPS_PROXY", "http://upper:2", 1);
  ::setenv("NO_PROXY", "internal.example", 1);
  const auto env = ProxyEnvironment::from_process();
  ::unsetenv("https_proxy");
  ::unsetenv("HTTPS_PROXY");
  ::unsetenv("NO_PROXY");
  EXPECT_EQ(env.https_proxy, "http://lower:1");
  EXPECT_EQ(env.no_proxy, "internal.example");
}

// ------------------------------------------------- through a real proxy --

TEST(HttpClientProxy, SendsPlainHttpToTheProxyWithItsCredentials) {
  TinyProxy proxy;
  ProxyEnvironment env;
  env.http_proxy = "http://svc:" + std::string(kProxyPassword) + "@127.0.0.1:" +
                   std::to_string(proxy.port());
  sdk::testing::FakeClock clock;
  const auto response = client(clock, env)->send(post("http://slack.invalid/api/chat.postMessage"));
  EXPECT_EQ(response.status, 200) << response.error << ": " << response.detail;
  EXPECT_EQ(response.body, "ok");
  const std::string head = proxy.head();
  EXPECT_EQ(head.rfind("POST http://slack.invalid:80/api/chat.postMessage HTTP/1.1\r\n", 0), 0u)
      << head;
  EXPECT_NE(head.find("Proxy-Authorization: " + basic("svc", kProxyPassword)), std::string::npos)
      << head;
}

TEST(HttpClientProxy, TunnelsHttpsWithConnectAndStillVerifiesTheRealHost) {
  std::unique_ptr<TestCertificates> certs;
  try {
    certs = std::make_unique<TestCertificates>();
  } catch (const std::exception& e) {
    FAIL() << "cannot make test certificates: " << e.what();
  }
  // The certificate names wrong.example: the name the client asked the
  // proxy for, which this machine cannot resolve. Only a tunnel gets there.
  FakeSlack slack(0, certs->wrong_name());
  slack.start();
  TinyProxy proxy(slack.port());
  ProxyEnvironment env;
  env.https_proxy = "127.0.0.1:" + std::to_string(proxy.port());
  sdk::testing::FakeClock clock;
  sdk::HttpClientSettings settings;
  settings.ca_file = certs->ca_certificate();
  auto request = post("https://wrong.example/api/chat.postMessage");
  request.bearer_token = "xoxb-through-the-tunnel";
  const auto response = client(clock, env, settings)->send(request);
  EXPECT_EQ(response.status, 200) << response.error << ": " << response.detail;
  EXPECT_EQ(proxy.head().rfind("CONNECT wrong.example:443 HTTP/1.1\r\n", 0), 0u) << proxy.head();
  // The token went inside TLS, never to the proxy in clear.
  EXPECT_EQ(proxy.head().find("xoxb-"), std::string::npos);
  ASSERT_EQ(slack.count(), 1u);
  EXPECT_EQ(slack.requests().front().authorization, "Bearer xoxb-through-the-tunnel");
}

TEST(HttpClientProxy, AnUnreachableProxyFailsWithoutShowingItsPassword) {
  Poco::Net::ServerSocket bound(Poco::Net::SocketAddress("127.0.0.1", 0));
  const auto port = bound.address().port();
  bound.close();
  ProxyEnvironment env;
  env.http_proxy = "http://svc:" + std::string(kProxyPassword) + "@127.0.0.1:" + std::to_string(port);
  sdk::testing::FakeClock clock;
  const auto response = client(clock, env)->send(post("http://slack.invalid/x"));
  EXPECT_EQ(response.status, 0);
  EXPECT_EQ(response.error, "connection_failed");
  EXPECT_NE(response.detail.find("via proxy 127.0.0.1:" + std::to_string(port)), std::string::npos)
      << response.detail;
  EXPECT_EQ(response.detail.find(kProxyPassword), std::string::npos) << response.detail;
}

// ------------------------------------------------------------- replies --

TEST(HttpClientRetryAfter, ReadsDeltaSecondsAndHttpDatesAndCapsAbsurdValues) {
  using std::chrono::hours;
  using std::chrono::milliseconds;
  using std::chrono::seconds;
  // 2023-11-14T22:13:20Z
  const sdk::WallTime now = std::chrono::system_clock::from_time_t(1'700'000'000);
  EXPECT_EQ(parse_retry_after("0", now), milliseconds(0));
  EXPECT_EQ(parse_retry_after("30", now), seconds(30));
  EXPECT_EQ(parse_retry_after("Tue, 14 Nov 2023 22:14:20 GMT", now), seconds(60));
  EXPECT_EQ(parse_retry_after("Tue, 14 Nov 2023 22:00:00 GMT", now), milliseconds(0));  // past
  EXPECT_EQ(parse_retry_after("999999999", now), hours(24));
  EXPECT_EQ(parse_retry_after("99999999999999999999999", now), hours(24));
  EXPECT_EQ(parse_retry_after("soon", now), seconds(1));
  EXPECT_EQ(parse_retry_after("-5", now), seconds(1));
}

// Each magnitude that used to overflow when turned into milliseconds before
// the cap (from 9.3e15 s on, up to the int64 limit), and one past int64.
TEST(HttpClientRetryAfter, HugeDeltaSecondsAreCappedNeverNegative) {
  const sdk::WallTime now = std::chrono::system_clock::from_time_t(1'700'000'000);
  EXPECT_EQ(parse_retry_after("86399", now), 86399s);
  EXPECT_EQ(parse_retry_after("86400", now), 24h);
  EXPECT_EQ(parse_retry_after("9223372036854775", now), 24h);  // the last that fit in ms
  for (const char* value :
       {"9223372036854776", "99999999999999999", "999999999999999999", "1000000000000000000",
        "9223372036854775807", "9223372036854775808", "18446744073709551616"}) {
    EXPECT_EQ(parse_retry_after(value, now), 24h) << value;
  }
}

// The clock counts nanoseconds, which end in 2262 and begin in 1677.
TEST(HttpClientRetryAfter, DatesBeyondTheClocksRangeAreCappedOrZero) {
  const sdk::WallTime now = std::chrono::system_clock::from_time_t(1'700'000'000);
  EXPECT_EQ(parse_retry_after("Fri, 31 Dec 9999 23:59:59 GMT", now), 24h);
  EXPECT_EQ(parse_retry_after("Sat, 12 Apr 2262 00:00:00 GMT", now), 24h);
  EXPECT_EQ(parse_retry_after("Wed, 15 Nov 2023 22:13:20 GMT", now), 24h);  // exactly a day
  EXPECT_EQ(parse_retry_after("Wed, 15 Nov 2023 22:13:19 GMT", now), 86399s);
  // A date in the past means "now" (0), as documented; so does one before 1677.
  EXPECT_EQ(parse_retry_after("Tue, 14 Nov 2023 22:13:19 GMT", now), 0ms);
  EXPECT_EQ(parse_retry_after("Thu, 01 Jan 1970 00:00:00 GMT", now), 0ms);
  EXPECT_EQ(parse_retry_after("Mon, 01 Jan 1600 00:00:00 GMT", now), 0ms);
}

class HttpClientReply : public ::testing::Test {
 protected:
  void SetUp() override { slack.start(); }
  sdk::testing::FakeClock clock;
  FakeSlack slack;
};

TEST_F(HttpClientReply, HandsOverStatusHeadersAndRetryAfter) {
  slack.set_default(Behaviour::rate_limited(7));
  const auto response = client(clock)->send(post(slack.url()));
  EXPECT_EQ(response.status, 429);
  EXPECT_EQ(response.error, "");
  EXPECT_EQ(response.retry_after, std::chrono::milliseconds(7s));
  EXPECT_EQ(response.header("retry-after"), "7");
}

TEST_F(HttpClientReply, KeepsAtMostOneMebibyteOfTheBody) {
  Behaviour huge;
  huge.body = std::string(3 * 1024 * 1024, 'x');
  slack.set_default(huge);
  auto http = client(clock);
  const auto response = http->send(post(slack.url()));
  EXPECT_EQ(response.status, 200);
  EXPECT_EQ(response.body.size(), 1024u * 1024u);
  // The half-read connection was dropped, not reused.
  slack.set_default(Behaviour::ok());
  EXPECT_EQ(http->send(post(slack.url())).status, 200);
}

TEST_F(HttpClientReply, ScrubsTheTokenAndASecretPathFromDetails) {
  const std::string path = "/services/T0SECRET1/B0SECRET2/zQ9xWebhookSecretToken";
  Behaviour echo;
  echo.status = 403;
  echo.body = "bad token xoxb-scrub-me-123 for " + path + " (zQ9xWebhookSecretToken)";
  slack.set_default(echo);
  auto request = post("http://127.0.0.1:" + std::to_string(slack.port()) + path);
  request.bearer_token = "xoxb-scrub-me-123";
  request.url_is_secret = true;
  const auto response = client(clock)->send(request);
  EXPECT_EQ(response.status, 403);
  for (const char* secret : {"xoxb-scrub-me-123", "T0SECRET1", "zQ9xWebhookSecretToken"}) {
    EXPECT_EQ(response.detail.find(secret), std::string::npos) << response.detail;
  }
  EXPECT_NE(response.detail.find("[redacted]"), std::string::npos) << response.detail;
}

// A proxy is shown as host and port only: a reply quoting the proxy's user
// name (a 407 page, say) has it redacted as a word, like its password.
TEST_F(HttpClientReply, ScrubsTheProxysUserNameAndPasswordFromDetails) {
  Behaviour proxy_says;
  proxy_says.status = 407;
  proxy_says.body = "user svc-Proxy.User1 (password " + std::string(kProxyPassword) +
                    ") may not; svc-Proxy.User12 is another user";
  slack.set_default(proxy_says);
  ProxyEnvironment env;
  env.http_proxy = "http://svc-Proxy.User1:" + std::string(kProxyPassword) + "@127.0.0.1:" +
                   std::to_string(slack.port());
  const auto response = client(clock, env)->send(post("http://slack.invalid/api/chat.postMessage"));
  EXPECT_EQ(response.status, 407) << response.error << ": " << response.detail;
  EXPECT_EQ(response.detail.find("svc-Proxy.User1 "), std::string::npos) << response.detail;
  EXPECT_EQ(response.detail.find(kProxyPassword), std::string::npos) << response.detail;
  EXPECT_NE(response.detail.find("user [redacted] (password [redacted])"), std::string::npos)
      << response.detail;
  // Only as a word: a longer name that merely starts with it stays readable.
  EXPECT_NE(response.detail.find("svc-Proxy.User12 is another user"), std::string::npos)
      << response.detail;
}

TEST_F(HttpClientReply, RefusesARequestItCannotSendWithoutQuotingIt) {
  auto http = client(clock);
  const auto bad_url = http->send(post("ftp://hooks.slack.com/services/T0/B0/zQ9xSecretPart"));
  EXPECT_EQ(bad_url.error, "invalid_message");
  EXPECT_EQ(bad_url.detail.find("zQ9xSecretPart"), std::string::npos) << bad_url.detail;
  auto injected = post(slack.url());
  injected.bearer_token = "xoxb-1\r\nX-Evil: 1";
  EXPECT_EQ(http->send(injected).error, "invalid_message");
  EXPECT_EQ(slack.count(), 0u);
}

TEST_F(HttpClientReply, ReusesPooledConnectionsAcrossThreads) {
  sdk::HttpClientSettings settings;
  settings.max_connections = 2;
  auto http = client(clock, {}, settings);
  std::atomic<int> ok{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 10; ++i) ok += http->send(post(slack.url())).status == 200 ? 1 : 0;
    });
  }
  for (auto& thread : threads) thread.join();
  EXPECT_EQ(ok.load(), 40);
  EXPECT_EQ(slack.count(), 40u);
}

TEST_F(HttpClientReply, MapsASlowReplyToTimeoutAndRecovers) {
  slack.enqueue(Behaviour::slow(5s));
  sdk::HttpClientSettings settings;
  settings.timeout = 200ms;
  auto http = client(clock, {}, settings);
  const auto slow = http->send(post(slack.url()));
  EXPECT_EQ(slow.status, 0);
  EXPECT_EQ(slow.error, "timeout");
  EXPECT_EQ(http->send(post(slack.url())).status, 200);
}

// ------------------------------------------------------------ settings --

TEST(HttpClientSettings, RefusesAnUnusableCaFileNamingIt) {
  sdk::testing::FakeClock clock;
  for (const std::string& path : {std::string("/nonexistent/slack-proxy/ca.pem"),
                                  std::filesystem::temp_directory_path().string()}) {
    sdk::HttpClientSettings settings;
    settings.ca_file = path;
    std::string error;
    EXPECT_FALSE(make_http_client(settings, clock, {}, error));
    EXPECT_NE(error.find("ca_file \"" + path + "\""), std::string::npos) << error;
  }
  sdk::HttpClientSettings injected;
  injected.user_agent = "a\r\nX-Evil: 1";
  std::string error;
  EXPECT_FALSE(make_http_client(injected, clock, {}, error));
  EXPECT_NE(error.find("user_agent"), std::string::npos) << error;
}

TEST_F(HttpClientReply, SendsTheDefaultUserAgentWithTheVersion) {
  ASSERT_EQ(client(clock)->send(post(slack.url())).status, 200);
  EXPECT_EQ(slack.requests().front().headers.at("user-agent"),
            std::string("slack-proxy/") + SLACK_PROXY_SDK_VERSION);
}

}  // namespace
}  // namespace slack_proxy

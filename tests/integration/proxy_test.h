// What the end-to-end test files share: message builders, reply readers and
// the fixture that runs a proxy against a fake Slack.
#ifndef SLACK_PROXY_TESTS_INTEGRATION_PROXY_TEST_H
#define SLACK_PROXY_TESTS_INTEGRATION_PROXY_TEST_H

#include <gtest/gtest.h>

#include <Poco/JSON/Object.h>
#include <Poco/JSON/Parser.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <set>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "fake_slack.h"
#include "harness.h"

namespace slack_proxy::testing {

inline constexpr const char* kReceived = "slackproxy_requests_received_total";
inline constexpr const char* kFailed = "slackproxy_requests_failed_total";
inline constexpr const char* kRetried = "slackproxy_requests_retried_total";
inline constexpr const char* kSucceeded = "slackproxy_requests_succeeded_total";
inline constexpr const char* kNotProcessed = "slackproxy_requests_not_processed_total";
inline constexpr const char* kRejected = "slackproxy_requests_rejected_total";
inline constexpr const char* kQueueSize = "slackproxy_queue_size";
inline constexpr const char* kDeadLetters = "slackproxy_dead_letters";

// `slackproxy_requests_rejected_total{error="<error>"}`
inline std::string rejected(const std::string& error) {
  return std::string(kRejected) + "{error=\"" + error + "\"}";
}

inline Poco::JSON::Object::Ptr parse_object(const std::string& text) {
  Poco::JSON::Parser parser;
  return parser.parse(text).extract<Poco::JSON::Object::Ptr>();
}

// Keys sorted, one spelling per value: equal text means equal JSON.
inline std::string canonical_json(const Poco::JSON::Object::Ptr& object) {
  std::ostringstream out;
  object->stringify(out);
  return out.str();
}
inline std::string canonical_json(const std::string& text) {
  return canonical_json(parse_object(text));
}

// A chat.postMessage body; `text` must need no JSON escaping.
inline std::string message(const std::string& channel, const std::string& text) {
  return R"({"channel":")" + channel + R"(","text":")" + text + R"("})";
}

inline std::string error_of(const HttpResponse& r) {
  return parse_object(r.body)->getValue<std::string>("error");
}
inline bool ok_of(const HttpResponse& r) { return parse_object(r.body)->getValue<bool>("ok"); }

// A raw [[pipeline.stage]] table.
inline std::string stage(const std::string& plugin, const std::string& settings = {}) {
  return "\n[[pipeline.stage]]\nplugin = \"" + plugin + "\"\n" + settings;
}

// 1-based line of the first occurrence of `needle` in `text`.
inline int line_of(const std::string& text, const std::string& needle) {
  const auto at = text.find(needle);
  return 1 + static_cast<int>(std::count(text.begin(), text.begin() + static_cast<long>(at), '\n'));
}

inline std::vector<std::string> non_empty_lines(const std::string& text) {
  std::vector<std::string> lines;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);)
    if (line.find_first_not_of(" \t\r") != std::string::npos) lines.push_back(line);
  return lines;
}

// The "text" field of a request the fake Slack recorded.
inline std::string text_of(const RecordedRequest& r) {
  return parse_object(r.body)->getValue<std::string>("text");
}

// [queue] lines for a SQLite database at `path`, which outlives any one proxy.
inline std::string sqlite_settings(const std::filesystem::path& path,
                                   const std::string& sync = "full") {
  return "path = \"" + path.string() + "\"\nsync = \"" + sync + "\"\n";
}

// A request to the admin API, served on the metrics listener, with the test
// proxies' admin key.
inline HttpResponse admin_request(const ProxyProcess& p, const std::string& method,
                                  const std::string& target) {
  HttpRequest request;
  request.method = method;
  request.url = p.metrics_url(target);
  request.headers = {{"Authorization", std::string("Bearer ") + kAdminKey}};
  return http_send(request);
}

// A POST of `body` with an Idempotency-Key header.
inline HttpResponse post_with_key(const ProxyProcess& p, const std::string& body,
                                  const std::string& key) {
  HttpRequest request;
  request.method = "POST";
  request.url = p.url();
  request.body = body;
  request.content_type = "application/json";
  request.headers = {{"Idempotency-Key", key}};
  return http_send(request);
}

// An incoming-webhook URL's path, in Slack's shape (/services/T.../B.../...).
inline constexpr const char* kWebhookPath = "/services/T0000/B0000/XXXXXXXXXXXXXXXXXXXXXXXX";

// An incoming-webhook-style pipeline on "/services/*" (where Alertmanager's
// api_url and Grafana's webhook contact point point), to append after
// ProxyConfig's API-style one on "/": `stages`, then slack_sink to
// `slack_url`. A payload that names no channel goes to `default_channel`.
inline std::string webhook_pipeline(const std::string& slack_url,
                                    const std::string& default_channel,
                                    const std::string& stages = {}) {
  return "\n[[pipeline]]\nname = \"webhook\"\nstyle = \"webhook\"\npaths = [\"/services/*\"]\n"
         "default_channel = \"" + default_channel + "\"\n" +
         stages + stage("slack_sink", "url = \"" + slack_url + "\"\n");
}

// One token, then one per 1000 s: whatever follows the first message waits.
inline std::string paused_bucket() { return stage("token_bucket", "rate = 0.001\nburst = 1\n"); }

// A JSON POST the way an HTTP client of the proxy (Alertmanager, Grafana)
// sends it: its Content-Type and User-Agent, and its Bearer token if any.
struct ClientLike {
  std::string content_type;
  std::string user_agent;
};
inline HttpResponse post_like(const ClientLike& client, const ProxyProcess& p,
                              const std::string& path, const std::string& body,
                              const std::optional<std::string>& bearer = std::nullopt) {
  HttpRequest request;
  request.method = "POST";
  request.url = p.url(path);
  request.body = body;
  request.content_type = client.content_type;
  request.headers["User-Agent"] = client.user_agent;
  if (bearer) request.headers["Authorization"] = "Bearer " + *bearer;
  return http_send(request);
}

// How an incoming-webhook client (Alertmanager, Grafana) knows its message
// was taken: a 200 whose body is not JSON and is exactly "ok".
inline ::testing::AssertionResult plain_ok(const HttpResponse& r) {
  const std::string type = r.header("content-type").value_or("");
  if (r.status != 200) return ::testing::AssertionFailure() << "status " << r.status << ": " << r.body;
  if (type.rfind("application/json", 0) == 0)
    return ::testing::AssertionFailure() << "Content-Type " << type << " is JSON: " << r.body;
  if (r.body != "ok") return ::testing::AssertionFailure() << "the body is \"" << r.body << "\"";
  return ::testing::AssertionSuccess();
}

// Waits, on the fake's own notification of each request, until `done` holds
// for everything it has recorded; `what` names it in the failure.
inline ::testing::AssertionResult wait_until_recorded(
    const FakeSlack& slack, const std::function<bool(const std::vector<RecordedRequest>&)>& done,
    const std::string& what, std::chrono::milliseconds timeout = kDeadline) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (true) {
    const auto seen = slack.requests();
    if (done(seen)) return ::testing::AssertionSuccess();
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) {
      std::ostringstream channels;
      for (const auto& r : seen) channels << ' ' << r.channel;
      return ::testing::AssertionFailure() << "the fake Slack never saw " << what << " within "
                                           << timeout.count() << " ms; it saw " << seen.size()
                                           << " request(s), to:" << channels.str();
    }
    slack.wait_for(seen.size() + 1, left);
  }
}

// Waits until the fake has recorded a request whose "text" is each of `texts`.
inline ::testing::AssertionResult wait_for_texts(const FakeSlack& slack,
                                                 const std::set<std::string>& texts,
                                                 std::chrono::milliseconds timeout = kDeadline) {
  std::set<std::string> missing;
  auto result = wait_until_recorded(
      slack,
      [&](const std::vector<RecordedRequest>& seen) {
        missing = texts;
        for (const auto& r : seen) missing.erase(text_of(r));
        return missing.empty();
      },
      "each of " + std::to_string(texts.size()) + " text(s)", timeout);
  if (!result) result << "; " << missing.size() << " missing, e.g. \"" << *missing.begin() << '"';
  return result;
}

// `c` with TLS on the proxy's ingress, using these files; `extra` adds
// more [server] lines (tls_min_version, ...).
inline ProxyConfig tls_config(ProxyConfig c, const TlsFiles& files, const std::string& extra = "") {
  c.server_settings = "tls_cert = \"" + files.certificate + "\"\ntls_key = \"" +
                      files.private_key + "\"\n" + extra;
  return c;
}

inline std::string https_url(const ProxyProcess& p, const std::string& path = "/") {
  return "https://127.0.0.1:" + std::to_string(p.listen_port()) + path;
}

// A fake Slack and a proxy pointed at it; the proxy dies before the fake.
class ProxyTest : public ::testing::Test {
 protected:
  void SetUp() override { slack.start(); }

  ProxyConfig config() const {
    ProxyConfig c;
    c.slack_url = slack.url();
    return c;
  }

  ProxyProcess& start(const ProxyConfig& c) { return start(c.toml()); }
  // From config text: ProxyConfig's plus more, such as a second pipeline.
  ProxyProcess& start(const std::string& config_text, Environment env = default_environment()) {
    proxy = std::make_unique<ProxyProcess>(config_text, std::move(env));
    auto started = proxy->start();
    EXPECT_TRUE(started);
    if (!started) throw std::runtime_error("slack-proxy did not start");
    return *proxy;
  }

  FakeSlack slack;
  std::unique_ptr<ProxyProcess> proxy;
};

}  // namespace slack_proxy::testing

#endif  // SLACK_PROXY_TESTS_INTEGRATION_PROXY_TEST_H

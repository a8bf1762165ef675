// The proxy's own HTTP client, for testing a sink against a local server
// (a fake Slack, a test webhook) over real sockets and TLS. Put it in
// FakeHost::http:
//
//   FakeHost host;
//   host.http = slack_proxy::sdk::testing::make_http_client({});
//
// or use FakeHostWithRealHttp below, which passes each stage's own settings.
// Part of SlackProxy::sdk_testing (compiled: it is the host's client, not a
// copy). Its clock is the system clock.
#ifndef SLACK_PROXY_SDK_TESTING_HTTP_H
#define SLACK_PROXY_SDK_TESTING_HTTP_H

#include <exception>
#include <memory>
#include <string>

#include <slack_proxy/sdk/host.h>
#include <slack_proxy/sdk/testing/fakes.h>

namespace slack_proxy::sdk::testing {

// Throws std::invalid_argument when the settings cannot be used (an
// unreadable ca_file), with the host's message.
std::shared_ptr<HttpClient> make_http_client(const HttpClientSettings& settings);

// A FakeHost whose http_client() makes the proxy's real client from the
// settings the stage asks with (its timeout, pool size, CA file), as the
// proxy would. For sinks tested against a local server.
class FakeHostWithRealHttp : public FakeHost {
 public:
  std::shared_ptr<HttpClient> http_client(const HttpClientSettings& settings,
                                          std::string& error) noexcept override {
    http_settings.push_back(settings);
    try {
      return make_http_client(settings);
    } catch (const std::exception& e) {
      error = e.what();
      return nullptr;
    }
  }
};

}  // namespace slack_proxy::sdk::testing

#endif  // SLACK_PROXY_SDK_TESTING_HTTP_H

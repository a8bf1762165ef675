// The proxy's own HTTP client, for testing a sink against a local server
// (a fake Slack, a test webhook) over real sockets and TLS. Put it in
// FakeHost::http:
//
//   FakeHost host;
//   host.http = slack_proxy::sdk::testing::make_http_client({});
//
// Part of SlackProxy::sdk_testing (compiled: it is the host's client, not a
// copy). Its clock is the system clock.
#ifndef SLACK_PROXY_SDK_TESTING_HTTP_H
#define SLACK_PROXY_SDK_TESTING_HTTP_H

#include <memory>

#include <slack_proxy/sdk/host.h>

namespace slack_proxy::sdk::testing {

// Throws std::invalid_argument when the settings cannot be used (an
// unreadable ca_file), with the host's message.
std::shared_ptr<HttpClient> make_http_client(const HttpClientSettings& settings);

}  // namespace slack_proxy::sdk::testing

#endif  // SLACK_PROXY_SDK_TESTING_HTTP_H

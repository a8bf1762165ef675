// sdk::testing::make_http_client: the host's HTTP client for sink tests.
#include <slack_proxy/sdk/testing/http.h>

#include <chrono>
#include <stdexcept>
#include <string>

#include "http/http_client.h"

namespace slack_proxy::sdk::testing {

namespace {

// Not the host's SystemClock (host_services.h): that header brings spdlog,
// which this library does not link.
class SystemClock final : public Clock {
 public:
  SteadyTime now() const noexcept override { return std::chrono::steady_clock::now(); }
  WallTime wall_now() const noexcept override { return std::chrono::system_clock::now(); }
};

}  // namespace

std::shared_ptr<HttpClient> make_http_client(const HttpClientSettings& settings) {
  static const SystemClock clock;
  std::string error;
  auto client = ::slack_proxy::make_http_client(settings, clock, error);
  if (!client) throw std::invalid_argument(error);
  return client;
}

}  // namespace slack_proxy::sdk::testing

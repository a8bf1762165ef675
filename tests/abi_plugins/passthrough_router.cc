// A router that changes nothing. Built twice with deliberately wrong ABI
// definitions (see CMakeLists.txt) so that the host's refusal can be tested
// against a real library on disk.
#include <slack_proxy/sdk/plugin.h>

#ifndef TEST_PLUGIN_NAME
#error "TEST_PLUGIN_NAME must name the library's file stem"
#endif

namespace {

class PassthroughRouter final : public slack_proxy::sdk::Router {
 public:
  slack_proxy::sdk::RouteResult route(slack_proxy::sdk::Message&) noexcept override {
    return slack_proxy::sdk::RouteResult::ok();
  }
};

std::unique_ptr<slack_proxy::sdk::Router> make(const slack_proxy::sdk::PluginContext&) {
  return std::make_unique<PassthroughRouter>();
}

}  // namespace

SLACK_PROXY_PLUGIN_WITHOUT_SETTINGS(slack_proxy::sdk::Router, TEST_PLUGIN_NAME,
                                    "test plugin built with a mismatched ABI", make)

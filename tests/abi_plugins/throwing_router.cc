// A well-built router whose factory always throws, so that tests can check
// the host reports a factory failure cleanly instead of crashing.
#include <slack_proxy/sdk/plugin.h>

#include <stdexcept>

namespace {

std::unique_ptr<slack_proxy::sdk::Router> make(const slack_proxy::sdk::PluginContext&) {
  throw std::runtime_error("deliberate failure");
}

}  // namespace

SLACK_PROXY_PLUGIN_WITHOUT_SETTINGS(slack_proxy::sdk::Router, "throwing_router",
                                    "test plugin whose factory throws", make)

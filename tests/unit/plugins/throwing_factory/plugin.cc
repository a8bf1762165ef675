#include <memory>
#include <stdexcept>

#include <slack_proxy/sdk/plugin.h>

namespace {

std::unique_ptr<slack_proxy::sdk::Sink> make(const slack_proxy::sdk::PluginContext&) {
  throw std::invalid_argument("throwing_factory refuses every configuration");
}

}  // namespace

SLACK_PROXY_PLUGIN_WITHOUT_SETTINGS(slack_proxy::sdk::Sink, "throwing_factory",
                                    "Test plugin whose factory always throws", make)

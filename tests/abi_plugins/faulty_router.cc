// A router that throws from route() (outside sdk::guarded) for one channel,
// so that tests can check the host contains it: that request fails with 500
// internal_error, the next one is served.
#include <slack_proxy/sdk/plugin.h>

#include <stdexcept>

namespace {

class FaultyRouter final : public slack_proxy::sdk::Router {
 public:
  slack_proxy::sdk::RouteResult route(slack_proxy::sdk::Message& message) override {
    if (message.channel == "#boom") throw std::runtime_error("faulty_router exploded on #boom");
    return slack_proxy::sdk::RouteResult::ok();
  }
};

std::unique_ptr<slack_proxy::sdk::Router> make(const slack_proxy::sdk::PluginContext&) {
  return std::make_unique<FaultyRouter>();
}

}  // namespace

SLACK_PROXY_PLUGIN_WITHOUT_SETTINGS(slack_proxy::sdk::Router, "faulty_router",
                                    "test plugin whose route() throws for #boom", make)

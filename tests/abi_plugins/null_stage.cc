// A router whose factory builds nothing: "valid, nothing to build" is a
// fine answer to a check (SP_CREATE_CHECK_ONLY) and an error otherwise.
// The factory returns nullptr on purpose, in both modes, so that the test
// sees what the SDK and the host make of it.
#include <slack_proxy/sdk/plugin.h>

namespace {

std::unique_ptr<slack_proxy::sdk::Router> make(const slack_proxy::sdk::PluginContext&) {
  return nullptr;
}

}  // namespace

SLACK_PROXY_PLUGIN_WITHOUT_SETTINGS(slack_proxy::sdk::Router, "null_stage",
                                    "test plugin whose factory builds nothing", make)

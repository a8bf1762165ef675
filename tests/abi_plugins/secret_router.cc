// A router with one secret setting, for tests of when the host reads secrets:
// `slack-proxy validate` (a check-only factory) must not be handed the
// secret, a real start must. The factory refuses either mistake, in words
// that never include the secret, so a test sees which one happened.
#include <slack_proxy/sdk/plugin.h>

#include <stdexcept>

namespace {

struct Settings {
  slack_proxy::sdk::Secret secret;
};

const slack_proxy::sdk::Schema<Settings> kSchema{
    slack_proxy::sdk::setting("secret", &Settings::secret, "a secret the router only requires")
        .required(),
};

class PassRouter final : public slack_proxy::sdk::Router {
 public:
  slack_proxy::sdk::RouteResult route(slack_proxy::sdk::Message&) noexcept override {
    return slack_proxy::sdk::RouteResult::ok();
  }
};

std::unique_ptr<slack_proxy::sdk::Router> make(const slack_proxy::sdk::PluginContext& ctx,
                                               const Settings& settings) {
  if (ctx.check_only && !settings.secret.empty())
    throw std::invalid_argument("a check-only factory was handed the secret");
  if (!ctx.check_only && settings.secret.empty())
    throw std::invalid_argument("built without the secret");
  return std::make_unique<PassRouter>();
}

}  // namespace

SLACK_PROXY_PLUGIN(slack_proxy::sdk::Router, "secret_router",
                   "test plugin with a required secret setting", kSchema, make)

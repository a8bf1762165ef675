// channel_table: a router that sends each message to the channel a table
// names for the channel the caller asked for ("#alerts" -> "#ops-alerts").
#pragma once

#include <map>
#include <string>

#include <slack_proxy/sdk/settings.h>
#include <slack_proxy/sdk/stages.h>

namespace example::channel_table {

namespace sdk = slack_proxy::sdk;

struct Settings {
  std::map<std::string, std::string> routes;
  std::string unrouted;
};

// Declared once: the proxy checks these (types, bounds, allowed values,
// defaults) before the factory runs, and `slack-proxy plugins` shows them.
inline const sdk::Schema<Settings> kSchema{
    sdk::setting("routes", &Settings::routes, "channel asked for -> channel delivered to")
        .at_least(1)
        .required(),
    sdk::setting("unrouted", &Settings::unrouted, "a channel not in routes: keep it, or reject")
        .one_of({"keep", "reject"})
        .default_to("keep"),
};

class ChannelTable final : public sdk::Router {
 public:
  // Throws std::invalid_argument when a route makes no sense (what the
  // schema cannot say: an empty or blank target channel).
  explicit ChannelTable(Settings settings);
  sdk::RouteResult route(sdk::Message& message) override;

 private:
  Settings settings_;
};

}  // namespace example::channel_table

// Sends every message of a pipeline to one fixed channel, e.g. to keep a
// staging proxy from posting into production channels.
#ifndef SLACK_PROXY_PLUGINS_CHANNEL_OVERRIDE_H
#define SLACK_PROXY_PLUGINS_CHANNEL_OVERRIDE_H

#include <string>

#include <slack_proxy/sdk/host.h>
#include <slack_proxy/sdk/settings.h>
#include <slack_proxy/sdk/stages.h>

namespace slack_proxy::plugins::channel_override {

struct Settings {
  std::string channel;
};

inline const sdk::Schema<Settings> kSchema{
    sdk::setting("channel", &Settings::channel,
                 "channel every message is sent to, e.g. \"#alerts-test\"")
        .at_least(1)
        .required(),
};

// Rewrites `channel` only: `original_channel` stays what the caller asked for
// so that metrics still say who sent what, as the original Go tool did.
class ChannelOverride final : public sdk::Router {
 public:
  explicit ChannelOverride(Settings settings);
  sdk::RouteResult route(sdk::Message& message) noexcept override;

 private:
  std::string channel_;
};

}  // namespace slack_proxy::plugins::channel_override

#endif  // SLACK_PROXY_PLUGINS_CHANNEL_OVERRIDE_H

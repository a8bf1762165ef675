#include "channel_override.h"

#include <utility>

namespace slack_proxy::plugins::channel_override {

ChannelOverride::ChannelOverride(Settings settings) : channel_(std::move(settings.channel)) {}

sdk::RouteResult ChannelOverride::route(sdk::Message& message) noexcept {
  return sdk::guarded(
      [&] {
        message.channel = channel_;
        return sdk::RouteResult::ok();
      },
      [](std::string_view what) {
        return sdk::RouteResult::reject(500, "internal_error",
                                        "channel_override failed: " + std::string(what));
      });
}

}  // namespace slack_proxy::plugins::channel_override

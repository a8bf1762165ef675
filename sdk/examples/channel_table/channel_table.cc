#include "channel_table.h"

#include <stdexcept>
#include <utility>

namespace example::channel_table {

ChannelTable::ChannelTable(Settings settings) : settings_(std::move(settings)) {
  for (const auto& [from, to] : settings_.routes) {
    if (to.find_first_not_of(" \t") == std::string::npos) {
      throw std::invalid_argument("routes: '" + from + "' is routed to an empty channel");
    }
  }
}

sdk::RouteResult ChannelTable::route(sdk::Message& message) {
  const auto it = settings_.routes.find(message.channel);
  if (it != settings_.routes.end()) {
    // The host writes the new channel into the payload after the last router.
    message.channel = it->second;
    return sdk::RouteResult::ok();
  }
  if (settings_.unrouted == "reject") {
    return sdk::RouteResult::reject(400, "channel_not_routed",
                                    "channel " + message.channel + " has no route");
  }
  return sdk::RouteResult::ok();
}

}  // namespace example::channel_table

// Parks a channel after Slack said it does not exist (or is archived), so
// that messages for it are dropped instead of spending rate budget and
// retries on a channel that cannot receive them. A message an operator
// replayed (sdk::kReplayedAttribute) passes a parked channel as a probe, and
// any delivery to a parked channel un-parks it.
#ifndef SLACK_PROXY_PLUGINS_DENY_LIST_H
#define SLACK_PROXY_PLUGINS_DENY_LIST_H

#include <chrono>
#include <cstddef>
#include <set>
#include <string>
#include <unordered_map>
#include <vector>

#include <slack_proxy/sdk/host.h>
#include <slack_proxy/sdk/settings.h>
#include <slack_proxy/sdk/stages.h>

namespace slack_proxy::plugins::deny_list {

struct Settings {
  std::chrono::milliseconds ttl{std::chrono::minutes(15)};
  std::vector<std::string> errors{"channel_not_found"};
};

inline const sdk::Schema<Settings> kSchema{
    sdk::setting("ttl", &Settings::ttl, "how long a channel stays parked").above(0).default_to("15m"),
    sdk::setting("errors", &Settings::errors,
                 "Slack error codes that park a channel, e.g. add \"is_archived\"")
        .at_least(1)
        .default_to("[\"channel_not_found\"]"),
};

inline constexpr const char* kSizeMetric = "slackproxy_denylist_size";

class DenyList final : public sdk::Guard {
 public:
  // Throws std::invalid_argument when `errors` holds an empty code.
  DenyList(sdk::HostServices& host, const Settings& settings);

  sdk::GuardVerdict before_send(const sdk::Message& message, sdk::SteadyTime now) noexcept override;
  void after_result(const sdk::Message& message, const sdk::SendResult& result,
                    sdk::SteadyTime now) noexcept override;

  std::size_t parked_count() const noexcept { return parked_.size(); }

 private:
  struct Parked {
    sdk::SteadyTime until;
    std::string error;
    std::string channel;  // for the log line when parking ends
  };

  void drop_expired(sdk::SteadyTime now);
  void publish_size() noexcept;

  sdk::Logger& log_;
  sdk::Gauge& size_;
  std::chrono::milliseconds ttl_;
  std::set<std::string, std::less<>> errors_;
  std::unordered_map<std::string, Parked> parked_;
  // Earliest `until` in parked_, so that expiry sweeps run only when due.
  sdk::SteadyTime next_expiry_ = sdk::SteadyTime::max();
};

}  // namespace slack_proxy::plugins::deny_list

#endif  // SLACK_PROXY_PLUGINS_DENY_LIST_H

// Parks a channel after Slack said it does not exist (or is archived), so
// that messages for it are dropped instead of spending rate budget and
// retries on a channel that cannot receive them. A message an operator
// replayed (sdk::kReplayedAttribute) passes a parked channel as a probe, and
// any delivery to a parked channel un-parks it.
//
// Parked channels are the stage's shared marks (HostServices::shared_marks()):
// with the proxy's [redis], a channel one replica parks is parked on every
// replica running the same pipeline and stage, and a delivery on any of them
// un-parks it everywhere.
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

  // Channels parked now, as this replica knows them.
  std::size_t parked_count(sdk::SteadyTime now) noexcept { return marks_.count(now); }

 private:
  // A parked channel this replica has seen (parked itself, or found parked
  // by another replica), for the log line when its parking ends.
  struct Seen {
    sdk::SteadyTime until;
    std::string channel;
  };

  void note_ended(sdk::SteadyTime now);
  void publish_size(sdk::SteadyTime now) noexcept;

  sdk::Logger& log_;
  sdk::Gauge& size_;
  sdk::SharedMarks& marks_;  // key: sdk::channel_key(); note: the error that parked it
  std::chrono::milliseconds ttl_;
  std::set<std::string, std::less<>> errors_;
  std::unordered_map<std::string, Seen> seen_;
  // Earliest `until` in seen_, so that the sweep for ended parkings runs only
  // when one is due.
  sdk::SteadyTime next_expiry_ = sdk::SteadyTime::max();
  // Another replica's parkings change the size too: published at least this often.
  sdk::SteadyTime size_published_at_{};
};

}  // namespace slack_proxy::plugins::deny_list

#endif  // SLACK_PROXY_PLUGINS_DENY_LIST_H

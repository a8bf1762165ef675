// Queue helpers shared by every backend (see queue.h).
#include "queue/queue.h"

namespace slack_proxy {

const char* to_string(DeadLetterKind kind) {
  switch (kind) {
    case DeadLetterKind::NotProcessed:
      return "not_processed";
    case DeadLetterKind::Failed:
    default:
      return "failed";
  }
}

std::optional<DeadLetterKind> dead_letter_kind_from(std::string_view text) {
  if (text == "failed") return DeadLetterKind::Failed;
  if (text == "not_processed") return DeadLetterKind::NotProcessed;
  return std::nullopt;
}

std::string lane_key(const sdk::Message& m) {
  std::string key;
  key.reserve(m.pipeline.size() + m.workspace.size() + m.channel.size() + 2);
  key.append(m.pipeline).push_back('/');
  if (!m.workspace.empty()) key.append(m.workspace).push_back(':');
  key.append(m.channel);
  return key;
}

std::string_view pipeline_of_lane(std::string_view lane) {
  return lane.substr(0, lane.find('/'));
}

void Queue::push_async(sdk::Message message, const PushOptions& options, PushDone done) {
  done(push(std::move(message), options));
}

}  // namespace slack_proxy

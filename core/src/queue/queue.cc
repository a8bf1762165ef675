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
  for (const char c : m.workspace) {
    if (c == ':')
      key.append("%3A");
    else if (c == '%')
      key.append("%25");
    else
      key.push_back(c);
  }
  key.push_back(':');
  key.append(m.channel);
  return key;
}

std::string_view pipeline_of_lane(std::string_view lane) {
  return lane.substr(0, lane.find('/'));
}

std::string_view scope_of_lane(std::string_view lane) {
  return lane.substr(0, lane.find(':'));
}

std::string_view channel_of_lane(std::string_view lane) {
  const auto colon = lane.find(':');
  return colon == std::string_view::npos ? std::string_view() : lane.substr(colon + 1);
}

std::string workspace_of_lane(std::string_view lane) {
  const std::string_view scope = scope_of_lane(lane);
  const std::string_view escaped = scope.substr(std::min(scope.size(), scope.find('/') + 1));
  std::string out;
  for (std::size_t i = 0; i < escaped.size(); ++i) {
    if (escaped.compare(i, 3, "%3A") == 0) {
      out.push_back(':');
      i += 2;
    } else if (escaped.compare(i, 3, "%25") == 0) {
      out.push_back('%');
      i += 2;
    } else {
      out.push_back(escaped[i]);
    }
  }
  return out;
}

void Queue::push_async(sdk::Message message, const PushOptions& options, PushDone done) {
  done(push(std::move(message), options));
}

}  // namespace slack_proxy

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

void Queue::push_async(sdk::Message message, const PushOptions& options, PushDone done) {
  done(push(std::move(message), options));
}

}  // namespace slack_proxy

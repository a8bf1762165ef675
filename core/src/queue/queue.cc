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

}  // namespace slack_proxy

#include "log_context.h"

#include <utility>

namespace slack_proxy {
namespace {

thread_local const LogScope* t_innermost = nullptr;

}  // namespace

LogScope::LogScope(LogFields fields) noexcept : fields_(std::move(fields)), outer_(t_innermost) {
  t_innermost = this;
}

LogScope::~LogScope() { t_innermost = outer_; }

const LogScope* LogScope::innermost() noexcept { return t_innermost; }

const std::string& current_log_field(std::string LogFields::*field) noexcept {
  static const std::string kNone;
  for (const LogScope* s = t_innermost; s != nullptr; s = s->outer()) {
    const std::string& value = s->fields().*field;
    if (!value.empty()) return value;
  }
  return kNone;
}

}  // namespace slack_proxy

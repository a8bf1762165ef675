// What a log line is about beyond its words: the pipeline, channel, caller
// and error of the request or delivery this thread is handling. The JSON log
// format writes them as fields of each record (log_format.h), so that Loki
// or Elasticsearch can select on them; the text format leaves them out, its
// lines name what matters in words.
#pragma once

#include <string>

namespace slack_proxy {

// One scope's fields; an empty one is not known (or does not apply) here.
// None may hold a secret: a caller is named by its identity, never its key.
// Each has an initializer so that a scope names only what it knows
// ({.error = "denied"}) without a warning for the rest.
struct LogFields {
  std::string pipeline{};
  std::string channel{};     // as the caller named it at the ingress, as delivered to after
  std::string message_id{};  // the queue's id, also the dead letter's
  std::string client{};      // the caller's identity as its authenticator named it
  std::string remote{};      // the caller's address, at the ingress
  std::string error{};       // the refusal's or the outcome's error code
};

// Sets `fields` for every line this thread logs while the scope lives, the
// lines of the stages it calls included (they log through the same logger on
// the same thread). A field left empty keeps the value of the scope this one
// was opened in. Scopes nest like the blocks that hold them: open one on the
// stack of the thread that logs, never hand it to another thread. The fields
// are copies, so a scope outlives whatever it was filled from.
class LogScope {
 public:
  explicit LogScope(LogFields fields) noexcept;
  ~LogScope();
  LogScope(const LogScope&) = delete;
  LogScope& operator=(const LogScope&) = delete;

  // This thread's innermost scope; null when none is open, which costs a
  // log line nothing.
  static const LogScope* innermost() noexcept;
  const LogScope* outer() const noexcept { return outer_; }
  const LogFields& fields() const noexcept { return fields_; }

 private:
  LogFields fields_;
  const LogScope* outer_;
};

// The value of one field (e.g. &LogFields::channel) for this thread: the
// innermost scope's that is not empty; empty when none has one.
const std::string& current_log_field(std::string LogFields::*field) noexcept;

}  // namespace slack_proxy

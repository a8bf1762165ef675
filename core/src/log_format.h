// How the proxy's log records are written ([log] format): "text", one line
// a record for people, or "json", one JSON object a line for Loki or
// Elasticsearch. Both redact anything shaped like a secret (redact.h) in
// every line, whatever the call site did.
#pragma once

#include <memory>
#include <string>
#include <string_view>

#include <spdlog/formatter.h>

namespace slack_proxy {

// "2026-12-05T00:00:00.000+00:00 info  message": the format the proxy has
// always written (local time and its offset, the level, the message).
inline constexpr const char* kTextLogPattern = "%Y-%m-%dT%H:%M:%S.%e%z %^%-5l%$ %v";

// One record a line, nothing else on it:
//   {"time":"2026-12-05T00:00:00.000Z","level":"warn","message":"...",
//    "pipeline":"slack","channel":"#alerts","message_id":"...","client":"team-a",
//    "remote":"10.0.0.5:51234","error":"channel_not_found"}
// `time` is RFC 3339 in UTC with milliseconds; `level` is trace, debug,
// info, warn, error or critical (the names [log] level takes); the fields
// after `message` are those of this thread's log scope (log_context.h), in
// that order, each only when known. Every string is escaped as JSON wants
// (quotes, backslashes, control characters), and a byte that is not valid
// UTF-8 becomes U+FFFD, so no message or field value can end the line or add
// a field. Used under its sink's lock, as spdlog does: one buffer is reused.
class JsonLogFormatter final : public spdlog::formatter {
 public:
  void format(const spdlog::details::log_msg& msg, spdlog::memory_buf_t& dest) override;
  std::unique_ptr<spdlog::formatter> clone() const override;

 private:
  std::string line_;
};

// kTextLogPattern, the message redacted first when it holds a secret.
// Colours on a terminal as before.
class TextLogFormatter final : public spdlog::formatter {
 public:
  TextLogFormatter();
  void format(const spdlog::details::log_msg& msg, spdlog::memory_buf_t& dest) override;
  std::unique_ptr<spdlog::formatter> clone() const override;

 private:
  std::unique_ptr<spdlog::formatter> pattern_;
};

// The formatter of a [log] format ("text" or "json", which config
// validation allows); throws std::invalid_argument for any other.
std::unique_ptr<spdlog::formatter> make_log_formatter(std::string_view format);

}  // namespace slack_proxy

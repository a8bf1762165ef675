#include "log_format.h"

#include <chrono>
#include <cstdio>
#include <stdexcept>
#include <string>
#include <utility>

#include <spdlog/pattern_formatter.h>

#include "json_text.h"
#include "log_context.h"
#include "redact.h"

namespace slack_proxy {
namespace {

std::string_view view_of(spdlog::string_view_t s) { return {s.data(), s.size()}; }

// The names [log] level takes (spdlog says "warning" and "err").
std::string_view level_name(spdlog::level::level_enum level) {
  switch (level) {
    case spdlog::level::trace: return "trace";
    case spdlog::level::debug: return "debug";
    case spdlog::level::info: return "info";
    case spdlog::level::warn: return "warn";
    case spdlog::level::err: return "error";
    case spdlog::level::critical: return "critical";
    default: return "off";
  }
}

// "2026-12-05T00:00:00.000Z"
void append_utc_time(std::string& out, spdlog::log_clock::time_point t) {
  using namespace std::chrono;
  const auto ms = floor<milliseconds>(t);
  const auto day = floor<days>(ms);
  const year_month_day date{day};
  const hh_mm_ss time{ms - day};
  char buf[64];
  const int n = std::snprintf(buf, sizeof(buf), "%04d-%02u-%02uT%02d:%02d:%02d.%03dZ",
                              static_cast<int>(date.year()), static_cast<unsigned>(date.month()),
                              static_cast<unsigned>(date.day()),
                              static_cast<int>(time.hours().count()),
                              static_cast<int>(time.minutes().count()),
                              static_cast<int>(time.seconds().count()),
                              static_cast<int>(time.subseconds().count()));
  if (n > 0) out.append(buf, static_cast<std::size_t>(n));
}

// As a JSON string, redacted when it holds a secret: the fields come from
// callers (a channel is whatever they sent), the message from call sites
// that should have redacted it already.
void append_redacted(std::string& out, std::string_view text) {
  if (holds_secret(text)) {
    append_json_string(out, redact_secrets(text));
  } else {
    append_json_string(out, text);
  }
}

struct FieldName {
  const char* name;
  std::string LogFields::*field;
};
constexpr FieldName kFields[] = {
    {"pipeline", &LogFields::pipeline}, {"channel", &LogFields::channel},
    {"message_id", &LogFields::message_id}, {"client", &LogFields::client},
    {"remote", &LogFields::remote},     {"error", &LogFields::error},
};

}  // namespace

void JsonLogFormatter::format(const spdlog::details::log_msg& msg, spdlog::memory_buf_t& dest) {
  std::string& line = line_;
  line.clear();
  line += R"({"time":")";
  append_utc_time(line, msg.time);
  line += R"(","level":")";
  line += level_name(msg.level);
  line += R"(","message":)";
  append_redacted(line, view_of(msg.payload));
  if (LogScope::innermost() != nullptr) {
    for (const FieldName& f : kFields) {
      const std::string& value = current_log_field(f.field);
      if (value.empty()) continue;
      line += ",\"";
      line += f.name;
      line += "\":";
      append_redacted(line, value);
    }
  }
  line += "}\n";
  dest.append(line.data(), line.data() + line.size());
}

std::unique_ptr<spdlog::formatter> JsonLogFormatter::clone() const {
  return std::make_unique<JsonLogFormatter>();
}

TextLogFormatter::TextLogFormatter()
    : pattern_(std::make_unique<spdlog::pattern_formatter>(kTextLogPattern)) {}

void TextLogFormatter::format(const spdlog::details::log_msg& msg, spdlog::memory_buf_t& dest) {
  if (!holds_secret(view_of(msg.payload))) return pattern_->format(msg, dest);
  const std::string redacted = redact_secrets(view_of(msg.payload));
  spdlog::details::log_msg copy = msg;
  copy.payload = spdlog::string_view_t(redacted.data(), redacted.size());
  pattern_->format(copy, dest);
  // The colour sink reads where the level's colour goes from `msg`.
  msg.color_range_start = copy.color_range_start;
  msg.color_range_end = copy.color_range_end;
}

std::unique_ptr<spdlog::formatter> TextLogFormatter::clone() const {
  return std::make_unique<TextLogFormatter>();
}

std::unique_ptr<spdlog::formatter> make_log_formatter(std::string_view format) {
  if (format == "text") return std::make_unique<TextLogFormatter>();
  if (format == "json") return std::make_unique<JsonLogFormatter>();
  throw std::invalid_argument("unknown log format '" + std::string(format) +
                              "'; use text or json");
}

}  // namespace slack_proxy

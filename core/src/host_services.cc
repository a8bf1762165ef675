#include "host_services.h"

#include "redact.h"

namespace slack_proxy {
namespace {

spdlog::level::level_enum to_spdlog(sdk::LogLevel level) {
  switch (level) {
    case sdk::LogLevel::Trace: return spdlog::level::trace;
    case sdk::LogLevel::Debug: return spdlog::level::debug;
    case sdk::LogLevel::Info: return spdlog::level::info;
    case sdk::LogLevel::Warn: return spdlog::level::warn;
    case sdk::LogLevel::Error: return spdlog::level::err;
  }
  return spdlog::level::info;
}

}  // namespace

StageLogger::StageLogger(std::shared_ptr<spdlog::logger> sink, std::string prefix)
    : sink_(std::move(sink)), prefix_(std::move(prefix)) {}

bool StageLogger::enabled(sdk::LogLevel level) const noexcept {
  return sink_->should_log(to_spdlog(level));
}

void StageLogger::log(sdk::LogLevel level, std::string_view message) noexcept {
  try {
    const auto lvl = to_spdlog(level);
    if (!sink_->should_log(lvl)) return;
    sink_->log(lvl, "[{}] {}", prefix_, redact_secrets(message));
  } catch (...) {
    // A failing log sink must not take a plugin (or the proxy) down.
  }
}

}  // namespace slack_proxy

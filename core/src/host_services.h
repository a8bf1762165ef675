// The host's implementations of the SDK services: a spdlog-backed logger
// that names the stage, the system clock, and the per-stage bundle (which
// also makes the stage's HTTP clients).
#pragma once

#include <memory>
#include <string>

#include <spdlog/logger.h>

#include <slack_proxy/sdk/host.h>

namespace slack_proxy {

class SystemClock final : public sdk::Clock {
 public:
  sdk::SteadyTime now() const noexcept override { return std::chrono::steady_clock::now(); }
  sdk::WallTime wall_now() const noexcept override { return std::chrono::system_clock::now(); }
};

// Logs to the proxy's logger as "[pipeline/stage] message", redacting
// anything that looks like a Slack token on the way.
class StageLogger final : public sdk::Logger {
 public:
  StageLogger(std::shared_ptr<spdlog::logger> sink, std::string prefix);
  bool enabled(sdk::LogLevel level) const noexcept override;
  void log(sdk::LogLevel level, std::string_view message) noexcept override;

 private:
  std::shared_ptr<spdlog::logger> sink_;
  std::string prefix_;
};

// What one stage instance receives. Owned by the pipeline, outlives the stage.
class StageHost final : public sdk::HostServices {
 public:
  StageHost(std::shared_ptr<spdlog::logger> log, std::string prefix, sdk::Metrics& metrics,
            const sdk::Clock& clock)
      : logger_(std::move(log), std::move(prefix)), metrics_(metrics), clock_(clock) {}
  sdk::Logger& logger() noexcept override { return logger_; }
  sdk::Metrics& metrics() noexcept override { return metrics_; }
  const sdk::Clock& clock() noexcept override { return clock_; }
  // A new client (http/http_client.h) with the host's clock and this
  // process's proxy variables; null with a secret-free `error` when the
  // settings cannot be used.
  std::shared_ptr<sdk::HttpClient> http_client(const sdk::HttpClientSettings& settings,
                                               std::string& error) noexcept override;

 private:
  StageLogger logger_;
  sdk::Metrics& metrics_;
  const sdk::Clock& clock_;
};

}  // namespace slack_proxy

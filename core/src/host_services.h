// The host's implementations of the SDK services: a spdlog-backed logger
// that names the stage, the system clock, and the per-stage bundle (which
// also makes the stage's HTTP clients and hands out the process's shared
// buckets).
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
// anything that looks like a Slack token on the way. A stage is called on
// the thread handling the request or the message, so its lines carry that
// thread's log fields (log_context.h) like the proxy's own.
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
  // `buckets` is shared by every stage of the process: kept alive by each.
  // `marks` is this stage's set (shared_marks.h); null: one of its own in
  // this process.
  StageHost(std::shared_ptr<spdlog::logger> log, std::string prefix, sdk::Metrics& metrics,
            const sdk::Clock& clock, std::shared_ptr<sdk::SharedBuckets> buckets,
            std::shared_ptr<sdk::SharedMarks> marks = nullptr)
      : logger_(std::move(log), std::move(prefix)),
        metrics_(metrics),
        clock_(clock),
        buckets_(std::move(buckets)),
        marks_(marks ? std::move(marks) : std::make_shared<sdk::LocalSharedMarks>()) {}
  sdk::Logger& logger() noexcept override { return logger_; }
  sdk::Metrics& metrics() noexcept override { return metrics_; }
  const sdk::Clock& clock() noexcept override { return clock_; }
  // A new client (http/http_client.h) with the host's clock and this
  // process's proxy variables; null with a secret-free `error` when the
  // settings cannot be used.
  std::shared_ptr<sdk::HttpClient> http_client(const sdk::HttpClientSettings& settings,
                                               std::string& error) noexcept override;
  sdk::SharedBuckets& shared_buckets() noexcept override { return *buckets_; }
  std::string budget_id(std::string_view credential) const noexcept override;
  sdk::SharedMarks& shared_marks() noexcept override { return *marks_; }

 private:
  StageLogger logger_;
  sdk::Metrics& metrics_;
  const sdk::Clock& clock_;
  std::shared_ptr<sdk::SharedBuckets> buckets_;
  std::shared_ptr<sdk::SharedMarks> marks_;
};

// HostServices::budget_id(): "b-" and the first 32 hex digits of the
// SHA-256 of a domain tag and the credential. Unsalted on purpose, so that
// every replica names a token's budget alike; a Slack token carries far more
// entropy than a digest of it could leak. "" when hashing fails.
std::string budget_id_of(std::string_view credential) noexcept;

}  // namespace slack_proxy

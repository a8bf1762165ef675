// Reads series back out of a prometheus-cpp registry, so core tests assert
// what a scrape would show rather than how CoreMetrics stores it.
#pragma once

#include <map>
#include <memory>
#include <optional>
#include <string>

#include <prometheus/registry.h>
#include <spdlog/logger.h>
#include <spdlog/sinks/null_sink.h>

namespace slack_proxy::test_support {

// Value of the counter or gauge `name` whose labels are exactly `labels`;
// nullopt when no such series is exported.
inline std::optional<double> series_value(const prometheus::Registry& registry,
                                          const std::string& name,
                                          const std::map<std::string, std::string>& labels) {
  for (const auto& family : registry.Collect()) {
    if (family.name != name) continue;
    for (const auto& metric : family.metric) {
      std::map<std::string, std::string> have;
      for (const auto& label : metric.label) have[label.name] = label.value;
      if (have != labels) continue;
      return family.type == prometheus::MetricType::Gauge ? metric.gauge.value
                                                          : metric.counter.value;
    }
  }
  return std::nullopt;
}

// As series_value, but 0 when no such series exists (a counter never
// incremented reads 0 too).
inline double metric_value(const prometheus::Registry& registry, const std::string& name,
                           const std::map<std::string, std::string>& labels = {}) {
  return series_value(registry, name, labels).value_or(0.0);
}

// Whether the series exists at all: a gauge that is not exported is not 0.
inline bool has_series(const prometheus::Registry& registry, const std::string& name,
                       const std::map<std::string, std::string>& labels = {}) {
  return series_value(registry, name, labels).has_value();
}

inline std::shared_ptr<spdlog::logger> null_logger() {
  return std::make_shared<spdlog::logger>("test", std::make_shared<spdlog::sinks::null_sink_mt>());
}

}  // namespace slack_proxy::test_support

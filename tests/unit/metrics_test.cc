#include "metrics.h"

#include <memory>
#include <sstream>
#include <string>

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <spdlog/logger.h>
#include <spdlog/sinks/ostream_sink.h>

#include "metric_values.h"

namespace slack_proxy {
namespace {

using ::testing::AllOf;
using ::testing::HasSubstr;
using ::testing::Not;
using test_support::metric_value;

class PrometheusMetricsTest : public ::testing::Test {
 protected:
  std::ostringstream log_text;
  std::shared_ptr<spdlog::logger> log = std::make_shared<spdlog::logger>(
      "metrics", std::make_shared<spdlog::sinks::ostream_sink_mt>(log_text));
  PrometheusMetrics metrics{log};
};

TEST_F(PrometheusMetricsTest, CounterGaugeAndHistogramAppearInTheExpositionWithLabels) {
  metrics.counter("slackproxy_test_sends_total", "sends", {{"stage", "sink"}}).inc(2);
  metrics.gauge("slackproxy_test_parked", "parked channels", {{"stage", "deny"}}).set(7);
  metrics.histogram("slackproxy_test_latency_seconds", "latency", {0.1, 1.0}, {{"stage", "sink"}})
      .observe(0.5);

  const std::string text = metrics.serialize();

  EXPECT_THAT(text, HasSubstr("# TYPE slackproxy_test_sends_total counter"));
  EXPECT_THAT(text, HasSubstr(R"(slackproxy_test_sends_total{stage="sink"} 2)"));
  EXPECT_THAT(text, HasSubstr("# TYPE slackproxy_test_parked gauge"));
  EXPECT_THAT(text, HasSubstr(R"(slackproxy_test_parked{stage="deny"} 7)"));
  EXPECT_THAT(text, HasSubstr("# TYPE slackproxy_test_latency_seconds histogram"));
  EXPECT_THAT(text, HasSubstr(R"(slackproxy_test_latency_seconds_bucket{stage="sink",le="0.1"} 0)"));
  EXPECT_THAT(text, HasSubstr(R"(slackproxy_test_latency_seconds_bucket{stage="sink",le="1"} 1)"));
  EXPECT_THAT(text, HasSubstr(R"(slackproxy_test_latency_seconds_count{stage="sink"} 1)"));
  EXPECT_THAT(text, HasSubstr(R"(slackproxy_test_latency_seconds_sum{stage="sink"} 0.5)"));
}

TEST_F(PrometheusMetricsTest, SameNameAndLabelsReturnTheSameSeries) {
  sdk::Counter& first = metrics.counter("slackproxy_test_total", "help", {{"stage", "a"}});
  sdk::Counter& again = metrics.counter("slackproxy_test_total", "help", {{"stage", "a"}});
  sdk::Counter& other = metrics.counter("slackproxy_test_total", "help", {{"stage", "b"}});

  EXPECT_EQ(&first, &again);
  EXPECT_NE(&first, &other);
  first.inc();
  again.inc();
  EXPECT_EQ(metric_value(metrics.registry(), "slackproxy_test_total", {{"stage", "a"}}), 2);
  EXPECT_EQ(metric_value(metrics.registry(), "slackproxy_test_total", {{"stage", "b"}}), 0);
}

TEST_F(PrometheusMetricsTest, TypeConflictYieldsASeriesThatRecordsNothingAndIsLogged) {
  metrics.counter("slackproxy_test_conflict", "help", {}).inc();

  metrics.gauge("slackproxy_test_conflict", "help", {}).set(42);

  const std::string text = metrics.serialize();
  EXPECT_THAT(text, HasSubstr("# TYPE slackproxy_test_conflict counter"));
  EXPECT_THAT(text, Not(HasSubstr("42")));
  EXPECT_EQ(metric_value(metrics.registry(), "slackproxy_test_conflict"), 1);
  EXPECT_THAT(log_text.str(), HasSubstr("slackproxy_test_conflict"));
}

// sdk/host.h: "A name reused with another type or help text ... yields a
// series that records nothing, and the host logs why."
TEST_F(PrometheusMetricsTest, HelpConflictYieldsASeriesThatRecordsNothingAndIsLogged) {
  metrics.counter("slackproxy_test_help", "first help", {}).inc();

  metrics.counter("slackproxy_test_help", "second help", {}).inc(5);

  EXPECT_EQ(metric_value(metrics.registry(), "slackproxy_test_help"), 1);
  EXPECT_THAT(log_text.str(), HasSubstr("slackproxy_test_help"));
}

TEST_F(PrometheusMetricsTest, InvalidNameYieldsASeriesThatRecordsNothingAndIsLogged) {
  metrics.counter("not a valid name!", "help", {}).inc();

  EXPECT_THAT(metrics.serialize(), Not(HasSubstr("not a valid name!")));
  EXPECT_THAT(log_text.str(), HasSubstr("not a valid name!"));
}

TEST(CoreMetricsTest, SeriesKeepTheOriginalToolsNamesAndChannelLabel) {
  prometheus::Registry registry;
  CoreMetrics metrics(registry);

  metrics.received("#a");
  metrics.failed("#a");
  metrics.retried("#a");
  metrics.succeeded("#a");
  metrics.not_processed("#a");
  metrics.set_queue_size(3);

  for (const char* name :
       {"slackproxy_requests_received_total", "slackproxy_requests_failed_total",
        "slackproxy_requests_retried_total", "slackproxy_requests_succeeded_total",
        "slackproxy_requests_not_processed_total"}) {
    EXPECT_EQ(metric_value(registry, name, {{"channel", "#a"}}), 1) << name;
  }
  EXPECT_EQ(metric_value(registry, "slackproxy_queue_size"), 3);
}

TEST(CoreMetricsTest, RejectionsAreCountedByErrorCode) {
  prometheus::Registry registry;
  CoreMetrics metrics(registry);

  metrics.rejected("queue_full");
  metrics.rejected("queue_full");
  metrics.rejected("no_text");

  EXPECT_EQ(metric_value(registry, "slackproxy_requests_rejected_total", {{"error", "queue_full"}}),
            2);
  EXPECT_EQ(metric_value(registry, "slackproxy_requests_rejected_total", {{"error", "no_text"}}), 1);
}

}  // namespace

TEST(CoreMetricsTest, ChannelLabelsAreCappedSoCallersCannotGrowTheRegistry) {
  prometheus::Registry registry;
  CoreMetrics metrics(registry, /*max_channel_labels=*/2);

  metrics.received("#a");
  metrics.received("#b");
  metrics.received("#c");          // over the cap
  metrics.failed("#d");            // over the cap, another family
  metrics.received("#a");          // known channels keep their own series
  metrics.dead_lettered("#e", "failed");

  using test_support::metric_value;
  EXPECT_EQ(metric_value(registry, "slackproxy_requests_received_total", {{"channel", "#a"}}), 2);
  EXPECT_EQ(metric_value(registry, "slackproxy_requests_received_total", {{"channel", "#b"}}), 1);
  EXPECT_EQ(metric_value(registry, "slackproxy_requests_received_total", {{"channel", "_other"}}), 1);
  EXPECT_EQ(metric_value(registry, "slackproxy_requests_failed_total", {{"channel", "_other"}}), 1);
  EXPECT_EQ(metric_value(registry, "slackproxy_dead_lettered_total",
                         {{"channel", "_other"}, {"kind", "failed"}}),
            1);
  for (const auto& family : registry.Collect()) {
    for (const auto& m : family.metric) {
      for (const auto& l : m.label) {
        if (l.name == "channel") {
          EXPECT_TRUE(l.value == "#a" || l.value == "#b" || l.value == "_other") << l.value;
        }
      }
    }
  }
}

}  // namespace slack_proxy

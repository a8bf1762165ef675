#include "metrics.h"

#include <algorithm>
#include <atomic>
#include <sstream>
#include <unordered_map>

#include <prometheus/text_serializer.h>

namespace slack_proxy {
namespace {
// Seconds: from "immediately" to "Slack was down for ten minutes".
const prometheus::Histogram::BucketBoundaries kLatencyBuckets = {
    0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 120, 300, 600};
}  // namespace

// One series handed to a plugin; forwards to prometheus-cpp (or nowhere).
struct PrometheusMetrics::Series final : sdk::Counter, sdk::Gauge, sdk::Histogram {
  prometheus::Counter* counter = nullptr;
  prometheus::Gauge* gauge = nullptr;
  prometheus::Histogram* histogram = nullptr;

  void inc(double by) noexcept override {
    if (counter != nullptr && by >= 0) counter->Increment(by);
  }
  void set(double v) noexcept override {
    if (gauge != nullptr) gauge->Set(v);
  }
  void add(double d) noexcept override {
    if (gauge != nullptr) gauge->Increment(d);
  }
  void observe(double v) noexcept override {
    if (histogram != nullptr) histogram->Observe(v);
  }
};

enum FamilyType { kCounter = 0, kGauge = 1, kHistogram = 2 };

struct PrometheusMetrics::FamilyEntry {
  int type;
  std::string help;
  void* family;  // prometheus::Family<T>* for the T named by `type`
  std::map<sdk::Labels, std::unique_ptr<Series>> series;
};

PrometheusMetrics::PrometheusMetrics(std::shared_ptr<spdlog::logger> log)
    : log_(std::move(log)),
      registry_(std::make_shared<prometheus::Registry>()),
      noop_(std::make_unique<Series>()) {}

PrometheusMetrics::~PrometheusMetrics() = default;

template <typename Make>
PrometheusMetrics::Series& PrometheusMetrics::find_or_make(std::string_view name,
                                                           std::string_view help, int type,
                                                           const sdk::Labels& labels,
                                                           Make&& make) noexcept {
  try {
    std::lock_guard<std::mutex> lock(mutex_);
    auto it = families_.find(name);
    if (it == families_.end()) {
      auto entry = std::make_unique<FamilyEntry>();
      entry->type = type;
      entry->help = std::string(help);
      entry->family = nullptr;
      it = families_.emplace(std::string(name), std::move(entry)).first;
    } else if (it->second->type != type || it->second->help != help) {
      // Prometheus allows one type and one help text per name; two plugins
      // disagreeing is a bug to surface, not to paper over.
      log_->error("metric '{}' requested again with a different {}; this use records nothing", name,
                  it->second->type != type ? "type" : "help text");
      return *noop_;
    }
    FamilyEntry& entry = *it->second;
    auto& slot = entry.series[labels];
    if (!slot) {
      slot = std::make_unique<Series>();
      std::map<std::string, std::string> label_map(labels.begin(), labels.end());
      make(entry, *slot, std::string(name), label_map);
    }
    return *slot;
  } catch (const std::exception& e) {
    log_->error("metric '{}' could not be created ({}); it records nothing", name, e.what());
    return *noop_;
  }
}

sdk::Counter& PrometheusMetrics::counter(std::string_view name, std::string_view help,
                                         const sdk::Labels& labels) noexcept {
  return find_or_make(name, help, kCounter, labels,
                      [this](FamilyEntry& e, Series& s, const std::string& n, const auto& l) {
                        if (e.family == nullptr)
                          e.family = &prometheus::BuildCounter().Name(n).Help(e.help).Register(
                              *registry_);
                        s.counter = &static_cast<prometheus::Family<prometheus::Counter>*>(e.family)
                                         ->Add(l);
                      });
}

sdk::Gauge& PrometheusMetrics::gauge(std::string_view name, std::string_view help,
                                     const sdk::Labels& labels) noexcept {
  return find_or_make(name, help, kGauge, labels,
                      [this](FamilyEntry& e, Series& s, const std::string& n, const auto& l) {
                        if (e.family == nullptr)
                          e.family = &prometheus::BuildGauge().Name(n).Help(e.help).Register(
                              *registry_);
                        s.gauge =
                            &static_cast<prometheus::Family<prometheus::Gauge>*>(e.family)->Add(l);
                      });
}

sdk::Histogram& PrometheusMetrics::histogram(std::string_view name, std::string_view help,
                                             const std::vector<double>& buckets,
                                             const sdk::Labels& labels) noexcept {
  return find_or_make(
      name, help, kHistogram, labels,
      [this, &buckets](FamilyEntry& e, Series& s, const std::string& n, const auto& l) {
        if (e.family == nullptr)
          e.family = &prometheus::BuildHistogram().Name(n).Help(e.help).Register(*registry_);
        s.histogram = &static_cast<prometheus::Family<prometheus::Histogram>*>(e.family)->Add(
            l, prometheus::Histogram::BucketBoundaries(buckets.begin(), buckets.end()));
      });
}

std::string PrometheusMetrics::serialize() const {
  prometheus::TextSerializer serializer;
  std::ostringstream out;
  serializer.Serialize(out, registry_->Collect());
  return out.str();
}

CoreMetrics::CoreMetrics(prometheus::Registry& registry, std::size_t max_channel_labels)
    : received_(prometheus::BuildCounter()
                    .Name("slackproxy_requests_received_total")
                    .Help("Messages accepted by the ingress, by requested channel")
                    .Register(registry)),
      failed_(prometheus::BuildCounter()
                  .Name("slackproxy_requests_failed_total")
                  .Help("Messages given up on (permanent error or retries exhausted)")
                  .Register(registry)),
      retried_(prometheus::BuildCounter()
                   .Name("slackproxy_requests_retried_total")
                   .Help("Delivery attempts scheduled again after a transient failure")
                   .Register(registry)),
      succeeded_(prometheus::BuildCounter()
                     .Name("slackproxy_requests_succeeded_total")
                     .Help("Messages the pipeline's sink delivered")
                     .Register(registry)),
      not_processed_(prometheus::BuildCounter()
                         .Name("slackproxy_requests_not_processed_total")
                         .Help("Messages dropped by a guard, e.g. a deny-listed channel")
                         .Register(registry)),
      rejected_(prometheus::BuildCounter()
                    .Name("slackproxy_requests_rejected_total")
                    .Help("Requests refused at ingress, by error code (queue_full, no_text, ...)")
                    .Register(registry)),
      rate_limited_(prometheus::BuildCounter()
                        .Name("slackproxy_rate_limited_total")
                        .Help("Sends refused with back-pressure (Slack's 429); the channel or "
                              "workspace waits as long as the receiver asked")
                        .Register(registry)),
      plugin_exceptions_(prometheus::BuildCounter()
                             .Name("slackproxy_plugin_exceptions_total")
                             .Help("Exceptions that escaped a stage method and were contained "
                                   "(that request or attempt failed), by pipeline, stage and "
                                   "method")
                             .Register(registry)),
      queue_size_(&prometheus::BuildGauge()
                       .Name("slackproxy_queue_size")
                       .Help("Messages queued or in flight")
                       .Register(registry)
                       .Add({})),
      queue_wait_(&prometheus::BuildHistogram()
                       .Name("slackproxy_queue_wait_seconds")
                       .Help("Time from acceptance to the first delivery attempt")
                       .Register(registry)
                       .Add({}, kLatencyBuckets)),
      delivery_latency_(&prometheus::BuildHistogram()
                             .Name("slackproxy_delivery_latency_seconds")
                             .Help("Time from acceptance to delivery by the sink")
                             .Register(registry)
                             .Add({}, kLatencyBuckets)),
      channel_depth_(prometheus::BuildGauge()
                         .Name("slackproxy_channel_queue_depth")
                         .Help("Messages waiting or in flight, per delivery channel")
                         .Register(registry)),
      channel_oldest_(prometheus::BuildGauge()
                          .Name("slackproxy_channel_oldest_age_seconds")
                          .Help("How long the oldest message waiting for a delivery channel has "
                                "waited since it was accepted")
                          .Register(registry)),
      queue_oldest_(&prometheus::BuildGauge()
                         .Name("slackproxy_queue_oldest_age_seconds")
                         .Help("How long the oldest message waiting anywhere has waited since "
                               "it was accepted; 0 when none waits")
                         .Register(registry)
                         .Add({})),
      duplicates_(prometheus::BuildCounter()
                      .Name("slackproxy_requests_duplicate_total")
                      .Help("Requests whose Idempotency-Key or client_msg_id was seen within "
                            "the dedup window; answered ok, not queued again")
                      .Register(registry)),
      client_requests_(prometheus::BuildCounter()
                           .Name("slackproxy_client_requests_total")
                           .Help("Requests of authenticated callers, by client name and outcome "
                                 "(accepted, duplicate or the error code)")
                           .Register(registry)),
      dead_lettered_(prometheus::BuildCounter()
                         .Name("slackproxy_dead_lettered_total")
                         .Help("Messages moved to the dead-letter store, by requested channel "
                               "and kind (failed, not_processed)")
                         .Register(registry)),
      queue_bytes_(&prometheus::BuildGauge()
                        .Name("slackproxy_queue_bytes")
                        .Help("Payload bytes queued or in flight")
                        .Register(registry)
                        .Add({})),
      dead_letters_(&prometheus::BuildGauge()
                         .Name("slackproxy_dead_letters")
                         .Help("Messages in the dead-letter store")
                         .Register(registry)
                         .Add({})),
      effective_rate_(prometheus::BuildGauge()
                          .Name("slackproxy_effective_rate")
                          .Help("Messages per second a workspace is held to after Slack's 429s "
                                "(learned pacing); absent while none is learned")
                          .Register(registry)),
      learned_channels_(&prometheus::BuildGauge()
                             .Name("slackproxy_learned_pacing_channels")
                             .Help("Channels held below their configured pace after a "
                                   "channel-scoped 429")
                             .Register(registry)
                             .Add({})),
      max_channel_labels_(max_channel_labels),
      instance_(next_instance()) {}

prometheus::Counter& CoreMetrics::counter(prometheus::Family<prometheus::Counter>& family,
                                          const std::string& channel) {
  // Series are never removed from these counter families, so a pointer
  // stays valid for this object's life. The cache holds only channels that
  // have their own label (at most max_channel_labels per family and
  // thread): an "_other" channel takes the locked path, so random channel
  // names cannot grow it.
  thread_local std::uint64_t owner = 0;
  thread_local std::unordered_map<const void*, std::unordered_map<std::string, prometheus::Counter*>>
      cache;
  if (owner != instance_) {
    cache.clear();
    owner = instance_;
  }
  auto& series = cache[&family];
  if (const auto it = series.find(channel); it != series.end()) return *it->second;
  const std::string name = label(channel);
  prometheus::Counter& c = family.Add({{"channel", name}});
  if (name == channel) series.emplace(channel, &c);
  return c;
}

std::uint64_t CoreMetrics::next_instance() {
  static std::atomic<std::uint64_t> instances{0};
  return ++instances;
}

std::string CoreMetrics::label(const std::string& channel) {
  std::lock_guard<std::mutex> lock(labels_mutex_);
  if (labels_.count(channel) != 0) return channel;
  if (labels_.size() < max_channel_labels_) {
    labels_.insert(channel);
    return channel;
  }
  return kOtherChannel;
}

template <typename Number>
void CoreMetrics::ChannelGauges::set(const std::map<std::string, Number>& values) {
  std::lock_guard<std::mutex> lock(mutex_);
  for (auto it = series_.begin(); it != series_.end();) {
    if (values.count(it->first) == 0) {
      family_.Remove(it->second);
      it = series_.erase(it);
    } else {
      ++it;
    }
  }
  for (const auto& [channel, value] : values) {
    auto& gauge = series_[channel];
    if (gauge == nullptr) gauge = &family_.Add({{"channel", channel}});
    gauge->Set(static_cast<double>(value));
  }
}

void CoreMetrics::set_channel_depths(const std::map<std::string, std::size_t>& depths) {
  channel_depth_.set(depths);
}

void CoreMetrics::set_oldest_ages(const std::map<std::string, double>& ages) {
  channel_oldest_.set(ages);
  double oldest = 0;
  for (const auto& [channel, age] : ages) oldest = std::max(oldest, age);
  queue_oldest_->Set(oldest);
}

}  // namespace slack_proxy

// Prometheus metrics: the registry behind sdk::Metrics, the proxy's own
// series (names and labels kept from the original Go tool), and the text
// exposition used by the metrics listener.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_set>

#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>
#include <spdlog/logger.h>

#include <slack_proxy/sdk/host.h>

namespace slack_proxy {

// sdk::Metrics on a prometheus-cpp registry. Thread-safe.
class PrometheusMetrics final : public sdk::Metrics {
 public:
  explicit PrometheusMetrics(std::shared_ptr<spdlog::logger> log);
  ~PrometheusMetrics() override;

  sdk::Counter& counter(std::string_view name, std::string_view help,
                        const sdk::Labels& labels) noexcept override;
  sdk::Gauge& gauge(std::string_view name, std::string_view help,
                    const sdk::Labels& labels) noexcept override;
  sdk::Histogram& histogram(std::string_view name, std::string_view help,
                            const std::vector<double>& buckets,
                            const sdk::Labels& labels) noexcept override;

  prometheus::Registry& registry() { return *registry_; }
  // Prometheus text format of everything registered.
  std::string serialize() const;

 private:
  struct Series;
  struct FamilyEntry;
  template <typename Make>
  Series& find_or_make(std::string_view name, std::string_view help, int type,
                       const sdk::Labels& labels, Make&& make) noexcept;

  std::shared_ptr<spdlog::logger> log_;
  std::shared_ptr<prometheus::Registry> registry_;
  std::mutex mutex_;
  std::map<std::string, std::unique_ptr<FamilyEntry>, std::less<>> families_;
  std::unique_ptr<Series> noop_;
};

// The proxy's own counters, labelled by the channel the caller asked for.
// Same names as fortio/slack-proxy so existing dashboards keep working.
//
// Callers choose channel names, so the label is capped: the first
// `max_channel_labels` distinct channels get their own series, every later
// one is counted under "_other" (and logged once), so a hostile caller
// cannot grow the registry without bound.
class CoreMetrics {
 public:
  static constexpr const char* kOtherChannel = "_other";
  explicit CoreMetrics(prometheus::Registry& registry, std::size_t max_channel_labels = 1000);

  void received(const std::string& channel) { counter(received_, channel).Increment(); }
  void failed(const std::string& channel) { counter(failed_, channel).Increment(); }
  void retried(const std::string& channel) { counter(retried_, channel).Increment(); }
  void succeeded(const std::string& channel) { counter(succeeded_, channel).Increment(); }
  void not_processed(const std::string& channel) { counter(not_processed_, channel).Increment(); }
  // Requests answered with an error, by Slack-style error code (a small,
  // fixed set, so safe as a label).
  void rejected(std::string_view error) {
    rejected_.Add({{"error", std::string(error)}}).Increment();
  }
  void set_queue_size(double n) { queue_size_->Set(n); }
  void set_queue_bytes(double n) { queue_bytes_->Set(n); }
  void set_dead_letters(double n) { dead_letters_->Set(n); }
  void duplicate(const std::string& channel) { counter(duplicates_, channel).Increment(); }
  // Requests of an authenticated caller (its configured name), by outcome:
  // accepted, duplicate, or the error code it was refused with.
  void client_request(const std::string& client, std::string_view outcome) {
    client_requests_.Add({{"client", client}, {"outcome", std::string(outcome)}}).Increment();
  }
  void dead_lettered(const std::string& channel, std::string_view kind) {
    dead_lettered_.Add({{"channel", label(channel)}, {"kind", std::string(kind)}}).Increment();
  }
  // A sink reported back-pressure (Slack's 429): the scope waits.
  void rate_limited(const std::string& channel) { counter(rate_limited_, channel).Increment(); }
  // An exception escaped a stage method and was contained by the host.
  // Pipeline and stage names come from the configuration, the method from
  // the SDK: a bounded label set.
  void plugin_exception(const std::string& pipeline, const std::string& stage,
                        std::string_view method) {
    plugin_exceptions_
        .Add({{"pipeline", pipeline}, {"stage", stage}, {"method", std::string(method)}})
        .Increment();
  }
  // From acceptance to the first delivery attempt, in seconds.
  void queue_wait(double seconds) { queue_wait_->Observe(seconds); }
  // From acceptance to delivery (the sink's success), in seconds.
  void delivery_latency(double seconds) { delivery_latency_->Observe(seconds); }
  // The rate a workspace is held to after Slack's 429s (LearnedPacing), per
  // second; the series is removed once the workspace has recovered.
  void set_effective_rate(const std::string& pipeline, const std::string& workspace,
                          double per_second) {
    effective_rate_.Add({{"pipeline", pipeline}, {"workspace", workspace}}).Set(per_second);
  }
  void clear_effective_rate(const std::string& pipeline, const std::string& workspace) {
    effective_rate_.Remove(&effective_rate_.Add({{"pipeline", pipeline}, {"workspace", workspace}}));
  }
  // Channels held below their configured pace after a channel-scoped 429.
  void set_learned_channels(double n) { learned_channels_->Set(n); }
  // Messages waiting per delivery channel; channels no longer listed are
  // removed, so idle channels leave no series behind.
  void set_channel_depths(const std::map<std::string, std::size_t>& depths);
  // How long each delivery channel's oldest stored message has waited since
  // it was accepted, in seconds, and the longest of them (0 when nothing
  // waits). Channels no longer listed are removed, as with the depths.
  void set_oldest_ages(const std::map<std::string, double>& ages);

 private:
  // The family's series for `channel` (or "_other"). Looked up first in a
  // per-thread cache, so that the ingress's event threads do not contend
  // on the family's and the labels' locks for every request.
  prometheus::Counter& counter(prometheus::Family<prometheus::Counter>& family,
                               const std::string& channel);
  static std::uint64_t next_instance();
  prometheus::Family<prometheus::Counter>& received_;
  prometheus::Family<prometheus::Counter>& failed_;
  prometheus::Family<prometheus::Counter>& retried_;
  prometheus::Family<prometheus::Counter>& succeeded_;
  prometheus::Family<prometheus::Counter>& not_processed_;
  prometheus::Family<prometheus::Counter>& rejected_;
  prometheus::Family<prometheus::Counter>& rate_limited_;
  prometheus::Family<prometheus::Counter>& plugin_exceptions_;
  prometheus::Gauge* queue_size_;
  prometheus::Histogram* queue_wait_;
  prometheus::Histogram* delivery_latency_;
  // A gauge per channel, replaced as a whole by each scrape: listed
  // channels are set, the others' series removed.
  class ChannelGauges {
   public:
    explicit ChannelGauges(prometheus::Family<prometheus::Gauge>& family) : family_(family) {}
    template <typename Number>
    void set(const std::map<std::string, Number>& values);

   private:
    prometheus::Family<prometheus::Gauge>& family_;
    std::mutex mutex_;
    std::map<std::string, prometheus::Gauge*> series_;
  };
  ChannelGauges channel_depth_;
  ChannelGauges channel_oldest_;
  prometheus::Gauge* queue_oldest_;
  prometheus::Family<prometheus::Counter>& duplicates_;
  prometheus::Family<prometheus::Counter>& client_requests_;
  prometheus::Family<prometheus::Counter>& dead_lettered_;
  prometheus::Gauge* queue_bytes_;
  prometheus::Gauge* dead_letters_;
  prometheus::Family<prometheus::Gauge>& effective_rate_;
  prometheus::Gauge* learned_channels_;
  // The label for `channel`: itself while under the cap, else kOtherChannel.
  std::string label(const std::string& channel);
  const std::size_t max_channel_labels_;
  const std::uint64_t instance_;  // tells this object's cached series from another's
  std::mutex labels_mutex_;
  std::unordered_set<std::string> labels_;
};

}  // namespace slack_proxy

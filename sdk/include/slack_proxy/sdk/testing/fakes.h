// Test doubles for plugin authors: a fake clock you move by hand, a logger
// that remembers lines, metrics you can read back, and a config view filled
// from a map. Together they let a stage be unit-tested without the proxy,
// without a network and without sleeping.
//
// Header-only; needs nothing but the standard library.
#ifndef SLACK_PROXY_SDK_TESTING_FAKES_H
#define SLACK_PROXY_SDK_TESTING_FAKES_H

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <variant>
#include <vector>

#include <slack_proxy/sdk/host.h>
#include <slack_proxy/sdk/settings.h>

namespace slack_proxy::sdk::testing {

// Time stands still until advance() is called. Starts at an arbitrary,
// non-zero point so that "epoch" bugs show up.
class FakeClock : public Clock {
 public:
  FakeClock() = default;
  SteadyTime now() const noexcept override {
    std::lock_guard<std::mutex> lock(mutex_);
    return steady_;
  }
  WallTime wall_now() const noexcept override {
    std::lock_guard<std::mutex> lock(mutex_);
    return wall_;
  }
  void advance(std::chrono::nanoseconds d) {
    std::lock_guard<std::mutex> lock(mutex_);
    steady_ += std::chrono::duration_cast<SteadyTime::duration>(d);
    wall_ += std::chrono::duration_cast<WallTime::duration>(d);
  }

 private:
  mutable std::mutex mutex_;
  SteadyTime steady_{std::chrono::hours(1000)};
  WallTime wall_{std::chrono::seconds(1'700'000'000)};
};

// Keeps every line, so tests can assert what was (and was not) logged.
class RecordingLogger : public Logger {
 public:
  struct Line {
    LogLevel level;
    std::string text;
  };
  bool enabled(LogLevel) const noexcept override { return true; }
  void log(LogLevel level, std::string_view message) noexcept override {
    std::lock_guard<std::mutex> lock(mutex_);
    lines_.push_back({level, std::string(message)});
  }
  std::vector<Line> lines() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return lines_;
  }
  // True when any line contains `needle`.
  bool contains(std::string_view needle) const {
    std::lock_guard<std::mutex> lock(mutex_);
    for (const auto& l : lines_)
      if (l.text.find(needle) != std::string::npos) return true;
    return false;
  }

 private:
  mutable std::mutex mutex_;
  std::vector<Line> lines_;
};

// Metrics whose values can be read back by name and labels.
class RecordingMetrics : public Metrics {
 public:
  // Thread-safe like the host's: sinks record from several workers at once.
  struct Series : Counter, Gauge, Histogram {
    void inc(double by) noexcept override { add(by); }
    void set(double v) noexcept override {
      std::lock_guard<std::mutex> lock(mutex);
      value = v;
    }
    void add(double d) noexcept override {
      std::lock_guard<std::mutex> lock(mutex);
      value += d;
    }
    void observe(double v) noexcept override {
      std::lock_guard<std::mutex> lock(mutex);
      value += v;
      observations.push_back(v);
    }
    double get() const {
      std::lock_guard<std::mutex> lock(mutex);
      return value;
    }
    std::vector<double> samples() const {
      std::lock_guard<std::mutex> lock(mutex);
      return observations;
    }

   private:
    mutable std::mutex mutex;
    double value = 0;                  // counter / gauge value, histogram sum
    std::vector<double> observations;  // histogram samples
  };

  Counter& counter(std::string_view name, std::string_view, const Labels& labels) noexcept override {
    return series(name, labels);
  }
  Gauge& gauge(std::string_view name, std::string_view, const Labels& labels) noexcept override {
    return series(name, labels);
  }
  Histogram& histogram(std::string_view name, std::string_view, const std::vector<double>&,
                       const Labels& labels) noexcept override {
    return series(name, labels);
  }

  // Current value; 0 when the series was never created.
  double value(std::string_view name, const Labels& labels = {}) const {
    std::lock_guard<std::mutex> lock(mutex_);
    auto it = series_.find(key(name, labels));
    return it == series_.end() ? 0.0 : it->second->get();
  }
  bool exists(std::string_view name, const Labels& labels = {}) const {
    std::lock_guard<std::mutex> lock(mutex_);
    return series_.count(key(name, labels)) != 0;
  }

 private:
  static std::string key(std::string_view name, const Labels& labels) {
    std::string k(name);
    for (const auto& [n, v] : labels) k += "|" + n + "=" + v;
    return k;
  }
  Series& series(std::string_view name, const Labels& labels) {
    std::lock_guard<std::mutex> lock(mutex_);
    auto& slot = series_[key(name, labels)];
    if (!slot) slot = std::make_unique<Series>();
    return *slot;
  }
  mutable std::mutex mutex_;
  std::map<std::string, std::unique_ptr<Series>> series_;
};

// A ConfigView over plain values. Unlike the host's it applies no schema:
// set every key the stage reads. To test settings through the schema, as the
// host checks them, load the plugin with PluginUnderTest (plugin_under_test.h).
class MapConfig : public ConfigView {
 public:
  using StringMap = std::map<std::string, std::string>;
  using Value = std::variant<std::string, std::int64_t, double, bool, std::chrono::milliseconds,
                             std::vector<std::string>, StringMap, Secret>;

  MapConfig& set(std::string key, Value v) {
    values_[std::move(key)] = std::move(v);
    return *this;
  }
  MapConfig& set(std::string key, const char* v) { return set(std::move(key), Value(std::string(v))); }
  // Exact overloads so that 0.5 stays a double and true stays a bool, and
  // every integer type lands as an integer setting.
  MapConfig& set(std::string key, double v) { return set(std::move(key), Value(v)); }
  MapConfig& set(std::string key, bool v) { return set(std::move(key), Value(v)); }
  template <typename T,
            std::enable_if_t<std::is_integral_v<T> && !std::is_same_v<T, bool>, int> = 0>
  MapConfig& set(std::string key, T v) {
    return set(std::move(key), Value(static_cast<std::int64_t>(v)));
  }

  bool has(std::string_view key) const noexcept override {
    return values_.count(std::string(key)) != 0;
  }
  std::string get_string(std::string_view key) const noexcept override {
    return get<std::string>(key);
  }
  std::int64_t get_integer(std::string_view key) const noexcept override {
    return get<std::int64_t>(key);
  }
  double get_number(std::string_view key) const noexcept override {
    auto it = values_.find(std::string(key));
    if (it == values_.end()) return 0.0;
    if (auto* i = std::get_if<std::int64_t>(&it->second)) return static_cast<double>(*i);
    if (auto* d = std::get_if<double>(&it->second)) return *d;
    return 0.0;
  }
  bool get_boolean(std::string_view key) const noexcept override { return get<bool>(key); }
  std::chrono::milliseconds get_duration(std::string_view key) const noexcept override {
    return get<std::chrono::milliseconds>(key);
  }
  std::vector<std::string> get_string_list(std::string_view key) const noexcept override {
    return get<std::vector<std::string>>(key);
  }
  std::string source_of(std::string_view key) const noexcept override {
    return "test:" + std::string(key);
  }
  std::map<std::string, std::string> get_string_map(std::string_view key) const noexcept override {
    return get<StringMap>(key);
  }
  std::string get_secret(std::string_view key) const noexcept override {
    return get<Secret>(key).value;
  }

 private:
  template <typename T>
  T get(std::string_view key) const noexcept {
    auto it = values_.find(std::string(key));
    if (it == values_.end()) return T{};
    if (auto* v = std::get_if<T>(&it->second)) return *v;
    return T{};
  }
  std::map<std::string, Value> values_;
};

// An HttpClient that answers from a script and remembers every request.
// Answers 200 "ok" once the script is used up.
class FakeHttpClient : public HttpClient {
 public:
  HttpResponse send(const HttpRequest& request) noexcept override {
    std::lock_guard<std::mutex> lock(mutex_);
    requests_.push_back(request);
    if (next_ >= script_.size()) {
      HttpResponse ok;
      ok.status = 200;
      ok.body = "ok";
      return ok;
    }
    return script_[next_++];
  }
  void answer(HttpResponse response) {
    std::lock_guard<std::mutex> lock(mutex_);
    script_.push_back(std::move(response));
  }
  std::vector<HttpRequest> requests() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return requests_;
  }

 private:
  mutable std::mutex mutex_;
  std::vector<HttpResponse> script_;
  std::size_t next_ = 0;
  std::vector<HttpRequest> requests_;
};

// All of the above, as the HostServices a factory receives. http_client()
// hands out `http` (a FakeHttpClient unless a test puts a real one there) and
// remembers the settings it was asked for.
class FakeHost : public HostServices {
 public:
  Logger& logger() noexcept override { return log; }
  Metrics& metrics() noexcept override { return stats; }
  const Clock& clock() noexcept override { return time; }
  std::shared_ptr<HttpClient> http_client(const HttpClientSettings& settings,
                                          std::string& error) noexcept override {
    http_settings.push_back(settings);
    if (!http) error = "FakeHost has no http client";
    return http;
  }
  SharedBuckets& shared_buckets() noexcept override { return buckets; }
  SharedMarks& shared_marks() noexcept override { return marks; }
  // Not the host's digest: a test only needs one name per credential that
  // does not contain it.
  std::string budget_id(std::string_view credential) const noexcept override {
    return "budget-" + std::to_string(std::hash<std::string_view>{}(credential));
  }

  FakeClock time;
  RecordingLogger log;
  RecordingMetrics stats;
  std::shared_ptr<HttpClient> http = std::make_shared<FakeHttpClient>();
  std::vector<HttpClientSettings> http_settings;
  // Stages created from one FakeHost share these, as the stages of every
  // pipeline of one process share the host's.
  LocalSharedBuckets buckets;
  // Every stage created from one FakeHost shares these too; the proxy gives
  // each stage its own set (a test wanting that uses one FakeHost per stage).
  LocalSharedMarks marks;
};

}  // namespace slack_proxy::sdk::testing

#endif  // SLACK_PROXY_SDK_TESTING_FAKES_H

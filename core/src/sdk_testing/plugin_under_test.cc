// PluginUnderTest: the SDK's testing entry to the proxy's own plugin host
// and settings checker, so a plugin's tests see exactly what the proxy does.
#include <slack_proxy/sdk/testing/plugin_under_test.h>

#include <slack_proxy/sdk/fingerprint.h>

#include <cstring>
#include <filesystem>
#include <string>
#include <utility>

#include <toml++/toml.h>

#include "config/config.h"
#include "config/stage_config.h"
#include "plugin_host.h"

namespace slack_proxy::sdk::testing {

struct PluginUnderTest::Impl {
  PluginHost host;
  const LoadedPlugin* plugin = nullptr;

  explicit Impl(const std::filesystem::path& file) : host({file.parent_path()}) {}

  // The stage table's settings, checked against the schema as the proxy
  // checks a [[pipeline.stages]] table.
  std::shared_ptr<const config::StageConfig> settings(std::string_view text,
                                                      bool read_secrets) const {
    config::StageSpec spec;
    spec.plugin = plugin->name;
    spec.name = plugin->name;
    spec.where = config::SourceRef{"settings", 1, 1};
    try {
      spec.settings = toml::parse(text, std::string_view("settings"));
    } catch (const toml::parse_error& e) {
      throw PluginRefused("settings:" + std::to_string(e.source().begin.line) + ":" +
                          std::to_string(e.source().begin.column) + ": " +
                          std::string(e.description()));
    }
    try {
      return std::make_shared<const config::StageConfig>(config::StageConfig::from_spec(
          spec, plugin->schema.data(), static_cast<std::uint32_t>(plugin->schema.size()),
          read_secrets));
    } catch (const config::ConfigError& e) {
      throw PluginRefused(e.what());
    }
  }

  // Creates the stage as its kind's interface, handed back as its base.
  std::shared_ptr<Stage> create(sp_stage_kind kind, HostServices& services,
                                std::shared_ptr<const config::StageConfig> config,
                                bool check_only) const {
    // The test owns the services; the stage only borrows them.
    std::shared_ptr<HostServices> borrowed(&services, [](HostServices*) {});
    const std::string& name = plugin->name;
    try {
      switch (kind) {
        case SP_STAGE_AUTHENTICATOR:
          return PluginHost::create<Authenticator>(*plugin, borrowed, config, name, check_only);
        case SP_STAGE_ROUTER:
          return PluginHost::create<Router>(*plugin, borrowed, config, name, check_only);
        case SP_STAGE_RATE_LIMITER:
          return PluginHost::create<RateLimiter>(*plugin, borrowed, config, name, check_only);
        case SP_STAGE_GUARD:
          return PluginHost::create<Guard>(*plugin, borrowed, config, name, check_only);
        case SP_STAGE_SINK:
          return PluginHost::create<Sink>(*plugin, borrowed, config, name, check_only);
        case SP_STAGE_RETRY_POLICY:
          return PluginHost::create<RetryPolicy>(*plugin, borrowed, config, name, check_only);
      }
    } catch (const PluginError& e) {
      throw PluginRefused(e.what());
    }
    throw PluginRefused("unknown stage kind " + std::to_string(kind));
  }
};

PluginUnderTest::PluginUnderTest(const char* file, const char* test_fingerprint) {
  if (std::strcmp(test_fingerprint, SLACK_PROXY_BUILD_FINGERPRINT) != 0) {
    throw PluginRefused(std::string("this test is built with fingerprint '") + test_fingerprint +
                        "', SlackProxy::sdk_testing with '" SLACK_PROXY_BUILD_FINGERPRINT
                        "': build the test with the proxy's compiler and flags");
  }
  const std::filesystem::path path(file);
  auto impl = std::make_shared<Impl>(path);
  try {
    impl->plugin = &impl->host.load(path.stem().string());
  } catch (const PluginError& e) {
    throw PluginRefused(e.what());
  }
  impl_ = std::move(impl);
}

const sp_plugin_descriptor& PluginUnderTest::descriptor() const { return *impl_->plugin->descriptor; }

const std::vector<sp_config_key>& PluginUnderTest::schema() const { return impl_->plugin->schema; }

sp_config_key PluginUnderTest::row(std::string_view key) const {
  for (const auto& k : schema())
    if (k.key != nullptr && key == k.key) return k;
  return sp_config_key{};
}

void PluginUnderTest::validate(std::string_view settings) const {
  // Stages made only to be judged log nowhere and count nothing, as in
  // `slack-proxy validate`; a FakeHost stands in for the quiet host.
  struct Quiet final : HostServices {
    struct : Logger {
      bool enabled(LogLevel) const noexcept override { return false; }
      void log(LogLevel, std::string_view) noexcept override {}
    } logger_;
    struct NoMetrics final : Metrics, Counter, Gauge, Histogram {
      void inc(double) noexcept override {}
      void set(double) noexcept override {}
      void add(double) noexcept override {}
      void observe(double) noexcept override {}
      Counter& counter(std::string_view, std::string_view, const Labels&) noexcept override {
        return *this;
      }
      Gauge& gauge(std::string_view, std::string_view, const Labels&) noexcept override {
        return *this;
      }
      Histogram& histogram(std::string_view, std::string_view, const std::vector<double>&,
                           const Labels&) noexcept override {
        return *this;
      }
    } metrics_;
    struct : Clock {
      SteadyTime now() const noexcept override { return std::chrono::steady_clock::now(); }
      WallTime wall_now() const noexcept override { return std::chrono::system_clock::now(); }
    } clock_;
    Logger& logger() noexcept override { return logger_; }
    Metrics& metrics() noexcept override { return metrics_; }
    const Clock& clock() noexcept override { return clock_; }
    std::shared_ptr<HttpClient> http_client(const HttpClientSettings&,
                                            std::string& error) noexcept override {
      error = "no connections in check-only mode";
      return nullptr;
    }
    SharedBuckets& shared_buckets() noexcept override { return buckets_; }
    std::string budget_id(std::string_view) const noexcept override { return {}; }
    SharedMarks& shared_marks() noexcept override { return marks_; }
    LocalSharedBuckets buckets_;
    LocalSharedMarks marks_;
  } quiet;
  auto stage = impl_->create(impl_->plugin->descriptor->kind, quiet,
                             impl_->settings(settings, /*read_secrets=*/false),
                             /*check_only=*/true);
}

std::string PluginUnderTest::validation_error(std::string_view settings) const {
  try {
    validate(settings);
  } catch (const PluginRefused& e) {
    return e.what();
  }
  return {};
}

std::shared_ptr<Stage> PluginUnderTest::create_stage(sp_stage_kind kind, HostServices& host,
                                                     std::string_view settings) const {
  return impl_->create(kind, host, impl_->settings(settings, /*read_secrets=*/true),
                       /*check_only=*/false);
}

}  // namespace slack_proxy::sdk::testing

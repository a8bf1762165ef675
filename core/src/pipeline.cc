#include "pipeline.h"

#include "config/stage_config.h"
#include "host_services.h"
#include "metrics.h"

#include <spdlog/sinks/null_sink.h>

namespace slack_proxy {
namespace {

std::string where(const config::StageSpec& stage) {
  return stage.where.str() + ": stage '" + stage.name + "' (plugin " + stage.plugin + ")";
}

// Loads and checks one pipeline's stages; appends problems to `errors`.
// Returns the loaded plugins and checked settings, index-aligned with stages.
struct CheckedStage {
  const LoadedPlugin* plugin = nullptr;
  std::shared_ptr<const config::StageConfig> settings;
};

std::vector<CheckedStage> check_pipeline(const config::PipelineSpec& spec, PluginHost& plugins,
                                         bool check_only, std::vector<std::string>& errors) {
  std::vector<CheckedStage> checked(spec.stages.size());
  int sinks = 0, authenticators = 0, retries = 0;
  for (std::size_t i = 0; i < spec.stages.size(); ++i) {
    const auto& stage = spec.stages[i];
    try {
      checked[i].plugin = &plugins.load(stage.plugin);
    } catch (const PluginError& e) {
      errors.push_back(where(stage) + ": " + e.what());
      continue;
    }
    const sp_plugin_descriptor& d = *checked[i].plugin->descriptor;
    try {
      // A check reads no secret: `validate` runs where the secrets may not
      // be (a CI job, a laptop), and judges only their shape.
      const auto& schema = checked[i].plugin->schema;
      checked[i].settings =
          std::make_shared<const config::StageConfig>(config::StageConfig::from_spec(
              stage, schema.data(), static_cast<std::uint32_t>(schema.size()),
              /*read_secrets=*/!check_only));
    } catch (const config::ConfigError& e) {
      errors.insert(errors.end(), e.errors().begin(), e.errors().end());
    }
    switch (d.kind) {
      case SP_STAGE_SINK: ++sinks; break;
      case SP_STAGE_AUTHENTICATOR: ++authenticators; break;
      case SP_STAGE_RETRY_POLICY: ++retries; break;
      default: break;
    }
  }
  const std::string p = spec.where.str() + ": pipeline '" + spec.name + "'";
  // Only judge the shape when every plugin loaded; otherwise the count lies.
  bool all_loaded = true;
  for (const auto& c : checked) all_loaded = all_loaded && c.plugin != nullptr;
  if (all_loaded) {
    if (sinks != 1)
      errors.push_back(p + " needs exactly one sink stage, has " + std::to_string(sinks));
    if (authenticators > 1)
      errors.push_back(p + " has " + std::to_string(authenticators) +
                       " authenticators; at most one is allowed");
    if (retries > 1)
      errors.push_back(p + " has " + std::to_string(retries) +
                       " retry policies; at most one is allowed");
  }
  return checked;
}

// Appends `stage` to `slot` and labels it; a check that built nothing
// ("valid, nothing to build") leaves the slot as it was.
template <typename Interface>
void keep(Pipeline& pipeline, std::vector<std::shared_ptr<Interface>>& slot,
          std::shared_ptr<Interface> stage, const StageLabel& label) {
  if (!stage) return;
  pipeline.labels[stage.get()] = label;
  slot.push_back(std::move(stage));
}
template <typename Interface>
void keep(Pipeline& pipeline, std::shared_ptr<Interface>& slot, std::shared_ptr<Interface> stage,
          const StageLabel& label) {
  if (!stage) return;
  pipeline.labels[stage.get()] = label;
  slot = std::move(stage);
}

// Creates one stage into its slot of `pipeline`.
void create_stage(Pipeline& pipeline, const LoadedPlugin& plugin,
                  std::shared_ptr<sdk::HostServices> host,
                  std::shared_ptr<const config::StageConfig> settings, const std::string& name,
                  bool check_only) {
  const StageLabel label{name, plugin.name};
  switch (plugin.descriptor->kind) {
    case SP_STAGE_AUTHENTICATOR:
      keep(pipeline, pipeline.authenticator,
           PluginHost::create<sdk::Authenticator>(plugin, host, settings, name, check_only), label);
      break;
    case SP_STAGE_ROUTER:
      keep(pipeline, pipeline.routers,
           PluginHost::create<sdk::Router>(plugin, host, settings, name, check_only), label);
      break;
    case SP_STAGE_RATE_LIMITER:
      keep(pipeline, pipeline.limiters,
           PluginHost::create<sdk::RateLimiter>(plugin, host, settings, name, check_only), label);
      break;
    case SP_STAGE_GUARD:
      keep(pipeline, pipeline.guards,
           PluginHost::create<sdk::Guard>(plugin, host, settings, name, check_only), label);
      break;
    case SP_STAGE_SINK:
      keep(pipeline, pipeline.sink,
           PluginHost::create<sdk::Sink>(plugin, host, settings, name, check_only), label);
      // An older plugin's vtable ends before budget_of().
      pipeline.sink_names_budget = plugin.descriptor->abi_minor >= 2;
      break;
    case SP_STAGE_RETRY_POLICY:
      keep(pipeline, pipeline.retry,
           PluginHost::create<sdk::RetryPolicy>(plugin, host, settings, name, check_only), label);
      break;
  }
}

// Loads, checks and creates every stage of every pipeline. With
// `check_only`, each factory only judges its settings and every problem is
// collected; otherwise the first factory refusal stops the build.
std::vector<std::shared_ptr<Pipeline>> assemble(const config::ProxyConfig& config,
                                                PluginHost& plugins,
                                                const std::shared_ptr<spdlog::logger>& log,
                                                sdk::Metrics& metrics, const sdk::Clock& clock,
                                                std::shared_ptr<sdk::SharedBuckets> buckets,
                                                const std::shared_ptr<MarkScopes>& marks,
                                                bool check_only) {
  std::vector<std::string> errors;
  std::vector<std::vector<CheckedStage>> checked;
  for (const auto& spec : config.pipelines)
    checked.push_back(check_pipeline(spec, plugins, check_only, errors));
  if (!errors.empty()) throw config::ConfigError(std::move(errors));

  // One set for every pipeline: that is what lets two of them share a budget.
  if (!buckets) buckets = std::make_shared<sdk::LocalSharedBuckets>();
  std::vector<std::shared_ptr<Pipeline>> out;
  for (std::size_t p = 0; p < config.pipelines.size(); ++p) {
    const auto& spec = config.pipelines[p];
    auto pipeline = std::make_shared<Pipeline>();
    pipeline->name = spec.name;
    pipeline->paths = spec.paths;
    pipeline->webhook_style = spec.style == "webhook";
    pipeline->default_channel = spec.default_channel;
    pipeline->caller_token = spec.delivery_token == "caller";
    for (std::size_t i = 0; i < spec.stages.size(); ++i) {
      const auto& stage = spec.stages[i];
      const std::string scope = spec.name + "/" + stage.name;
      // A caller-token pipeline names each caller's workspace with this
      // process's own salt, so no other replica could match its keys: its
      // stages keep their marks in this process.
      const bool shareable = marks && spec.delivery_token != "caller";
      auto host = std::make_shared<StageHost>(log, scope, metrics, clock, buckets,
                                              shareable ? marks->scope(scope) : nullptr);
      try {
        create_stage(*pipeline, *checked[p][i].plugin, std::move(host), checked[p][i].settings,
                     stage.name, check_only);
      } catch (const PluginError& e) {
        errors.push_back(stage.where.str() + ": " + e.what());
        if (!check_only) throw config::ConfigError(std::move(errors));
      }
    }
    out.push_back(std::move(pipeline));
  }
  if (!errors.empty()) throw config::ConfigError(std::move(errors));
  return out;
}

}  // namespace

void validate_pipelines(const config::ProxyConfig& config, PluginHost& plugins) {
  // Stages made only to be judged log nowhere and count nothing.
  auto quiet = std::make_shared<spdlog::logger>("validate",
                                                std::make_shared<spdlog::sinks::null_sink_mt>());
  PrometheusMetrics metrics(quiet);
  SystemClock clock;
  assemble(config, plugins, quiet, metrics, clock, nullptr, nullptr, /*check_only=*/true);
}

std::vector<std::shared_ptr<Pipeline>> build_pipelines(
    const config::ProxyConfig& config, PluginHost& plugins, std::shared_ptr<spdlog::logger> log,
    sdk::Metrics& metrics, const sdk::Clock& clock, std::shared_ptr<sdk::SharedBuckets> buckets,
    std::shared_ptr<MarkScopes> marks) {
  return assemble(config, plugins, log, metrics, clock, std::move(buckets), marks,
                  /*check_only=*/false);
}

}  // namespace slack_proxy

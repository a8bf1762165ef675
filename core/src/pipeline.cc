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

// The stage create_stage() just put into `pipeline`'s slot of `kind`.
std::shared_ptr<sdk::Stage> newest_stage(const Pipeline& pipeline, sp_stage_kind kind) {
  switch (kind) {
    case SP_STAGE_AUTHENTICATOR: return pipeline.authenticator;
    case SP_STAGE_ROUTER: return pipeline.routers.back();
    case SP_STAGE_RATE_LIMITER: return pipeline.limiters.back();
    case SP_STAGE_GUARD: return pipeline.guards.back();
    case SP_STAGE_SINK: return pipeline.sink;
    case SP_STAGE_RETRY_POLICY: return pipeline.retry;
  }
  return nullptr;
}

// The stage of `previous` that would be made again exactly as `stage` of
// `spec` asks (see build_pipelines); null when there is none.
std::shared_ptr<sdk::Stage> reusable(const CarryOver* previous, const config::PipelineSpec& spec,
                                     const config::StageSpec& stage, const LoadedPlugin& plugin) {
  if (previous == nullptr) return nullptr;
  const sp_stage_kind kind = plugin.descriptor->kind;
  if (kind != SP_STAGE_RATE_LIMITER && kind != SP_STAGE_GUARD) return nullptr;
  for (const sp_config_key& key : plugin.schema)
    if (key.type == SP_VALUE_SECRET) return nullptr;  // its secret is read anew
  for (const auto& old : previous->pipelines) {
    if (old->name != spec.name || old->delivery_token != spec.delivery_token) continue;
    for (const BuiltStage& b : old->built) {
      if (b.name == stage.name && b.plugin == stage.plugin && b.descriptor == plugin.descriptor &&
          b.settings == stage.settings)
        return b.object;
    }
  }
  return nullptr;
}

// Creates one stage into its slot of `pipeline`, or takes `reused` over.
void create_stage(Pipeline& pipeline, const LoadedPlugin& plugin,
                  std::shared_ptr<sdk::HostServices> host,
                  std::shared_ptr<const config::StageConfig> settings, const std::string& name,
                  bool check_only, const std::shared_ptr<sdk::Stage>& reused) {
  const StageLabel label{name, plugin.name};
  if (reused != nullptr) {
    if (plugin.descriptor->kind == SP_STAGE_RATE_LIMITER)
      keep(pipeline, pipeline.limiters, std::static_pointer_cast<sdk::RateLimiter>(reused), label);
    else
      keep(pipeline, pipeline.guards, std::static_pointer_cast<sdk::Guard>(reused), label);
    return;
  }
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
                                                bool check_only, const CarryOver* previous,
                                                std::vector<std::string>* carried) {
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
    pipeline->delivery_token = spec.delivery_token;
    for (std::size_t i = 0; i < spec.stages.size(); ++i) {
      const auto& stage = spec.stages[i];
      const std::string scope = spec.name + "/" + stage.name;
      const LoadedPlugin& plugin = *checked[p][i].plugin;
      const std::shared_ptr<sdk::Stage> reused = reusable(previous, spec, stage, plugin);
      if (reused != nullptr && carried != nullptr) carried->push_back(scope);
      // A caller-token pipeline names each caller's workspace with this
      // process's own salt, so no other replica could match its keys: its
      // stages keep their marks in this process (in the process's scopes
      // when those are local).
      const bool shareable =
          marks && (spec.delivery_token != "caller" || marks->process_local());
      auto host = std::make_shared<StageHost>(log, scope, metrics, clock, buckets,
                                              shareable ? marks->scope(scope) : nullptr);
      const std::size_t before = pipeline->labels.size();
      try {
        create_stage(*pipeline, plugin, std::move(host), checked[p][i].settings, stage.name,
                     check_only, reused);
      } catch (const PluginError& e) {
        errors.push_back(stage.where.str() + ": " + e.what());
        if (!check_only) throw config::ConfigError(std::move(errors));
      }
      std::shared_ptr<sdk::Stage> object;
      if (pipeline->labels.size() > before) object = newest_stage(*pipeline, plugin.descriptor->kind);
      pipeline->built.push_back(
          BuiltStage{stage.name, stage.plugin, plugin.descriptor, stage.settings, std::move(object)});
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
  assemble(config, plugins, quiet, metrics, clock, nullptr, nullptr, /*check_only=*/true, nullptr,
           nullptr);
}

std::vector<std::shared_ptr<Pipeline>> build_pipelines(
    const config::ProxyConfig& config, PluginHost& plugins, std::shared_ptr<spdlog::logger> log,
    sdk::Metrics& metrics, const sdk::Clock& clock, std::shared_ptr<sdk::SharedBuckets> buckets,
    std::shared_ptr<MarkScopes> marks, const CarryOver* previous,
    std::vector<std::string>* carried) {
  return assemble(config, plugins, log, metrics, clock, std::move(buckets), marks,
                  /*check_only=*/false, previous, carried);
}

}  // namespace slack_proxy

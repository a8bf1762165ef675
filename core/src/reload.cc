#include "reload.h"

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <fstream>
#include <set>
#include <sstream>

#include <Poco/SHA2Engine.h>
#include <spdlog/spdlog.h>

#include "app.h"
#include "log_format.h"
#include "redact.h"

namespace slack_proxy {
namespace {

std::string digest_of(const std::string& text) {
  if (text.empty()) return {};
  Poco::SHA2Engine sha(Poco::SHA2Engine::SHA_256);
  sha.update(text);
  return Poco::DigestEngine::digestToHex(sha.digest());
}

// The file's SHA-256, 12 hex digits: which version of it runs.
std::string file_digest(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream text;
  text << in.rdbuf();
  Poco::SHA2Engine sha(Poco::SHA2Engine::SHA_256);
  sha.update(text.str());
  return Poco::DigestEngine::digestToHex(sha.digest()).substr(0, 12);
}

std::string joined(const std::vector<std::string>& lines, const char* separator) {
  std::string out;
  for (const auto& line : lines) out += (out.empty() ? "" : separator) + line;
  return out;
}

const config::PipelineSpec* find_pipeline(const config::ProxyConfig& c, const std::string& name) {
  for (const auto& p : c.pipelines)
    if (p.name == name) return &p;
  return nullptr;
}

const config::StageSpec* find_stage(const config::PipelineSpec& p, const std::string& name) {
  for (const auto& s : p.stages)
    if (s.name == name) return &s;
  return nullptr;
}

// One pipeline's changes, each line starting "pipeline 'name': ".
void describe_pipeline_changes(const config::PipelineSpec& a, const config::PipelineSpec& b,
                               std::vector<std::string>& out) {
  const std::string head = "pipeline '" + b.name + "': ";
  if (a.paths != b.paths) out.push_back(head + "paths changed");
  if (a.style != b.style) out.push_back(head + "style changed");
  if (a.default_channel != b.default_channel) out.push_back(head + "default_channel changed");
  if (a.delivery_token != b.delivery_token) out.push_back(head + "delivery_token changed");
  std::vector<std::string> order_a, order_b;
  for (const auto& s : b.stages) {
    const config::StageSpec* old = find_stage(a, s.name);
    if (old == nullptr) {
      out.push_back(head + "stage '" + s.name + "' (plugin " + s.plugin + ") added");
      continue;
    }
    order_b.push_back(s.name);
    if (old->plugin != s.plugin)
      out.push_back(head + "stage '" + s.name + "' now uses plugin " + s.plugin);
    else if (!(old->settings == s.settings))
      out.push_back(head + "stage '" + s.name + "' settings changed");
  }
  for (const auto& s : a.stages) {
    if (find_stage(b, s.name) == nullptr)
      out.push_back(head + "stage '" + s.name + "' (plugin " + s.plugin + ") removed");
    else
      order_a.push_back(s.name);
  }
  if (order_a != order_b) out.push_back(head + "stages reordered");
}

}  // namespace

std::string load_admin_key(const config::AdminConfig& admin) {
  std::string key;
  std::string source;
  if (!admin.key_file.empty()) {
    std::ifstream in(admin.key_file, std::ios::binary);
    if (!in) throw std::runtime_error("[admin] key_file " + admin.key_file + ": cannot read it");
    std::ostringstream text;
    text << in.rdbuf();
    key = text.str();
    source = "[admin] key_file " + admin.key_file;
  } else if (!admin.key_env.empty()) {
    if (const char* env = std::getenv(admin.key_env.c_str())) key = env;
    source = "$" + admin.key_env;
  }
  const auto first = key.find_first_not_of(" \t\r\n");
  const auto last = key.find_last_not_of(" \t\r\n");
  key = first == std::string::npos ? std::string() : key.substr(first, last - first + 1);
  if (!key.empty() && key.size() < 16)
    throw std::runtime_error(source + ": the admin key must be at least 16 characters");
  return key;
}

std::vector<std::string> settings_needing_restart(const config::ProxyConfig& a,
                                                  const config::ProxyConfig& b,
                                                  bool can_seal_tokens) {
  std::vector<std::string> out;
  // One line per key; a field missing here is still caught by the section's
  // catch-all below, named by its section.
#define SP_RESTART_ONLY(section, key, field) \
  if (!(a.field == b.field)) out.push_back("[" section "] " key)
  SP_RESTART_ONLY("server", "listen", server.listen);
  SP_RESTART_ONLY("server", "threads", server.threads);
  SP_RESTART_ONLY("server", "max_queued", server.max_queued);
  SP_RESTART_ONLY("server", "max_connections", server.max_connections);
  SP_RESTART_ONLY("server", "max_body_bytes", server.max_body_bytes);
  SP_RESTART_ONLY("server", "read_timeout", server.read_timeout);
  SP_RESTART_ONLY("server", "keep_alive_timeout", server.keep_alive_timeout);
  SP_RESTART_ONLY("server", "max_keep_alive_requests", server.max_keep_alive_requests);
  SP_RESTART_ONLY("server", "max_header_fields", server.max_header_fields);
  SP_RESTART_ONLY("server", "max_header_bytes", server.max_header_bytes);
  SP_RESTART_ONLY("server", "max_json_depth", server.max_json_depth);
  SP_RESTART_ONLY("server", "tls_cert", server.tls_cert);
  SP_RESTART_ONLY("server", "tls_key", server.tls_key);
  SP_RESTART_ONLY("server", "tls_min_version", server.tls_min_version);
  SP_RESTART_ONLY("metrics", "enabled", metrics.enabled);
  SP_RESTART_ONLY("metrics", "listen", metrics.listen);
  SP_RESTART_ONLY("metrics", "public", metrics.public_listener);
  SP_RESTART_ONLY("metrics", "max_channel_labels", metrics.max_channel_labels);
  SP_RESTART_ONLY("queue", "backend", queue.backend);
  SP_RESTART_ONLY("queue", "path", queue.path);
  SP_RESTART_ONLY("queue", "sync", queue.sync);
  SP_RESTART_ONLY("queue", "capacity", queue.capacity);
  SP_RESTART_ONLY("queue", "max_bytes", queue.max_bytes);
  SP_RESTART_ONLY("queue", "retry_after", queue.retry_after);
  SP_RESTART_ONLY("queue", "dedup_window", queue.dedup_window);
  SP_RESTART_ONLY("queue", "max_dead_letters", queue.max_dead_letters);
  SP_RESTART_ONLY("queue", "lease", queue.lease);
  SP_RESTART_ONLY("queue", "wait_replicas", queue.wait_replicas);
  SP_RESTART_ONLY("queue", "wait_timeout", queue.wait_timeout);
  SP_RESTART_ONLY("queue", "token_key_env", queue.token_key_env);
  SP_RESTART_ONLY("redis", "url", redis.url);
  SP_RESTART_ONLY("redis", "user", redis.user);
  SP_RESTART_ONLY("redis", "password_env", redis.password_env);
  SP_RESTART_ONLY("redis", "password_file", redis.password_file);
  SP_RESTART_ONLY("redis", "connect_timeout", redis.connect_timeout);
  SP_RESTART_ONLY("redis", "command_timeout", redis.command_timeout);
  SP_RESTART_ONLY("redis", "key_prefix", redis.key_prefix);
  SP_RESTART_ONLY("redis", "pacing", redis.pacing);
  SP_RESTART_ONLY("redis", "marks", redis.marks);
  SP_RESTART_ONLY("dispatcher", "workers", dispatcher.workers);
  SP_RESTART_ONLY("dispatcher", "lane_window", dispatcher.lane_window);
  SP_RESTART_ONLY("dispatcher", "window_bytes", dispatcher.window_bytes);
#undef SP_RESTART_ONLY
  // The catch-all: a setting added to a section and not to the list above
  // still needs a restart until someone makes it live.
  const auto section = [&](const char* name, bool same) {
    const std::string prefix = std::string("[") + name + "] ";
    const bool named = std::any_of(out.begin(), out.end(),
                                   [&](const std::string& s) { return s.rfind(prefix, 0) == 0; });
    if (!same && !named) out.push_back(prefix + "(a setting)");
  };
  section("server", a.server == b.server);
  section("metrics", a.metrics == b.metrics);
  section("queue", a.queue == b.queue);
  section("redis", a.redis == b.redis);
  config::DispatcherConfig da = a.dispatcher, db = b.dispatcher;
  da.shutdown_timeout = db.shutdown_timeout;  // live: read when the drain starts
  section("dispatcher", da == db);

  // A durable queue seals callers' tokens only when a pipeline took them at
  // start: the key is set up then.
  if (!can_seal_tokens) {
    for (const auto& p : b.pipelines)
      if (p.delivery_token == "caller")
        out.push_back("[[pipeline]] '" + p.name +
                      "' delivery_token = \"caller\" (no pipeline took callers' tokens at start, "
                      "so the queue has no key to seal them with)");
  }
  return out;
}

std::vector<std::string> describe_changes(const config::ProxyConfig& a,
                                          const config::ProxyConfig& b) {
  std::vector<std::string> out;
  for (const auto& p : b.pipelines) {
    const config::PipelineSpec* old = find_pipeline(a, p.name);
    if (old == nullptr)
      out.push_back("pipeline '" + p.name + "' added");
    else
      describe_pipeline_changes(*old, p, out);
  }
  for (const auto& p : a.pipelines)
    if (find_pipeline(b, p.name) == nullptr)
      out.push_back("pipeline '" + p.name +
                    "' removed (its queued messages become dead letters, unknown_pipeline, as "
                    "they come up)");
  if (a.log.level != b.log.level)
    out.push_back("[log] level " + a.log.level + " -> " + b.log.level);
  if (a.log.format != b.log.format)
    out.push_back("[log] format " + a.log.format + " -> " + b.log.format);
  if (a.plugins.paths != b.plugins.paths) out.push_back("[plugins] paths changed");
  if (!(a.admin == b.admin)) out.push_back("[admin] key source changed");
  if (a.dispatcher.shutdown_timeout != b.dispatcher.shutdown_timeout)
    out.push_back("[dispatcher] shutdown_timeout changed");
  return out;
}

Reloader::Reloader(std::string path, Running running, Build build, Targets targets,
                   prometheus::Registry& registry, const sdk::Clock& clock)
    : path_(std::move(path)),
      build_(std::move(build)),
      targets_(std::move(targets)),
      clock_(clock),
      successful_(prometheus::BuildGauge()
                      .Name("slackproxy_config_last_reload_successful")
                      .Help("Whether the last configuration reload succeeded (1) or was refused "
                            "(0); the start counts as a load")
                      .Register(registry)
                      .Add({})),
      success_time_(prometheus::BuildGauge()
                        .Name("slackproxy_config_last_reload_success_timestamp_seconds")
                        .Help("When the configuration was last loaded successfully (the start "
                              "or a reload), in seconds since the Unix epoch")
                        .Register(registry)
                        .Add({})),
      running_(std::move(running)) {
  successful_.Set(1);
  loaded_at_ = clock_.wall_now();
  success_time_.Set(std::chrono::duration<double>(loaded_at_.time_since_epoch()).count());
  admin_key_digest_ = digest_of(load_admin_key(running_.config.admin));
  file_digest_ = file_digest(path_);
}

Reloader::Info Reloader::info() const {
  std::lock_guard<std::mutex> lock(running_mutex_);
  Info info;
  info.file = path_;
  info.digest = file_digest_;
  info.loaded_at = loaded_at_;
  for (const auto& [name, plugin] : running_.plugins->loaded())
    info.plugins.push_back(Info::Plugin{name, stage_kind_name(plugin.descriptor->kind),
                                        plugin.path, plugin.from_copy});
  for (const auto& p : running_.config.pipelines)
    for (const auto& s : p.stages) info.stages.emplace_back(p.name, s.name);
  info.last_reload_at = last_reload_at_;
  info.last_reload = last_reload_;
  return info;
}

config::ProxyConfig Reloader::config() const {
  std::lock_guard<std::mutex> lock(running_mutex_);
  return running_.config;
}

ReloadOutcome Reloader::reload(bool wait) {
  std::unique_lock<std::mutex> lock(reload_mutex_, std::defer_lock);
  if (wait) {
    lock.lock();
  } else if (!lock.try_lock()) {
    return ReloadOutcome{false, {}, {"a reload is already running; try again when it is done"}};
  }
  ReloadOutcome outcome;
  try {
    outcome = try_reload();
  } catch (const config::ConfigError& e) {
    outcome.errors = e.errors();
  } catch (const std::exception& e) {
    outcome.errors = {e.what()};
  } catch (...) {
    outcome.errors = {"unknown error"};
  }
  // A plugin's refusal is its own text: it must not carry a secret into the
  // log or the admin API's reply.
  for (auto& e : outcome.errors) e = redact_secrets(e);
  record(outcome);
  {
    std::lock_guard<std::mutex> info_lock(running_mutex_);
    last_reload_at_ = clock_.wall_now();
    last_reload_ = outcome;
    if (outcome.ok) loaded_at_ = *last_reload_at_;
  }
  return outcome;
}

ReloadOutcome Reloader::try_reload() {
  ReloadOutcome outcome;
  config::ProxyConfig next = config::load_config(path_);
  outcome.errors = settings_needing_restart(running_.config, next, targets_.can_seal_tokens);
  if (!outcome.errors.empty()) {
    for (auto& e : outcome.errors) e += " cannot change without a restart";
    return outcome;
  }
  const std::string level = targets_.level_override.value_or(next.log.level);
  if (spdlog::level::from_str(level) == spdlog::level::off && level != "off") {
    outcome.errors = {"[log] level '" + level + "' is none of trace, debug, info, warn, error"};
    return outcome;
  }
  const std::string admin_key = load_admin_key(next.admin);

  auto plugins = std::make_unique<PluginHost>(plugin_search_path(next));
  const CarryOver previous{running_.pipelines};
  std::vector<std::string> carried;
  std::vector<std::shared_ptr<Pipeline>> pipelines = build_(next, *plugins, &previous, &carried);

  // Everything is built and checked: swap.
  outcome.ok = true;
  outcome.changes = describe_changes(running_.config, next);
  if (targets_.level_override)  // --log-level wins: [log] level changes nothing
    std::erase_if(outcome.changes,
                  [](const std::string& line) { return line.rfind("[log] level ", 0) == 0; });
  for (const auto& p : next.pipelines)
    for (const auto& stage : p.stages)
      if (const LoadedPlugin& loaded = plugins->load(stage.plugin); loaded.rebuilt) {
        const std::string line = "plugin " + stage.plugin + " loaded from its rebuilt file " +
                                 loaded.path;
        if (std::find(outcome.changes.begin(), outcome.changes.end(), line) ==
            outcome.changes.end())
          outcome.changes.push_back(line);
      }
  const std::string digest = digest_of(admin_key);
  if (digest != admin_key_digest_)
    outcome.changes.push_back(admin_key.empty() ? "admin key removed: the admin API is off"
                                                : "admin key replaced");
  if (outcome.changes.empty()) outcome.changes.push_back("no setting changed");
  if (!carried.empty())
    outcome.changes.push_back("kept with their state: " + joined(carried, ", "));

  // The dispatcher first: a request the ingress routes to a new pipeline
  // must find it there.
  targets_.dispatcher.set_pipelines(pipelines);
  targets_.ingress.set_pipelines(pipelines);
  targets_.admin.set_key(admin_key);
  targets_.admin.set_status_public(next.admin.status_public);
  targets_.log->set_level(spdlog::level::from_str(level));
  if (next.log.format != running_.config.log.format)
    targets_.log->set_formatter(make_log_formatter(next.log.format));
  admin_key_digest_ = digest;
  const std::string digest_now = file_digest(path_);
  {
    std::lock_guard<std::mutex> lock(running_mutex_);
    running_.config = std::move(next);
    running_.plugins = std::move(plugins);
    running_.pipelines = std::move(pipelines);
    file_digest_ = digest_now;
  }
  return outcome;
}

void Reloader::record(const ReloadOutcome& outcome) {
  // The line first: whoever watches the gauge finds it written.
  if (outcome.ok) {
    targets_.log->info("configuration reloaded from {}: {}; stages made anew read their key, "
                       "token and secret files again",
                       path_, joined(outcome.changes, "; "));
    successful_.Set(1);
    success_time_.Set(
        std::chrono::duration<double>(clock_.wall_now().time_since_epoch()).count());
  } else {
    targets_.log->error("configuration reload refused, the running one stays: {}",
                        joined(outcome.errors, "; "));
    successful_.Set(0);
  }
}

}  // namespace slack_proxy

// Hot reload: SIGHUP or POST /admin/reload read the configuration file and
// every key, token and secret file again, build new pipelines and swap them
// in between requests, or refuse and leave everything as it was.
//
// What a reload does, in order; the first step that fails refuses it:
//   1. loads and checks the file, as `slack-proxy validate` does (the same
//      file:line:col errors);
//   2. compares it with the running configuration: a setting that only a
//      restart applies (settings_needing_restart) refuses the reload, each
//      one named;
//   3. reads the admin key again;
//   4. builds every pipeline (plugins loaded again, so a rebuilt plugin file
//      is used; stages that would be made the same again are taken over with
//      their state, see build_pipelines' CarryOver);
//   5. swaps: the ingress serves the new pipelines to requests that arrive
//      from now on, the dispatcher delivers with them from its next round,
//      the admin API takes the new key, the log its new level and format.
// A request or a send already under way finishes on the stages it started
// with. Queued messages go on under the new pipeline of the same name; those
// of a pipeline that is gone become dead letters (unknown_pipeline) as they
// come up, and a replay delivers them once a pipeline of that name is back.
//
// Every reload writes one log line, saying what changed (pipelines and
// stages added, removed or changed; never a value of a secret) or why it was
// refused, and sets slackproxy_config_last_reload_successful and, when it
// succeeded, slackproxy_config_last_reload_success_timestamp_seconds (the
// names Prometheus and Alertmanager give theirs).
#pragma once

#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include <prometheus/gauge.h>
#include <prometheus/registry.h>
#include <spdlog/logger.h>

#include <slack_proxy/sdk/host.h>

#include "admin_api.h"
#include "config/config.h"
#include "dispatcher.h"
#include "ingress.h"
#include "pipeline.h"
#include "plugin_host.h"

namespace slack_proxy {

// The admin key from [admin] key_file or key_env; empty when neither is set.
// Throws a message naming the source (never the key) when it cannot be read
// or is shorter than 16 characters.
std::string load_admin_key(const config::AdminConfig& admin);

// The settings that differ between the two and that only a restart applies,
// each as "[section] key": the listeners, TLS, the queue, Redis, the
// dispatcher's workers and windows; and, unless `can_seal_tokens` (the
// queue keeps callers' tokens: the memory queue, or a sealing key set up at
// start), a pipeline that takes callers' tokens. Empty when every
// difference can be applied live.
std::vector<std::string> settings_needing_restart(const config::ProxyConfig& running,
                                                  const config::ProxyConfig& next,
                                                  bool can_seal_tokens);

// What going from `before` to `after` changes, one line each: pipelines and
// their stages added, removed or changed, the log level, the plugin paths.
// Names settings, never their values (but for the log level).
std::vector<std::string> describe_changes(const config::ProxyConfig& before,
                                          const config::ProxyConfig& after);

struct ReloadOutcome {
  bool ok = false;
  std::vector<std::string> changes;  // when ok: what changed
  std::vector<std::string> errors;   // when refused: why
};

class Reloader {
 public:
  // Builds the pipelines of a configuration with the given plugins; with a
  // CarryOver, takes unchanged stages over (build_pipelines).
  using Build = std::function<std::vector<std::shared_ptr<Pipeline>>(
      const config::ProxyConfig&, PluginHost&, const CarryOver*, std::vector<std::string>*)>;

  // What is running now. The plugin host is kept while its pipelines run.
  struct Running {
    config::ProxyConfig config;
    std::unique_ptr<PluginHost> plugins;
    std::vector<std::shared_ptr<Pipeline>> pipelines;
  };

  // Where a reload takes effect. `level_override` is --log-level, which
  // wins over [log] level on every reload too. `can_seal_tokens`: see
  // settings_needing_restart.
  struct Targets {
    Ingress& ingress;
    Dispatcher& dispatcher;
    AdminApi& admin;
    std::shared_ptr<spdlog::logger> log;
    std::optional<std::string> level_override;
    bool can_seal_tokens = false;
  };

  // `path` is the file reloads read. Registers the two reload metrics, the
  // start counting as the first successful load.
  Reloader(std::string path, Running running, Build build, Targets targets,
           prometheus::Registry& registry, const sdk::Clock& clock);

  // Reloads (see the file comment). One at a time: a second caller waits
  // for the first, or, with `wait` false, is refused at once ("a reload is
  // already running"). Never throws.
  ReloadOutcome reload(bool wait = true);

  // The configuration running now.
  config::ProxyConfig config() const;

  // What the status page shows of the configuration.
  struct Info {
    std::string file;
    std::string digest;        // SHA-256 of the file as loaded, 12 hex digits
    sdk::WallTime loaded_at{};  // the start or the last successful reload
    struct Plugin {
      std::string name, kind, file;
      bool from_copy = false;
    };
    std::vector<Plugin> plugins;
    // (pipeline, stage) of every stage, for their marks.
    std::vector<std::pair<std::string, std::string>> stages;
    std::optional<sdk::WallTime> last_reload_at;  // none yet: nullopt
    ReloadOutcome last_reload;
  };
  Info info() const;

 private:
  ReloadOutcome try_reload();
  void record(const ReloadOutcome& outcome);

  const std::string path_;
  Build build_;
  Targets targets_;
  const sdk::Clock& clock_;
  prometheus::Gauge& successful_;
  prometheus::Gauge& success_time_;
  std::mutex reload_mutex_;          // one reload at a time
  mutable std::mutex running_mutex_;  // guards running_ against config()
  Running running_;
  std::string admin_key_digest_;     // to say whether the key changed
  // Guarded by running_mutex_, like running_.
  std::string file_digest_;
  sdk::WallTime loaded_at_{};
  std::optional<sdk::WallTime> last_reload_at_;
  ReloadOutcome last_reload_;
};

}  // namespace slack_proxy

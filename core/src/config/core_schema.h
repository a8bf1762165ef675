// The core's own sections ([server], [metrics], ..., the keys of a
// [[pipeline]]) declared as schemas, the way a plugin declares its settings:
// config.cc checks each table with StageConfig::from_table, so a core key
// and a plugin key are checked, worded and listed (`slack-proxy plugins`)
// alike.
//
// The schema defaults and the struct initialisers in config.h say the same
// thing twice; config_test's defaults guard fails when they disagree.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <slack_proxy/sdk/settings.h>

#include "config/config.h"

namespace slack_proxy::config {

// A section whose `listen` is "host:port" text in the file: the schema
// checks the text, config.cc parses it into `config.listen`.
struct ServerSection {
  ServerConfig config;
  std::string listen;
};
struct MetricsSection {
  MetricsConfig config;
  std::string listen;
};

const sdk::Schema<ServerSection>& server_schema();
const sdk::Schema<MetricsSection>& metrics_schema();
const sdk::Schema<AdminConfig>& admin_schema();
const sdk::Schema<QueueConfig>& queue_schema();
const sdk::Schema<RedisConfig>& redis_schema();
const sdk::Schema<DispatcherConfig>& dispatcher_schema();
const sdk::Schema<LogConfig>& log_schema();
const sdk::Schema<PluginsConfig>& plugins_schema();
// A [[pipeline]]'s own keys; its `stage` tables are read by config.cc.
const sdk::Schema<PipelineSpec>& pipeline_schema();

// One section's rows, for listing.
struct CoreSection {
  std::string name;  // "[server]"
  const sp_config_key* keys;
  std::uint32_t size;
};
// Every core section, in the order a config file usually has them.
std::vector<CoreSection> core_sections();

}  // namespace slack_proxy::config

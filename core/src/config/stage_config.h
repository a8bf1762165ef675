// A stage's settings checked against the plugin's schema, exposed to the
// plugin as an sdk::ConfigView.
//
// The host does the generic checks (Fluent Bit style): unknown keys (naming
// the allowed ones), wrong types, missing required keys, defaults. The plugin
// then checks what the values mean.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <string>
#include <variant>
#include <vector>

#include <slack_proxy/sdk/abi.h>
#include <slack_proxy/sdk/host.h>

#include "config/config.h"

namespace slack_proxy::config {

class StageConfig final : public sdk::ConfigView {
 public:
  using Value = std::variant<std::string, std::int64_t, double, bool, std::chrono::milliseconds,
                             std::vector<std::string>>;

  // Checks `stage.settings` against `schema[0..schema_size)`. Throws
  // ConfigError listing every problem, each prefixed with the stage's source
  // position (or the offending key's own position) and plugin name, e.g.
  //   "cfg.toml:14:1: stage 'token_bucket': unknown key 'rat'; allowed: burst, key, rate"
  //   "cfg.toml:15:8: stage 'token_bucket': 'rate' must be a number, got string"
  //
  // Schema defaults (sp_config_key::default_value) are read per type: strings
  // and durations as plain text ("global", "15m"); integers, numbers,
  // booleans and string lists as TOML values ("3", "1.5", "true",
  // "[\"a\", \"b\"]"). A default that does not read as its type is reported
  // as a bug in the plugin, naming the plugin and the key.
  static StageConfig from_spec(const StageSpec& stage, const sp_config_key* schema,
                               std::uint32_t schema_size);

  bool has(std::string_view key) const noexcept override;
  std::string get_string(std::string_view key) const noexcept override;
  std::int64_t get_integer(std::string_view key) const noexcept override;
  double get_number(std::string_view key) const noexcept override;
  bool get_boolean(std::string_view key) const noexcept override;
  std::chrono::milliseconds get_duration(std::string_view key) const noexcept override;
  std::vector<std::string> get_string_list(std::string_view key) const noexcept override;
  // "file:line:col" of the value, "default" when the schema supplied it, ""
  // when the key is not set.
  std::string source_of(std::string_view key) const noexcept override;

 private:
  std::map<std::string, Value, std::less<>> values_;
  std::map<std::string, std::string, std::less<>> sources_;
};

}  // namespace slack_proxy::config

// A stage's settings checked against the plugin's schema, exposed to the
// plugin as an sdk::ConfigView.
//
// The host does the generic checks (Fluent Bit style): unknown keys (naming
// the allowed ones), wrong types, bounds, allowed values, missing required
// keys, defaults, and reads secrets. The plugin then checks what the values
// mean.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <span>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include <slack_proxy/sdk/abi.h>
#include <slack_proxy/sdk/host.h>
#include <slack_proxy/sdk/settings.h>

#include "config/config.h"

namespace slack_proxy::config {

class StageConfig final : public sdk::ConfigView {
 public:
  using StringMap = std::map<std::string, std::string>;
  // A secret is its own alternative so that no getter but get_secret() can
  // hand it out.
  using Value = std::variant<std::string, std::int64_t, double, bool, std::chrono::milliseconds,
                             std::vector<std::string>, StringMap, sdk::Secret>;

  // Checks `stage.settings` against `schema[0..schema_size)`. Throws
  // ConfigError listing every problem, each prefixed with the stage's source
  // position (or the offending key's own position) and plugin name, e.g.
  //   "cfg.toml:14:1: stage 'token_bucket': unknown key 'rat'; allowed: burst, key, rate"
  //   "cfg.toml:15:8: stage 'token_bucket': 'rate' must be a number, got string"
  //   "cfg.toml:15:8: stage 'token_bucket': 'rate' must be > 0, got -1"
  //
  // Bounds (sp_config_key::flags, min, max) apply to the value of integers
  // and numbers, the milliseconds of durations, the element count of string
  // lists and maps, and the byte length of strings. An enum's value must be
  // one of `allowed`.
  //
  // A secret is { env = "VAR" } or { file = "/path" }. With `read_secrets`
  // the variable or file (trailing whitespace trimmed) is read now, and a
  // missing, empty or unreadable one is an error naming the key and the
  // variable or path, never the value. Without it (`slack-proxy validate`)
  // only the shape is checked: has() is true and get_secret() returns "".
  //
  // Schema defaults (sp_config_key::default_value) are read per type: strings
  // and durations as plain text ("global", "15m"); integers, numbers,
  // booleans and string lists as TOML values ("3", "1.5", "true",
  // "[\"a\", \"b\"]", "{ a = \"b\" }"); enums as plain text. A default that
  // does not read as its type, breaks its own bounds or allowed values, or is
  // given for a secret is reported as a bug in the plugin, naming the plugin
  // and the key.
  static StageConfig from_spec(const StageSpec& stage, const sp_config_key* schema,
                               std::uint32_t schema_size, bool read_secrets = true);

  // Whose table is checked, in the words of the messages.
  struct Subject {
    std::string who;       // "stage 'token_bucket'", "[server]": prefixes every problem
    std::string declarer;  // "plugin 'token_bucket'": whose schema a broken row is a bug in
    std::string bug_in;    // "the plugin"
    SourceRef where;       // the table's position, for problems a value's own cannot carry
  };
  // The same checks on any table, so that the core's own sections ([server],
  // [[pipeline]], ...) are checked and worded exactly as stages are:
  //   "cfg.toml:3:11: [server]: 'threads' must be <= 1024, got 2000"
  // `also_allowed` are keys the caller reads itself (a [[pipeline]]'s
  // `stage` tables): not unknown, and named among the allowed ones.
  static StageConfig from_table(const toml::table& settings, const Subject& subject,
                                const sp_config_key* schema, std::uint32_t schema_size,
                                bool read_secrets = true,
                                std::span<const std::string_view> also_allowed = {});

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
  std::map<std::string, std::string> get_string_map(std::string_view key) const noexcept override;
  std::string get_secret(std::string_view key) const noexcept override;

 private:
  std::map<std::string, Value, std::less<>> values_;
  std::map<std::string, std::string, std::less<>> sources_;
};

// One line on what a schema row accepts, for `slack-proxy plugins`:
//   "number, > 0 and <= 1e+09, default 1"
//   "enum, one of: global | channel, default \"global\""
//   "integer, 1..1024, default 8"
//   "secret { env = \"VAR\" } or { file = \"/path\" }, required"
// Bounds are worded as the checks in from_spec() word them.
std::string describe_setting(const sp_config_key& key);

}  // namespace slack_proxy::config

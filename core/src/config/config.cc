#include "config/config.h"
#include "redis/redis_settings.h"

#include "config/core_schema.h"
#include "config/stage_config.h"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <initializer_list>
#include <map>
#include <optional>
#include <span>
#include <sstream>
#include <utility>

namespace slack_proxy::config {

std::string SourceRef::str() const {
  return file + ":" + std::to_string(line) + ":" + std::to_string(column);
}

namespace {

std::string join(const std::vector<std::string>& lines, std::string_view separator) {
  std::string out;
  for (const auto& line : lines) {
    if (!out.empty()) out += separator;
    out += line;
  }
  return out;
}

}  // namespace

ConfigError::ConfigError(std::vector<std::string> errors)
    : std::runtime_error(join(errors, "\n")), errors_(std::move(errors)) {}

std::string ListenAddress::str() const {
  // A bare IPv6 address would make the port ambiguous.
  if (host.find(':') != std::string::npos) return "[" + host + "]:" + std::to_string(port);
  return host + ":" + std::to_string(port);
}

namespace {

constexpr std::string_view kDurationForms =
    "expected a number followed by one unit (ms, s, m, h), e.g. \"250ms\", \"1.5s\", \"15m\", "
    "\"2h\"";

bool all_digits(std::string_view s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
}

// "host:port" or "[v6]:port"; nullopt when malformed.
std::optional<ListenAddress> parse_listen(std::string_view text) {
  std::string_view host;
  std::string_view port;
  if (!text.empty() && text.front() == '[') {
    const auto close = text.find(']');
    if (close == std::string_view::npos || close + 1 >= text.size() || text[close + 1] != ':')
      return std::nullopt;
    host = text.substr(1, close - 1);
    port = text.substr(close + 2);
  } else {
    const auto colon = text.rfind(':');
    if (colon == std::string_view::npos) return std::nullopt;
    host = text.substr(0, colon);
    port = text.substr(colon + 1);
    if (host.find(':') != std::string_view::npos) return std::nullopt;
  }
  if (host.empty() || !all_digits(port) || port.size() > 5) return std::nullopt;
  const auto number = std::stoul(std::string(port));
  if (number > 65535) return std::nullopt;
  return ListenAddress{std::string(host), static_cast<std::uint16_t>(number)};
}

bool is_loopback(std::string_view host) {
  return host == "localhost" || host == "::1" || host.rfind("127.", 0) == 0;
}

bool is_name(std::string_view s, bool allow_upper_and_dash) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [&](char c) {
    if ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_') return true;
    return allow_upper_and_dash && ((c >= 'A' && c <= 'Z') || c == '-');
  });
}

// Collects problems with their positions so that one run reports them all.
class Problems {
 public:
  explicit Problems(std::string file) : file_(std::move(file)) {}

  SourceRef where(const toml::source_region& region) const {
    return {file_, static_cast<int>(region.begin.line), static_cast<int>(region.begin.column)};
  }
  void at(const toml::source_region& region, std::string message) {
    errors_.push_back(where(region).str() + ": " + std::move(message));
  }
  void at(const SourceRef& ref, std::string message) {
    errors_.push_back(ref.str() + ": " + std::move(message));
  }
  void at_file(std::string message) { errors_.push_back(file_ + ": " + std::move(message)); }
  // A problem already prefixed with its position.
  void line(std::string message) { errors_.push_back(std::move(message)); }

  const std::string& file() const { return file_; }
  void throw_if_any() {
    if (!errors_.empty()) throw ConfigError(std::move(errors_));
  }

 private:
  std::string file_;
  std::vector<std::string> errors_;
};

std::string comma_list(std::initializer_list<std::string_view> names) {
  std::string out;
  for (auto name : names) {
    if (!out.empty()) out += ", ";
    out += name;
  }
  return out;
}

void reject_unknown_keys(Problems& problems, const toml::table& table, const std::string& where,
                         std::initializer_list<std::string_view> allowed) {
  for (const auto& [key, value] : table) {
    if (std::find(allowed.begin(), allowed.end(), key.str()) != allowed.end()) continue;
    problems.at(key.source(), "unknown key '" + std::string(key.str()) + "' " + where +
                                  "; allowed: " + comma_list(allowed));
  }
}

// Checks a core section against its schema (core_schema.h) with the
// machinery that checks a stage, and reads it; nullopt, after recording the
// problems, when it does not pass.
template <typename S>
std::optional<S> read_section(Problems& problems, const toml::table& table, const std::string& who,
                              const sdk::Schema<S>& schema,
                              std::span<const std::string_view> also_allowed = {}) {
  const StageConfig::Subject subject{who, "slack-proxy", "slack-proxy", problems.where(table.source())};
  try {
    // Core sections hold no secrets: nothing to read.
    return schema.read(StageConfig::from_table(table, subject, schema.data(), schema.size(),
                                               /*read_secrets=*/false, also_allowed));
  } catch (const ConfigError& e) {
    for (const auto& error : e.errors()) problems.line(error);
    return std::nullopt;
  }
}

// A problem a schema cannot state, worded as the schema's own:
// "cfg.toml:2:12: [server]: 'listen' must be ...".
void invalid(Problems& problems, const toml::source_region& at, const std::string& who,
             std::string_view key, const std::string& why) {
  problems.at(at, who + ": '" + std::string(key) + "' " + why);
}

// Where `key` was written, or the table's own position when the value is
// the schema's default.
const toml::source_region& where_of(const toml::table& table, std::string_view key) {
  const auto* node = table.get(key);
  return node != nullptr ? node->source() : table.source();
}

// A top-level host section; an empty one when absent (so that its values
// come from the schema's defaults), nullptr when not a table.
const toml::table* host_table(Problems& problems, const toml::table& doc, std::string_view name) {
  static const toml::table kAbsent;
  const auto* node = doc.get(name);
  if (node == nullptr) return &kAbsent;
  if (const auto* table = node->as_table()) return table;
  problems.at(node->source(),
              std::string(name) + " must be a table ([" + std::string(name) + "]), got " +
                  std::string(type_name(*node)));
  return nullptr;
}

// The `listen` text the schema let through, parsed.
std::optional<ListenAddress> read_listen(Problems& problems, const toml::table& table,
                                         const std::string& who, const std::string& text) {
  if (auto parsed = parse_listen(text)) return parsed;
  invalid(problems, where_of(table, "listen"), who, "listen",
          "must be \"host:port\" or \"[ipv6]:port\" with port 0..65535, got \"" + text + "\"");
  return std::nullopt;
}

// TLS needs both files; a minimum version without TLS is a mistake.
void check_tls(Problems& problems, const toml::table& table) {
  const auto* cert = table.get("tls_cert");
  const auto* key = table.get("tls_key");
  if ((cert == nullptr) != (key == nullptr)) {
    invalid(problems, (cert != nullptr ? cert : key)->source(), "[server]",
            cert != nullptr ? "tls_cert" : "tls_key",
            "needs " + std::string(cert != nullptr ? "tls_key" : "tls_cert") +
                " too: TLS takes a certificate and its private key (set both, or neither "
                "for plain HTTP)");
  }
  if (const auto* version = table.get("tls_min_version"); version && cert == nullptr && key == nullptr) {
    invalid(problems, version->source(), "[server]", "tls_min_version",
            "is set but TLS is off: set tls_cert and tls_key, or remove it");
  }
}

void read_server(Problems& problems, const toml::table& doc, ServerConfig& server) {
  const auto* table = host_table(problems, doc, "server");
  if (table == nullptr) return;
  // Paths are only checked for shape here; the files are read at start-up
  // (`validate` reads no secrets, and a key is one).
  auto section = read_section(problems, *table, "[server]", server_schema());
  if (!section) return;
  server = std::move(section->config);
  if (auto listen = read_listen(problems, *table, "[server]", section->listen)) server.listen = *listen;
  check_tls(problems, *table);
}

void read_metrics(Problems& problems, const toml::table& doc, MetricsConfig& metrics) {
  const auto* table = host_table(problems, doc, "metrics");
  if (table == nullptr) return;
  auto section = read_section(problems, *table, "[metrics]", metrics_schema());
  if (!section) return;
  metrics = std::move(section->config);
  const auto listen = read_listen(problems, *table, "[metrics]", section->listen);
  if (!listen) return;
  metrics.listen = *listen;
  // Metrics name every channel and client, and the admin API lives here:
  // leaving loopback is a decision, not a default.
  if (metrics.enabled && !metrics.public_listener && !is_loopback(metrics.listen.host)) {
    invalid(problems, where_of(*table, "listen"), "[metrics]", "listen",
            "\"" + metrics.listen.str() +
                "\" is not a loopback address; the metrics and admin listener stays on "
                "loopback unless you also set public = true");
  }
}

// A section the schema says all about.
template <typename S>
void read_plain(Problems& problems, const toml::table& doc, std::string_view name,
                const sdk::Schema<S>& schema, S& out) {
  const auto* table = host_table(problems, doc, name);
  if (table == nullptr) return;
  if (auto section = read_section(problems, *table, "[" + std::string(name) + "]", schema))
    out = std::move(*section);
}

void read_redis(Problems& problems, const toml::table& doc, RedisConfig& redis) {
  const auto* table = host_table(problems, doc, "redis");
  if (table == nullptr) return;
  auto section = read_section(problems, *table, "[redis]", redis_schema());
  if (!section) return;
  if (!section->url.empty()) {
    try {
      RedisSettings parsed;
      parse_redis_url(section->url, parsed);
    } catch (const std::invalid_argument& e) {
      // The message never repeats the URL: it may hold a password by mistake.
      invalid(problems, where_of(*table, "url"), "[redis]", "url", e.what());
    }
  }
  redis = std::move(*section);
}

void read_plugins(Problems& problems, const toml::table& doc, PluginsConfig& plugins) {
  const auto* table = host_table(problems, doc, "plugins");
  if (table == nullptr) return;
  const auto section = read_section(problems, *table, "[plugins]", plugins_schema());
  if (!section || section->paths.empty()) return;
  // Relative to the config file, not the working directory, so that a config
  // and its plugins can be moved together.
  const std::filesystem::path base = std::filesystem::path(problems.file()).parent_path();
  const auto& entries = *table->get("paths")->as_array();  // the schema checked its shape
  for (const auto& node : entries) {
    const std::string& entry = node.as_string()->get();
    if (entry.empty()) {
      invalid(problems, node.source(), "[plugins]", "paths", "entries must not be empty");
      continue;
    }
    std::error_code ec;
    auto resolved = std::filesystem::absolute(base / entry, ec).lexically_normal();
    if (ec) {
      invalid(problems, node.source(), "[plugins]", "paths",
              "entry \"" + entry + "\" cannot be resolved: " + ec.message());
      continue;
    }
    if (resolved.filename().empty()) resolved = resolved.parent_path();
    plugins.paths.push_back(resolved.string());
  }
}

void check_listeners(Problems& problems, const ProxyConfig& config) {
  if (!config.metrics.enabled) return;
  const auto& a = config.server.listen;
  const auto& b = config.metrics.listen;
  if (a.port == 0 || a.port != b.port) return;
  auto wildcard = [](const std::string& host) { return host == "0.0.0.0" || host == "::"; };
  if (a.host == b.host || wildcard(a.host) || wildcard(b.host)) {
    problems.at_file("[metrics] listen " + b.str() + " conflicts with [server] listen " + a.str());
  }
}

// The Redis queue needs [redis] url: where else would it be?
void check_queue_backend(Problems& problems, const toml::table& doc, const ProxyConfig& config) {
  const auto* queue = doc.get("queue") ? doc.get("queue")->as_table() : nullptr;
  if (queue == nullptr) return;
  if (config.queue.backend == "redis" && config.redis.url.empty() && queue->get("backend"))
    invalid(problems, where_of(*queue, "backend"), "[queue]", "backend",
            "\"redis\" needs [redis] url (redis://host[:port][/db])");
  // WAIT's own timeout must end before the connection gives up on it.
  if (config.queue.wait_replicas > 0 && queue->get("wait_timeout") &&
      config.queue.wait_timeout >= config.redis.command_timeout)
    invalid(problems, where_of(*queue, "wait_timeout"), "[queue]", "wait_timeout",
            "must be below [redis] command_timeout (" +
                std::to_string(config.redis.command_timeout.count()) + " ms)");
}

// `name` and `plugin` are the host's; the rest of the table moves into
// StageSpec::settings (moved, not copied, so values keep their positions).
std::optional<StageSpec> read_stage(Problems& problems, toml::table& table, const std::string& label) {
  StageSpec stage;
  stage.where = problems.where(table.source());
  bool ok = true;
  if (const auto* node = table.get("plugin")) {
    const auto* value = node->as_string();
    if (value == nullptr) {
      problems.at(node->source(), label + ": plugin must be a string, got " + std::string(type_name(*node)));
      ok = false;
    } else if (!is_name(value->get(), false)) {
      problems.at(node->source(), label + ": plugin '" + value->get() +
                                      "' is not a valid plugin name; use [a-z0-9_]+");
      ok = false;
    } else {
      stage.plugin = value->get();
    }
  } else {
    problems.at(table.source(), label + ": missing required key 'plugin'");
    ok = false;
  }
  stage.name = stage.plugin;
  if (const auto* node = table.get("name")) {
    const auto* value = node->as_string();
    if (value == nullptr) {
      problems.at(node->source(), label + ": name must be a string, got " + std::string(type_name(*node)));
      ok = false;
    } else if (!is_name(value->get(), true)) {
      problems.at(node->source(), label + ": name '" + value->get() +
                                      "' is not a valid stage name; use [A-Za-z0-9_-]+");
      ok = false;
    } else {
      stage.name = value->get();
    }
  }
  if (!ok) return std::nullopt;
  table.erase("plugin");
  table.erase("name");
  stage.settings = std::move(table);
  return stage;
}

// "pipeline 'alerts'" when the table has a valid name, else "pipeline #2".
std::string pipeline_label(const toml::table& table, std::size_t index) {
  const auto* name = table.get("name");
  if (name != nullptr && name->is_string() && is_name(name->as_string()->get(), true))
    return "pipeline '" + name->as_string()->get() + "'";
  return "pipeline #" + std::to_string(index + 1);
}

void check_pipeline_name(Problems& problems, const toml::table& table, const std::string& label,
                         const std::string& name, std::map<std::string, SourceRef>& names) {
  const auto& node = *table.get("name");  // required: the schema saw it
  if (!is_name(name, true)) {
    problems.at(node.source(),
                label + ": name '" + name + "' is not a valid pipeline name; use [A-Za-z0-9_-]+");
    return;
  }
  const auto [it, inserted] = names.emplace(name, problems.where(node.source()));
  if (!inserted) {
    problems.at(node.source(),
                "duplicate pipeline name '" + name + "', first defined at " + it->second.str());
  }
}

// Each path starts with '/', has '*' only at its end after a '/', and is
// served by one pipeline only.
void check_pipeline_paths(Problems& problems, const toml::table& table, const std::string& label,
                          std::vector<std::string>& paths,
                          std::map<std::string, std::string>& path_owner) {
  // Absent, the paths are the schema's default and the table is their place.
  const auto* written = table.get("paths") != nullptr ? table.get("paths")->as_array() : nullptr;
  std::vector<std::string> kept;
  for (std::size_t i = 0; i < paths.size(); ++i) {
    const auto& at = written != nullptr ? written->get(i)->source() : table.source();
    const std::string& path = paths[i];
    if (path.empty() || path.front() != '/') {
      problems.at(at, label + ": path \"" + path + "\" must start with \"/\"");
      continue;
    }
    const auto star = path.find('*');
    if (star != std::string::npos &&
        (star != path.size() - 1 || path.size() < 2 || path[star - 1] != '/')) {
      problems.at(at, label + ": path \"" + path +
                          "\": '*' may only end a path, after a '/' (\"/services/*\")");
      continue;
    }
    const auto [it, inserted] = path_owner.emplace(path, label);
    if (!inserted) problems.at(at, label + ": path \"" + path + "\" is already served by " + it->second);
    kept.push_back(path);
  }
  paths = std::move(kept);
}

void read_pipelines(Problems& problems, toml::table& doc, std::vector<PipelineSpec>& pipelines) {
  constexpr std::string_view kNeedOne =
      "at least one [[pipeline]] with at least one [[pipeline.stage]] is required";
  auto* node = doc.get("pipeline");
  if (node == nullptr) return problems.at_file(std::string(kNeedOne));
  auto* array = node->as_array();
  if (array == nullptr || !array->is_array_of_tables()) {
    return problems.at(node->source(), "pipeline must be an array of tables ([[pipeline]]), got " +
                                           std::string(type_name(*node)));
  }
  if (array->empty()) return problems.at(node->source(), std::string(kNeedOne));

  std::map<std::string, SourceRef> names;               // pipeline name -> where
  std::map<std::string, std::string> path_owner;        // path -> pipeline label
  for (std::size_t i = 0; i < array->size(); ++i) {
    auto& table = *array->get(i)->as_table();
    const std::string label = pipeline_label(table, i);
    if (const auto* moved = table.get("rate_limit_scope")) {
      // What a 429 pauses is the sink's to say now (it reports back-pressure
      // with its scope); a pipeline-level key would silently do nothing.
      problems.at(moved->source(),
                  label + ": 'rate_limit_scope' is no longer a pipeline setting; set "
                          "rate_limit_scope on the slack_sink stage instead "
                          "([[pipeline.stage]] plugin = \"slack_sink\", rate_limit_scope = "
                          "\"workspace\" or \"channel\")");
      table.erase("rate_limit_scope");  // said above; not an unknown key too
    }
    constexpr std::string_view kStage = "stage";  // read below, as stages
    auto checked = read_section(problems, table, label, pipeline_schema(), {&kStage, 1});
    PipelineSpec pipeline = checked ? std::move(*checked) : PipelineSpec{};
    pipeline.where = problems.where(table.source());
    if (checked) {
      check_pipeline_name(problems, table, label, pipeline.name, names);
      check_pipeline_paths(problems, table, label, pipeline.paths, path_owner);
    }

    auto* stages_node = table.get("stage");
    auto* stages = stages_node != nullptr ? stages_node->as_array() : nullptr;
    if (stages_node != nullptr && (stages == nullptr || !stages->is_array_of_tables())) {
      problems.at(stages_node->source(), label + ": stage must be an array of tables ([[pipeline.stage]]), got " +
                                             std::string(type_name(*stages_node)));
    } else if (stages == nullptr || stages->empty()) {
      problems.at(table.source(), label + " has no stages; add at least one [[pipeline.stage]]");
    } else {
      std::map<std::string, SourceRef> stage_names;
      for (std::size_t j = 0; j < stages->size(); ++j) {
        auto& stage_table = *stages->get(j)->as_table();
        const auto where = problems.where(stage_table.source());
        auto stage = read_stage(problems, stage_table, label + " stage #" + std::to_string(j + 1));
        if (!stage) continue;
        const auto [it, inserted] = stage_names.emplace(stage->name, where);
        if (!inserted) {
          // The table's contents (and position) now live in `stage`.
          problems.at(where, label + ": duplicate stage name '" + stage->name +
                                                "', first defined at " + it->second.str() +
                                                "; give one of them a distinct name");
          continue;
        }
        pipeline.stages.push_back(std::move(*stage));
      }
    }
    pipelines.push_back(std::move(pipeline));
  }
}

}  // namespace

std::string_view type_name(const toml::node& node) {
  switch (node.type()) {
    case toml::node_type::table: return "table";
    case toml::node_type::array: return "array";
    case toml::node_type::string: return "string";
    case toml::node_type::integer: return "integer";
    case toml::node_type::floating_point: return "float";
    case toml::node_type::boolean: return "boolean";
    case toml::node_type::date: return "date";
    case toml::node_type::time: return "time";
    case toml::node_type::date_time: return "date-time";
    default: return "nothing";
  }
}

constexpr std::int64_t kMaxDurationMs = 365LL * 24 * 3'600'000;

std::chrono::milliseconds parse_duration(std::string_view text) {
  auto fail = [&](std::string_view why) -> std::invalid_argument {
    return std::invalid_argument("\"" + std::string(text) + "\" " + std::string(why) + "; " +
                                 std::string(kDurationForms));
  };
  std::size_t digits_end = 0;
  while (digits_end < text.size() &&
         ((text[digits_end] >= '0' && text[digits_end] <= '9') || text[digits_end] == '.')) {
    ++digits_end;
  }
  const std::string_view number = text.substr(0, digits_end);
  const std::string_view unit = text.substr(digits_end);

  std::int64_t unit_ms = 0;
  if (unit == "ms") unit_ms = 1;
  else if (unit == "s") unit_ms = 1'000;
  else if (unit == "m") unit_ms = 60'000;
  else if (unit == "h") unit_ms = 3'600'000;
  else if (unit.empty()) throw fail("has no unit");
  else throw fail("has an unknown unit");

  const auto dot = number.find('.');
  const std::string_view whole = number.substr(0, dot);
  const std::string_view fraction = dot == std::string_view::npos ? std::string_view{} : number.substr(dot + 1);
  if (!all_digits(whole) || (dot != std::string_view::npos && !all_digits(fraction))) {
    throw fail("is not a number with a unit");
  }

  // Exact decimal arithmetic: "1.5m" is 15 * 60000 / 10, with no float rounding.
  std::int64_t mantissa = 0;
  std::int64_t scale = 1;
  for (char c : std::string(whole) + std::string(fraction)) {
    if (__builtin_mul_overflow(mantissa, 10, &mantissa) ||
        __builtin_add_overflow(mantissa, c - '0', &mantissa)) {
      throw fail("is too large");
    }
  }
  for (std::size_t i = 0; i < fraction.size(); ++i) {
    if (__builtin_mul_overflow(scale, 10, &scale)) throw fail("has too many decimals");
  }
  std::int64_t total = 0;
  if (__builtin_mul_overflow(mantissa, unit_ms, &total)) throw fail("is too large");
  if (total % scale != 0) throw fail("is not a whole number of milliseconds");
  // Deadlines are computed as now + duration on a nanosecond clock, which
  // overflows after ~292 years; a year is far beyond any sane setting.
  if (total / scale > kMaxDurationMs) throw fail("is longer than the maximum of 8760h (365 days)");
  return std::chrono::milliseconds(total / scale);
}

ProxyConfig parse_config(std::string_view text, const std::string& source_name) {
  Problems problems(source_name);
  toml::table doc;
  try {
    doc = toml::parse(text, source_name);
  } catch (const toml::parse_error& e) {
    problems.at(e.source(), std::string(e.description()));
    problems.throw_if_any();
  }

  ProxyConfig config;
  config.file = source_name;
  reject_unknown_keys(problems, doc, "at the top level",
                      {"server", "metrics", "admin", "queue", "redis", "dispatcher", "log",
                       "plugins", "pipeline"});
  read_server(problems, doc, config.server);
  read_metrics(problems, doc, config.metrics);
  read_plain(problems, doc, "admin", admin_schema(), config.admin);
  read_plain(problems, doc, "queue", queue_schema(), config.queue);
  read_redis(problems, doc, config.redis);
  read_plain(problems, doc, "dispatcher", dispatcher_schema(), config.dispatcher);
  read_plain(problems, doc, "log", log_schema(), config.log);
  read_plugins(problems, doc, config.plugins);
  read_pipelines(problems, doc, config.pipelines);
  check_listeners(problems, config);
  check_queue_backend(problems, doc, config);
  problems.throw_if_any();
  return config;
}

ProxyConfig load_config(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw ConfigError({path + ": cannot read: " + std::strerror(errno)});
  std::ostringstream text;
  text << in.rdbuf();
  if (in.bad()) throw ConfigError({path + ": cannot read: " + std::strerror(errno)});
  return parse_config(text.str(), path);
}

}  // namespace slack_proxy::config

#include "config/config.h"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <initializer_list>
#include <limits>
#include <map>
#include <optional>
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

// One host-owned table ([server], [[pipeline]], ...): rejects keys it does
// not know and reads typed values, leaving the default in place on error.
class Section {
 public:
  Section(Problems& problems, const toml::table& table, std::string label,
          std::initializer_list<std::string_view> allowed)
      : problems_(problems), table_(table), label_(std::move(label)) {
    reject_unknown_keys(problems_, table_, "in " + label_, allowed);
  }

  const toml::node* find(std::string_view key) const { return table_.get(key); }

  void wrong_type(const toml::node& node, std::string_view key, std::string_view expected) {
    problems_.at(node.source(), label_ + " " + std::string(key) + " must be " +
                                    std::string(expected) + ", got " + std::string(type_name(node)));
  }
  void invalid(const toml::node& node, std::string_view key, const std::string& why) {
    problems_.at(node.source(), label_ + " " + std::string(key) + " " + why);
  }

  template <typename T>
  void integer(std::string_view key, T& out, std::int64_t min,
               std::int64_t max = std::numeric_limits<std::int64_t>::max()) {
    const auto* node = find(key);
    if (node == nullptr) return;
    const auto* value = node->as_integer();
    if (value == nullptr) return wrong_type(*node, key, "an integer");
    const std::int64_t v = value->get();
    if (v < min || v > max) {
      const std::string range = max == std::numeric_limits<std::int64_t>::max()
                                    ? ">= " + std::to_string(min)
                                    : "between " + std::to_string(min) + " and " + std::to_string(max);
      return invalid(*node, key, "must be " + range + ", got " + std::to_string(v));
    }
    out = static_cast<T>(v);
  }

  void boolean(std::string_view key, bool& out) {
    const auto* node = find(key);
    if (node == nullptr) return;
    if (const auto* value = node->as_boolean()) {
      out = value->get();
    } else {
      wrong_type(*node, key, "a boolean");
    }
  }

  const toml::value<std::string>* string(std::string_view key) {
    const auto* node = find(key);
    if (node == nullptr) return nullptr;
    const auto* value = node->as_string();
    if (value == nullptr) wrong_type(*node, key, "a string");
    return value;
  }

  void choice(std::string_view key, std::string& out, std::initializer_list<std::string_view> allowed) {
    const auto* value = string(key);
    if (value == nullptr) return;
    if (std::find(allowed.begin(), allowed.end(), value->get()) != allowed.end()) {
      out = value->get();
      return;
    }
    invalid(*value, key, "'" + value->get() + "' is not supported; allowed: " + comma_list(allowed));
  }

  void duration(std::string_view key, std::chrono::milliseconds& out, std::chrono::milliseconds min) {
    const auto* node = find(key);
    if (node == nullptr) return;
    const auto* value = node->as_string();
    if (value == nullptr) return wrong_type(*node, key, "a duration string such as \"10s\"");
    try {
      const auto parsed = parse_duration(value->get());
      if (parsed < min) {
        return invalid(*node, key,
                       "must be at least " + std::to_string(min.count()) + "ms, got \"" + value->get() + "\"");
      }
      out = parsed;
    } catch (const std::invalid_argument& e) {
      invalid(*node, key, "is not a valid duration: " + std::string(e.what()));
    }
  }

  void listen(std::string_view key, ListenAddress& out) {
    const auto* value = string(key);
    if (value == nullptr) return;
    if (auto parsed = parse_listen(value->get())) {
      out = std::move(*parsed);
    } else {
      invalid(*value, key,
              "must be \"host:port\" or \"[ipv6]:port\" with port 0..65535, got \"" + value->get() + "\"");
    }
  }

  // The elements, kept as nodes for their positions; nullopt (after reporting)
  // when the value is not an array of strings.
  std::optional<std::vector<const toml::value<std::string>*>> string_list(std::string_view key) {
    const auto* node = find(key);
    if (node == nullptr) return std::nullopt;
    const auto* array = node->as_array();
    if (array == nullptr) {
      wrong_type(*node, key, "an array of strings");
      return std::nullopt;
    }
    std::vector<const toml::value<std::string>*> out;
    bool ok = true;
    for (std::size_t i = 0; i < array->size(); ++i) {
      const auto& element = *array->get(i);
      if (const auto* s = element.as_string()) {
        out.push_back(s);
      } else {
        wrong_type(element, std::string(key) + "[" + std::to_string(i) + "]", "a string");
        ok = false;
      }
    }
    if (!ok) return std::nullopt;
    return out;
  }

 private:
  Problems& problems_;
  const toml::table& table_;
  std::string label_;
};

// A top-level host section, or nullptr when absent or not a table.
const toml::table* host_table(Problems& problems, const toml::table& doc, std::string_view name) {
  const auto* node = doc.get(name);
  if (node == nullptr) return nullptr;
  if (const auto* table = node->as_table()) return table;
  problems.at(node->source(),
              std::string(name) + " must be a table ([" + std::string(name) + "]), got " +
                  std::string(type_name(*node)));
  return nullptr;
}

void read_server(Problems& problems, const toml::table& doc, ServerConfig& server) {
  const auto* table = host_table(problems, doc, "server");
  if (table == nullptr) return;
  Section s(problems, *table, "[server]",
            {"listen", "threads", "max_queued", "max_connections", "max_body_bytes", "read_timeout",
             "keep_alive_timeout", "max_keep_alive_requests", "max_header_fields",
             "max_header_bytes", "max_json_depth", "tls_cert", "tls_key", "tls_min_version"});
  constexpr std::int64_t kIntMax = std::numeric_limits<int>::max();
  s.listen("listen", server.listen);
  s.integer("threads", server.threads, 0, 1024);
  s.integer("max_queued", server.max_queued, 1, kIntMax);
  s.integer("max_connections", server.max_connections, 1, 1'000'000);
  s.integer("max_body_bytes", server.max_body_bytes, 1024);
  s.duration("read_timeout", server.read_timeout, std::chrono::milliseconds(1));
  s.duration("keep_alive_timeout", server.keep_alive_timeout, std::chrono::milliseconds(1));
  s.integer("max_keep_alive_requests", server.max_keep_alive_requests, 1, kIntMax);
  s.integer("max_header_fields", server.max_header_fields, 1, 10'000);
  s.integer("max_header_bytes", server.max_header_bytes, 1024, 16 << 20);
  s.integer("max_json_depth", server.max_json_depth, 1, 512);
  // Paths are only checked for shape here; the files are read at start-up
  // (`validate` reads no secrets, and a key is one).
  auto path = [&](std::string_view key, std::string& out) {
    const auto* value = s.string(key);
    if (value == nullptr) return;
    if (value->get().empty()) return s.invalid(*value, key, "must not be empty");
    out = value->get();
  };
  path("tls_cert", server.tls_cert);
  path("tls_key", server.tls_key);
  s.choice("tls_min_version", server.tls_min_version, {"1.2", "1.3"});
  const auto* cert = s.find("tls_cert");
  const auto* key = s.find("tls_key");
  if ((cert == nullptr) != (key == nullptr)) {
    const auto& given = cert != nullptr ? *cert : *key;
    s.invalid(given, cert != nullptr ? "tls_cert" : "tls_key",
              "needs " + std::string(cert != nullptr ? "tls_key" : "tls_cert") +
                  " too: TLS takes a certificate and its private key (set both, or neither "
                  "for plain HTTP)");
  }
  if (const auto* version = s.find("tls_min_version"); version && cert == nullptr && key == nullptr) {
    s.invalid(*version, "tls_min_version",
              "is set but TLS is off: set tls_cert and tls_key, or remove it");
  }
}

void read_metrics(Problems& problems, const toml::table& doc, MetricsConfig& metrics) {
  const auto* table = host_table(problems, doc, "metrics");
  if (table == nullptr) return;
  Section s(problems, *table, "[metrics]",
            {"enabled", "listen", "public", "max_channel_labels"});
  s.boolean("enabled", metrics.enabled);
  s.integer("max_channel_labels", metrics.max_channel_labels, 1);
  s.listen("listen", metrics.listen);
  s.boolean("public", metrics.public_listener);
  // Metrics name every channel and client, and the admin API lives here:
  // leaving loopback is a decision, not a default.
  if (metrics.enabled && !metrics.public_listener && !is_loopback(metrics.listen.host)) {
    const auto* node = table->get("listen");
    problems.at(node ? node->source() : table->source(),
                "[metrics] listen \"" + metrics.listen.str() +
                    "\" is not a loopback address; the metrics and admin listener stays on "
                    "loopback unless you also set public = true");
  }
}

void read_admin(Problems& problems, const toml::table& doc, AdminConfig& admin) {
  const auto* table = host_table(problems, doc, "admin");
  if (table == nullptr) return;
  Section s(problems, *table, "[admin]", {"key_env", "key_file"});
  if (const auto* env = s.string("key_env")) admin.key_env = env->get();
  if (const auto* file = s.string("key_file")) admin.key_file = file->get();
}

void read_queue(Problems& problems, const toml::table& doc, QueueConfig& queue) {
  const auto* table = host_table(problems, doc, "queue");
  if (table == nullptr) return;
  Section s(problems, *table, "[queue]",
            {"backend", "path", "sync", "capacity", "max_bytes", "retry_after", "dedup_window",
             "max_dead_letters", "token_key_env"});
  s.choice("backend", queue.backend, {"sqlite", "memory"});
  if (const auto* path = s.string("path")) {
    if (path->get().empty()) {
      problems.at(path->source(), "[queue] path must not be empty");
    } else {
      queue.path = path->get();
    }
  }
  s.choice("sync", queue.sync, {"full", "normal"});
  s.integer("capacity", queue.capacity, 1);
  s.integer("max_bytes", queue.max_bytes, 1024);
  // Retry-After is sent in whole seconds, so less than 1s cannot be expressed.
  s.duration("retry_after", queue.retry_after, std::chrono::seconds(1));
  s.duration("dedup_window", queue.dedup_window, std::chrono::milliseconds(0));
  s.integer("max_dead_letters", queue.max_dead_letters, 1);
  if (const auto* env = s.string("token_key_env")) queue.token_key_env = env->get();
}

void read_dispatcher(Problems& problems, const toml::table& doc, DispatcherConfig& dispatcher) {
  const auto* table = host_table(problems, doc, "dispatcher");
  if (table == nullptr) return;
  Section s(problems, *table, "[dispatcher]", {"workers", "shutdown_timeout"});
  s.integer("workers", dispatcher.workers, 1, std::numeric_limits<int>::max());
  // 0 is allowed: exit at once and report what was left.
  s.duration("shutdown_timeout", dispatcher.shutdown_timeout, std::chrono::milliseconds(0));
}

void read_log(Problems& problems, const toml::table& doc, LogConfig& log) {
  const auto* table = host_table(problems, doc, "log");
  if (table == nullptr) return;
  Section s(problems, *table, "[log]", {"level"});
  s.choice("level", log.level, {"trace", "debug", "info", "warn", "error"});
}

void read_plugins(Problems& problems, const toml::table& doc, PluginsConfig& plugins) {
  const auto* table = host_table(problems, doc, "plugins");
  if (table == nullptr) return;
  Section s(problems, *table, "[plugins]", {"paths"});
  const auto entries = s.string_list("paths");
  if (!entries) return;
  // Relative to the config file, not the working directory, so that a config
  // and its plugins can be moved together.
  const std::filesystem::path base = std::filesystem::path(problems.file()).parent_path();
  for (const auto* entry : *entries) {
    if (entry->get().empty()) {
      s.invalid(*entry, "paths", "entries must not be empty");
      continue;
    }
    std::error_code ec;
    auto resolved = std::filesystem::absolute(base / entry->get(), ec).lexically_normal();
    if (ec) {
      s.invalid(*entry, "paths", "entry \"" + entry->get() + "\" cannot be resolved: " + ec.message());
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
    PipelineSpec pipeline;
    pipeline.where = problems.where(table.source());
    std::string label = "pipeline #" + std::to_string(i + 1);
    Section s(problems, table, "[[pipeline]]",
              {"name", "paths", "stage", "style", "default_channel", "delivery_token",
               "rate_limit_scope"});
    s.choice("style", pipeline.style, {"api", "webhook"});
    s.choice("delivery_token", pipeline.delivery_token, {"proxy", "caller"});
    if (const auto* moved = s.find("rate_limit_scope")) {
      // What a 429 pauses is the sink's to say now (it reports back-pressure
      // with its scope); a pipeline-level key would silently do nothing.
      problems.at(moved->source(),
                  label + ": 'rate_limit_scope' is no longer a pipeline setting; set "
                          "rate_limit_scope on the slack_sink stage instead "
                          "([[pipeline.stage]] plugin = \"slack_sink\", rate_limit_scope = "
                          "\"workspace\" or \"channel\")");
    }
    if (const auto* channel = s.string("default_channel")) pipeline.default_channel = channel->get();

    if (const auto* name = s.string("name")) {
      if (!is_name(name->get(), true)) {
        problems.at(name->source(), label + ": name '" + name->get() +
                                        "' is not a valid pipeline name; use [A-Za-z0-9_-]+");
      } else {
        pipeline.name = name->get();
        label = "pipeline '" + pipeline.name + "'";
        const auto [it, inserted] = names.emplace(pipeline.name, problems.where(name->source()));
        if (!inserted) {
          problems.at(name->source(), "duplicate pipeline name '" + pipeline.name +
                                          "', first defined at " + it->second.str());
        }
      }
    } else if (s.find("name") == nullptr) {
      problems.at(table.source(), label + ": missing required key 'name'");
    }

    auto claim = [&](const std::string& path, const toml::source_region& at) {
      const auto [it, inserted] = path_owner.emplace(path, label);
      if (!inserted) {
        problems.at(at, label + ": path \"" + path + "\" is already served by " + it->second);
      }
    };
    if (s.find("paths") == nullptr) {
      pipeline.paths = {"/"};
      claim("/", table.source());
    } else if (const auto paths = s.string_list("paths")) {
      if (paths->empty()) {
        problems.at(s.find("paths")->source(), label + ": paths must list at least one path");
      }
      for (const auto* path : *paths) {
        if (path->get().empty() || path->get().front() != '/') {
          problems.at(path->source(), label + ": path \"" + path->get() + "\" must start with \"/\"");
          continue;
        }
        const auto star = path->get().find('*');
        if (star != std::string::npos &&
            (star != path->get().size() - 1 || path->get().size() < 2 ||
             path->get()[star - 1] != '/')) {
          problems.at(path->source(), label + ": path \"" + path->get() +
                                          "\": '*' may only end a path, after a '/' (\"/services/*\")");
          continue;
        }
        claim(path->get(), path->source());
        pipeline.paths.push_back(path->get());
      }
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
                      {"server", "metrics", "admin", "queue", "dispatcher", "log", "plugins",
                       "pipeline"});
  read_server(problems, doc, config.server);
  read_metrics(problems, doc, config.metrics);
  read_admin(problems, doc, config.admin);
  read_queue(problems, doc, config.queue);
  read_dispatcher(problems, doc, config.dispatcher);
  read_log(problems, doc, config.log);
  read_plugins(problems, doc, config.plugins);
  read_pipelines(problems, doc, config.pipelines);
  check_listeners(problems, config);
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

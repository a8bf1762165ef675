#include "config/stage_config.h"

#include <array>
#include <cerrno>
#include <charconv>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <optional>
#include <set>
#include <stdexcept>
#include <utility>

#include <slack_proxy/sdk/secret_file.h>

namespace slack_proxy::config {

namespace {

std::string_view expected_type(sp_value_type type) {
  switch (type) {
    case SP_VALUE_STRING: return "a string";
    case SP_VALUE_INTEGER: return "an integer";
    case SP_VALUE_NUMBER: return "a number";
    case SP_VALUE_BOOLEAN: return "a boolean";
    case SP_VALUE_DURATION: return "a duration string such as \"1s\"";
    case SP_VALUE_STRING_LIST: return "an array of strings";
    case SP_VALUE_ENUM: return "a string";
    case SP_VALUE_STRING_MAP: return "a table of strings";
    case SP_VALUE_SECRET: return "{ env = \"VAR\" } or { file = \"/path\" }";
  }
  return "a known type";
}

// "0.5", "-1", "1e+09": the shortest text that reads back as the same double.
std::string shortest(double value) {
  std::array<char, 32> buffer{};
  const auto [end, ec] = std::to_chars(buffer.data(), buffer.data() + buffer.size(), value);
  return ec == std::errc() ? std::string(buffer.data(), end) : std::to_string(value);
}

// "1000000" rather than "1e+06": an integer setting's bound as it is typed.
std::string whole_number(double value) {
  std::array<char, 400> buffer{};
  const auto [end, ec] =
      std::to_chars(buffer.data(), buffer.data() + buffer.size(), value, std::chars_format::fixed);
  return ec == std::errc() ? std::string(buffer.data(), end) : shortest(value);
}

// "15m", "10s", "250ms": the largest unit that divides the value exactly.
std::string duration_text(std::int64_t ms) {
  if (ms != 0 && ms % 3'600'000 == 0) return std::to_string(ms / 3'600'000) + "h";
  if (ms != 0 && ms % 60'000 == 0) return std::to_string(ms / 60'000) + "m";
  if (ms != 0 && ms % 1'000 == 0) return std::to_string(ms / 1'000) + "s";
  return std::to_string(ms) + "ms";
}

bool takes_bounds(sp_value_type type) {
  return type != SP_VALUE_BOOLEAN && type != SP_VALUE_ENUM && type != SP_VALUE_SECRET;
}

std::vector<std::string_view> allowed_values(const sp_config_key& key) {
  std::vector<std::string_view> values;
  if (key.allowed == nullptr) return values;
  for (std::uint32_t i = 0; i < key.allowed_size; ++i)
    if (key.allowed[i] != nullptr) values.emplace_back(key.allowed[i]);
  return values;
}

// "" when `text` is one of the enum's values, else what it must be.
std::string enum_problem(const sp_config_key& key, const std::string& text) {
  const auto values = allowed_values(key);
  std::string list;
  for (std::size_t i = 0; i < values.size(); ++i) {
    if (values[i] == text) return {};
    const char* separator = i == 0 ? "" : (i + 1 == values.size() ? " or " : ", ");
    list += separator + ("\"" + std::string(values[i]) + "\"");
  }
  return "must be one of " + list + ", got \"" + text + "\"";
}

// The value as the schema's type, or why it is not one ("must be ..., got ...").
// Secrets are not converted here: see secret_source().
struct Converted {
  std::optional<StageConfig::Value> value;
  std::string problem;
};

Converted convert(const toml::node& node, const sp_config_key& key) {
  auto wrong = [&] {
    return Converted{std::nullopt, "must be " + std::string(expected_type(key.type)) + ", got " +
                                       std::string(type_name(node))};
  };
  switch (key.type) {
    case SP_VALUE_STRING:
      if (const auto* s = node.as_string()) return {s->get(), {}};
      return wrong();
    case SP_VALUE_ENUM: {
      const auto* s = node.as_string();
      if (s == nullptr) return wrong();
      if (auto problem = enum_problem(key, s->get()); !problem.empty()) return {std::nullopt, problem};
      return {s->get(), {}};
    }
    case SP_VALUE_INTEGER:
      if (const auto* i = node.as_integer()) return {i->get(), {}};
      return wrong();
    case SP_VALUE_NUMBER:
      // An integer is a number; a user writing `rate = 1` means 1.0.
      if (const auto* d = node.as_floating_point()) return {d->get(), {}};
      if (const auto* i = node.as_integer()) return {static_cast<double>(i->get()), {}};
      return wrong();
    case SP_VALUE_BOOLEAN:
      if (const auto* b = node.as_boolean()) return {b->get(), {}};
      return wrong();
    case SP_VALUE_DURATION: {
      const auto* s = node.as_string();
      if (s == nullptr) return wrong();
      try {
        return {parse_duration(s->get()), {}};
      } catch (const std::invalid_argument& e) {
        return {std::nullopt, "is not a valid duration: " + std::string(e.what())};
      }
    }
    case SP_VALUE_STRING_LIST: {
      const auto* array = node.as_array();
      if (array == nullptr) return wrong();
      std::vector<std::string> list;
      for (const auto& element : *array) {
        const auto* s = element.as_string();
        if (s == nullptr) {
          return {std::nullopt, "must be an array of strings, got an element of type " +
                                    std::string(type_name(element))};
        }
        list.push_back(s->get());
      }
      return {std::move(list), {}};
    }
    case SP_VALUE_STRING_MAP: {
      const auto* table = node.as_table();
      if (table == nullptr) return wrong();
      StageConfig::StringMap map;
      for (const auto& [name, element] : *table) {
        const auto* s = element.as_string();
        if (s == nullptr) {
          return {std::nullopt, "must be a table of strings, got " +
                                    std::string(type_name(element)) + " for key \"" +
                                    std::string(name.str()) + "\""};
        }
        map.emplace(std::string(name.str()), s->get());
      }
      return {std::move(map), {}};
    }
    case SP_VALUE_SECRET:
      break;
  }
  return {std::nullopt, "has a type this host does not know (" + std::to_string(key.type) + ")"};
}

// What the bounds measure in a value (see abi.h), and how to show it.
struct Measured {
  double amount;
  std::string shown;
};

std::optional<Measured> measure(const StageConfig::Value& value) {
  if (const auto* i = std::get_if<std::int64_t>(&value))
    return Measured{static_cast<double>(*i), std::to_string(*i)};
  if (const auto* d = std::get_if<double>(&value)) return Measured{*d, shortest(*d)};
  if (const auto* ms = std::get_if<std::chrono::milliseconds>(&value))
    return Measured{static_cast<double>(ms->count()), duration_text(ms->count())};
  if (const auto* l = std::get_if<std::vector<std::string>>(&value))
    return Measured{static_cast<double>(l->size()), std::to_string(l->size())};
  if (const auto* m = std::get_if<StageConfig::StringMap>(&value))
    return Measured{static_cast<double>(m->size()), std::to_string(m->size())};
  if (const auto* s = std::get_if<std::string>(&value))
    return Measured{static_cast<double>(s->size()), std::to_string(s->size())};
  return std::nullopt;
}

// "> 0", "at least 1 entry", "at most 80 bytes long": one bound in the words
// of the setting's type.
std::string bound_text(sp_value_type type, double bound, bool lower, bool exclusive) {
  if (type == SP_VALUE_STRING_LIST || type == SP_VALUE_STRING_MAP || type == SP_VALUE_STRING) {
    const char* how = lower ? (exclusive ? "more than " : "at least ")
                            : (exclusive ? "fewer than " : "at most ");
    const bool one = bound == 1.0;
    const char* unit = type == SP_VALUE_STRING ? (one ? " byte long" : " bytes long")
                                               : (one ? " entry" : " entries");
    return std::string(type == SP_VALUE_STRING ? "be " : "have ") + how + shortest(bound) + unit;
  }
  const std::string shown = type == SP_VALUE_DURATION  ? duration_text(static_cast<std::int64_t>(bound))
                           : type == SP_VALUE_INTEGER ? whole_number(bound)
                                                      : shortest(bound);
  return std::string("be ") + (lower ? (exclusive ? "> " : ">= ") : (exclusive ? "< " : "<= ")) +
         shown;
}

// "" when `value` is within the key's bounds, else "must be > 0, got -1".
// Written so that NaN fails every bound.
std::string bound_problem(const sp_config_key& key, const StageConfig::Value& value) {
  if (!takes_bounds(key.type)) return {};
  const auto measured = measure(value);
  if (!measured) return {};
  const double v = measured->amount;
  if ((key.flags & SP_KEY_HAS_MIN) != 0) {
    const bool exclusive = (key.flags & SP_KEY_MIN_EXCLUSIVE) != 0;
    if (!(exclusive ? v > key.min : v >= key.min))
      return "must " + bound_text(key.type, key.min, true, exclusive) + ", got " + measured->shown;
  }
  if ((key.flags & SP_KEY_HAS_MAX) != 0) {
    const bool exclusive = (key.flags & SP_KEY_MAX_EXCLUSIVE) != 0;
    if (!(exclusive ? v < key.max : v <= key.max))
      return "must " + bound_text(key.type, key.max, false, exclusive) + ", got " + measured->shown;
  }
  return {};
}

// See stage_config.h for how default_value is read for each type.
Converted parse_default(const sp_config_key& key) {
  const std::string text = key.default_value;
  if (key.type == SP_VALUE_STRING) return {text, {}};
  if (key.type == SP_VALUE_ENUM) {
    if (auto problem = enum_problem(key, text); !problem.empty()) return {std::nullopt, problem};
    return {text, {}};
  }
  if (key.type == SP_VALUE_DURATION) {
    try {
      return {parse_duration(text), {}};
    } catch (const std::invalid_argument& e) {
      return {std::nullopt, "is not a valid duration: " + std::string(e.what())};
    }
  }
  try {
    const toml::table parsed = toml::parse("v = " + text);
    return convert(*parsed.get("v"), key);
  } catch (const toml::parse_error& e) {
    return {std::nullopt, "is not a TOML value: " + std::string(e.description())};
  }
}

// What is wrong with the row itself, beyond its default: "" when nothing.
std::string schema_problem(const sp_config_key& key) {
  const std::string name = "'" + std::string(key.key) + "'";
  if (key.type == SP_VALUE_ENUM && allowed_values(key).empty())
    return "declares the enum " + name + " without allowed values";
  if (key.type == SP_VALUE_SECRET && key.default_value != nullptr)
    return "declares a default for the secret " + name +
           ": secrets come only from an environment variable or a file";
  if ((key.flags & (SP_KEY_HAS_MIN | SP_KEY_HAS_MAX)) != 0 && !takes_bounds(key.type))
    return "declares bounds on " + name + ", whose type has none";
  return {};
}

std::string where(const toml::source_region& region, const SourceRef& table) {
  // toml++ drops positions when a node is copied; fall back to the table's.
  if (region.begin.line == 0) return table.str();
  return SourceRef{table.file, static_cast<int>(region.begin.line),
                   static_cast<int>(region.begin.column)}
      .str();
}

// Where a secret setting says its value is. Never holds the value itself.
struct SecretSource {
  bool from_env = false;
  std::string name;  // the variable, or the path
  const toml::node* node = nullptr;  // the env/file value, for its position
};

// The source a { env = ... } / { file = ... } table names, or why the table
// is not one. The messages name keys and types only: a user who pasted the
// secret itself where the table belongs must not find it in a log.
std::optional<SecretSource> secret_source(const toml::node& node, std::string& problem) {
  const auto* table = node.as_table();
  if (table == nullptr) {
    problem = "must be " + std::string(expected_type(SP_VALUE_SECRET)) + ", got " +
              std::string(type_name(node));
    return std::nullopt;
  }
  const toml::node* env = table->get("env");
  const toml::node* file = table->get("file");
  const std::size_t known = (env != nullptr ? 1 : 0) + (file != nullptr ? 1 : 0);
  if (table->size() != known) {
    problem = "must be " + std::string(expected_type(SP_VALUE_SECRET)) + ", with no other key";
  } else if (known == 2) {
    problem = "must set env or file, not both";
  } else if (known == 0) {
    problem = "must set env (an environment variable) or file (a path)";
  }
  if (!problem.empty()) return std::nullopt;
  SecretSource source{env != nullptr, {}, env != nullptr ? env : file};
  const char* what = source.from_env ? "env" : "file";
  const auto* text = source.node->as_string();
  if (text == nullptr || text->get().empty()) {
    problem = std::string(what) + " must be a non-empty string naming " +
              (source.from_env ? "an environment variable" : "a file") + ", got " +
              (text == nullptr ? std::string(type_name(*source.node)) : "\"\"");
    return std::nullopt;
  }
  source.name = text->get();
  return source;
}

// The secret's value, or nullopt and why not (naming the variable or path,
// never the value). Files are read by the SDK's reader, the one plugins use.
std::optional<std::string> read_secret(const SecretSource& source, std::string& problem) {
  if (source.from_env) {
    const char* value = std::getenv(source.name.c_str());
    if (value == nullptr) problem = "environment variable " + source.name + " is not set";
    else if (*value == '\0') problem = "environment variable " + source.name + " is empty";
    if (!problem.empty()) return std::nullopt;
    return std::string(value);
  }
  return sdk::read_secret_file(source.name, problem);
}

}  // namespace

StageConfig StageConfig::from_spec(const StageSpec& stage, const sp_config_key* schema,
                                   std::uint32_t schema_size, bool read_secrets) {
  const std::string who = stage.name == stage.plugin
                              ? "stage '" + stage.name + "'"
                              : "stage '" + stage.name + "' (plugin " + stage.plugin + ")";
  return from_table(stage.settings, {who, "plugin '" + stage.plugin + "'", "the plugin", stage.where},
                    schema, schema_size, read_secrets);
}

StageConfig StageConfig::from_table(const toml::table& settings, const Subject& subject,
                                    const sp_config_key* schema, std::uint32_t schema_size,
                                    bool read_secrets,
                                    std::span<const std::string_view> also_allowed) {
  std::vector<std::string> errors;
  auto report = [&](const std::string& at, const std::string& message) {
    errors.push_back(at + ": " + subject.who + ": " + message);
  };
  auto plugin_bug = [&](const std::string& message) {
    report(subject.where.str(), subject.declarer + " " + message + " (a bug in " + subject.bug_in + ")");
  };

  std::map<std::string_view, const sp_config_key*> keys;
  if (schema == nullptr) schema_size = 0;
  for (std::uint32_t i = 0; i < schema_size; ++i) {
    if (schema[i].key == nullptr) {
      plugin_bug("declares a setting without a name (schema entry " + std::to_string(i) + ")");
    } else if (!keys.emplace(schema[i].key, &schema[i]).second) {
      plugin_bug("declares the setting '" + std::string(schema[i].key) + "' twice");
    }
  }

  std::set<std::string_view> allowed(also_allowed.begin(), also_allowed.end());
  for (const auto& [name, spec] : keys) allowed.insert(name);
  for (const auto& [key, value] : settings) {
    if (allowed.count(key.str()) != 0) continue;
    std::string message = "unknown key '" + std::string(key.str()) + "'; ";
    if (allowed.empty()) {
      message += "this plugin takes no settings";
    } else {
      message += "allowed: ";
      bool first = true;
      for (const auto name : allowed) {  // std::set: already sorted
        message += (first ? "" : ", ") + std::string(name);
        first = false;
      }
    }
    report(where(key.source(), subject.where), message);
  }

  StageConfig config;
  for (const auto& [name, spec] : keys) {
    const std::string quoted = "'" + std::string(name) + "'";
    // Checked even when the user sets the key, so a broken schema shows up
    // in the plugin's first test rather than in some operator's config.
    if (auto problem = schema_problem(*spec); !problem.empty()) plugin_bug(problem);
    std::optional<Value> fallback;
    if (spec->default_value != nullptr && spec->type != SP_VALUE_SECRET) {
      auto parsed = parse_default(*spec);
      std::string problem =
          parsed.value ? bound_problem(*spec, *parsed.value) : std::move(parsed.problem);
      if (problem.empty()) {
        fallback = std::move(parsed.value);
      } else {
        plugin_bug("has an invalid default for " + quoted + " (\"" + spec->default_value +
                   "\"): it " + problem);
      }
    }

    if (const auto* node = settings.get(name)) {
      const std::string at = where(node->source(), subject.where);
      if (spec->type == SP_VALUE_SECRET) {
        std::string problem;
        const auto source = secret_source(*node, problem);
        if (!source) {
          report(at, quoted + " " + problem);
          continue;
        }
        const std::string source_at = where(source->node->source(), subject.where);
        // Check-only: the shape is valid; the value is for the stage that runs.
        auto secret = read_secrets ? read_secret(*source, problem) : std::optional<std::string>("");
        if (!secret) {
          report(source_at, quoted + ": " + problem);
          continue;
        }
        config.values_.emplace(std::string(name), sdk::Secret{std::move(*secret)});
        config.sources_.emplace(std::string(name), source_at);
        continue;
      }
      auto converted = convert(*node, *spec);
      std::string problem =
          converted.value ? bound_problem(*spec, *converted.value) : std::move(converted.problem);
      if (problem.empty()) {
        config.values_.emplace(std::string(name), std::move(*converted.value));
        config.sources_.emplace(std::string(name), at);
      } else {
        report(at, quoted + " " + problem);
      }
    } else if (spec->required != 0) {
      std::string message = "missing required key " + quoted;
      if (spec->doc != nullptr && *spec->doc != '\0') message += " (" + std::string(spec->doc) + ")";
      report(subject.where.str(), message);
    } else if (fallback) {
      config.values_.emplace(std::string(name), std::move(*fallback));
      config.sources_.emplace(std::string(name), "default");
    }
  }

  if (!errors.empty()) throw ConfigError(std::move(errors));
  return config;
}

namespace {

std::string_view type_word(sp_value_type type) {
  switch (type) {
    case SP_VALUE_STRING: return "string";
    case SP_VALUE_INTEGER: return "integer";
    case SP_VALUE_NUMBER: return "number";
    case SP_VALUE_BOOLEAN: return "boolean";
    case SP_VALUE_DURATION: return "duration";
    case SP_VALUE_STRING_LIST: return "string list";
    case SP_VALUE_ENUM: return "enum";
    case SP_VALUE_STRING_MAP: return "table of strings";
    case SP_VALUE_SECRET: return "secret { env = \"VAR\" } or { file = \"/path\" }";
  }
  return "unknown type";
}

// "1..1024" when both bounds are inclusive numbers, else each bound in the
// words of the error it would give ("> 0", "at least 1 entry").
std::string bounds_text(const sp_config_key& key) {
  const bool has_min = (key.flags & SP_KEY_HAS_MIN) != 0;
  const bool has_max = (key.flags & SP_KEY_HAS_MAX) != 0;
  const bool min_exclusive = (key.flags & SP_KEY_MIN_EXCLUSIVE) != 0;
  const bool max_exclusive = (key.flags & SP_KEY_MAX_EXCLUSIVE) != 0;
  const bool numeric = key.type == SP_VALUE_INTEGER || key.type == SP_VALUE_NUMBER;
  if (numeric && has_min && has_max && !min_exclusive && !max_exclusive) {
    auto shown = key.type == SP_VALUE_INTEGER ? whole_number : shortest;
    return shown(key.min) + ".." + shown(key.max);
  }
  // bound_text() says "be > 0" or "have at least 1 entry": drop the verb.
  auto words = [&](double bound, bool lower, bool exclusive) {
    const std::string text = bound_text(key.type, bound, lower, exclusive);
    return text.substr(text.find(' ') + 1);
  };
  std::string text;
  if (has_min) text = words(key.min, true, min_exclusive);
  if (has_max) text += (text.empty() ? "" : " and ") + words(key.max, false, max_exclusive);
  return text;
}

}  // namespace

std::string describe_setting(const sp_config_key& key) {
  std::string text(type_word(key.type));
  if (takes_bounds(key.type)) {
    if (auto bounds = bounds_text(key); !bounds.empty()) text += ", " + bounds;
  }
  if (key.type == SP_VALUE_ENUM) {
    std::string values;
    for (std::string_view v : allowed_values(key)) values += (values.empty() ? "" : " | ") + std::string(v);
    text += ", one of: " + values;
  }
  if (key.required != 0) text += ", required";
  if (key.default_value != nullptr && key.type != SP_VALUE_SECRET) {
    // Text-like defaults are quoted so that an empty one shows.
    const bool quote = key.type == SP_VALUE_STRING || key.type == SP_VALUE_ENUM;
    text += std::string(", default ") + (quote ? "\"" : "") + key.default_value + (quote ? "\"" : "");
  }
  return text;
}

namespace {

template <typename T, typename Map>
T value_as(const Map& values, std::string_view key) noexcept {
  const auto it = values.find(key);
  if (it == values.end()) return T{};
  if (const auto* v = std::get_if<T>(&it->second)) return *v;
  return T{};
}

}  // namespace

bool StageConfig::has(std::string_view key) const noexcept { return values_.find(key) != values_.end(); }

std::string StageConfig::get_string(std::string_view key) const noexcept {
  return value_as<std::string>(values_, key);
}

std::int64_t StageConfig::get_integer(std::string_view key) const noexcept {
  return value_as<std::int64_t>(values_, key);
}

double StageConfig::get_number(std::string_view key) const noexcept {
  // Same widening as sdk::testing::MapConfig, so a plugin behaves alike under
  // the fake and the host.
  const auto it = values_.find(key);
  if (it == values_.end()) return 0.0;
  if (const auto* i = std::get_if<std::int64_t>(&it->second)) return static_cast<double>(*i);
  if (const auto* d = std::get_if<double>(&it->second)) return *d;
  return 0.0;
}

bool StageConfig::get_boolean(std::string_view key) const noexcept {
  return value_as<bool>(values_, key);
}

std::chrono::milliseconds StageConfig::get_duration(std::string_view key) const noexcept {
  return value_as<std::chrono::milliseconds>(values_, key);
}

std::vector<std::string> StageConfig::get_string_list(std::string_view key) const noexcept {
  return value_as<std::vector<std::string>>(values_, key);
}

std::string StageConfig::source_of(std::string_view key) const noexcept {
  const auto it = sources_.find(key);
  return it == sources_.end() ? std::string() : it->second;
}

std::map<std::string, std::string> StageConfig::get_string_map(std::string_view key) const noexcept {
  return value_as<StringMap>(values_, key);
}

std::string StageConfig::get_secret(std::string_view key) const noexcept {
  return value_as<sdk::Secret>(values_, key).value;
}

}  // namespace slack_proxy::config

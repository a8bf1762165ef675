#include "config/stage_config.h"

#include <optional>
#include <set>
#include <stdexcept>
#include <utility>

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
  }
  return "a known type";
}

// The value as the schema's type, or why it is not one ("must be ..., got ...").
struct Converted {
  std::optional<StageConfig::Value> value;
  std::string problem;
};

Converted convert(const toml::node& node, sp_value_type type) {
  auto wrong = [&] {
    return Converted{std::nullopt, "must be " + std::string(expected_type(type)) + ", got " +
                                       std::string(type_name(node))};
  };
  switch (type) {
    case SP_VALUE_STRING:
      if (const auto* s = node.as_string()) return {s->get(), {}};
      return wrong();
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
  }
  return {std::nullopt, "has a type this host does not know (" + std::to_string(type) + ")"};
}

// See stage_config.h for how default_value is read for each type.
Converted parse_default(const sp_config_key& key) {
  const std::string text = key.default_value;
  if (key.type == SP_VALUE_STRING) return {text, {}};
  if (key.type == SP_VALUE_DURATION) {
    try {
      return {parse_duration(text), {}};
    } catch (const std::invalid_argument& e) {
      return {std::nullopt, "is not a valid duration: " + std::string(e.what())};
    }
  }
  try {
    const toml::table parsed = toml::parse("v = " + text);
    return convert(*parsed.get("v"), key.type);
  } catch (const toml::parse_error& e) {
    return {std::nullopt, "is not a TOML value: " + std::string(e.description())};
  }
}

std::string where(const toml::source_region& region, const StageSpec& stage) {
  // toml++ drops positions when a node is copied; fall back to the stage's.
  if (region.begin.line == 0) return stage.where.str();
  return SourceRef{stage.where.file, static_cast<int>(region.begin.line),
                   static_cast<int>(region.begin.column)}
      .str();
}

}  // namespace

StageConfig StageConfig::from_spec(const StageSpec& stage, const sp_config_key* schema,
                                   std::uint32_t schema_size) {
  const std::string who = stage.name == stage.plugin
                              ? "stage '" + stage.name + "'"
                              : "stage '" + stage.name + "' (plugin " + stage.plugin + ")";
  std::vector<std::string> errors;
  auto report = [&](const std::string& at, const std::string& message) {
    errors.push_back(at + ": " + who + ": " + message);
  };
  auto plugin_bug = [&](const std::string& message) {
    report(stage.where.str(), "plugin '" + stage.plugin + "' " + message + " (a bug in the plugin)");
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

  for (const auto& [key, value] : stage.settings) {
    if (keys.count(key.str()) != 0) continue;
    std::string message = "unknown key '" + std::string(key.str()) + "'; ";
    if (keys.empty()) {
      message += "this plugin takes no settings";
    } else {
      message += "allowed: ";
      bool first = true;
      for (const auto& [name, spec] : keys) {  // std::map: already sorted
        message += (first ? "" : ", ") + std::string(name);
        first = false;
      }
    }
    report(where(key.source(), stage), message);
  }

  StageConfig config;
  for (const auto& [name, spec] : keys) {
    // Checked even when the user sets the key, so a broken schema shows up
    // in the plugin's first test rather than in some operator's config.
    std::optional<Value> fallback;
    if (spec->default_value != nullptr) {
      auto parsed = parse_default(*spec);
      if (parsed.value) {
        fallback = std::move(parsed.value);
      } else {
        plugin_bug("has an invalid default for '" + std::string(name) + "' (\"" +
                   spec->default_value + "\"): it " + parsed.problem);
      }
    }

    if (const auto* node = stage.settings.get(name)) {
      auto converted = convert(*node, spec->type);
      const std::string at = where(node->source(), stage);
      if (converted.value) {
        config.values_.emplace(std::string(name), std::move(*converted.value));
        config.sources_.emplace(std::string(name), at);
      } else {
        report(at, "'" + std::string(name) + "' " + converted.problem);
      }
    } else if (spec->required != 0) {
      std::string message = "missing required key '" + std::string(name) + "'";
      if (spec->doc != nullptr && *spec->doc != '\0') message += " (" + std::string(spec->doc) + ")";
      report(stage.where.str(), message);
    } else if (fallback) {
      config.values_.emplace(std::string(name), std::move(*fallback));
      config.sources_.emplace(std::string(name), "default");
    }
  }

  if (!errors.empty()) throw ConfigError(std::move(errors));
  return config;
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

}  // namespace slack_proxy::config

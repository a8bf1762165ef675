// Typed settings: a plugin declares each setting once, next to the struct
// that holds it, and reads the struct instead of looking keys up by string.
//
//   struct Settings {
//     double rate = 0;
//     std::int64_t burst = 0;
//     std::string key;
//     std::map<std::string, std::string> routes;
//   };
//   inline const slack_proxy::sdk::Schema<Settings> kSchema{
//       sdk::setting("rate", &Settings::rate, "tokens added per second").above(0).default_to("1"),
//       sdk::setting("burst", &Settings::burst, "bucket capacity").at_least(1).default_to("3"),
//       sdk::setting("key", &Settings::key, "one bucket per ...")
//           .one_of({"global", "channel"}).default_to("global"),
//       sdk::setting("routes", &Settings::routes, "channel -> channel").at_least(1).required(),
//   };
//
// The same object is the plugin's schema in its descriptor (pass it to
// SLACK_PROXY_PLUGIN in place of an sp_config_key array), so the host checks
// types, bounds, allowed values and required keys, fills defaults, and shows
// all of it in `slack-proxy plugins`. The factory then takes the struct:
//
//   std::unique_ptr<sdk::RateLimiter> make(const sdk::PluginContext&, const Settings&);
//
// What the member's type makes the setting:
//   std::string                         string (an enum with one_of())
//   bool                                boolean
//   any other integer type              integer (bounded to the type's range)
//   float, double                       number
//   std::chrono::duration<...>          duration ("250ms", "15m")
//   std::vector<std::string>            string list
//   std::map<std::string, std::string>  table of strings
//   sdk::Secret                         secret ({ env = "VAR" } or { file = "/path" })
//
// Bounds apply to the value (numbers, durations in milliseconds), the number
// of elements (lists, tables) or the length in bytes (strings). A setting
// that is absent, optional and without a default leaves its member as the
// struct initialised it.
//
// Schemas are built when the library is loaded (they are namespace-scope
// objects), never while a request is served.
#ifndef SLACK_PROXY_SDK_SETTINGS_H
#define SLACK_PROXY_SDK_SETTINGS_H

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <functional>
#include <initializer_list>
#include <limits>
#include <map>
#include <optional>
#include <ratio>
#include <string_view>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include <slack_proxy/sdk/abi.h>
#include <slack_proxy/sdk/host.h>

namespace slack_proxy::sdk {

// A secret setting's value. A type of its own so that it is never formatted
// or logged by accident; use `.value` where the secret is needed.
struct Secret {
  std::string value;
  bool empty() const noexcept { return value.empty(); }
};

namespace detail {

template <typename T>
struct is_duration : std::false_type {};
template <typename R, typename P>
struct is_duration<std::chrono::duration<R, P>> : std::true_type {};

// The setting type a member of type T declares.
template <typename T>
constexpr sp_value_type value_type_of() {
  if constexpr (std::is_same_v<T, std::string>) return SP_VALUE_STRING;
  else if constexpr (std::is_same_v<T, bool>) return SP_VALUE_BOOLEAN;
  else if constexpr (std::is_integral_v<T>) return SP_VALUE_INTEGER;
  else if constexpr (std::is_floating_point_v<T>) return SP_VALUE_NUMBER;
  else if constexpr (is_duration<T>::value) {
    // The host reads durations in milliseconds; a coarser member would
    // silently drop part of "250ms".
    static_assert(std::ratio_less_equal_v<typename T::period, std::milli>,
                  "a duration setting needs a member of milliseconds or finer");
    return SP_VALUE_DURATION;
  }
  else if constexpr (std::is_same_v<T, std::vector<std::string>>) return SP_VALUE_STRING_LIST;
  else if constexpr (std::is_same_v<T, std::map<std::string, std::string>>) return SP_VALUE_STRING_MAP;
  else if constexpr (std::is_same_v<T, Secret>) return SP_VALUE_SECRET;
  else static_assert(sizeof(T) == 0, "this member type cannot be a setting (see settings.h)");
}

// Reads an already checked value of type T from the host's view.
template <typename T>
T read_value(const ConfigView& view, const char* key) {
  if constexpr (std::is_same_v<T, std::string>) return view.get_string(key);
  else if constexpr (std::is_same_v<T, bool>) return view.get_boolean(key);
  else if constexpr (std::is_integral_v<T>) return static_cast<T>(view.get_integer(key));
  else if constexpr (std::is_floating_point_v<T>) return static_cast<T>(view.get_number(key));
  else if constexpr (is_duration<T>::value)
    return std::chrono::duration_cast<T>(view.get_duration(key));
  else if constexpr (std::is_same_v<T, std::vector<std::string>>) return view.get_string_list(key);
  else if constexpr (std::is_same_v<T, std::map<std::string, std::string>>)
    return view.get_string_map(key);
  else if constexpr (std::is_same_v<T, Secret>) return Secret{view.get_secret(key)};
}

}  // namespace detail

// One setting of a settings struct S. Made by setting() (or a fragment such
// as http_client_settings()), refined by the chained calls below.
template <typename S>
class Setting {
 public:
  using Reader = std::function<void(const ConfigView&, S&)>;

  Setting(sp_config_key key, Reader reader) : key_(key), reader_(std::move(reader)) {
    // A narrow integer member's own range (see make_setting) stays a limit
    // that the author's bounds can only tighten.
    if (key_.flags & SP_KEY_HAS_MIN) type_min_ = key_.min;
    if (key_.flags & SP_KEY_HAS_MAX) type_max_ = key_.max;
  }

  // Text of the default, as the type reads it: strings, enums and durations
  // as plain text ("global", "15m"); numbers, booleans, lists and tables as
  // TOML values ("1.5", "true", "[\"a\"]", "{ a = \"b\" }").
  Setting& default_to(const char* text) {
    key_.default_value = text;
    return *this;
  }
  Setting& required() {
    key_.required = 1;
    return *this;
  }
  Setting& at_least(double v) { return bound_min(v, false); }
  Setting& above(double v) { return bound_min(v, true); }
  Setting& at_most(double v) { return bound_max(v, false); }
  Setting& below(double v) { return bound_max(v, true); }
  // Turns a string setting into an enum: only these values are accepted.
  Setting& one_of(std::initializer_list<const char*> values) {
    allowed_.assign(values.begin(), values.end());
    if (key_.type == SP_VALUE_STRING) key_.type = SP_VALUE_ENUM;
    return *this;
  }

  // The C row this setting adds to the descriptor's schema. `allowed`
  // points into this object.
  sp_config_key key() const noexcept {
    sp_config_key k = key_;
    k.allowed = allowed_.empty() ? nullptr : allowed_.data();
    k.allowed_size = static_cast<std::uint32_t>(allowed_.size());
    return k;
  }
  void read(const ConfigView& view, S& into) const {
    if (view.has(key_.key)) reader_(view, into);
  }

 private:
  Setting& bound_min(double v, bool exclusive) {
    if (type_min_ && v < *type_min_) {
      v = *type_min_;
      exclusive = false;
    }
    key_.flags |= SP_KEY_HAS_MIN;
    key_.flags = exclusive ? (key_.flags | SP_KEY_MIN_EXCLUSIVE) : (key_.flags & ~SP_KEY_MIN_EXCLUSIVE);
    key_.min = v;
    return *this;
  }
  Setting& bound_max(double v, bool exclusive) {
    if (type_max_ && v > *type_max_) {
      v = *type_max_;
      exclusive = false;
    }
    key_.flags |= SP_KEY_HAS_MAX;
    key_.flags = exclusive ? (key_.flags | SP_KEY_MAX_EXCLUSIVE) : (key_.flags & ~SP_KEY_MAX_EXCLUSIVE);
    key_.max = v;
    return *this;
  }

  sp_config_key key_;
  Reader reader_;
  std::vector<const char*> allowed_;
  std::optional<double> type_min_, type_max_;
};

namespace detail {

// A setting whose value lands where `at` points inside S.
template <typename S, typename T>
Setting<S> make_setting(const char* key, const char* doc, std::function<T&(S&)> at) {
  sp_config_key k{};
  k.key = key;
  k.type = value_type_of<T>();
  k.doc = doc;
  if constexpr (std::is_integral_v<T> && !std::is_same_v<T, bool> &&
                (sizeof(T) < sizeof(std::int64_t) || std::is_unsigned_v<T>)) {
    // A narrower member cannot hold every TOML integer: say so up front.
    k.flags = SP_KEY_HAS_MIN | SP_KEY_HAS_MAX;
    k.min = static_cast<double>(std::numeric_limits<T>::min());
    k.max = static_cast<double>(std::min<std::uintmax_t>(
        std::numeric_limits<T>::max(), std::numeric_limits<std::int64_t>::max()));
  }
  return Setting<S>(k, [key, at = std::move(at)](const ConfigView& view, S& s) {
    at(s) = read_value<T>(view, key);
  });
}

}  // namespace detail

// The setting `key` of settings struct S, stored wherever `at` points (a
// member of a member: `[](S& s) -> T& { return s.http.timeout; }`).
template <typename S, typename T>
Setting<S> setting_at(const char* key, std::function<T&(S&)> at, const char* doc) {
  return detail::make_setting<S, T>(key, doc, std::move(at));
}

// The setting `key` of settings struct S, stored in `member`. `key` and `doc`
// must be string literals (the descriptor points at them).
template <typename S, typename T>
Setting<S> setting(const char* key, T S::*member, const char* doc) {
  return detail::make_setting<S, T>(key, doc, [member](S& s) -> T& { return s.*member; });
}

// The settings of a struct S, in declaration order: the plugin's schema.
template <typename S>
class Schema {
 public:
  // Each part is a Setting<S> or a std::vector<Setting<S>> (a fragment such
  // as http_client_settings()).
  template <typename... Parts>
  explicit Schema(Parts&&... parts) {
    (add(std::forward<Parts>(parts)), ...);
    keys_.reserve(settings_.size());
    for (const auto& s : settings_) keys_.push_back(s.key());
  }
  Schema(const Schema&) = delete;
  Schema& operator=(const Schema&) = delete;

  const sp_config_key* data() const noexcept { return keys_.empty() ? nullptr : keys_.data(); }
  std::uint32_t size() const noexcept { return static_cast<std::uint32_t>(keys_.size()); }
  // The row of setting `key`, for tests of the schema; all zero (key null)
  // when there is none.
  sp_config_key row(std::string_view key) const noexcept {
    for (const auto& k : keys_)
      if (key == k.key) return k;
    return sp_config_key{};
  }

  // The struct filled from a view the host has checked against this schema.
  S read(const ConfigView& view) const {
    S s{};
    for (const auto& setting : settings_) setting.read(view, s);
    return s;
  }

 private:
  void add(const Setting<S>& s) { settings_.push_back(s); }
  void add(const std::vector<Setting<S>>& fragment) {
    settings_.insert(settings_.end(), fragment.begin(), fragment.end());
  }

  std::vector<Setting<S>> settings_;
  std::vector<sp_config_key> keys_;
};

// The shared HTTP client settings (timeout, max_connections, user_agent,
// ca_file), stored in `member` of S: declared once here for every sink that
// speaks HTTP. Pass the result to Schema next to the sink's own settings,
// then hand the member to HostServices::http_client().
template <typename S>
std::vector<Setting<S>> http_client_settings(HttpClientSettings S::*member) {
  auto at = [member](auto field) {
    return [member, field](S& s) -> auto& { return (s.*member).*field; };
  };
  return {
      detail::make_setting<S, std::chrono::milliseconds>(
          "timeout", "limit for each of connect, send and receive", at(&HttpClientSettings::timeout))
          .above(0)
          .default_to("10s"),
      detail::make_setting<S, std::int64_t>("max_connections",
                                            "keep-alive connections kept open for reuse",
                                            at(&HttpClientSettings::max_connections))
          .at_least(1)
          .at_most(1024)
          .default_to("8"),
      detail::make_setting<S, std::string>("user_agent",
                                           "User-Agent header (\"\" = slack-proxy/<version>)",
                                           at(&HttpClientSettings::user_agent))
          .default_to(""),
      detail::make_setting<S, std::string>(
          "ca_file", "PEM file of CA certificates to trust for https instead of the system store",
          at(&HttpClientSettings::ca_file))
          .default_to(""),
  };
}

}  // namespace slack_proxy::sdk

#endif  // SLACK_PROXY_SDK_SETTINGS_H

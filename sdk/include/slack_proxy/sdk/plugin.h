// Writing a plugin: implement one stage interface from stages.h, declare its
// settings (settings.h), and register it with SLACK_PROXY_PLUGIN.
//
//   struct Settings { std::chrono::milliseconds ttl{}; };
//   inline const sdk::Schema<Settings> kSchema{
//       sdk::setting("ttl", &Settings::ttl, "how long a dead channel stays parked")
//           .above(0).default_to("15m")};
//
//   namespace {
//   std::unique_ptr<sdk::Guard> make(const sdk::PluginContext& ctx, const Settings& s) {
//     return std::make_unique<DenyList>(ctx.host, s.ttl);
//   }
//   }  // namespace
//   SLACK_PROXY_PLUGIN(sdk::Guard, "deny_list", "Parks channels Slack says do not exist",
//                      kSchema, make)
//
// The factory takes (const PluginContext&, const Settings&) with a Schema, or
// (const PluginContext&) with a plain sp_config_key array or no settings. It
// may throw (a setting whose meaning is wrong in a way the schema cannot say:
// "routes: '#a' is routed to itself"); the macro catches the exception inside
// the plugin and the host reports the message with the stage's name and the
// config location. Exceptions never cross the library boundary here.
//
// In check-only mode (`slack-proxy validate`, ctx.check_only) the factory
// checks meaning, reads no secret, opens nothing, and may return nullptr:
// "valid, nothing to build".
//
// The library file must be named after the plugin: "deny_list" -> deny_list.so.
// sdk/cmake/SlackProxyPlugin.cmake's slack_proxy_add_plugin() does that.
#ifndef SLACK_PROXY_SDK_PLUGIN_H
#define SLACK_PROXY_SDK_PLUGIN_H

#include <cstddef>
#include <cstring>
#include <memory>
#include <stdexcept>
#include <string_view>

#include <slack_proxy/sdk/abi.h>
#include <slack_proxy/sdk/fingerprint.h>
#include <slack_proxy/sdk/host.h>
#include <slack_proxy/sdk/settings.h>
#include <slack_proxy/sdk/stages.h>
#include <type_traits>

namespace slack_proxy::sdk {

// What a factory receives. Both references outlive the stage it makes.
struct PluginContext {
  HostServices& host;
  const ConfigView& config;
  std::string_view stage_name;
  // `slack-proxy validate` is asking: check every setting's meaning and
  // throw on a bad one as usual, but read no secrets and open no
  // connections. The stage is destroyed unused.
  bool check_only = false;
};

namespace detail {

inline void copy_error(std::string_view what, char* err, std::size_t err_len) noexcept {
  if (err == nullptr || err_len == 0) return;
  const std::size_t n = what.size() < err_len - 1 ? what.size() : err_len - 1;
  std::memcpy(err, what.data(), n);
  err[n] = '\0';
}

// The schema's rows for the descriptor: a Schema<S> or a plain array.
template <typename S>
const sp_config_key* schema_rows(const Schema<S>& schema) noexcept { return schema.data(); }
template <typename S>
std::uint32_t schema_count(const Schema<S>& schema) noexcept { return schema.size(); }
template <std::size_t N>
const sp_config_key* schema_rows(const sp_config_key (&rows)[N]) noexcept { return rows; }
template <std::size_t N>
std::uint32_t schema_count(const sp_config_key (&)[N]) noexcept { return N; }

// Calls the factory with the typed settings when it takes them.
template <typename Interface, auto Factory, const auto* SchemaObject>
std::unique_ptr<Interface> call_factory(const PluginContext& ctx) {
  if constexpr (std::is_invocable_v<decltype(Factory), const PluginContext&>) {
    return Factory(ctx);
  } else {
    return Factory(ctx, SchemaObject->read(ctx.config));
  }
}

template <typename Interface, auto Factory, const auto* SchemaObject>
int create_stage(const sp_create_args* args, void** out_stage, char* err,
                 std::size_t err_len) noexcept {
  return guarded(
      [&]() -> int {
        if (args == nullptr || out_stage == nullptr || args->host == nullptr ||
            args->config == nullptr) {
          throw std::invalid_argument("host passed no services or no config");
        }
        const bool has_flags =
            args->struct_size >= offsetof(sp_create_args, flags) + sizeof(args->flags);
        PluginContext ctx{*static_cast<HostServices*>(args->host),
                          *static_cast<const ConfigView*>(args->config),
                          args->stage_name != nullptr ? args->stage_name : "",
                          has_flags && (args->flags & SP_CREATE_CHECK_ONLY) != 0};
        std::unique_ptr<Interface> stage = call_factory<Interface, Factory, SchemaObject>(ctx);
        if (!stage) {
          if (!ctx.check_only) throw std::runtime_error("factory returned no stage");
          *out_stage = nullptr;  // valid, nothing to build
          return 0;
        }
        // Hand over as Stage* so that the host can static_cast back through
        // the same base, whatever else the concrete class inherits.
        Stage* base = stage.release();
        *out_stage = base;
        return 0;
      },
      [&](std::string_view what) -> int {
        copy_error(what, err, err_len);
        return 1;
      });
}

inline void destroy_stage(void* stage) noexcept { delete static_cast<Stage*>(stage); }

}  // namespace detail
}  // namespace slack_proxy::sdk

#define SLACK_PROXY_PLUGIN_IMPL_(INTERFACE, NAME, SUMMARY, SCHEMA_PTR, SCHEMA_SIZE, FACTORY,   \
                                 SCHEMA_OBJECT)                                              \
  extern "C" __attribute__((visibility("default"))) const sp_plugin_descriptor*              \
  slack_proxy_plugin_descriptor(void) {                                                       \
    static const sp_plugin_descriptor descriptor = {                                          \
        sizeof(sp_plugin_descriptor),                                                         \
        SLACK_PROXY_ABI_MAJOR,                                                                \
        SLACK_PROXY_ABI_MINOR,                                                                \
        SLACK_PROXY_BUILD_FINGERPRINT,                                                        \
        NAME,                                                                                 \
        static_cast<sp_stage_kind>(INTERFACE::kKind),                                         \
        SUMMARY,                                                                              \
        SCHEMA_PTR,                                                                           \
        static_cast<uint32_t>(SCHEMA_SIZE),                                                   \
        &::slack_proxy::sdk::detail::create_stage<INTERFACE, FACTORY, SCHEMA_OBJECT>,         \
        &::slack_proxy::sdk::detail::destroy_stage,                                           \
        static_cast<uint32_t>(sizeof(sp_config_key)),                                         \
    };                                                                                        \
    return &descriptor;                                                                       \
  }

// Registers a plugin whose settings are described by SCHEMA: a namespace-scope
// sdk::Schema<Settings> (settings.h) or sp_config_key array.
#define SLACK_PROXY_PLUGIN(INTERFACE, NAME, SUMMARY, SCHEMA, FACTORY)                  \
  SLACK_PROXY_PLUGIN_IMPL_(INTERFACE, NAME, SUMMARY,                                   \
                           ::slack_proxy::sdk::detail::schema_rows(SCHEMA),            \
                           ::slack_proxy::sdk::detail::schema_count(SCHEMA), FACTORY, &(SCHEMA))

// Registers a plugin that takes no settings.
#define SLACK_PROXY_PLUGIN_WITHOUT_SETTINGS(INTERFACE, NAME, SUMMARY, FACTORY) \
  SLACK_PROXY_PLUGIN_IMPL_(INTERFACE, NAME, SUMMARY, nullptr, 0, FACTORY,      \
                           static_cast<const void*>(nullptr))

#endif  // SLACK_PROXY_SDK_PLUGIN_H

// Writing a plugin: implement one stage interface from stages.h, declare its
// settings, and register it with SLACK_PROXY_PLUGIN.
//
//   namespace {
//   constexpr sp_config_key kSchema[] = {
//       {"ttl", SP_VALUE_DURATION, "15m", 0, "how long a dead channel stays parked"},
//   };
//   std::unique_ptr<slack_proxy::sdk::Guard> make(const slack_proxy::sdk::PluginContext& ctx) {
//     return std::make_unique<DenyList>(ctx.host, ctx.config.get_duration("ttl"));
//   }
//   }  // namespace
//   SLACK_PROXY_PLUGIN(slack_proxy::sdk::Guard, "deny_list",
//                      "Parks channels Slack says do not exist", kSchema, make)
//
// The factory may throw (for instance on a setting whose meaning is wrong:
// "rate must be > 0, got -1"); the macro catches the exception inside the
// plugin and the host reports the message with the stage's name and the
// config location. Exceptions never cross the library boundary.
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
#include <slack_proxy/sdk/stages.h>

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

template <typename Interface, auto Factory>
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
        std::unique_ptr<Interface> stage = Factory(ctx);
        if (!stage) throw std::runtime_error("factory returned no stage");
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

#define SLACK_PROXY_PLUGIN_IMPL_(INTERFACE, NAME, SUMMARY, SCHEMA_PTR, SCHEMA_SIZE, FACTORY) \
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
        &::slack_proxy::sdk::detail::create_stage<INTERFACE, FACTORY>,                        \
        &::slack_proxy::sdk::detail::destroy_stage,                                           \
    };                                                                                        \
    return &descriptor;                                                                       \
  }

// Registers a plugin whose settings are described by the array SCHEMA.
#define SLACK_PROXY_PLUGIN(INTERFACE, NAME, SUMMARY, SCHEMA, FACTORY) \
  SLACK_PROXY_PLUGIN_IMPL_(INTERFACE, NAME, SUMMARY, SCHEMA,          \
                           sizeof(SCHEMA) / sizeof((SCHEMA)[0]), FACTORY)

// Registers a plugin that takes no settings.
#define SLACK_PROXY_PLUGIN_WITHOUT_SETTINGS(INTERFACE, NAME, SUMMARY, FACTORY) \
  SLACK_PROXY_PLUGIN_IMPL_(INTERFACE, NAME, SUMMARY, nullptr, 0, FACTORY)

#endif  // SLACK_PROXY_SDK_PLUGIN_H

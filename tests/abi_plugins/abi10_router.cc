// A plugin as the ABI 1.0 SDK built it, written out by hand because today's
// SDK macros make 1.1 descriptors: the descriptor ends before
// schema_entry_size, and each schema row ends at `doc` (40 bytes on LP64).
// The host must read its rows at that size and zero what 1.1 added.
// Built a second time as abi10_enum_router (ABI10_WITH_1_1_TYPE), with a row
// of a type ABI 1.0 did not have, which the host must refuse.
#include <slack_proxy/sdk/abi.h>
#include <slack_proxy/sdk/fingerprint.h>
#include <slack_proxy/sdk/stages.h>

#include <cstddef>
#include <cstring>
#include <new>

namespace {

// sp_config_key as ABI 1.0 declared it.
struct ConfigKey10 {
  const char* key;
  sp_value_type type;
  const char* default_value;
  int required;
  const char* doc;
};
static_assert(sizeof(void*) != 8 || sizeof(ConfigKey10) == 40, "ABI 1.0 rows are 40 bytes on LP64");

const ConfigKey10 kSchema10[] = {
    {"greeting", SP_VALUE_STRING, "hello", 0, "a string with a default"},
    {"count", SP_VALUE_INTEGER, nullptr, 1, "a required integer"},
    {"pause", SP_VALUE_DURATION, "1s", 0, "a duration"},
#ifdef ABI10_WITH_1_1_TYPE
    {"mode", SP_VALUE_ENUM, nullptr, 0, "a type that ABI 1.0 did not have"},
#endif
};

#ifndef ABI10_PLUGIN_NAME
#define ABI10_PLUGIN_NAME "abi10_router"
#endif

class PassRouter final : public slack_proxy::sdk::Router {
 public:
  slack_proxy::sdk::RouteResult route(slack_proxy::sdk::Message&) noexcept override {
    return slack_proxy::sdk::RouteResult::ok();
  }
};

int create(const sp_create_args*, void** out_stage, char* err, size_t err_len) noexcept {
  slack_proxy::sdk::Stage* stage = new (std::nothrow) PassRouter();
  if (stage == nullptr) {
    constexpr char kWhy[] = "out of memory";
    if (err != nullptr && err_len > 0) {
      const size_t n = sizeof(kWhy) - 1 < err_len - 1 ? sizeof(kWhy) - 1 : err_len - 1;
      std::memcpy(err, kWhy, n);
      err[n] = '\0';
    }
    return 1;
  }
  *out_stage = stage;
  return 0;
}

void destroy(void* stage) noexcept { delete static_cast<slack_proxy::sdk::Stage*>(stage); }

sp_plugin_descriptor make_descriptor() {
  sp_plugin_descriptor d{};
  d.struct_size = static_cast<uint32_t>(offsetof(sp_plugin_descriptor, schema_entry_size));
  d.abi_major = SLACK_PROXY_ABI_MAJOR;
  d.abi_minor = 0;
  d.build_fingerprint = SLACK_PROXY_BUILD_FINGERPRINT;
  d.name = ABI10_PLUGIN_NAME;
  d.kind = SP_STAGE_ROUTER;
  d.summary = "test plugin with an ABI 1.0 descriptor and schema";
  d.schema = reinterpret_cast<const sp_config_key*>(kSchema10);
  d.schema_size = sizeof(kSchema10) / sizeof(kSchema10[0]);
  d.create = &create;
  d.destroy = &destroy;
  // Past struct_size, so a 1.0 plugin has no such field; a wrong stride here
  // garbles every row after the first if the host reads it anyway.
  d.schema_entry_size = static_cast<uint32_t>(sizeof(sp_config_key));
  return d;
}

}  // namespace

extern "C" __attribute__((visibility("default"))) const sp_plugin_descriptor*
slack_proxy_plugin_descriptor(void) {
  static const sp_plugin_descriptor descriptor = make_descriptor();
  return &descriptor;
}

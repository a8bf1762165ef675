#include "plugin_host.h"

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <set>

#include <boost/dll/import.hpp>

#include <slack_proxy/sdk/fingerprint.h>

namespace slack_proxy {
namespace {

constexpr const char* kHostFingerprint = SLACK_PROXY_BUILD_FINGERPRINT;

bool valid_plugin_name(const std::string& name) {
  return !name.empty() && std::all_of(name.begin(), name.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_';
  });
}

std::string abi_string(std::uint32_t major, std::uint32_t minor) {
  return std::to_string(major) + "." + std::to_string(minor);
}

}  // namespace

const char* stage_kind_name(sp_stage_kind kind) noexcept {
  switch (kind) {
    case SP_STAGE_AUTHENTICATOR: return "authenticator";
    case SP_STAGE_ROUTER: return "router";
    case SP_STAGE_RATE_LIMITER: return "rate limiter";
    case SP_STAGE_GUARD: return "guard";
    case SP_STAGE_SINK: return "sink";
    case SP_STAGE_RETRY_POLICY: return "retry policy";
  }
  return "unknown stage kind";
}

PluginHost::PluginHost(std::vector<std::filesystem::path> search_dirs)
    : dirs_(std::move(search_dirs)) {}

std::vector<std::string> PluginHost::available() const {
  std::set<std::string> names;
  for (const auto& dir : dirs_) {
    std::error_code ec;
    for (const auto& entry : std::filesystem::directory_iterator(dir, ec)) {
      if (entry.path().extension() == ".so") names.insert(entry.path().stem().string());
    }
  }
  return {names.begin(), names.end()};
}

void PluginHost::check_descriptor(const sp_plugin_descriptor* d, const std::string& path,
                                  const std::string& expected_name) {
  if (d == nullptr) throw PluginError(path + ": " SLACK_PROXY_ENTRY_POINT " returned no descriptor");
  // Read nothing past what the plugin says it has.
  constexpr std::size_t kMinimum = offsetof(sp_plugin_descriptor, destroy) + sizeof(d->destroy);
  if (d->struct_size < offsetof(sp_plugin_descriptor, build_fingerprint)) {
    throw PluginError(path + ": plugin descriptor is too small (" +
                      std::to_string(d->struct_size) + " bytes); not a slack-proxy plugin?");
  }
  if (d->abi_major != SLACK_PROXY_ABI_MAJOR || d->abi_minor > SLACK_PROXY_ABI_MINOR) {
    throw PluginError(path + ": plugin ABI " + abi_string(d->abi_major, d->abi_minor) +
                      ", host ABI " + abi_string(SLACK_PROXY_ABI_MAJOR, SLACK_PROXY_ABI_MINOR) +
                      ": rebuild the plugin against this proxy's SDK");
  }
  if (d->struct_size < kMinimum) {
    throw PluginError(path + ": plugin descriptor is " + std::to_string(d->struct_size) +
                      " bytes, ABI " + abi_string(d->abi_major, d->abi_minor) + " needs at least " +
                      std::to_string(kMinimum));
  }
  const char* fp = d->build_fingerprint != nullptr ? d->build_fingerprint : "(none)";
  if (std::strcmp(fp, kHostFingerprint) != 0) {
    throw PluginError(path + ": plugin build fingerprint '" + fp + "', host build fingerprint '" +
                      kHostFingerprint +
                      "': plugin and proxy must be built with the same compiler, standard "
                      "library and SDK");
  }
  const std::string name = d->name != nullptr ? d->name : "";
  if (name != expected_name) {
    throw PluginError(path + ": plugin calls itself '" + name + "' but its file is named '" +
                      expected_name + ".so'");
  }
  // The kind comes from a foreign binary: read its bytes as an integer, since
  // loading an out-of-range value as the enum is itself undefined behaviour.
  std::int32_t kind = 0;
  static_assert(sizeof(d->kind) == sizeof(kind));
  std::memcpy(&kind, &d->kind, sizeof(kind));
  if (kind < SP_STAGE_AUTHENTICATOR || kind > SP_STAGE_RETRY_POLICY) {
    throw PluginError(path + ": unknown stage kind " + std::to_string(kind));
  }
  if (d->create == nullptr || d->destroy == nullptr) {
    throw PluginError(path + ": plugin has no create or destroy function");
  }
  if (d->schema_size > 0 && d->schema == nullptr) {
    throw PluginError(path + ": plugin declares " + std::to_string(d->schema_size) +
                      " settings but no schema");
  }
}

const LoadedPlugin& PluginHost::load(const std::string& name) {
  if (auto it = loaded_.find(name); it != loaded_.end()) return it->second;
  if (!valid_plugin_name(name)) {
    throw PluginError("invalid plugin name '" + name + "': use lower-case letters, digits and _");
  }
  std::filesystem::path found;
  for (const auto& dir : dirs_) {
    auto candidate = dir / (name + ".so");
    std::error_code ec;
    if (std::filesystem::is_regular_file(candidate, ec)) {
      found = candidate;
      break;
    }
  }
  if (found.empty()) {
    std::string dirs, names;
    for (const auto& d : dirs_) dirs += (dirs.empty() ? "" : ", ") + d.string();
    for (const auto& n : available()) names += (names.empty() ? "" : ", ") + n;
    throw PluginError("plugin '" + name + "' not found in " + (dirs.empty() ? "(no directories)" : dirs) +
                      "; available: " + (names.empty() ? "(none)" : names));
  }

  LoadedPlugin plugin;
  plugin.name = name;
  plugin.path = found.string();
  try {
    plugin.library = std::make_shared<boost::dll::shared_library>(
        found, boost::dll::load_mode::rtld_now | boost::dll::load_mode::rtld_local);
  } catch (const std::exception& e) {
    throw PluginError(plugin.path + ": cannot load: " + e.what());
  }
  if (!plugin.library->has(SLACK_PROXY_ENTRY_POINT)) {
    throw PluginError(plugin.path + ": not a slack-proxy plugin (no " SLACK_PROXY_ENTRY_POINT
                                    " symbol)");
  }
  auto entry = plugin.library->get<const sp_plugin_descriptor*()>(SLACK_PROXY_ENTRY_POINT);
  plugin.descriptor = entry();
  check_descriptor(plugin.descriptor, plugin.path, name);
  return loaded_.emplace(name, std::move(plugin)).first->second;
}

sdk::Stage* PluginHost::create_raw(const LoadedPlugin& plugin, sdk::HostServices& host,
                                   const sdk::ConfigView& config, const std::string& stage_name,
                                   bool check_only) {
  sp_create_args args{};
  args.struct_size = sizeof(args);
  args.host = &host;
  args.config = &config;
  args.stage_name = stage_name.c_str();
  args.flags = check_only ? SP_CREATE_CHECK_ONLY : 0u;
  void* out = nullptr;
  char err[1024] = {0};
  const int rc = plugin.descriptor->create(&args, &out, err, sizeof(err));
  if (rc != 0 || out == nullptr) {
    throw PluginError("stage '" + stage_name + "' (plugin " + plugin.name +
                      "): " + (err[0] != '\0' ? std::string(err) : std::string("creation failed")));
  }
  return static_cast<sdk::Stage*>(out);
}

}  // namespace slack_proxy

// Loads plugin libraries with Boost.DLL, checks their ABI before trusting
// them, and creates stages whose lifetime pins the library.
#pragma once

#include <filesystem>
#include <map>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include <boost/dll/shared_library.hpp>

#include <slack_proxy/sdk/abi.h>
#include <slack_proxy/sdk/host.h>
#include <slack_proxy/sdk/stages.h>

namespace slack_proxy {

class PluginError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// A library that passed the ABI checks. The descriptor points into the
// library, so it is only used while `library` is held.
struct LoadedPlugin {
  std::string name;
  std::string path;
  // This host loaded the library from a private copy of the file, which
  // was replaced since the process first loaded it (a rebuilt plugin,
  // picked up by a reload): the dynamic loader hands back the library it
  // already holds for a path it has loaded. False when the library was
  // already loaded (by an earlier host) and is shared.
  bool from_copy = false;
  // This host loaded a file other than the one the process last loaded
  // from this path (a rebuilt plugin), from a copy or not.
  bool rebuilt = false;
  std::shared_ptr<boost::dll::shared_library> library;
  const sp_plugin_descriptor* descriptor = nullptr;
  // The descriptor's schema rows read at the plugin's stride, each widened to
  // this host's sp_config_key (fields a 1.0 plugin lacks are zero). Use this,
  // never descriptor->schema[i], which assumes the host's stride.
  std::vector<sp_config_key> schema;
};

const char* stage_kind_name(sp_stage_kind kind) noexcept;

class PluginHost {
 public:
  // Directories searched in order for "<name>.so".
  explicit PluginHost(std::vector<std::filesystem::path> search_dirs);

  // Loads (once per host) and checks plugin `name`. Every host of the
  // process shares what is loaded: a file that is the one loaded before
  // (same device, inode, size and modification time) while that library is
  // still in use is that same library (see LoadedPlugin::from_copy for a
  // changed one). Throws PluginError naming the file
  // and both values on an ABI or fingerprint mismatch, or listing the
  // plugins that do exist when `name` is not found. Before the library is
  // loaded (which runs its code), its file is read: one that needs a
  // sanitizer runtime this process lacks, or is no native shared library,
  // is refused with a PluginError naming the file.
  const LoadedPlugin& load(const std::string& name);

  // Plugin names ("<name>.so" files) found in the search directories.
  std::vector<std::string> available() const;

  // What this host has loaded, by name.
  const std::map<std::string, LoadedPlugin>& loaded() const { return loaded_; }

  const std::vector<std::filesystem::path>& search_dirs() const { return dirs_; }

  // Refuses a descriptor this host cannot use. `path` is for messages.
  static void check_descriptor(const sp_plugin_descriptor* d, const std::string& path,
                               const std::string& expected_name);

  // Creates a stage. The returned object keeps the library, the host
  // services and the config alive; it is destroyed inside the plugin.
  // With `check_only`, the plugin only checks its settings (see
  // SP_CREATE_CHECK_ONLY); the caller destroys the stage unused. A check may
  // answer "valid, nothing to build": then the result is empty. Outside a
  // check a plugin that builds nothing is a PluginError.
  template <typename Interface>
  static std::shared_ptr<Interface> create(const LoadedPlugin& plugin,
                                           std::shared_ptr<sdk::HostServices> host,
                                           std::shared_ptr<const sdk::ConfigView> config,
                                           const std::string& stage_name,
                                           bool check_only = false) {
    if (plugin.descriptor->kind != static_cast<sp_stage_kind>(Interface::kKind)) {
      throw PluginError("plugin '" + plugin.name + "' is a " +
                        stage_kind_name(plugin.descriptor->kind) + ", not a " +
                        stage_kind_name(static_cast<sp_stage_kind>(Interface::kKind)));
    }
    sdk::Stage* base = create_raw(plugin, *host, *config, stage_name, check_only);
    if (base == nullptr) return nullptr;  // check-only: valid, nothing to build
    auto* typed = static_cast<Interface*>(base);
    auto destroy = plugin.descriptor->destroy;
    // The deleter holds the library: vtables and the destroy function live
    // in it, so it must stay mapped until the very last object is gone.
    return std::shared_ptr<Interface>(
        typed, [base, destroy, lib = plugin.library, host = std::move(host),
                config = std::move(config)](Interface*) { destroy(base); });
  }

 private:
  static sdk::Stage* create_raw(const LoadedPlugin& plugin, sdk::HostServices& host,
                                const sdk::ConfigView& config, const std::string& stage_name,
                                bool check_only);

  std::vector<std::filesystem::path> dirs_;
  std::map<std::string, LoadedPlugin> loaded_;
};

}  // namespace slack_proxy

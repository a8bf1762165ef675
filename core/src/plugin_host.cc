#include "plugin_host.h"

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <fstream>
#include <set>
#include <string_view>
// Boost 1.74's library_info.hpp uses std::vector without including it.
#include <vector>

#include <dlfcn.h>
#include <elf.h>
#include <sys/stat.h>
#include <unistd.h>

#include <mutex>

#include <boost/dll/import.hpp>
#include <boost/dll/library_info.hpp>

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

// sizeof(sp_config_key) in ABI 1.0, whose last field was `doc`.
constexpr std::size_t kSchemaEntrySize10 = offsetof(sp_config_key, doc) + sizeof(const char*);

// Copies the plugin's schema rows at the plugin's stride.
std::vector<sp_config_key> read_schema(const sp_plugin_descriptor& d, const std::string& path) {
  const bool has_stride = d.struct_size >= offsetof(sp_plugin_descriptor, schema_entry_size) +
                                               sizeof(d.schema_entry_size);
  const std::size_t stride = has_stride ? d.schema_entry_size : kSchemaEntrySize10;
  if (d.schema_size > 0 && stride < kSchemaEntrySize10) {
    throw PluginError(path + ": plugin says its schema rows are " + std::to_string(stride) +
                      " bytes, less than the " + std::to_string(kSchemaEntrySize10) +
                      " of ABI 1.0");
  }
  // The newest setting type the plugin's ABI knows; 1.1 added ENUM..SECRET.
  const std::int32_t newest_type = d.abi_minor >= 1 ? SP_VALUE_SECRET : SP_VALUE_STRING_LIST;
  std::vector<sp_config_key> rows(d.schema_size);
  const auto* base = reinterpret_cast<const unsigned char*>(d.schema);
  for (std::uint32_t i = 0; i < d.schema_size; ++i) {
    const unsigned char* row = base + i * stride;
    // A foreign value: read as an integer before anything treats it as the
    // enum, as for the descriptor's kind.
    std::int32_t type = 0;
    std::memcpy(&type, row + offsetof(sp_config_key, type), sizeof(type));
    const char* key = nullptr;
    std::memcpy(&key, row + offsetof(sp_config_key, key), sizeof(key));
    if (key == nullptr) {
      throw PluginError(path + ": schema row " + std::to_string(i) + " has no key");
    }
    if (type < SP_VALUE_STRING || type > newest_type) {
      throw PluginError(path + ": setting '" + key + "' has type " + std::to_string(type) +
                        ", unknown to ABI " + abi_string(d.abi_major, d.abi_minor));
    }
    std::memcpy(&rows[i], row, std::min(stride, sizeof(sp_config_key)));
  }
  return rows;
}

// ------------------------------------------------- sanitizer runtimes --
//
// A sanitizer-built library needs its sanitizer's runtime in the process
// before anything else runs: dlopen()ing an ASan plugin into a plain host
// aborts the whole process ("ASan runtime does not come first") before the
// fingerprint could be read. So the file is read, not run: its dynamic
// symbol imports and DT_NEEDED entries say which runtime it needs.

struct SanitizerRuntime {
  const char* name;            // for messages
  const char* flag;            // the compiler flag that brings it in
  std::string_view prefix;     // of the symbols instrumented code imports
  std::string_view library;    // of the DT_NEEDED entry, "libasan" for libasan.so.8
  const char* probe;           // a symbol the runtime defines, looked up in this process
};

constexpr std::array<SanitizerRuntime, 6> kSanitizers = {{
    {"AddressSanitizer", "-fsanitize=address", "__asan_", "libasan.", "__asan_init"},
    {"HWAddressSanitizer", "-fsanitize=hwaddress", "__hwasan_", "libhwasan.", "__hwasan_init"},
    {"ThreadSanitizer", "-fsanitize=thread", "__tsan_", "libtsan.", "__tsan_init"},
    {"MemorySanitizer", "-fsanitize=memory", "__msan_", "libmsan.", "__msan_init"},
    {"UndefinedBehaviorSanitizer", "-fsanitize=undefined", "__ubsan_", "libubsan.",
     "__ubsan_handle_builtin_unreachable"},
    {"LeakSanitizer", "-fsanitize=leak", "__lsan_", "liblsan.", "__lsan_do_leak_check"},
}};

// Whether this process has the runtime: linked into the host, or brought by
// the sanitizer the host was built with (ASan includes LSan; GCC's ASan
// build with UBSan links libubsan).
bool host_has(const SanitizerRuntime& s) { return ::dlsym(RTLD_DEFAULT, s.probe) != nullptr; }

// What the dynamic linker would bind for the file: its undefined dynamic
// symbols and its DT_NEEDED libraries. library_info::symbols() lists only
// the symbols a library defines (from .symtab, which a stripped library
// lacks), never what it imports, so the dynamic section is read here, with
// every offset checked: the file is untrusted until it passed.
struct DynamicImports {
  std::vector<std::string_view> symbols;
  std::vector<std::string_view> needed;
};

template <typename T>
bool read_at(const std::string& file, std::uint64_t offset, T& out) {
  if (offset > file.size() || file.size() - offset < sizeof(T)) return false;
  std::memcpy(&out, file.data() + offset, sizeof(T));
  return true;
}

// The NUL-terminated string at `offset` of the string table [begin, end).
std::string_view string_at(const std::string& file, std::uint64_t begin, std::uint64_t end,
                           std::uint64_t offset) {
  if (begin > end || end > file.size() || offset >= end - begin) return {};
  const char* s = file.data() + begin + offset;
  const std::size_t max = end - begin - offset;
  return {s, strnlen(s, max)};
}

DynamicImports dynamic_imports(const std::string& file, const std::string& path) {
  const auto bad = [&](const char* what) {
    return PluginError(path + ": not a usable shared library (" + what + ")");
  };
  Elf64_Ehdr eh{};
  if (!read_at(file, 0, eh) || std::memcmp(eh.e_ident, ELFMAG, SELFMAG) != 0)
    throw bad("no ELF header");
  if (eh.e_ident[EI_CLASS] != ELFCLASS64) throw bad("not a 64-bit ELF file");
  if (eh.e_shentsize != sizeof(Elf64_Shdr)) throw bad("unexpected section header size");
  std::vector<Elf64_Shdr> sections(eh.e_shnum);
  for (std::size_t i = 0; i < sections.size(); ++i) {
    if (!read_at(file, eh.e_shoff + i * sizeof(Elf64_Shdr), sections[i]))
      throw bad("section headers run past the end of the file");
  }
  const auto table_of = [&](const Elf64_Shdr& s) -> const Elf64_Shdr& {
    if (s.sh_link >= sections.size()) throw bad("a section names a missing string table");
    const Elf64_Shdr& strtab = sections[s.sh_link];
    if (strtab.sh_offset > file.size() || file.size() - strtab.sh_offset < strtab.sh_size)
      throw bad("a string table runs past the end of the file");
    return strtab;
  };
  DynamicImports out;
  for (const Elf64_Shdr& s : sections) {
    if (s.sh_type != SHT_DYNSYM && s.sh_type != SHT_DYNAMIC) continue;
    const Elf64_Shdr& strtab = table_of(s);
    const std::uint64_t str_begin = strtab.sh_offset, str_end = strtab.sh_offset + strtab.sh_size;
    if (s.sh_type == SHT_DYNSYM) {
      for (std::uint64_t off = 0; off + sizeof(Elf64_Sym) <= s.sh_size; off += sizeof(Elf64_Sym)) {
        Elf64_Sym sym{};
        if (!read_at(file, s.sh_offset + off, sym)) throw bad("symbol table runs past the end");
        if (sym.st_shndx == SHN_UNDEF)
          out.symbols.push_back(string_at(file, str_begin, str_end, sym.st_name));
      }
    } else {
      for (std::uint64_t off = 0; off + sizeof(Elf64_Dyn) <= s.sh_size; off += sizeof(Elf64_Dyn)) {
        Elf64_Dyn dyn{};
        if (!read_at(file, s.sh_offset + off, dyn)) throw bad("dynamic section runs past the end");
        if (dyn.d_tag == DT_NULL) break;
        if (dyn.d_tag == DT_NEEDED)
          out.needed.push_back(string_at(file, str_begin, str_end, dyn.d_un.d_val));
      }
    }
  }
  return out;
}

std::string read_whole(const std::filesystem::path& file, const std::string& path) {
  std::ifstream in(file, std::ios::binary);
  if (!in) throw PluginError(path + ": cannot read the file: " + std::strerror(errno));
  std::string bytes{std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
  if (in.bad()) throw PluginError(path + ": cannot read the file: " + std::strerror(errno));
  return bytes;
}

// Refuses, before it is loaded, a file that is no native shared library or
// that needs a sanitizer runtime this process lacks; throws PluginError
// naming the file.
void refuse_foreign_sanitizer(const std::filesystem::path& file, const std::string& path) {
  const std::string bytes = read_whole(file, path);
  if (bytes.size() < SELFMAG || std::memcmp(bytes.data(), ELFMAG, SELFMAG) != 0)
    throw PluginError(path + ": not a shared library (no ELF header); is it a plugin?");
  try {
    // A 32-bit ELF in this 64-bit process (or a non-native format) cannot
    // be loaded; Boost.DLL tells.
    boost::dll::library_info native(file);
  } catch (const std::exception& e) {
    throw PluginError(path + ": not a shared library this proxy can load (" + e.what() + ")");
  }
  const DynamicImports imports = dynamic_imports(bytes, path);
  for (const auto& s : kSanitizers) {
    std::string_view evidence;
    for (auto sym : imports.symbols)
      if (evidence.empty() && sym.substr(0, s.prefix.size()) == s.prefix) evidence = sym;
    for (auto lib : imports.needed)
      if (evidence.empty() && lib.substr(0, s.library.size()) == s.library) evidence = lib;
    if (evidence.empty() || host_has(s)) continue;
    throw PluginError(path + ": built with " + s.name + " (" + s.flag + ": it needs '" +
                      std::string(evidence) + "'), which this proxy was not built with; "
                      "loading it would abort the proxy. Rebuild the plugin without " +
                      s.flag + ", or use a proxy built with the same sanitizers");
  }
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

namespace {

// What identifies a file's contents well enough to tell a rebuilt plugin:
// a build writes a new inode or at least a new modification time.
struct FileIdentity {
  dev_t device = 0;
  ino_t inode = 0;
  off_t size = 0;
  std::int64_t modified_ns = 0;
  bool operator==(const FileIdentity&) const = default;
};

FileIdentity identify(const std::filesystem::path& file, const std::string& path) {
  struct stat st {};
  if (::stat(file.c_str(), &st) != 0)
    throw PluginError(path + ": cannot read it: " + std::strerror(errno));
  return FileIdentity{st.st_dev, st.st_ino, st.st_size,
                      static_cast<std::int64_t>(st.st_mtim.tv_sec) * 1'000'000'000 +
                          st.st_mtim.tv_nsec};
}

// What this process has loaded, by the file's path, for every PluginHost
// (a reload makes a new one). `latest` is the newest load and the file it
// was made from; `direct_file` is the file last dlopen()ed under the path
// itself, which the loader keeps answering that path with for as long as
// it holds that library: past its last dlclose() too, for a library with
// STB_GNU_UNIQUE symbols (most C++ plugins), which glibc never unloads.
struct Mapped {
  std::weak_ptr<boost::dll::shared_library> latest;
  FileIdentity latest_file;
  LoadedPlugin latest_plugin;  // its `library` is reset: `latest` owns nothing
  FileIdentity direct_file;
};

// Whether the dynamic loader holds a library loaded under `file`'s path.
bool loader_holds(const std::filesystem::path& file) {
  void* handle = ::dlopen(file.c_str(), RTLD_LAZY | RTLD_NOLOAD);
  if (handle == nullptr) return false;
  ::dlclose(handle);  // the reference RTLD_NOLOAD just took
  return true;
}

std::mutex& mapped_mutex() {
  static std::mutex m;
  return m;
}
std::map<std::string, Mapped>& mapped() {
  static std::map<std::string, Mapped> m;
  return m;
}

// Copies `file` into a private directory and loads the copy. The copy and
// its directory are removed at once: the mapping outlives them.
std::shared_ptr<boost::dll::shared_library> load_copy(const std::filesystem::path& file,
                                                      const std::string& name,
                                                      const std::string& path) {
  std::string dir_template =
      (std::filesystem::temp_directory_path() / "slack-proxy-plugin-XXXXXX").string();
  if (::mkdtemp(dir_template.data()) == nullptr)
    throw PluginError(path + ": cannot make a directory for a copy of the rebuilt file: " +
                      std::strerror(errno));
  const std::filesystem::path dir(dir_template);
  const std::filesystem::path copy = dir / (name + ".so");
  std::error_code ec;
  std::filesystem::copy_file(file, copy, ec);
  std::shared_ptr<boost::dll::shared_library> library;
  std::string problem = ec ? "cannot copy it to " + copy.string() + ": " + ec.message() : "";
  if (!ec) {
    try {
      library = std::make_shared<boost::dll::shared_library>(
          copy, boost::dll::load_mode::rtld_now | boost::dll::load_mode::rtld_local);
    } catch (const std::exception& e) {
      problem = std::string("cannot load its copy in ") + dir.string() + " (is " +
                dir.parent_path().string() + " mounted noexec? set TMPDIR): " + e.what();
    }
  }
  std::filesystem::remove_all(dir, ec);
  if (!library) throw PluginError(path + ": " + problem);
  return library;
}

}  // namespace

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
  const FileIdentity file = identify(found, plugin.path);
  std::lock_guard<std::mutex> lock(mapped_mutex());
  Mapped& seen = mapped()[plugin.path];
  if (auto library = seen.latest.lock(); library && seen.latest_file == file) {
    LoadedPlugin same = seen.latest_plugin;
    same.name = name;
    same.library = std::move(library);
    same.from_copy = false;  // loaded before, not by this host
    same.rebuilt = false;
    return loaded_.emplace(name, std::move(same)).first->second;
  }
  refuse_foreign_sanitizer(found, plugin.path);
  plugin.rebuilt = seen.latest_file != FileIdentity{} && !(seen.latest_file == file);
  if (loader_holds(found) && !(seen.direct_file == file)) {
    // dlopen() of the path would hand back the library of the old file.
    plugin.library = load_copy(found, name, plugin.path);
    plugin.from_copy = true;
  } else {
    try {
      plugin.library = std::make_shared<boost::dll::shared_library>(
          found, boost::dll::load_mode::rtld_now | boost::dll::load_mode::rtld_local);
    } catch (const std::exception& e) {
      throw PluginError(plugin.path + ": cannot load: " + e.what());
    }
    seen.direct_file = file;
  }
  if (!plugin.library->has(SLACK_PROXY_ENTRY_POINT)) {
    throw PluginError(plugin.path + ": not a slack-proxy plugin (no " SLACK_PROXY_ENTRY_POINT
                                    " symbol)");
  }
  auto entry = plugin.library->get<const sp_plugin_descriptor*()>(SLACK_PROXY_ENTRY_POINT);
  plugin.descriptor = entry();
  check_descriptor(plugin.descriptor, plugin.path, name);
  plugin.schema = read_schema(*plugin.descriptor, plugin.path);
  seen.latest = plugin.library;
  seen.latest_file = file;
  seen.latest_plugin = plugin;
  seen.latest_plugin.library.reset();
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
  err[sizeof(err) - 1] = '\0';  // whatever the plugin wrote
  if (rc != 0) {
    throw PluginError("stage '" + stage_name + "' (plugin " + plugin.name +
                      "): " + (err[0] != '\0' ? std::string(err) : std::string("creation failed")));
  }
  // No stage and no error: "valid, nothing to build", which only a check
  // (SP_CREATE_CHECK_ONLY, ABI 1.1) may answer.
  if (out == nullptr && !check_only) {
    throw PluginError("stage '" + stage_name + "' (plugin " + plugin.name +
                      "): the plugin's factory returned no stage; only a check-only factory "
                      "may (fix the plugin)");
  }
  return static_cast<sdk::Stage*>(out);
}

}  // namespace slack_proxy

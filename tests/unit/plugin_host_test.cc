#include "plugin_host.h"

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <memory>
#include <string>

#include <unistd.h>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <slack_proxy/sdk/fingerprint.h>
#include <slack_proxy/sdk/testing/fakes.h>

namespace slack_proxy {
namespace {

using ::testing::AllOf;
using ::testing::HasSubstr;

// Built by this project (see tests/unit/CMakeLists.txt).
const std::string kDefaultPluginDir = SP_DEFAULT_PLUGIN_DIR;
const std::string kTestPluginDir = SP_UNIT_TEST_PLUGIN_DIR;
// tests/abi_plugins: plugins the host must refuse, or whose stages misbehave.
const std::string kAbiTestPluginDir = SP_ABI_TEST_PLUGIN_DIR;
const std::string kPath = "/opt/plugins/probe.so";

std::string abi(std::uint32_t major, std::uint32_t minor) {
  return std::to_string(major) + "." + std::to_string(minor);
}
// This host's ABI as the refusals print it.
const std::string kHostAbi = abi(SLACK_PROXY_ABI_MAJOR, SLACK_PROXY_ABI_MINOR);

int create_nothing(const sp_create_args*, void**, char*, size_t) noexcept { return 1; }
void destroy_nothing(void*) noexcept {}

// A descriptor this host accepts; each test breaks one thing.
sp_plugin_descriptor valid_descriptor() {
  sp_plugin_descriptor d{};
  d.struct_size = sizeof(sp_plugin_descriptor);
  d.abi_major = SLACK_PROXY_ABI_MAJOR;
  d.abi_minor = SLACK_PROXY_ABI_MINOR;
  d.build_fingerprint = SLACK_PROXY_BUILD_FINGERPRINT;
  d.name = "probe";
  d.kind = SP_STAGE_SINK;
  d.summary = "probe";
  d.create = &create_nothing;
  d.destroy = &destroy_nothing;
  return d;
}

// The refusal message, or "(accepted)".
std::string refusal(const sp_plugin_descriptor* d) {
  try {
    PluginHost::check_descriptor(d, kPath, "probe");
  } catch (const PluginError& e) {
    return e.what();
  }
  return "(accepted)";
}

std::string mapped_files() {
  std::ifstream maps("/proc/self/maps");
  return {std::istreambuf_iterator<char>(maps), std::istreambuf_iterator<char>()};
}

std::shared_ptr<const sdk::ConfigView> override_config(const std::string& channel) {
  auto config = std::make_shared<sdk::testing::MapConfig>();
  config->set("channel", channel);
  return config;
}

TEST(CheckDescriptorTest, AcceptsADescriptorBuiltLikeTheHost) {
  const auto d = valid_descriptor();

  EXPECT_EQ(refusal(&d), "(accepted)");
}

TEST(CheckDescriptorTest, RefusesNull) {
  EXPECT_THAT(refusal(nullptr), HasSubstr(kPath));
}

TEST(CheckDescriptorTest, RefusesAStructTooSmallToHoldTheVersion) {
  auto d = valid_descriptor();
  d.struct_size = 4;

  EXPECT_THAT(refusal(&d), AllOf(HasSubstr(kPath), HasSubstr("too small")));
}

TEST(CheckDescriptorTest, RefusesAStructTooSmallToHoldDestroy) {
  auto d = valid_descriptor();
  d.struct_size = offsetof(sp_plugin_descriptor, destroy);

  EXPECT_THAT(refusal(&d), AllOf(HasSubstr(kPath), HasSubstr(std::to_string(d.struct_size))));
}

TEST(CheckDescriptorTest, RefusesAnotherAbiMajorNamingFileAndBothVersions) {
  auto d = valid_descriptor();
  d.abi_major = 99;
  d.abi_minor = 0;

  EXPECT_THAT(refusal(&d), AllOf(HasSubstr(kPath), HasSubstr("99.0"), HasSubstr(kHostAbi)));
}

TEST(CheckDescriptorTest, RefusesANewerAbiMinor) {
  auto d = valid_descriptor();
  d.abi_minor = SLACK_PROXY_ABI_MINOR + 1;

  EXPECT_THAT(refusal(&d), AllOf(HasSubstr(kPath),
                                 HasSubstr(abi(SLACK_PROXY_ABI_MAJOR, SLACK_PROXY_ABI_MINOR + 1)),
                                 HasSubstr(kHostAbi)));
}

TEST(CheckDescriptorTest, RefusesAnotherFingerprintNamingBoth) {
  auto d = valid_descriptor();
  d.build_fingerprint = "sdk-0.0.9;clang-99;libc++-1";

  EXPECT_THAT(refusal(&d), AllOf(HasSubstr(kPath), HasSubstr("sdk-0.0.9;clang-99;libc++-1"),
                                 HasSubstr(SLACK_PROXY_BUILD_FINGERPRINT)));
}

TEST(CheckDescriptorTest, RefusesANameThatIsNotTheFileStem) {
  auto d = valid_descriptor();
  d.name = "impostor";

  EXPECT_THAT(refusal(&d), AllOf(HasSubstr(kPath), HasSubstr("impostor"), HasSubstr("probe")));
}

TEST(CheckDescriptorTest, RefusesAnUnknownStageKind) {
  auto d = valid_descriptor();
  d.kind = static_cast<sp_stage_kind>(42);

  EXPECT_THAT(refusal(&d), AllOf(HasSubstr(kPath), HasSubstr("42")));
}

TEST(CheckDescriptorTest, RefusesAMissingCreate) {
  auto d = valid_descriptor();
  d.create = nullptr;

  EXPECT_THAT(refusal(&d), AllOf(HasSubstr(kPath), HasSubstr("create")));
}

TEST(CheckDescriptorTest, RefusesAMissingDestroy) {
  auto d = valid_descriptor();
  d.destroy = nullptr;

  EXPECT_THAT(refusal(&d), AllOf(HasSubstr(kPath), HasSubstr("destroy")));
}

TEST(PluginHostTest, UnknownNameListsAvailablePluginsAndSearchedDirectories) {
  PluginHost host({kDefaultPluginDir, "/nonexistent/plugins"});

  try {
    host.load("no_such_plugin");
    FAIL() << "loading an unknown plugin succeeded";
  } catch (const PluginError& e) {
    EXPECT_THAT(std::string(e.what()),
                AllOf(HasSubstr("no_such_plugin"), HasSubstr(kDefaultPluginDir),
                      HasSubstr("/nonexistent/plugins"), HasSubstr("channel_override")));
  }
}

TEST(PluginHostTest, LoadsARealPluginFromDiskOnce) {
  PluginHost host({kDefaultPluginDir});

  const LoadedPlugin& plugin = host.load("channel_override");

  EXPECT_EQ(plugin.name, "channel_override");
  EXPECT_EQ(plugin.path, kDefaultPluginDir + "/channel_override.so");
  ASSERT_NE(plugin.descriptor, nullptr);
  EXPECT_STREQ(plugin.descriptor->name, "channel_override");
  EXPECT_EQ(plugin.descriptor->kind, SP_STAGE_ROUTER);
  EXPECT_EQ(&host.load("channel_override"), &plugin);
}

TEST(PluginHostTest, CreatesAWorkingStageFromARealPlugin) {
  PluginHost host({kDefaultPluginDir});
  const LoadedPlugin& plugin = host.load("channel_override");

  auto router = PluginHost::create<sdk::Router>(plugin, std::make_shared<sdk::testing::FakeHost>(),
                                                override_config("#override"), "override");

  sdk::Message m;
  m.channel = m.original_channel = "#asked";
  EXPECT_TRUE(router->route(m).accepted);
  EXPECT_EQ(m.channel, "#override");
  EXPECT_EQ(m.original_channel, "#asked");
}

TEST(PluginHostTest, CreatingTheWrongKindNamesBothKinds) {
  PluginHost host({kDefaultPluginDir});
  const LoadedPlugin& plugin = host.load("channel_override");

  try {
    PluginHost::create<sdk::Sink>(plugin, std::make_shared<sdk::testing::FakeHost>(),
                                  override_config("#override"), "override");
    FAIL() << "a router was created as a sink";
  } catch (const PluginError& e) {
    EXPECT_THAT(std::string(e.what()), AllOf(HasSubstr("router"), HasSubstr("sink")));
  }
}

TEST(PluginHostTest, StageKeepsItsLibraryLoadedAfterTheHostIsGone) {
  const std::string so = kDefaultPluginDir + "/channel_override.so";
  auto host = std::make_unique<PluginHost>(std::vector<std::filesystem::path>{kDefaultPluginDir});
  auto router = PluginHost::create<sdk::Router>(host->load("channel_override"),
                                                std::make_shared<sdk::testing::FakeHost>(),
                                                override_config("#override"), "override");

  host.reset();

  EXPECT_THAT(mapped_files(), HasSubstr(so));
  sdk::Message m;
  m.channel = "#asked";
  EXPECT_TRUE(router->route(m).accepted);
  EXPECT_EQ(m.channel, "#override");
}

TEST(PluginHostTest, FactoryExceptionBecomesAPluginErrorWithItsMessage) {
  PluginHost host({kTestPluginDir});
  const LoadedPlugin& plugin = host.load("throwing_factory");

  try {
    PluginHost::create<sdk::Sink>(plugin, std::make_shared<sdk::testing::FakeHost>(),
                                  std::make_shared<sdk::testing::MapConfig>(), "picky");
    FAIL() << "the throwing factory produced a stage";
  } catch (const PluginError& e) {
    EXPECT_THAT(std::string(e.what()),
                AllOf(HasSubstr("picky"), HasSubstr("throwing_factory refuses every configuration")));
  }
}

// A plugin built against ABI 1.0 (tests/abi_plugins/abi10_router.cc): its
// descriptor ends before schema_entry_size, its schema rows end at `doc`.
// A schema row's type is a foreign value too: a type the plugin's ABI does
// not know (here ENUM in a 1.0 plugin) is refused, naming the file and key.
TEST(PluginHostTest, RefusesASettingTypeThePluginsAbiDoesNotKnow) {
  PluginHost host({kAbiTestPluginDir});
  try {
    host.load("abi10_enum_router");
    FAIL() << "loaded a 1.0 plugin declaring a 1.1 setting type";
  } catch (const PluginError& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find("abi10_enum_router.so"), std::string::npos) << what;
    EXPECT_NE(what.find("setting 'mode' has type " + std::to_string(SP_VALUE_ENUM) +
                        ", unknown to ABI " + std::to_string(SLACK_PROXY_ABI_MAJOR) + ".0"),
              std::string::npos)
        << what;
  }
}

TEST(PluginHostTest, ReadsAnAbi10PluginsSchemaRowsAtTheirOwnSize) {
  PluginHost host({kAbiTestPluginDir});
  const LoadedPlugin& plugin = host.load("abi10_router");
  ASSERT_NE(plugin.descriptor, nullptr);
  EXPECT_EQ(plugin.descriptor->abi_minor, 0u);
  EXPECT_LT(plugin.descriptor->struct_size, sizeof(sp_plugin_descriptor));

  ASSERT_EQ(plugin.schema.size(), 3u);
  struct Row10 {
    const char* key;
    sp_value_type type;
    const char* default_value;
    int required;
    const char* doc;
  };
  const Row10 expected[] = {
      {"greeting", SP_VALUE_STRING, "hello", 0, "a string with a default"},
      {"count", SP_VALUE_INTEGER, nullptr, 1, "a required integer"},
      {"pause", SP_VALUE_DURATION, "1s", 0, "a duration"},
  };
  for (std::size_t i = 0; i < plugin.schema.size(); ++i) {
    const sp_config_key& row = plugin.schema[i];
    SCOPED_TRACE(expected[i].key);
    EXPECT_STREQ(row.key, expected[i].key);
    EXPECT_EQ(row.type, expected[i].type);
    if (expected[i].default_value == nullptr) {
      EXPECT_EQ(row.default_value, nullptr);
    } else {
      EXPECT_STREQ(row.default_value, expected[i].default_value);
    }
    EXPECT_EQ(row.required, expected[i].required);
    EXPECT_STREQ(row.doc, expected[i].doc);
    // What ABI 1.1 added is zero: no flags, no bounds, no allowed values.
    EXPECT_EQ(row.flags, 0u);
    EXPECT_EQ(row.min, 0.0);
    EXPECT_EQ(row.max, 0.0);
    EXPECT_EQ(row.allowed, nullptr);
    EXPECT_EQ(row.allowed_size, 0u);
  }
}

// ------------------------------------------ builds that must not be mixed --

// The refusal message of load(name) from `dir`, or "(loaded)".
std::string load_refusal(const std::string& dir, const std::string& name) {
  PluginHost host({dir});
  try {
    host.load(name);
  } catch (const PluginError& e) {
    return e.what();
  }
  return "(loaded)";
}

TEST(PluginBuildTest, RefusesAPluginBuiltWithGlibcxxDebugNamingItsFileAndBothFingerprints) {
  const std::string so = kAbiTestPluginDir + "/glibcxx_debug.so";
  EXPECT_THAT(load_refusal(kAbiTestPluginDir, "glibcxx_debug"),
              AllOf(HasSubstr(so), HasSubstr("-glibcxx_debug"),
                    HasSubstr(SLACK_PROXY_BUILD_FINGERPRINT)));
}

// Loading it would abort this test binary ("ASan runtime does not come
// first", or TSan's equivalent), so passing at all shows it was refused
// before dlopen; the maps check says so outright.
TEST(PluginBuildTest, RefusesAPluginBuiltWithASanitizerTheHostLacksBeforeLoadingIt) {
  const std::string so = kAbiTestPluginDir + "/foreign_sanitizer.so";
  const std::string why = load_refusal(kAbiTestPluginDir, "foreign_sanitizer");
  EXPECT_THAT(why, AllOf(HasSubstr(so), HasSubstr("Sanitizer"), HasSubstr("-fsanitize="),
                         HasSubstr("Rebuild the plugin without")));
  EXPECT_THAT(mapped_files(), ::testing::Not(HasSubstr(so)));
}

TEST(PluginBuildTest, LoadsAPluginBuiltWithTheHostsOwnSanitizers) {
  // The project's own plugins are built with exactly the host's flags,
  // sanitizers included (the ASan build's plugins import __asan_*).
  PluginHost host({kDefaultPluginDir});
  EXPECT_NO_THROW(host.load("channel_override"));
}

TEST(PluginBuildTest, AFileThatIsNotAnElfLibraryIsRefusedByNameNotLoaded) {
  const auto dir = std::filesystem::temp_directory_path() /
                   ("sp-plugin-host-" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  std::ofstream(dir / "text_file.so") << "not a library at all\n";
  std::ofstream(dir / "empty_file.so");
  // An ELF header whose section table points far past the end of the file.
  std::string elf(64, '\0');
  elf.replace(0, 5, "\x7f" "ELF\x02");
  elf[0x28] = '\x7f';  // e_shoff, low byte
  elf[0x2f] = '\x7f';  // e_shoff, high byte: far past the end
  elf[0x3a] = 64;       // e_shentsize
  elf[0x3c] = 3;        // e_shnum
  std::ofstream(dir / "truncated_elf.so", std::ios::binary) << elf;

  EXPECT_THAT(load_refusal(dir, "text_file"),
              AllOf(HasSubstr((dir / "text_file.so").string()), HasSubstr("no ELF header")));
  EXPECT_THAT(load_refusal(dir, "empty_file"),
              AllOf(HasSubstr((dir / "empty_file.so").string()), HasSubstr("no ELF header")));
  EXPECT_THAT(load_refusal(dir, "truncated_elf"),
              AllOf(HasSubstr((dir / "truncated_elf.so").string()),
                    HasSubstr("not a usable shared library")));
  std::filesystem::remove_all(dir);
}

// ----------------------------------------- "valid, nothing to build" ------

TEST(PluginHostTest, ACheckOnlyFactoryMayBuildNothing) {
  PluginHost host({kAbiTestPluginDir});
  const LoadedPlugin& plugin = host.load("null_stage");
  std::shared_ptr<sdk::Router> checked;
  EXPECT_NO_THROW(checked = PluginHost::create<sdk::Router>(
                      plugin, std::make_shared<sdk::testing::FakeHost>(),
                      std::make_shared<sdk::testing::MapConfig>(), "nothing", /*check_only=*/true));
  EXPECT_EQ(checked, nullptr);
}

TEST(PluginHostTest, AFactoryThatBuildsNothingOutsideACheckIsAClearError) {
  PluginHost host({kAbiTestPluginDir});
  const LoadedPlugin& plugin = host.load("null_stage");
  try {
    PluginHost::create<sdk::Router>(plugin, std::make_shared<sdk::testing::FakeHost>(),
                                    std::make_shared<sdk::testing::MapConfig>(), "nothing");
    FAIL() << "a stage-less factory was accepted outside a check";
  } catch (const PluginError& e) {
    EXPECT_THAT(std::string(e.what()),
                AllOf(HasSubstr("stage 'nothing'"), HasSubstr("null_stage"),
                      HasSubstr("no stage")));
  }
}

// A plugin that breaks the C contract itself (success, no stage, not a
// check) is refused by the host too, not turned into a null stage.
int create_none(const sp_create_args*, void** out, char*, size_t) noexcept {
  *out = nullptr;
  return 0;
}

TEST(PluginHostTest, AHostRefusesSuccessWithoutAStageOutsideACheck) {
  sp_plugin_descriptor d = valid_descriptor();
  d.create = &create_none;
  LoadedPlugin plugin;
  plugin.name = "probe";
  plugin.descriptor = &d;
  EXPECT_THROW(PluginHost::create<sdk::Sink>(plugin, std::make_shared<sdk::testing::FakeHost>(),
                                             std::make_shared<sdk::testing::MapConfig>(), "s"),
               PluginError);
  EXPECT_EQ(PluginHost::create<sdk::Sink>(plugin, std::make_shared<sdk::testing::FakeHost>(),
                                          std::make_shared<sdk::testing::MapConfig>(), "s",
                                          /*check_only=*/true),
            nullptr);
}

}  // namespace
}  // namespace slack_proxy

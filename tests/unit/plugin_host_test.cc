#include "plugin_host.h"

#include <cstddef>
#include <fstream>
#include <iterator>
#include <memory>
#include <string>

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
const std::string kPath = "/opt/plugins/probe.so";

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

  EXPECT_THAT(refusal(&d), AllOf(HasSubstr(kPath), HasSubstr("99.0"), HasSubstr("1.0")));
}

TEST(CheckDescriptorTest, RefusesANewerAbiMinor) {
  auto d = valid_descriptor();
  d.abi_minor = SLACK_PROXY_ABI_MINOR + 1;

  EXPECT_THAT(refusal(&d), AllOf(HasSubstr(kPath), HasSubstr("1.1"), HasSubstr("1.0")));
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

}  // namespace
}  // namespace slack_proxy

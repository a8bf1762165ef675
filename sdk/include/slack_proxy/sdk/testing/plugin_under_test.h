// Load a built plugin in a unit test exactly as the proxy loads it, and test
// its registration: the descriptor, the schema, the settings check and the
// factory, through the C ABI.
//
//   #include <slack_proxy/sdk/testing/fakes.h>
//   #include <slack_proxy/sdk/testing/plugin_under_test.h>
//
//   TEST(MyRouter, LoadsAndRoutes) {
//     slack_proxy::sdk::testing::PluginUnderTest plugin(SLACK_PROXY_PLUGIN_FILE);
//     slack_proxy::sdk::testing::FakeHost host;
//     auto router = plugin.create<slack_proxy::sdk::Router>(host, R"(routes = { "#a" = "#b" })");
//     ...
//   }
//
// SLACK_PROXY_PLUGIN_FILE is defined by slack_proxy_add_plugin() for the
// plugin's tests. Part of SlackProxy::sdk_testing (a compiled library: it is
// the proxy's own plugin host and settings checker, not a copy).
#ifndef SLACK_PROXY_SDK_TESTING_PLUGIN_UNDER_TEST_H
#define SLACK_PROXY_SDK_TESTING_PLUGIN_UNDER_TEST_H

#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include <slack_proxy/sdk/abi.h>
#include <slack_proxy/sdk/fingerprint.h>
#include <slack_proxy/sdk/host.h>
#include <slack_proxy/sdk/stages.h>

namespace slack_proxy::sdk::testing {

// The proxy refused the plugin, its settings or its factory's answer.
// what() is the proxy's own message, as an operator would read it.
class PluginRefused : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

class PluginUnderTest {
 public:
  // Loads `file` as the proxy does: no sanitizer runtime the test binary
  // lacks, the entry point, ABI version, build fingerprint, and a name equal
  // to the file's stem. Throws PluginRefused with the proxy's message.
  // Also refuses a test built unlike this library (another compiler,
  // -D_GLIBCXX_DEBUG, a sanitizer): the two share C++ objects too.
  explicit PluginUnderTest(const std::string& file)
      : PluginUnderTest(file.c_str(), SLACK_PROXY_BUILD_FINGERPRINT) {}

  const sp_plugin_descriptor& descriptor() const;
  // The schema rows as the proxy reads them (at the plugin's stride).
  const std::vector<sp_config_key>& schema() const;
  // The row of setting `key` as the proxy reads it; all zero (key null) when
  // there is none.
  sp_config_key row(std::string_view key) const;

  // What `slack-proxy validate` does with a stage of this plugin whose table
  // holds `settings` (TOML, e.g. "rate = 2\nkey = \"channel\""): checks them
  // against the schema, then asks the factory in check-only mode. Throws
  // PluginRefused listing every problem.
  void validate(std::string_view settings = {}) const;
  // validate()'s message, or "" when the settings are valid: for asserting
  // on what an operator would read.
  std::string validation_error(std::string_view settings = {}) const;

  // Checks `settings` as validate() does, reads secrets, and creates the
  // stage through the plugin's create(). The stage keeps the library loaded;
  // `host` must outlive it. Throws PluginRefused when the plugin is not an
  // `Interface`, a setting is wrong or the factory refuses.
  template <typename Interface>
  std::shared_ptr<Interface> create(HostServices& host, std::string_view settings = {}) const {
    return std::static_pointer_cast<Interface>(
        create_stage(static_cast<sp_stage_kind>(Interface::kKind), host, settings));
  }

 private:
  // Plain C arguments: nothing crosses before the fingerprints are compared.
  PluginUnderTest(const char* file, const char* test_fingerprint);
  std::shared_ptr<Stage> create_stage(sp_stage_kind kind, HostServices& host,
                                      std::string_view settings) const;

  struct Impl;
  std::shared_ptr<Impl> impl_;
};

}  // namespace slack_proxy::sdk::testing

#endif  // SLACK_PROXY_SDK_TESTING_PLUGIN_UNDER_TEST_H

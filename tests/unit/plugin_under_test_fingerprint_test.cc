// A test built unlike SlackProxy::sdk_testing (another compiler, standard
// library mode or sanitizer) is refused before any C++ object crosses. This
// file is compiled with a foreign SLACK_PROXY_BUILD_FINGERPRINT
// (tests/unit/CMakeLists.txt) to stand for such a test.
#include <gtest/gtest.h>

#include <string>

#include <slack_proxy/sdk/testing/plugin_under_test.h>

namespace {

TEST(PluginUnderTestFingerprint, ATestBuiltUnlikeTheTestingLibraryIsRefusedNamingBoth) {
  try {
    slack_proxy::sdk::testing::PluginUnderTest plugin(SP_DEFAULT_PLUGIN_DIR "/token_bucket.so");
    FAIL() << "a test with another build fingerprint loaded a plugin";
  } catch (const slack_proxy::sdk::testing::PluginRefused& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find("'sdk-test;foreign-build'"), std::string::npos) << what;
    EXPECT_NE(what.find("build the test with the proxy's compiler and flags"), std::string::npos)
        << what;
  }
}

}  // namespace

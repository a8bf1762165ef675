// file_sink through the C ABI, as the proxy loads it.
#include <gtest/gtest.h>

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include <slack_proxy/sdk/testing/fakes.h>
#include <slack_proxy/sdk/testing/plugin_under_test.h>

namespace {

namespace sdk = slack_proxy::sdk;
namespace fs = std::filesystem;
using sdk::testing::FakeHost;
using sdk::testing::PluginUnderTest;

// A directory of the test's own, removed afterwards.
class FileSinkTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("file_sink_test." + std::to_string(::getpid()) + "." +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  std::string settings_for(const fs::path& file) const {
    return "path = \"" + file.string() + "\"";
  }
  static std::string read(const fs::path& file) {
    std::ifstream in(file);
    std::stringstream text;
    text << in.rdbuf();
    return text.str();
  }

  fs::path dir_;
  PluginUnderTest plugin_{SLACK_PROXY_PLUGIN_FILE};
};

TEST_F(FileSinkTest, ValidatingBuildsNothingAndCreatesNoFile) {
  const fs::path file = dir_ / "out.jsonl";
  EXPECT_NO_THROW(plugin_.validate(settings_for(file)));
  EXPECT_FALSE(fs::exists(file));
}

TEST_F(FileSinkTest, AppendsEachMessageAsOneLine) {
  const fs::path file = dir_ / "out.jsonl";
  FakeHost host;
  auto sink = plugin_.create<sdk::Sink>(host, settings_for(file));

  sdk::Message first;
  first.payload = "{\"channel\":\"#a\",\n \"text\":\"one\"}";
  sdk::Message second;
  second.payload = R"({"channel":"#b","text":"two"})";
  EXPECT_TRUE(sink->send(first).delivered);
  EXPECT_TRUE(sink->send(second).delivered);

  EXPECT_EQ(read(file),
            "{\"channel\":\"#a\",  \"text\":\"one\"}\n{\"channel\":\"#b\",\"text\":\"two\"}\n");
}

TEST_F(FileSinkTest, AFileThatCannotBeWrittenIsATransientLocalIoError) {
  FakeHost host;
  auto sink = plugin_.create<sdk::Sink>(host, settings_for(dir_ / "gone" / "out.jsonl"));
  sdk::Message message;
  message.payload = R"({"text":"x"})";
  const sdk::SendResult result = sink->send(message);
  EXPECT_FALSE(result.delivered);
  EXPECT_EQ(result.error, sdk::outcome::kLocalIo);
  EXPECT_TRUE(sdk::outcome::is_transient(result.error));
  EXPECT_EQ(result.http_status, 0);
  EXPECT_NE(result.detail.find("No such file or directory"), std::string::npos) << result.detail;
}

}  // namespace

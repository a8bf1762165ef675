// The SDK's gMock mocks compile against the interfaces and can stand in for
// the host services a factory receives.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <slack_proxy/sdk/testing/fakes.h>
#include <slack_proxy/sdk/testing/mocks.h>

namespace slack_proxy::sdk::testing {
namespace {

using ::testing::_;
using ::testing::Return;
using ::testing::ReturnRef;

TEST(SdkMocksTest, MockHostServicesHandsOutMockedMetricsLoggerAndClock) {
  MockHostServices host;
  MockMetrics metrics;
  MockCounter counter;
  FakeClock clock;
  RecordingLogger log;
  EXPECT_CALL(host, metrics()).WillRepeatedly(ReturnRef(metrics));
  EXPECT_CALL(host, logger()).WillRepeatedly(ReturnRef(log));
  EXPECT_CALL(host, clock()).WillRepeatedly(ReturnRef(clock));
  EXPECT_CALL(metrics, counter(std::string_view("slackproxy_x_total"), _, _))
      .WillOnce(ReturnRef(counter));
  EXPECT_CALL(counter, inc(2.0));

  HostServices& services = host;
  services.metrics().counter("slackproxy_x_total", "help", {}).inc(2.0);
  services.logger().info("hello");
  EXPECT_EQ(services.clock().now(), clock.now());
  EXPECT_TRUE(log.contains("hello"));
}

TEST(SdkMocksTest, MockConfigViewAnswersWhatItIsTold) {
  MockConfigView config;
  EXPECT_CALL(config, get_duration(std::string_view("ttl")))
      .WillOnce(Return(std::chrono::milliseconds(900)));
  EXPECT_CALL(config, has(std::string_view("ttl"))).WillOnce(Return(true));
  const ConfigView& view = config;
  EXPECT_TRUE(view.has("ttl"));
  EXPECT_EQ(view.get_duration("ttl"), std::chrono::milliseconds(900));
}

TEST(SdkChannelKeyTest, SameChannelInTwoWorkspacesHasTwoKeys) {
  Message a, b;
  a.workspace = "T1";
  a.channel = "#x";
  b.workspace = "T2";
  b.channel = "#x";
  EXPECT_NE(channel_key(a), channel_key(b));
  EXPECT_EQ(channel_key(a), "T1\n#x");
}

}  // namespace
}  // namespace slack_proxy::sdk::testing

// GoogleMock mocks of every SDK interface, for plugin authors and for the
// host's own tests. Include from test code only (needs gmock). For most
// tests the fakes in fakes.h (FakeHost, MapConfig) are simpler; mock what
// you need to assert calls on.
#ifndef SLACK_PROXY_SDK_TESTING_MOCKS_H
#define SLACK_PROXY_SDK_TESTING_MOCKS_H

#include <gmock/gmock.h>

#include <slack_proxy/sdk/host.h>
#include <slack_proxy/sdk/stages.h>

namespace slack_proxy::sdk::testing {

class MockClock : public Clock {
 public:
  MOCK_METHOD(SteadyTime, now, (), (const, noexcept, override));
  MOCK_METHOD(WallTime, wall_now, (), (const, noexcept, override));
};

class MockLogger : public Logger {
 public:
  MOCK_METHOD(bool, enabled, (LogLevel), (const, noexcept, override));
  MOCK_METHOD(void, log, (LogLevel, std::string_view), (noexcept, override));
};

class MockCounter : public Counter {
 public:
  MOCK_METHOD(void, inc, (double), (noexcept, override));
};

class MockGauge : public Gauge {
 public:
  MOCK_METHOD(void, set, (double), (noexcept, override));
  MOCK_METHOD(void, add, (double), (noexcept, override));
};

class MockHistogram : public Histogram {
 public:
  MOCK_METHOD(void, observe, (double), (noexcept, override));
};

class MockMetrics : public Metrics {
 public:
  MOCK_METHOD(Counter&, counter, (std::string_view, std::string_view, const Labels&),
              (noexcept, override));
  MOCK_METHOD(Gauge&, gauge, (std::string_view, std::string_view, const Labels&),
              (noexcept, override));
  MOCK_METHOD(Histogram&, histogram,
              (std::string_view, std::string_view, const std::vector<double>&, const Labels&),
              (noexcept, override));
};

class MockConfigView : public ConfigView {
 public:
  MOCK_METHOD(bool, has, (std::string_view), (const, noexcept, override));
  MOCK_METHOD(std::string, get_string, (std::string_view), (const, noexcept, override));
  MOCK_METHOD(std::int64_t, get_integer, (std::string_view), (const, noexcept, override));
  MOCK_METHOD(double, get_number, (std::string_view), (const, noexcept, override));
  MOCK_METHOD(bool, get_boolean, (std::string_view), (const, noexcept, override));
  MOCK_METHOD(std::chrono::milliseconds, get_duration, (std::string_view),
              (const, noexcept, override));
  MOCK_METHOD(std::vector<std::string>, get_string_list, (std::string_view),
              (const, noexcept, override));
  MOCK_METHOD(std::string, source_of, (std::string_view), (const, noexcept, override));
  MOCK_METHOD((std::map<std::string, std::string>), get_string_map, (std::string_view),
              (const, noexcept, override));
  MOCK_METHOD(std::string, get_secret, (std::string_view), (const, noexcept, override));
};

class MockHostServices : public HostServices {
 public:
  MOCK_METHOD(Logger&, logger, (), (noexcept, override));
  MOCK_METHOD(Metrics&, metrics, (), (noexcept, override));
  MOCK_METHOD(const Clock&, clock, (), (noexcept, override));
  MOCK_METHOD(std::shared_ptr<HttpClient>, http_client, (const HttpClientSettings&, std::string&),
              (noexcept, override));
  MOCK_METHOD(SharedBuckets&, shared_buckets, (), (noexcept, override));
  MOCK_METHOD(std::string, budget_id, (std::string_view), (const, noexcept, override));
  MOCK_METHOD(SharedMarks&, shared_marks, (), (noexcept, override));
};

class MockAuthenticator : public Authenticator {
 public:
  MOCK_METHOD(AuthResult, authenticate, (const RequestView&), (override));
};

class MockRouter : public Router {
 public:
  MOCK_METHOD(RouteResult, route, (Message&), (override));
};

class MockRateLimiter : public RateLimiter {
 public:
  MOCK_METHOD(SteadyTime, next_send_time, (const Message&, SteadyTime), (override));
  MOCK_METHOD(void, on_send, (const Message&, SteadyTime), (override));
};

class MockGuard : public Guard {
 public:
  MOCK_METHOD(GuardVerdict, before_send, (const Message&, SteadyTime), (override));
  MOCK_METHOD(void, after_result, (const Message&, const SendResult&, SteadyTime),
              (override));
};

class MockSink : public Sink {
 public:
  MOCK_METHOD(SendResult, send, (const Message&), (override));
  MOCK_METHOD(std::string, budget_of, (const Message&), (override));
};

class MockRetryPolicy : public RetryPolicy {
 public:
  MOCK_METHOD(RetryDecision, decide, (const Message&, const SendResult&), (override));
};

}  // namespace slack_proxy::sdk::testing

#endif  // SLACK_PROXY_SDK_TESTING_MOCKS_H

// GoogleMock mocks of every SDK interface, for plugin authors and for the
// host's own tests. Include from test code only (needs gmock).
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

class MockAuthenticator : public Authenticator {
 public:
  MOCK_METHOD(AuthResult, authenticate, (const RequestView&), (noexcept, override));
};

class MockRouter : public Router {
 public:
  MOCK_METHOD(RouteResult, route, (Message&), (noexcept, override));
};

class MockRateLimiter : public RateLimiter {
 public:
  MOCK_METHOD(SteadyTime, next_send_time, (const Message&, SteadyTime), (noexcept, override));
  MOCK_METHOD(void, on_send, (const Message&, SteadyTime), (noexcept, override));
};

class MockGuard : public Guard {
 public:
  MOCK_METHOD(GuardVerdict, before_send, (const Message&, SteadyTime), (noexcept, override));
  MOCK_METHOD(void, after_result, (const Message&, const SendResult&, SteadyTime),
              (noexcept, override));
};

class MockSink : public Sink {
 public:
  MOCK_METHOD(SendResult, send, (const Message&), (noexcept, override));
};

class MockRetryPolicy : public RetryPolicy {
 public:
  MOCK_METHOD(RetryDecision, decide, (const Message&, const SendResult&), (noexcept, override));
};

}  // namespace slack_proxy::sdk::testing

#endif  // SLACK_PROXY_SDK_TESTING_MOCKS_H

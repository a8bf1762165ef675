// Settings for our Poco HTTPServer: the metrics and admin listener (the
// ingress is event-driven, see transport/http_server.h).
#ifndef SLACK_PROXY_CORE_SERVER_PARAMS_H
#define SLACK_PROXY_CORE_SERVER_PARAMS_H

#include <Poco/Net/TCPServerParams.h>
#include <Poco/Timespan.h>

namespace slack_proxy {

// How long an idle connection thread of a Poco TCPServer waits for the next
// connection before it looks again at whether the server has stopped.
//
// Poco 1.11's TCPServerDispatcher::stop() wakes at most one waiting thread
// (pocoproject/poco issues #2746 and #3796), so every other idle thread
// sleeps out this wait before it exits, and joining the pool at shutdown
// waits with it. With Poco's default of 10 s a drain that had finished kept
// the process alive for 10 or 20 s more (one wait per listener) whenever a
// listener had had two or more connections at once in the last 10 s. At
// 200 ms the last idle thread wakes five times a second, which costs nothing
// measurable, and a stop is never delayed by more than that.
inline constexpr long kServerThreadIdleMicroseconds = 200'000;

inline void bound_idle_thread_wait(Poco::Net::TCPServerParams& params) {
  params.setThreadIdleTime(Poco::Timespan(0, kServerThreadIdleMicroseconds));
}

}  // namespace slack_proxy

#endif  // SLACK_PROXY_CORE_SERVER_PARAMS_H

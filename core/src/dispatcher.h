// The dispatcher: turns the queue into deliveries, one lane per channel.
//
// Threading model:
//   - One scheduling thread owns every lane and calls the guards, rate
//     limiters and retry policy (so those need no locking).
//   - Sends run on an Executor (a worker pool). A lane has at most one send
//     in flight, which keeps per-channel order, including across retries.
//   - A lane that waits (on a token bucket, a backoff, a Retry-After) just
//     records when it is next due; it never blocks the thread, so one slow
//     or parked channel cannot hold up another. A hung send holds only its
//     worker: with W workers, W-1 channels can hang before others wait.
//
// Faults stay in the plugin: an exception escaping a stage method is caught
// here, logged with the pipeline, stage and plugin, counted in
// slackproxy_plugin_exceptions_total, and fails only what it touched:
//   - Sink::send, Guard::before_send, RateLimiter::*: that one attempt fails
//     with a transient internal_error_in_sink / _guard / _rate_limiter and
//     goes to the retry policy like any failed send. It counts as an
//     attempt, so the policy's backoff grows and its budget ends the retries:
//     a stage that always throws cannot spin the scheduler.
//   - Guard::after_result: logged and counted only; the result stands.
//   - RetryPolicy::decide: the message is given up into the dead letters,
//     with the reason. Retrying on a guessed schedule could loop forever on
//     a policy that always throws; a dead letter is durable, visible and
//     can be replayed once the plugin is fixed, so nothing is lost.
// Host and plugin share one C++ runtime (the build fingerprint guarantees
// it), so a plugin's exception is caught here like the host's own.
//
// Back-pressure: a sink that reports SendResult::back_pressure pauses the
// message's channel or its whole workspace until the time it says; the
// dispatcher never reads HTTP statuses.
//
// For tests, run_once() does one scheduling round at the clock's current
// time without any thread, so a fake clock and a ManualExecutor make every
// decision deterministic.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <limits>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include <spdlog/logger.h>

#include <slack_proxy/sdk/host.h>

#include "executor.h"
#include "metrics.h"
#include "pipeline.h"
#include "queue/queue.h"

namespace slack_proxy {

class Dispatcher {
 public:
  // `max_in_flight` should be the executor's worker count: a send is only
  // started (and its rate-limit token only taken) when a worker is free to
  // run it, so sends never pile up in the executor and leave in a burst.
  Dispatcher(Queue& queue, std::vector<std::shared_ptr<Pipeline>> pipelines,
             const sdk::Clock& clock, CoreMetrics& metrics, std::shared_ptr<spdlog::logger> log,
             Executor& executor,
             std::size_t max_in_flight = std::numeric_limits<std::size_t>::max());
  ~Dispatcher();

  Dispatcher(const Dispatcher&) = delete;
  Dispatcher& operator=(const Dispatcher&) = delete;

  // One round at clock.now(): take new messages, apply finished sends, start
  // every send that is due. Returns when the next round is needed on the
  // clock's timeline; SteadyTime::max() when only new input can help.
  sdk::SteadyTime run_once();

  // Runs rounds on a thread of its own until stop().
  void start();
  // Stops the scheduling thread. Sends already running finish on the
  // executor; their results are not applied any more.
  void stop();

  // Wakes the scheduling thread (new message, finished send). Cheap.
  void wake();

  // Blocks until nothing is queued or in flight, or `deadline` passes.
  // Returns true when idle.
  bool wait_idle(std::chrono::steady_clock::time_point deadline);

  // Messages held in lanes (waiting or in flight), per lane key. For logs.
  std::map<std::string, std::size_t> backlog() const;
  // The same, per delivery channel (summed over pipelines). For metrics.
  std::map<std::string, std::size_t> channel_depths() const;
  std::size_t in_flight() const;

 private:
  struct Entry {
    std::uint64_t seq;
    sdk::Message message;
  };
  struct Lane {
    std::string key;
    std::shared_ptr<Pipeline> pipeline;
    std::deque<Entry> entries;
    sdk::SteadyTime ready_at{};
    bool busy = false;
  };
  struct Completion {
    std::string lane;
    std::string id;
    sdk::SendResult result;
  };

  void intake();
  void apply(Completion c, sdk::SteadyTime now);
  // What a failed attempt of the lane's head leads to: a pause on
  // back-pressure, then the retry policy's retry or a dead letter.
  void settle_failure(Lane& lane, const sdk::SendResult& result, sdk::SteadyTime now);
  sdk::RetryDecision decide(const Pipeline& p, const sdk::Message& m,
                            const sdk::SendResult& result);
  void pause(const sdk::Message& m, const sdk::BackPressure& bp, sdk::SteadyTime until);
  // The time the message's workspace or channel is paused until; now or
  // earlier when it is not.
  sdk::SteadyTime paused_until(const sdk::Message& m, sdk::SteadyTime now);
  // Asks the guards; false when one denied (or failed on) the head, which
  // is then settled.
  bool guards_allow(Lane& lane, sdk::SteadyTime now);
  // Asks the limiters; false when the head must wait (or a limiter failed
  // and the head was settled).
  bool limiters_allow(Lane& lane, sdk::SteadyTime now);
  // Counts an attempt that failed before any send (a stage threw) and
  // settles it.
  void fail_before_send(Lane& lane, std::string_view code, std::string detail,
                        sdk::SteadyTime now);
  // Runs `call`, a call into a stage; if it throws, logs and counts the
  // exception, puts a loggable description into `failure` and returns false.
  template <typename Call>
  bool contained(const Pipeline& p, const sdk::Stage* stage, std::string_view method,
                 const sdk::Message& m, std::string& failure, Call&& call) noexcept;
  void try_start(Lane& lane, sdk::SteadyTime now);
  void finish(Lane& lane, const char* outcome);
  // Moves the lane's head (or a message never laned) to the dead letters.
  void finish_dead(Lane& lane, DeadLetterKind kind, std::string error, std::string reason,
                   int http_status);
  void bury(sdk::Message message, DeadLetterKind kind, std::string error, std::string reason,
            int http_status);
  void loop();

  Queue& queue_;
  std::unordered_map<std::string, std::shared_ptr<Pipeline>> pipelines_;
  const sdk::Clock& clock_;
  CoreMetrics& metrics_;
  std::shared_ptr<spdlog::logger> log_;
  Executor& executor_;

  const std::size_t max_in_flight_;

  // Owned by the scheduling thread (or the test calling run_once).
  std::unordered_map<std::string, Lane> lanes_;
  std::size_t started_ = 0;  // sends started whose result is not applied yet
  // Scopes a sink reported back-pressure for: workspaces by
  // pipeline/workspace, channels by lane key. Two maps, so that a workspace
  // and a channel of the same spelling never share a pause.
  std::unordered_map<std::string, sdk::SteadyTime> paused_workspaces_;
  std::unordered_map<std::string, sdk::SteadyTime> paused_channels_;
  std::uint64_t next_seq_ = 0;

  // Shared with workers.
  mutable std::mutex mutex_;
  std::condition_variable wake_cv_;
  std::condition_variable idle_cv_;
  std::vector<Completion> completions_;
  std::map<std::string, std::size_t> backlog_;  // refreshed each round
  std::map<std::string, std::size_t> channel_depths_;
  std::size_t in_flight_ = 0;
  bool stopping_ = false;
  std::atomic<bool> wake_pending_{false};
  std::thread thread_;
};

}  // namespace slack_proxy

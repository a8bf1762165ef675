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
// Memory holds a window, the queue the backlog: a lane keeps at most
// `lane_window` of its messages in memory (its head and a read-ahead) and
// knows only how many more the queue stores; it pages them in, in order, with
// Queue::read_lane() as it advances. When all windows together pass
// `window_bytes`, read-ahead stops and a lane that starts to wait gives back
// what it does not need (never a head that was already tried: its attempt
// count lives here). A restart reads only Queue::backlog(): one record per
// lane, not one per message.
//
// A round costs what is due, not what exists: waiting lanes sit in a timer
// heap, due ones in a heap ordered by their head's sequence (so a shared
// limiter serves channels in arrival order, as one FIFO would). Lanes that a
// limiter or a workspace pause turned away at the same moment until the same
// time wait as one batch; when the batch is due its lanes are asked one at a
// time, and once one is turned away again the rest follow it unasked. So a
// workspace limiter over 100,000 waiting channels costs one question per
// token, not 100,000.
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
#include <limits>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <unordered_map>
#include <vector>

#include <spdlog/logger.h>

#include <slack_proxy/sdk/host.h>

#include "executor.h"
#include "learned_pacing.h"
#include "metrics.h"
#include "pipeline.h"
#include "queue/queue.h"
#include "shared_pauses.h"

namespace slack_proxy {

// How much of the backlog the dispatcher keeps in memory.
struct DispatcherWindow {
  std::size_t lane_window = 16;                  // messages per lane, head included (>= 1)
  std::size_t window_bytes = 8 * 1024 * 1024;    // all lanes' read-ahead together
};

class Dispatcher {
 public:
  // `max_in_flight` should be the executor's worker count: a send is only
  // started (and its rate-limit token only taken) when a worker is free to
  // run it, so sends never pile up in the executor and leave in a burst.
  Dispatcher(Queue& queue, std::vector<std::shared_ptr<Pipeline>> pipelines,
             const sdk::Clock& clock, CoreMetrics& metrics, std::shared_ptr<spdlog::logger> log,
             Executor& executor,
             std::size_t max_in_flight = std::numeric_limits<std::size_t>::max(),
             DispatcherWindow window = {});
  ~Dispatcher();

  Dispatcher(const Dispatcher&) = delete;
  Dispatcher& operator=(const Dispatcher&) = delete;

  // One round at clock.now(): take new messages, apply finished sends, start
  // every send that is due. Returns when the next round is needed on the
  // clock's timeline; SteadyTime::max() when only new input can help.
  sdk::SteadyTime run_once();

  // Shares workspace pauses (429 Retry-After) with other replicas; before
  // start(). Without it a pause holds this process only.
  void share_pauses(std::shared_ptr<SharedPauses> pauses) { shared_pauses_ = std::move(pauses); }

  // Delivers with `pipelines` from the next round on (a reload), matched to
  // lanes by name. A send in flight finishes on the pipeline that started
  // it, and its result goes to that pipeline's guards and retry policy;
  // the lane's next attempt is on the new one. A lane whose pipeline is
  // gone dead-letters what it holds as unknown_pipeline, one message at a
  // time as it comes up (replayable once a pipeline of that name is back).
  // Safe from any thread.
  void set_pipelines(std::vector<std::shared_ptr<Pipeline>> pipelines);

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

  // Stored messages per lane key (in memory or not). For the shutdown log:
  // call it only when the scheduling thread is stopped.
  std::map<std::string, std::size_t> backlog() const;
  // Stored messages per delivery channel (summed over pipelines), kept up to
  // date as they come and go, so a scrape copies it and nothing is rebuilt
  // per round.
  std::map<std::string, std::size_t> channel_depths() const;
  // What the scheduling thread saw of its lanes at its last look (look()).
  struct LaneView {
    std::string pipeline;
    std::string workspace;  // as the message names it ("" for the default)
    std::string channel;
    std::size_t queued = 0;           // stored: waiting or in flight
    sdk::SteadyTime oldest{};         // its head's acceptance; zero: not read yet
    // "sending", "waiting" (with `reason` and `until`) or "due" (its turn
    // is now: it waits for a worker or for lanes ahead of it).
    const char* state = "due";
    // Why it waits: rate_limit (a limiter's bucket), retry_backoff,
    // pause_after_429, pause_workspace / pause_channel (a 429 pause that
    // holds its scope), learned_pace_workspace / learned_pace_channel
    // (paced after 429s), store_unreadable, yielding.
    const char* reason = nullptr;
    sdk::SteadyTime until{};
  };
  // Deliveries and failures (dead-lettered as failed) per lane over the
  // last kRecentMinutes whole minutes and this one.
  static constexpr int kRecentMinutes = 5;
  struct Recent {
    std::size_t delivered = 0;
    std::size_t failed = 0;
  };
  struct RecentLane {
    std::string pipeline, workspace, channel;
    Recent counts;
  };
  struct Look {
    // When each delivery channel's oldest stored message was accepted (its
    // lanes' heads). A lane whose head was never read yet (a stored
    // backlog not paged in yet) is left out until it is.
    std::map<std::string, sdk::SteadyTime> oldest;
    std::vector<LaneView> lanes;  // the most queued first, at most max_lanes
    std::size_t lanes_total = 0;
    std::vector<RecentLane> recent;
    double recent_seconds = 0;  // the span `recent` covers: kRecentMinutes and this one so far
    // The rate each workspace is held to after 429s: (pipeline, workspace)
    // -> messages a second.
    std::map<std::pair<std::string, std::string>, double> learned_rates;
    sdk::SteadyTime at{};
    std::size_t max_lanes = 0;  // asked for
  };
  // Asks the scheduling thread to look at its lanes in its next round,
  // waits up to `wait` for that, and returns what the latest look found
  // (the one before, if the round did not come in time). Costs one pass
  // over the lanes per call, so it is for scrapes and the status page, not
  // loops. Lane details are kept for the `max_lanes` most queued lanes.
  Look look(std::chrono::milliseconds wait = std::chrono::milliseconds(0),
            std::size_t max_lanes = 0);
  std::size_t in_flight() const;

  // For tests, from the thread running rounds: what the last round looked
  // at (lanes it asked to start), how many lanes exist, how many messages a
  // lane holds in memory, and all windows together.
  struct RoundStats {
    std::size_t lanes_asked = 0;     // lanes the round tried to start
    std::size_t batches_fired = 0;   // timer entries that came due
  };
  RoundStats last_round() const { return last_round_; }
  std::size_t lane_count() const { return lanes_.size(); }
  std::size_t window_of(const std::string& lane) const;
  std::size_t window_capacity_of(const std::string& lane) const;  // room allocated, used or not
  std::size_t messages_in_memory() const { return loaded_messages_; }
  std::size_t bytes_in_memory() const { return loaded_bytes_; }  // as window_bytes counts them
  std::size_t pauses_held() const { return paused_workspaces_.size() + paused_channels_.size(); }

 private:
  struct Lane {
    const std::string* key_ = nullptr;    // lane_key(), the lanes_ map's own copy
    std::shared_ptr<Pipeline> pipeline;   // null: a stored lane of a pipeline that is gone
    std::uint64_t generation = 0;         // of the pipelines `pipeline` was taken from
    std::uint32_t scope_len = 0;          // key.substr(0, scope_len): its workspace scope
    std::vector<Queued> window;           // in memory, in order; front() is the head
    std::size_t unloaded = 0;             // stored after `cursor`, not in the window
    std::uint64_t cursor = 0;             // the highest seq loaded (or passed over)
    // When the head was accepted, while it is given back to the store (else
    // the window's front says); zero: not known.
    sdk::SteadyTime head_since{};
    // Why it waited when last asked, and until when (LaneView).
    const char* wait_reason = nullptr;
    sdk::SteadyTime waits_until{};
    enum class State { Idle, Scheduled, Busy } state = State::Idle;
    DeliveryCount delivered;              // for pacing learned from a channel's 429
    // The rate budget its sink names (interned: lanes of a token share one
    // string), asked once; null when none.
    std::shared_ptr<const std::string> budget;
    bool budget_asked = false;

    const std::string& key() const { return *key_; }  // pipeline/workspace:channel (lane_key)
    std::string_view scope() const { return std::string_view(key()).substr(0, scope_len); }
    std::string_view channel() const { return channel_of_lane(key()); }
    std::size_t stored() const { return window.size() + unloaded; }
    // Where the lane stands in the FIFO among lanes: its head's sequence
    // (or the lowest it can be, while the head is not loaded).
    std::uint64_t head_order() const { return window.empty() ? cursor + 1 : window.front().seq; }
  };
  // Lanes due at the same time, in head order. `scope` is set when they
  // were all turned away by a limiter or a workspace pause at the same
  // moment (then it is their wait_group), or are the stored backlog of a
  // scope (then it is the scope): the first one turned away again takes the
  // rest.
  struct Batch {
    std::vector<Lane*> lanes;
    std::size_t next = 0;
    std::string scope;
    const char* reason = nullptr;  // a shared wait's, for lanes that follow unasked
    bool done() const { return next == lanes.size(); }
    Lane* front() const { return lanes[next]; }
  };
  struct Timer {
    sdk::SteadyTime when;
    std::uint64_t order;  // FIFO among equal times
    std::unique_ptr<Batch> batch;
  };
  struct Due {
    std::uint64_t head;  // the front lane's head_order()
    std::uint64_t order;
    std::unique_ptr<Batch> batch;
  };
  struct Completion {
    std::string lane;
    std::uint64_t seq;
    sdk::SendResult result;
    sdk::SteadyTime sent_at;  // when the send was started
  };
  // What asking a lane to start its head came to.
  struct Start {
    enum class Kind { Sent, Empty, Waits } kind = Kind::Empty;
    sdk::SteadyTime until{};
    bool shared = false;  // turned away by a limiter or a workspace pause
    const char* reason = nullptr;  // why it waits (LaneView::reason)
  };

  // Loads what the queue stored before this process (once).
  void adopt_stored_backlog(sdk::SteadyTime now);
  // Lanes the queue handed this replica (Queue::take_over()), adopted like
  // the stored backlog.
  void adopt_taken_over();
  // Schedules stored lanes whose messages are not read yet; `what` names
  // them in the log line.
  void adopt(const std::vector<LaneBacklog>& stored, const char* what);
  // Gives each announced message to its lane (or drops it to the store).
  void take_arrivals();
  Lane& lane_for(const std::string& key, const std::shared_ptr<Pipeline>& pipeline);
  // Takes pipelines set_pipelines() handed over, if any.
  void apply_new_pipelines();
  // Points an idle lane at the current pipeline of its name, after a reload.
  void repoint(Lane& lane);
  // Records a finished send's result on its lane's head.
  void record_result(Completion c, sdk::SteadyTime now);
  // What a failed attempt of the lane's head leads to: a pause on
  // back-pressure, then the retry policy's retry or a dead letter. Returns
  // when the lane is due again.
  sdk::SteadyTime retry_or_dead_letter(Lane& lane, const sdk::SendResult& result,
                                       sdk::SteadyTime now);
  sdk::RetryDecision ask_retry_policy(const Pipeline& p, const sdk::Message& m,
                                      const sdk::SendResult& result);
  // Asks the sink, once per lane, which rate budget its messages draw from,
  // and notes it on the head (sdk::kBudgetAttribute) for the limiters and
  // for the keys below.
  void name_budget(Lane& lane);
  std::shared_ptr<const std::string> intern_budget(std::string budget);
  // Where the head's workspace-wide and channel pauses and learned pacing
  // live: under its token's budget when the sink names one (so pipelines
  // sharing a token share them), else under the lane's own scope.
  std::string_view workspace_key(const Lane& lane) const;
  std::string channel_key(const Lane& lane) const;
  // Lanes turned away at the same moment until the same time are batched by
  // scope and caller: a limiter keyed by caller (token_bucket's "client")
  // turns away one caller's lanes, and another caller's must still be asked.
  std::string wait_group(const Lane& lane) const;
  // Slows the scope down after a 429 (LearnedPacing) and exports the rate.
  void learn_from(const Lane& lane, const sdk::BackPressure& bp, const Completion& c,
                  sdk::SteadyTime now);
  // The rate learned pacing holds the head to: when it may go.
  sdk::SteadyTime learned_wait(const Lane& lane, sdk::SteadyTime now, bool* workspace) const;
  void forget_learned(sdk::SteadyTime now);  // every second: recovered scopes, stale counts
  void take_look();  // when look() asked for it
  void count_recent(const std::string& lane, bool delivered, sdk::SteadyTime now);
  void forget_recent(std::int64_t minute);  // lanes quiet for the whole window
  void pause_scope(const Lane& lane, const sdk::BackPressure& bp, sdk::SteadyTime until);
  // The time the lane's workspace or channel is paused until; now or
  // earlier when it is not. `workspace` is set when the workspace's pause
  // is the later one.
  sdk::SteadyTime paused_until(const Lane& lane, sdk::SteadyTime now, bool* workspace);
  // Asks the guards; false when one denied (or failed on) the head, which
  // is then settled (a due time in *retry_at if it is to be retried).
  bool guards_allow(Lane& lane, sdk::SteadyTime now, sdk::SteadyTime* retry_at);
  // Asks the limiters; false when the head must wait (*wait_until) or a
  // limiter failed and the head was settled (*retry_at).
  bool limiters_allow(Lane& lane, sdk::SteadyTime now, sdk::SteadyTime* wait_until,
                      sdk::SteadyTime* retry_at);
  // Counts an attempt that failed before any send (a stage threw) and
  // settles it; returns when the lane is due again (or max when dead).
  sdk::SteadyTime fail_before_send(Lane& lane, std::string_view code, std::string detail,
                                   sdk::SteadyTime now);
  // Runs `call`, a call into a stage; if it throws, logs and counts the
  // exception, puts a loggable description into `failure` and returns false.
  template <typename Call>
  bool contained(const Pipeline& p, const sdk::Stage* stage, std::string_view method,
                 const sdk::Message& m, std::string& failure, Call&& call) noexcept;
  // Starts the lane's head if everything allows it, settling heads that
  // cannot be sent at all on the way.
  Start start_head(Lane& lane, sdk::SteadyTime now);
  void send(Lane& lane, sdk::SteadyTime now);
  // Ensures the head is in memory, paging the lane in. Unreadable: the
  // store failed to read (the lane keeps its place and tries again later).
  enum class Load { Loaded, Empty, Unreadable };
  Load load_head(Lane& lane);
  // A lane starts to wait: while all windows are over window_bytes it gives
  // back its read-ahead (and an untried head), and always its window's
  // spare capacity.
  void shed_window(Lane& lane);
  void give_back_untried(Lane& lane);
  void unload_front(Lane& lane);
  // The head is delivered (or otherwise done): acked and removed.
  void ack_head(Lane& lane, const char* outcome);
  // The head leaves for the dead letters.
  void dead_letter_head(Lane& lane, DeadLetterKind kind, std::string error, std::string reason,
                        int http_status);
  void store_dead_letter(std::uint64_t seq, sdk::Message message, DeadLetterKind kind,
                         std::string error, std::string reason, int http_status);
  void count_stored(const Lane& lane, std::ptrdiff_t delta);
  // Scheduling: a lane due now, a lane due later, batches coming due.
  void make_due(Lane& lane);
  void wait_until(Lane& lane, sdk::SteadyTime when);
  void push_due(std::unique_ptr<Batch> batch);
  void push_timer(sdk::SteadyTime when, std::unique_ptr<Batch> batch);
  void fire_timers(sdk::SteadyTime now);
  void start_due_lanes(sdk::SteadyTime now);
  // A lane nobody holds any more: dropped when it has nothing stored.
  void settle_idle(Lane& lane);
  void loop();

  Queue& queue_;
  std::unordered_map<std::string, std::shared_ptr<Pipeline>> pipelines_;
  std::uint64_t generation_ = 0;  // counts the pipelines taken from set_pipelines()
  const sdk::Clock& clock_;
  CoreMetrics& metrics_;
  std::shared_ptr<spdlog::logger> log_;
  Executor& executor_;

  const std::size_t max_in_flight_;
  const DispatcherWindow window_;

  // Owned by the scheduling thread (or the test calling run_once).
  std::unordered_map<std::string, Lane> lanes_;
  std::vector<Timer> timers_;  // min-heap on (when, order)
  std::vector<Due> due_;       // min-heap on (head, order)
  std::uint64_t next_order_ = 0;
  std::uint64_t seen_upto_ = 0;  // the highest seq announced or adopted
  bool adopted_ = false;
  sdk::SteadyTime adopt_retry_at_{};  // after a failed backlog() read
  std::size_t loaded_messages_ = 0;
  std::size_t loaded_bytes_ = 0;
  std::size_t started_ = 0;  // sends started whose result is not applied yet
  RoundStats last_round_;
  // Scopes a sink reported back-pressure for: workspaces by their scope
  // (pipeline/workspace), channels by lane key. Two maps, so that a
  // workspace and a channel of the same spelling never share a pause.
  using Pauses =
      std::unordered_map<std::string, sdk::SteadyTime, sdk::StringKeyHash, std::equal_to<>>;
  Pauses paused_workspaces_;
  Pauses paused_channels_;
  sdk::SteadyTime next_pause_sweep_{};
  void forget_pauses_over(sdk::SteadyTime now);  // once a minute, O(pauses)
  std::shared_ptr<SharedPauses> shared_pauses_;
  // Pacing learned from 429s, by workspace_key() or channel_key(), and the
  // gauge's labels for each paced workspace.
  LearnedPacing learned_;

  std::unordered_map<std::string, std::pair<std::string, std::string>> learned_labels_;
  // Budget names lanes hold, one string each; expired ones swept each second.
  std::unordered_map<std::string, std::weak_ptr<const std::string>> budget_names_;
  sdk::SteadyTime next_learned_sweep_{};
  // Per lane key: (minute, delivered, failed) for the last minutes, newest
  // last. At most kRecentChannels lanes; the rest are not counted.
  struct RecentMinute {
    std::int64_t minute = 0;
    Recent counts;
  };
  static constexpr std::size_t kRecentChannels = 10'000;
  std::unordered_map<std::string, std::vector<RecentMinute>> recent_;

  // Shared with workers and scrapes.
  mutable std::mutex mutex_;
  std::condition_variable wake_cv_;
  std::condition_variable idle_cv_;
  std::vector<Completion> completions_;
  std::optional<std::vector<std::shared_ptr<Pipeline>>> new_pipelines_;
  std::map<std::string, std::size_t> channel_depths_;
  Look look_;
  std::uint64_t looks_ = 0;
  std::size_t look_lanes_ = 0;  // the largest max_lanes asked for since the last look
  std::atomic<bool> look_wanted_{false};
  std::size_t stored_ = 0;  // over all lanes
  std::size_t in_flight_ = 0;
  bool stopping_ = false;
  std::atomic<bool> wake_pending_{false};
  std::thread thread_;
};

}  // namespace slack_proxy

#include "dispatcher.h"

#include <algorithm>

#include <slack_proxy/sdk/outcome.h>

#include "redact.h"
#include "thread_name.h"

namespace slack_proxy {
namespace {

constexpr std::size_t kTakeBatch = 512;
// Even with nothing due, look at the queue this often: a backend that cannot
// notify (another replica pushing into Redis) is still picked up.
constexpr auto kMaxIdleWait = std::chrono::seconds(1);
// How long pushes gather after the one that woke the dispatcher (loop()).
constexpr auto kPushGather = std::chrono::milliseconds(1);

std::string lane_key(const sdk::Message& m) {
  std::string key;
  key.reserve(m.pipeline.size() + m.workspace.size() + m.channel.size() + 2);
  key.append(m.pipeline).push_back('/');
  if (!m.workspace.empty()) key.append(m.workspace).push_back(':');
  key.append(m.channel);
  return key;
}

// The scope of a Workspace back-pressure: every channel of the workspace.
std::string workspace_key(const sdk::Message& m) { return m.pipeline + "/" + m.workspace; }

// When a sink reports back-pressure without saying until when.
constexpr auto kDefaultPause = std::chrono::seconds(1);

std::string describe(const StageLabel& label) {
  return "stage '" + label.stage + "' (plugin " + label.plugin + ")";
}

double seconds_between(sdk::SteadyTime from, sdk::SteadyTime to) {
  return std::chrono::duration<double>(to - from).count();
}

std::string describe(const sdk::SendResult& r) {
  std::string s = r.error.empty() ? "no error code" : r.error;
  if (r.http_status != 0) s += " (HTTP " + std::to_string(r.http_status) + ")";
  if (!r.detail.empty()) s += ": " + r.detail;
  return s;
}

}  // namespace

Dispatcher::Dispatcher(Queue& queue, std::vector<std::shared_ptr<Pipeline>> pipelines,
                       const sdk::Clock& clock, CoreMetrics& metrics,
                       std::shared_ptr<spdlog::logger> log, Executor& executor,
                       std::size_t max_in_flight)
    : queue_(queue),
      clock_(clock),
      metrics_(metrics),
      log_(std::move(log)),
      executor_(executor),
      max_in_flight_(max_in_flight == 0 ? 1 : max_in_flight) {
  for (auto& p : pipelines) pipelines_.emplace(p->name, std::move(p));
}

Dispatcher::~Dispatcher() { stop(); }

void Dispatcher::intake() {
  for (;;) {
    auto batch = queue_.take(kTakeBatch);
    for (auto& message : batch) {
      auto pipeline = pipelines_.find(message.pipeline);
      if (pipeline == pipelines_.end()) {
        // Only possible if a backend hands back a message from an older
        // configuration; it cannot be delivered, so it is counted and logged.
        log_->error("message {} names unknown pipeline '{}'; dead-lettered", message.id,
                    message.pipeline);
        metrics_.failed(message.original_channel);
        bury(std::move(message), DeadLetterKind::Failed, "unknown_pipeline",
             "no pipeline of this name in the configuration", 0);
        continue;
      }
      std::string key = lane_key(message);
      Lane& lane = lanes_[key];
      if (lane.key.empty()) {
        lane.key = key;
        lane.pipeline = pipeline->second;
      }
      lane.entries.push_back(Entry{next_seq_++, std::move(message)});
    }
    if (batch.size() < kTakeBatch) return;
  }
}

void Dispatcher::finish(Lane& lane, const char* outcome) {
  const auto& m = lane.entries.front().message;
  log_->debug("message {} to {}: {}", m.id, m.channel, outcome);
  queue_.ack(m.id);
  lane.entries.pop_front();
}

void Dispatcher::bury(sdk::Message message, DeadLetterKind kind, std::string error,
                      std::string reason, int http_status) {
  metrics_.dead_lettered(message.original_channel, to_string(kind));
  DeadLetter letter;
  letter.message = std::move(message);
  letter.kind = kind;
  letter.error = std::move(error);
  letter.reason = std::move(reason);
  letter.http_status = http_status;
  letter.dead_at = clock_.wall_now();
  queue_.dead_letter(std::move(letter));
}

void Dispatcher::finish_dead(Lane& lane, DeadLetterKind kind, std::string error,
                             std::string reason, int http_status) {
  sdk::Message m = std::move(lane.entries.front().message);
  lane.entries.pop_front();
  log_->debug("message {} to {}: dead-lettered ({})", m.id, m.channel, to_string(kind));
  bury(std::move(m), kind, std::move(error), std::move(reason), http_status);
}

template <typename Call>
bool Dispatcher::contained(const Pipeline& p, const sdk::Stage* stage, std::string_view method,
                           const sdk::Message& m, std::string& failure, Call&& call) noexcept {
  std::string what;
  try {
    call();
    return true;
  } catch (const std::exception& e) {
    what = e.what();
  } catch (...) {
    what = "an exception that is not a std::exception";
  }
  try {
    const StageLabel label = p.label_of(stage);
    failure = describe(label) + " threw from " + std::string(method) + "(): " +
              redact_secrets(what);
    log_->error("pipeline '{}': {} (message {} to {}); the proxy carries on", p.name, failure,
                m.id, m.channel);
    metrics_.plugin_exception(p.name, label.stage, method);
  } catch (...) {
    // Out of memory while reporting: the failure still stands.
    failure = "a stage threw";
  }
  return false;
}

void Dispatcher::apply(Completion c, sdk::SteadyTime now) {
  if (started_ > 0) --started_;
  auto it = lanes_.find(c.lane);
  if (it == lanes_.end() || it->second.entries.empty() ||
      it->second.entries.front().message.id != c.id) {
    // Cannot happen while a lane has one send at a time; if it ever does,
    // free the lane rather than leave it waiting forever.
    if (it != lanes_.end()) it->second.busy = false;
    log_->error("result for unknown message {} on lane {} ignored", c.id, c.lane);
    return;
  }
  Lane& lane = it->second;
  lane.busy = false;
  sdk::Message& m = lane.entries.front().message;
  const Pipeline& p = *lane.pipeline;

  for (const auto& guard : p.guards) {
    std::string failure;  // logged and counted; the result stands
    contained(p, guard.get(), "after_result", m, failure,
              [&] { guard->after_result(m, c.result, now); });
  }

  if (c.result.delivered) {
    metrics_.succeeded(m.original_channel);
    metrics_.delivery_latency(seconds_between(m.enqueued_at, now));
    finish(lane, "delivered");
    return;
  }
  settle_failure(lane, c.result, now);
}

void Dispatcher::pause(const sdk::Message& m, const sdk::BackPressure& bp, sdk::SteadyTime until) {
  auto& paused = bp.scope == sdk::BackPressure::Scope::Workspace
                     ? paused_workspaces_[workspace_key(m)]
                     : paused_channels_[lane_key(m)];
  paused = std::max(paused, until);
}

sdk::SteadyTime Dispatcher::paused_until(const sdk::Message& m, sdk::SteadyTime now) {
  sdk::SteadyTime until = now;
  const auto check = [&](std::unordered_map<std::string, sdk::SteadyTime>& pauses,
                         const std::string& key) {
    auto it = pauses.find(key);
    if (it == pauses.end()) return;
    if (it->second > now)
      until = std::max(until, it->second);
    else
      pauses.erase(it);
  };
  check(paused_workspaces_, workspace_key(m));
  check(paused_channels_, lane_key(m));
  return until;
}

sdk::RetryDecision Dispatcher::decide(const Pipeline& p, const sdk::Message& m,
                                      const sdk::SendResult& result) {
  if (!p.retry) {
    // Without a policy nothing is retried, but back-pressure is not a
    // failure of this message: it waits out the pause and goes again.
    return result.back_pressure
               ? sdk::RetryDecision::retry_after(std::chrono::milliseconds(0),
                                                 "back-pressure, no retry policy")
               : sdk::RetryDecision::give_up("no retry policy");
  }
  sdk::RetryDecision decision;
  std::string failure;
  if (!contained(p, p.retry.get(), "decide", m, failure,
                 [&] { decision = p.retry->decide(m, result); })) {
    return sdk::RetryDecision::give_up(failure + "; given up so that the message is kept (replay "
                                                 "it once the retry policy is fixed)");
  }
  return decision;
}

void Dispatcher::settle_failure(Lane& lane, const sdk::SendResult& result, sdk::SteadyTime now) {
  sdk::Message& m = lane.entries.front().message;
  const Pipeline& p = *lane.pipeline;

  sdk::SteadyTime paused = now;
  if (result.back_pressure) {
    // The receiver says "not now" for a whole scope: hold every message of
    // it until then, whatever the policy decides for this one.
    paused = result.back_pressure->until == sdk::SteadyTime{} ? now + kDefaultPause
                                                              : result.back_pressure->until;
    pause(m, *result.back_pressure, paused);
    metrics_.rate_limited(m.original_channel);
  }

  const sdk::RetryDecision decision = decide(p, m, result);
  if (decision.action == sdk::RetryDecision::Action::Retry) {
    lane.ready_at = std::max(now + decision.delay, paused);
    if (result.back_pressure) {
      // The receiver did not look at the message: the attempt does not
      // spend its retry budget, and it keeps its place in the lane.
      if (m.attempts > 0) --m.attempts;
      log_->warn("message {} to {}: {}; the {} waits {} ms", m.id, m.channel, describe(result),
                 result.back_pressure->scope == sdk::BackPressure::Scope::Workspace
                     ? "workspace"
                     : "channel",
                 std::chrono::duration_cast<std::chrono::milliseconds>(lane.ready_at - now)
                     .count());
      return;
    }
    metrics_.retried(m.original_channel);
    log_->warn("message {} to {} failed (attempt {}): {}; retrying in {} ms", m.id, m.channel,
               m.attempts, describe(result), decision.delay.count());
    return;
  }
  metrics_.failed(m.original_channel);
  // The dead-letter store keeps the request for a replay; the log says
  // where it went. The ingress already removed any token field.
  log_->error("message {} to {} failed after {} attempt(s): {}; {}; kept as a dead letter", m.id,
              m.channel, m.attempts, describe(result), decision.reason);
  std::string code = result.error.empty() && result.http_status != 0
                         ? "http_" + std::to_string(result.http_status)
                         : result.error;
  if (code.empty()) code = "unknown_error";
  finish_dead(lane, DeadLetterKind::Failed, std::move(code), decision.reason, result.http_status);
}

void Dispatcher::fail_before_send(Lane& lane, std::string_view code, std::string detail,
                                  sdk::SteadyTime now) {
  ++lane.entries.front().message.attempts;
  settle_failure(lane, sdk::SendResult::failure(code, std::move(detail)), now);
}

bool Dispatcher::guards_allow(Lane& lane, sdk::SteadyTime now) {
  const Pipeline& p = *lane.pipeline;
  sdk::Message& m = lane.entries.front().message;
  for (const auto& guard : p.guards) {
    sdk::GuardVerdict v;
    std::string failure;
    if (!contained(p, guard.get(), "before_send", m, failure,
                   [&] { v = guard->before_send(m, now); })) {
      fail_before_send(lane, sdk::outcome::kInternalErrorInGuard, std::move(failure), now);
      return false;
    }
    if (!v.allow) {
      metrics_.not_processed(m.original_channel);
      log_->info("message {} to {} not sent: {}; kept as a dead letter", m.id, m.channel,
                 v.reason);
      finish_dead(lane, DeadLetterKind::NotProcessed, "denied", v.reason, 0);
      return false;
    }
  }
  return true;
}

bool Dispatcher::limiters_allow(Lane& lane, sdk::SteadyTime now) {
  const Pipeline& p = *lane.pipeline;
  sdk::Message& m = lane.entries.front().message;
  sdk::SteadyTime due = now;
  std::string failure;
  for (const auto& limiter : p.limiters) {
    if (!contained(p, limiter.get(), "next_send_time", m, failure,
                   [&] { due = std::max(due, limiter->next_send_time(m, now)); })) {
      fail_before_send(lane, sdk::outcome::kInternalErrorInRateLimiter, std::move(failure), now);
      return false;
    }
  }
  if (due > now) {
    lane.ready_at = due;
    return false;
  }
  for (const auto& limiter : p.limiters) {
    if (!contained(p, limiter.get(), "on_send", m, failure, [&] { limiter->on_send(m, now); })) {
      fail_before_send(lane, sdk::outcome::kInternalErrorInRateLimiter, std::move(failure), now);
      return false;
    }
  }
  return true;
}

void Dispatcher::try_start(Lane& lane, sdk::SteadyTime now) {
  const Pipeline& p = *lane.pipeline;
  while (!lane.entries.empty()) {
    sdk::Message& m = lane.entries.front().message;

    if (const sdk::SteadyTime until = paused_until(m, now); until > now) {
      lane.ready_at = until;
      return;
    }

    // A stage that failed on the head settled it: retried, it waits (even a
    // zero delay ends this round, so a stage that always throws cannot spin
    // here); dead-lettered or denied, the next message may go.
    const std::string head = m.id;
    const auto head_waits = [&] {
      return !lane.entries.empty() && lane.entries.front().message.id == head;
    };
    if (!guards_allow(lane, now)) {
      if (head_waits()) return;
      continue;
    }

    if (p.caller_token && m.delivery_token.empty()) {
      // The caller's token did not survive (a replay of a message queued by
      // an older process without a sealing key): never deliver it with the
      // proxy's own token instead.
      metrics_.failed(m.original_channel);
      log_->error("message {} to {} has no caller token to deliver with; kept as a dead letter",
                  m.id, m.channel);
      finish_dead(lane, DeadLetterKind::Failed, "token_unavailable",
                  "the caller's token is no longer available; the caller must send it again", 0);
      continue;
    }

    if (!limiters_allow(lane, now)) {
      if (head_waits()) return;
      continue;
    }

    if (m.attempts == 0 && m.last_attempt_at == sdk::WallTime{})
      metrics_.queue_wait(seconds_between(m.enqueued_at, now));
    ++m.attempts;
    m.last_attempt_at = clock_.wall_now();
    lane.busy = true;
    ++started_;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      ++in_flight_;
    }
    executor_.post([this, pipeline = lane.pipeline, key = lane.key, message = m]() {
      sdk::SendResult result;
      std::string failure;
      if (!contained(*pipeline, pipeline->sink.get(), "send", message, failure,
                     [&] { result = pipeline->sink->send(message); })) {
        result = sdk::SendResult::failure(sdk::outcome::kInternalErrorInSink, std::move(failure));
      }
      {
        std::lock_guard<std::mutex> lock(mutex_);
        completions_.push_back(Completion{key, message.id, std::move(result)});
        --in_flight_;
      }
      wake();
    });
    return;
  }
}

sdk::SteadyTime Dispatcher::run_once() {
  const sdk::SteadyTime now = clock_.now();
  intake();

  std::vector<Completion> done;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    done.swap(completions_);
  }
  for (auto& c : done) apply(std::move(c), now);

  // Start due lanes oldest-head-first, so a shared (global) limiter serves
  // channels in arrival order, as one FIFO would.
  std::vector<Lane*> due;
  for (auto& [key, lane] : lanes_) {
    if (!lane.busy && !lane.entries.empty() && lane.ready_at <= now) due.push_back(&lane);
  }
  std::sort(due.begin(), due.end(), [](const Lane* a, const Lane* b) {
    return a->entries.front().seq < b->entries.front().seq;
  });
  for (Lane* lane : due) {
    if (started_ >= max_in_flight_) break;  // the rest stay due for the next round
    try_start(*lane, now);
  }

  sdk::SteadyTime next = sdk::SteadyTime::max();
  std::map<std::string, std::size_t> backlog;
  std::map<std::string, std::size_t> depths;
  for (auto it = lanes_.begin(); it != lanes_.end();) {
    Lane& lane = it->second;
    if (lane.entries.empty() && !lane.busy) {
      it = lanes_.erase(it);  // idle channels cost nothing
      continue;
    }
    // A due lane left waiting for a free worker is woken by that worker's
    // completion, not by the clock.
    if (!lane.busy && (lane.ready_at > now || started_ < max_in_flight_))
      next = std::min(next, lane.ready_at);
    backlog[lane.key] = lane.entries.size();
    depths[lane.entries.front().message.channel] += lane.entries.size();
    ++it;
  }
  {
    std::lock_guard<std::mutex> lock(mutex_);
    backlog_ = std::move(backlog);
    channel_depths_ = std::move(depths);
    if (backlog_.empty() && in_flight_ == 0 && completions_.empty() && queue_.size() == 0)
      idle_cv_.notify_all();
  }
  return next;
}

void Dispatcher::wake() {
  if (wake_pending_.exchange(true)) return;  // a wake-up is already on its way
  std::lock_guard<std::mutex> lock(mutex_);
  wake_cv_.notify_one();
}

void Dispatcher::loop() {
  for (;;) {
    wake_pending_.store(false);
    const sdk::SteadyTime next = run_once();
    std::unique_lock<std::mutex> lock(mutex_);
    if (stopping_) return;
    const sdk::SteadyTime now = clock_.now();
    sdk::SteadyTime::duration wait = kMaxIdleWait;
    if (next != sdk::SteadyTime::max() && next - now < wait)
      wait = std::max(next - now, sdk::SteadyTime::duration::zero());
    wake_cv_.wait_for(lock, wait, [&] { return stopping_ || wake_pending_.load(); });
    if (stopping_) return;
    if (wake_pending_.load()) {
      // Woken by a push: let more pushes gather before taking them. In a
      // storm of tens of thousands a second, a wake-up per message cost a
      // futex call on the ingress's event thread and a context switch
      // each; while this wait lasts, wake_pending_ stays set and pushes
      // skip the wake-up. A delivery starts at most this much later.
      wake_cv_.wait_for(lock, kPushGather, [&] { return stopping_; });
      if (stopping_) return;
    }
  }
}

void Dispatcher::start() {
  queue_.on_push([this] { wake(); });
  thread_ = std::thread([this] {
    name_this_thread("sp-dispatcher");
    loop();
  });
}

void Dispatcher::stop() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stopping_ = true;
  }
  wake_cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

bool Dispatcher::wait_idle(std::chrono::steady_clock::time_point deadline) {
  std::unique_lock<std::mutex> lock(mutex_);
  return idle_cv_.wait_until(lock, deadline, [&] {
    return backlog_.empty() && in_flight_ == 0 && completions_.empty() && queue_.size() == 0;
  });
}

std::map<std::string, std::size_t> Dispatcher::backlog() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return backlog_;
}

std::map<std::string, std::size_t> Dispatcher::channel_depths() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return channel_depths_;
}

std::size_t Dispatcher::in_flight() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return in_flight_;
}

}  // namespace slack_proxy

#include "dispatcher.h"

#include <algorithm>

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

// Slack's rate limit for chat.postMessage covers the whole workspace.
std::string workspace_key(const sdk::Message& m) { return m.pipeline + "/" + m.workspace; }

constexpr auto kDefaultRetryAfter = std::chrono::seconds(1);

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

  for (const auto& guard : p.guards) guard->after_result(m, c.result, now);

  if (c.result.delivered) {
    metrics_.succeeded(m.original_channel);
    metrics_.delivery_latency(seconds_between(m.enqueued_at, now));
    finish(lane, "delivered");
    return;
  }

  if (c.result.http_status == 429) {
    // Slack says "not now", not "this failed": wait exactly as long as it
    // asks, then send the same message again, without spending its retry
    // budget. The pause covers every channel of the workspace by default,
    // because that is the scope of Slack's limit.
    const auto wait = c.result.retry_after.value_or(kDefaultRetryAfter);
    const sdk::SteadyTime until = now + wait;
    --m.attempts;
    metrics_.rate_limited(m.original_channel);
    if (p.pause_workspace_on_429) {
      auto& paused = paused_until_[workspace_key(m)];
      paused = std::max(paused, until);
    }
    lane.ready_at = std::max(lane.ready_at, until);
    log_->warn("Slack rate-limited message {} to {}; {} waits {} ms", m.id, m.channel,
               p.pause_workspace_on_429 ? "the workspace" : "the channel",
               std::chrono::duration_cast<std::chrono::milliseconds>(wait).count());
    return;
  }

  const sdk::RetryDecision decision =
      p.retry ? p.retry->decide(m, c.result) : sdk::RetryDecision::give_up("no retry policy");
  if (decision.action == sdk::RetryDecision::Action::Retry) {
    metrics_.retried(m.original_channel);
    lane.ready_at = now + decision.delay;
    log_->warn("message {} to {} failed (attempt {}): {}; retrying in {} ms", m.id, m.channel,
               m.attempts, describe(c.result), decision.delay.count());
    return;
  }
  metrics_.failed(m.original_channel);
  // The full request, so an operator can resend it by hand. The ingress
  // already removed any token field; redact_secrets is the second line.
  // The dead-letter store keeps the request for a replay; the log says
  // where it went. The ingress already removed any token field.
  log_->error("message {} to {} failed after {} attempt(s): {}; {}; kept as a dead letter", m.id,
              m.channel, m.attempts, describe(c.result), decision.reason);
  std::string code = c.result.error.empty() && c.result.http_status != 0
                         ? "http_" + std::to_string(c.result.http_status)
                         : c.result.error;
  if (code.empty()) code = "unknown_error";
  finish_dead(lane, DeadLetterKind::Failed, std::move(code), decision.reason,
              c.result.http_status);
}

void Dispatcher::try_start(Lane& lane, sdk::SteadyTime now) {
  const Pipeline& p = *lane.pipeline;
  while (!lane.entries.empty()) {
    sdk::Message& m = lane.entries.front().message;

    if (auto paused = paused_until_.find(workspace_key(m)); paused != paused_until_.end()) {
      if (paused->second > now) {
        lane.ready_at = paused->second;
        return;
      }
      paused_until_.erase(paused);
    }

    bool denied = false;
    for (const auto& guard : p.guards) {
      const sdk::GuardVerdict v = guard->before_send(m, now);
      if (!v.allow) {
        metrics_.not_processed(m.original_channel);
        log_->info("message {} to {} not sent: {}; kept as a dead letter", m.id, m.channel,
                   v.reason);
        finish_dead(lane, DeadLetterKind::NotProcessed, "denied",
                    v.reason, 0);
        denied = true;
        break;
      }
    }
    if (denied) continue;

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

    sdk::SteadyTime due = now;
    for (const auto& limiter : p.limiters) due = std::max(due, limiter->next_send_time(m, now));
    if (due > now) {
      lane.ready_at = due;
      return;
    }
    for (const auto& limiter : p.limiters) limiter->on_send(m, now);

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
    executor_.post([this, sink = p.sink, key = lane.key, message = m]() {
      sdk::SendResult result = sink->send(message);
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

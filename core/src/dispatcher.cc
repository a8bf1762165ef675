#include "dispatcher.h"

#include <algorithm>

#include <slack_proxy/sdk/outcome.h>

#include "log_context.h"
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
// How long a lane (or the stored backlog) waits after its store failed to
// read, before it asks again.
constexpr auto kUnreadableRetry = std::chrono::seconds(1);
// Heads one ask may settle without sending (dead-lettered, denied): a lane
// of a million undeliverable messages must not hold the scheduling thread
// until it is through; it yields and is asked again next round.
constexpr std::size_t kSettledPerAsk = 64;
// How often pauses that are over are forgotten. A lane forgets its own when
// it looks, but a channel that went quiet while paused never looks again.
constexpr auto kPauseSweep = std::chrono::minutes(1);

// What a message in a window costs beyond its payload: the struct and its
// short strings' heap blocks, roughly.
constexpr std::size_t kEntryOverhead = sizeof(Queued) + 128;

std::size_t footprint(const Queued& q) { return q.message.payload.size() + kEntryOverhead; }

// Deliveries in the last second above which a channel is taken to have
// caused a 429 itself: Slack documents about one message a second per
// channel. DeliveryCount's estimate of two is above it however the two fall
// around a second's boundary, as long as the later is in the current second.
constexpr double kBusyChannel = 1;

// When a sink reports back-pressure without saying until when.
constexpr auto kDefaultPause = std::chrono::seconds(1);

std::string describe(const StageLabel& label) {
  return "stage '" + label.stage + "' (plugin " + label.plugin + ")";
}

double seconds_between(sdk::SteadyTime from, sdk::SteadyTime to) {
  return std::chrono::duration<double>(to - from).count();
}

// What a line logged about `m` is about (log_context.h).
LogFields log_fields_of(const sdk::Message& m, std::string error = {}) {
  return LogFields{.pipeline = m.pipeline,
                   .channel = m.channel,
                   .message_id = m.id,
                   .client = m.caller,
                   .error = std::move(error)};
}

// The error a failed send is known by: the sink's code, else the HTTP status.
std::string error_of(const sdk::SendResult& r) {
  if (r.delivered) return {};
  if (r.error.empty() && r.http_status != 0) return "http_" + std::to_string(r.http_status);
  return r.error;
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
                       std::size_t max_in_flight, DispatcherWindow window)
    : queue_(queue),
      clock_(clock),
      metrics_(metrics),
      log_(std::move(log)),
      executor_(executor),
      max_in_flight_(max_in_flight == 0 ? 1 : max_in_flight),
      window_{std::max<std::size_t>(window.lane_window, 1), window.window_bytes} {
  for (auto& p : pipelines) pipelines_.emplace(p->name, std::move(p));
}

Dispatcher::~Dispatcher() { stop(); }

// ---- lanes and their windows ----

Dispatcher::Lane& Dispatcher::lane_for(const std::string& key,
                                       const std::shared_ptr<Pipeline>& pipeline) {
  auto [it, fresh] = lanes_.try_emplace(key);
  Lane& lane = it->second;
  if (fresh) {
    lane.key_ = &it->first;  // unordered_map nodes stay put
    lane.pipeline = pipeline;
    lane.generation = generation_;
    lane.scope_len = static_cast<std::uint32_t>(scope_of_lane(key).size());
  }
  return lane;
}

void Dispatcher::set_pipelines(std::vector<std::shared_ptr<Pipeline>> pipelines) {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    new_pipelines_ = std::move(pipelines);
  }
  wake();
}

void Dispatcher::apply_new_pipelines() {
  std::optional<std::vector<std::shared_ptr<Pipeline>>> taken;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    taken.swap(new_pipelines_);
  }
  if (!taken) return;
  pipelines_.clear();
  for (auto& p : *taken) pipelines_.emplace(p->name, std::move(p));
  ++generation_;  // lanes take theirs as they next start (repoint)
  // Lanes turned away together by a limiter (or their workspace's pause)
  // ask again now: the new limiters may let them go sooner, and a lane of
  // a pipeline that is gone must not wait for a bucket that is gone too. A
  // pause is the dispatcher's own and still holds them. Lanes waiting on
  // their own (a backoff, a channel's pause) keep their time.
  std::vector<Timer> kept;
  for (Timer& t : timers_) {
    if (!t.batch->scope.empty())
      push_due(std::move(t.batch));
    else
      kept.push_back(std::move(t));
  }
  timers_ = std::move(kept);
  std::make_heap(timers_.begin(), timers_.end(), [](const Timer& a, const Timer& b) {
    return a.when != b.when ? a.when > b.when : a.order > b.order;
  });
}

void Dispatcher::repoint(Lane& lane) {
  if (lane.generation == generation_) return;
  lane.generation = generation_;
  const auto it = pipelines_.find(std::string(pipeline_of_lane(lane.key())));
  lane.pipeline = it == pipelines_.end() ? nullptr : it->second;
  // The new sink may draw from another budget (another token).
  lane.budget.reset();
  lane.budget_asked = false;
}

void Dispatcher::count_stored(const Lane& lane, std::ptrdiff_t delta) {
  if (delta == 0) return;
  std::lock_guard<std::mutex> lock(mutex_);
  const auto n = static_cast<std::size_t>(delta < 0 ? -delta : delta);
  auto& depth = channel_depths_[std::string(lane.channel())];
  if (delta > 0) {
    depth += n;
    stored_ += n;
    return;
  }
  depth -= std::min(depth, n);
  stored_ -= std::min(stored_, n);
  if (depth == 0) channel_depths_.erase(std::string(lane.channel()));
}

void Dispatcher::adopt_stored_backlog(sdk::SteadyTime now) {
  if (now < adopt_retry_at_) return;
  std::vector<LaneBacklog> stored;
  try {
    stored = queue_.backlog();  // ordered by first_seq
  } catch (const std::exception&) {
    // The backend logged why; nothing was adopted, so ask again shortly.
    adopt_retry_at_ = now + kUnreadableRetry;
    return;
  }
  adopted_ = true;
  seen_upto_ = std::max(seen_upto_, queue_.backlog_upto());
  adopt(stored, "left from before");
}

void Dispatcher::adopt_taken_over() {
  std::vector<LaneBacklog> lanes;
  try {
    lanes = queue_.take_over();
  } catch (const std::exception& e) {
    log_->error("could not collect the lanes handed to this replica: {}", e.what());
    return;
  }
  if (lanes.empty()) return;
  for (const LaneBacklog& b : lanes) seen_upto_ = std::max(seen_upto_, b.last_seq);
  std::sort(lanes.begin(), lanes.end(), [](const LaneBacklog& a, const LaneBacklog& b) {
    return a.first_seq < b.first_seq;
  });
  adopt(lanes, "taken over from another replica");
}

void Dispatcher::adopt(const std::vector<LaneBacklog>& stored, const char* what) {
  if (stored.empty()) return;
  // One batch per workspace scope, each in first_seq order: if a limiter
  // or pause of that scope turns the first lanes away, the rest of the
  // scope follows them unasked instead of each being read and asked.
  std::map<std::string_view, std::unique_ptr<Batch>> batches;
  std::size_t messages = 0;
  for (const LaneBacklog& b : stored) {
    const auto pipeline = pipelines_.find(std::string(pipeline_of_lane(b.lane)));
    Lane& lane = lane_for(b.lane, pipeline == pipelines_.end() ? nullptr : pipeline->second);
    if (lane.stored() == 0) lane.cursor = b.first_seq - 1;
    lane.unloaded += b.count;
    messages += b.count;
    count_stored(lane, static_cast<std::ptrdiff_t>(b.count));
    if (lane.state == Lane::State::Idle) {
      lane.state = Lane::State::Scheduled;
      auto& batch = batches[lane.scope()];
      if (!batch) {
        batch = std::make_unique<Batch>();
        batch->scope = std::string(lane.scope());
      }
      batch->lanes.push_back(&lane);
    }
  }
  log_->info("{} stored message(s) in {} lane(s) {}; paged in as each lane advances", messages,
             stored.size(), what);
  for (auto& [scope, batch] : batches) push_due(std::move(batch));
}

void Dispatcher::take_arrivals() {
  for (;;) {
    std::vector<Queued> batch = queue_.take(kTakeBatch);
    for (Queued& q : batch) {
      seen_upto_ = std::max(seen_upto_, q.seq);
      auto pipeline = pipelines_.find(q.message.pipeline);
      if (pipeline == pipelines_.end()) {
        // A reload may have handed its pipeline over since this round began
        // (the ingress serves a new pipeline only after that).
        apply_new_pipelines();
        pipeline = pipelines_.find(q.message.pipeline);
      }
      if (pipeline == pipelines_.end()) {
        // Only possible if a backend hands back a message from an older
        // configuration; it cannot be delivered, so it is counted and logged.
        log_->error("message {} names unknown pipeline '{}'; dead-lettered", q.message.id,
                    q.message.pipeline);
        metrics_.failed(q.message.original_channel);
        store_dead_letter(q.seq, std::move(q.message), DeadLetterKind::Failed,
                          "unknown_pipeline", "no pipeline of this name in the configuration", 0);
        continue;
      }
      Lane& lane = lane_for(lane_key(q.message), pipeline->second);
      count_stored(lane, 1);
      // Behind what is still in the store, or past the window: the store
      // keeps it, and the lane pages it in when it gets there.
      const bool fits = lane.unloaded == 0 && lane.window.size() < window_.lane_window &&
                        (lane.window.empty() || loaded_bytes_ < window_.window_bytes);
      if (fits) {
        lane.cursor = q.seq;
        loaded_messages_ += 1;
        loaded_bytes_ += footprint(q);
        lane.window.push_back(std::move(q));
      } else {
        ++lane.unloaded;
      }
      if (lane.state == Lane::State::Idle) make_due(lane);
    }
    if (batch.size() < kTakeBatch) return;
  }
}

Dispatcher::Load Dispatcher::load_head(Lane& lane) {
  if (!lane.window.empty()) return Load::Loaded;
  if (lane.unloaded == 0) return Load::Empty;
  const std::size_t want = loaded_bytes_ < window_.window_bytes ? window_.lane_window : 1;
  std::vector<Queued> page;
  try {
    page = queue_.read_lane(lane.key(), lane.cursor, seen_upto_, want);
  } catch (const std::exception&) {
    // The backend logged why. The lane keeps its cursor and count, so what
    // is stored still goes first, in order, once the store reads again.
    return Load::Unreadable;
  }
  if (page.empty() && !queue_.holds(lane.key())) {
    // Another replica delivers this lane now (this one was taken for
    // dead): what is stored is its to send.
    log_->warn("lane {}: {} stored message(s) are delivered by another replica now", lane.key(),
               lane.unloaded);
    count_stored(lane, -static_cast<std::ptrdiff_t>(lane.unloaded));
    lane.unloaded = 0;
    return Load::Empty;
  }
  if (page.empty()) {
    // The count came from the store, so this means rows it cannot read
    // back (it logs them); nothing is left to page in after the cursor.
    log_->error("lane {}: {} stored message(s) after #{} could not be read back; skipped",
                lane.key(), lane.unloaded, lane.cursor);
    count_stored(lane, -static_cast<std::ptrdiff_t>(lane.unloaded));
    lane.unloaded = 0;
    return Load::Empty;
  }
  const std::size_t got = page.size();
  for (Queued& q : page) {
    lane.cursor = q.seq;
    loaded_messages_ += 1;
    loaded_bytes_ += footprint(q);
    lane.window.push_back(std::move(q));
  }
  lane.unloaded -= std::min(lane.unloaded, got);
  if (got < want && lane.unloaded > 0) {
    // A short page means nothing more is stored up to what was announced.
    log_->error("lane {}: {} stored message(s) after #{} could not be read back; skipped",
                lane.key(), lane.unloaded, lane.cursor);
    count_stored(lane, -static_cast<std::ptrdiff_t>(lane.unloaded));
    lane.unloaded = 0;
  }
  return Load::Loaded;
}

void Dispatcher::unload_front(Lane& lane) {
  const Queued& q = lane.window.front();
  lane.head_since = {};  // the next head's time is its own
  loaded_messages_ -= 1;
  loaded_bytes_ -= std::min(loaded_bytes_, footprint(q));
}

void Dispatcher::shed_window(Lane& lane) {
  if (loaded_bytes_ > window_.window_bytes) give_back_untried(lane);
  // A vector keeps its capacity when emptied: a Queued's worth (some 400
  // bytes) per waiting lane, uncounted by the budget, was 40 MiB over
  // 100,000 waiting channels. A lane that waits keeps only what it holds.
  if (lane.window.capacity() > lane.window.size()) lane.window.shrink_to_fit();
}

void Dispatcher::give_back_untried(Lane& lane) {
  if (lane.window.empty()) return;
  // A head already tried carries its attempt count, which only this
  // process has: it stays. Everything else can be read again.
  const sdk::Message& head = lane.window.front().message;
  const bool keep_head = head.attempts > 0 || head.last_attempt_at != sdk::WallTime{};
  const std::size_t keep = keep_head ? 1 : 0;
  if (lane.window.size() <= keep) return;
  for (std::size_t i = keep; i < lane.window.size(); ++i) {
    const Queued& q = lane.window[i];
    loaded_messages_ -= 1;
    loaded_bytes_ -= std::min(loaded_bytes_, footprint(q));
  }
  const std::size_t dropped = lane.window.size() - keep;
  if (!keep_head) lane.head_since = head.enqueued_at;
  lane.cursor = keep_head ? lane.window.front().seq : lane.window.front().seq - 1;
  lane.window.resize(keep);
  lane.unloaded += dropped;
}

std::size_t Dispatcher::window_of(const std::string& lane) const {
  const auto it = lanes_.find(lane);
  return it == lanes_.end() ? 0 : it->second.window.size();
}

std::size_t Dispatcher::window_capacity_of(const std::string& lane) const {
  const auto it = lanes_.find(lane);
  return it == lanes_.end() ? 0 : it->second.window.capacity();
}

// ---- outcomes ----

void Dispatcher::ack_head(Lane& lane, const char* outcome) {
  const Queued& head = lane.window.front();
  log_->debug("message {} to {}: {}", head.message.id, head.message.channel, outcome);
  queue_.ack(head);
  unload_front(lane);
  lane.window.erase(lane.window.begin());
  count_stored(lane, -1);
}

void Dispatcher::store_dead_letter(std::uint64_t seq, sdk::Message message, DeadLetterKind kind,
                                   std::string error, std::string reason, int http_status) {
  metrics_.dead_lettered(message.original_channel, to_string(kind));
  // An unsalted digest of the token is for this process's pacing only.
  message.attributes.erase(sdk::kBudgetAttribute);
  DeadLetter letter;
  letter.message = std::move(message);
  letter.kind = kind;
  letter.error = std::move(error);
  letter.reason = std::move(reason);
  letter.http_status = http_status;
  letter.dead_at = clock_.wall_now();
  queue_.dead_letter(seq, std::move(letter));
}

void Dispatcher::dead_letter_head(Lane& lane, DeadLetterKind kind, std::string error,
                                  std::string reason, int http_status) {
  const std::uint64_t seq = lane.window.front().seq;
  if (kind == DeadLetterKind::Failed) count_recent(lane.key(), false, clock_.now());
  unload_front(lane);  // before the move: it counts the payload's bytes
  sdk::Message m = std::move(lane.window.front().message);
  lane.window.erase(lane.window.begin());
  count_stored(lane, -1);
  log_->debug("message {} to {}: dead-lettered ({})", m.id, m.channel, to_string(kind));
  store_dead_letter(seq, std::move(m), kind, std::move(error), std::move(reason), http_status);
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

void Dispatcher::record_result(Completion c, sdk::SteadyTime now) {
  if (started_ > 0) --started_;
  auto it = lanes_.find(c.lane);
  if (it == lanes_.end() || it->second.window.empty() ||
      it->second.window.front().seq != c.seq) {
    // Cannot happen while a lane has one send at a time; if it ever does,
    // free the lane rather than leave it waiting forever.
    log_->error("result for unknown message #{} on lane {} ignored", c.seq, c.lane);
    if (it != lanes_.end() && it->second.state == Lane::State::Busy) make_due(it->second);
    return;
  }
  Lane& lane = it->second;
  sdk::Message& m = lane.window.front().message;
  const Pipeline& p = *lane.pipeline;
  const LogScope scope(log_fields_of(m, error_of(c.result)));

  for (const auto& guard : p.guards) {
    std::string failure;  // logged and counted; the result stands
    contained(p, guard.get(), "after_result", m, failure,
              [&] { guard->after_result(m, c.result, now); });
  }

  if (c.result.back_pressure) learn_from(lane, *c.result.back_pressure, c, now);
  if (c.result.delivered) {
    lane.delivered.add(now);
    learned_.delivered(workspace_key(lane), c.sent_at);
    metrics_.succeeded(m.original_channel);
    count_recent(lane.key(), true, now);
    metrics_.delivery_latency(seconds_between(m.enqueued_at, now));
    ack_head(lane, "delivered");
    settle_idle(lane);
    return;
  }
  const sdk::SteadyTime due = retry_or_dead_letter(lane, c.result, now);
  if (due > now && due != sdk::SteadyTime::max()) {
    lane.wait_reason = c.result.back_pressure ? "pause_after_429" : "retry_backoff";
    lane.waits_until = due;
    wait_until(lane, due);
  } else {
    settle_idle(lane);
  }
}

void Dispatcher::name_budget(Lane& lane) {
  sdk::Message& m = lane.window.front().message;
  const Pipeline& p = *lane.pipeline;
  if (!lane.budget_asked) {
    // Once per lane: its messages share a workspace, so a token, so a
    // budget; a sink that throws is logged once, not every round.
    lane.budget_asked = true;
    std::string budget;
    if (p.sink_names_budget) {
      std::string failure;  // logged and counted; the lane's own scope stands in
      contained(p, p.sink.get(), "budget_of", m, failure, [&] { budget = p.sink->budget_of(m); });
    }
    // Keys built from it rely on a budget holding no "/" (a scope always
    // does) and no newline (the separator in channel keys).
    if (budget.find_first_of("/\n") != std::string::npos) {
      log_->warn("pipeline '{}': its sink named a budget with '/' or a newline; ignored",
                 p.name);
      budget.clear();
    }
    if (!budget.empty()) lane.budget = intern_budget(std::move(budget));
  }
  // Written on the message every time, never trusted from the store: a
  // replayed message's token may have changed since.
  if (!lane.budget) {
    m.attributes.erase(sdk::kBudgetAttribute);
  } else if (auto it = m.attributes.find(sdk::kBudgetAttribute);
             it == m.attributes.end() || it->second != *lane.budget) {
    m.attributes.insert_or_assign(sdk::kBudgetAttribute, *lane.budget);
  }
}

std::shared_ptr<const std::string> Dispatcher::intern_budget(std::string budget) {
  auto& slot = budget_names_[budget];
  std::shared_ptr<const std::string> name = slot.lock();
  if (!name) {
    name = std::make_shared<const std::string>(std::move(budget));
    slot = name;
  }
  return name;
}

std::string_view Dispatcher::workspace_key(const Lane& lane) const {
  // A budget name has no "/" and a scope always has, so the two never meet.
  // Both live as long as the lane: every delivery asks, and builds nothing.
  return lane.budget ? std::string_view(*lane.budget) : lane.scope();
}

std::string Dispatcher::wait_group(const Lane& lane) const {
  std::string group(lane.scope());
  group.push_back('\n');  // neither a scope nor a caller holds one
  if (!lane.window.empty()) group.append(lane.window.front().message.caller);
  return group;
}

std::string Dispatcher::channel_key(const Lane& lane) const {
  std::string key(workspace_key(lane));
  key.push_back('\n');  // a workspace key never holds one
  key.append(lane.channel());
  return key;
}

void Dispatcher::pause_scope(const Lane& lane, const sdk::BackPressure& bp,
                             sdk::SteadyTime until) {
  const bool workspace = bp.scope == sdk::BackPressure::Scope::Workspace;
  auto& paused = workspace ? paused_workspaces_[std::string(workspace_key(lane))]
                           : paused_channels_[channel_key(lane)];
  paused = std::max(paused, until);
  // A workspace's pause holds every replica that delivers with its token.
  if (workspace && shared_pauses_) shared_pauses_->pause(workspace_key(lane), until, clock_.now());
}

void Dispatcher::learn_from(const Lane& lane, const sdk::BackPressure& bp, const Completion& c,
                            sdk::SteadyTime now) {
  const sdk::Message& m = lane.window.front().message;
  // Slack answers 429 alike for a channel over its 1/s and for a workspace
  // over its budget, so a sink reports the wider scope. A channel that itself
  // sent more than one message in the last second is the likelier cause:
  // then only that channel is slowed, and the workspace keeps its pace.
  const double channel_rate = lane.delivered.last_second(c.sent_at);
  const bool workspace = bp.scope == sdk::BackPressure::Scope::Workspace &&
                         channel_rate <= kBusyChannel;
  const std::string key = workspace ? std::string(workspace_key(lane)) : channel_key(lane);
  if (!learned_.limited(key, c.sent_at, now)) return;
  const double rate = learned_.rate(key, now).value_or(0);
  log_->warn("{} {} of pipeline '{}' answered 429: held to {:.3g} message(s)/s from now, "
             "returning to its configured pace over the next minutes",
             workspace ? "workspace" : "channel",
             workspace ? (m.workspace.empty() ? std::string("(default)") : m.workspace) : m.channel,
             lane.pipeline->name, rate);
  if (workspace) {
    auto& labels = learned_labels_[key];
    // Callers' own tokens are tenants without a name worth a series: kept
    // with empty labels, so that they are not counted as channels either.
    if (labels.first.empty() && !sdk::is_caller_tenant(m.workspace))
      labels = {lane.pipeline->name, m.workspace.empty() ? "default" : m.workspace};
    if (!labels.first.empty()) metrics_.set_effective_rate(labels.first, labels.second, rate);
  }
  metrics_.set_learned_channels(static_cast<double>(learned_.paced() - learned_labels_.size()));
}

sdk::SteadyTime Dispatcher::learned_wait(const Lane& lane, sdk::SteadyTime now,
                                         bool* workspace) const {
  if (learned_.paced() == 0) return now;  // the usual case costs no key
  const sdk::SteadyTime by_workspace = learned_.next_send(workspace_key(lane), now);
  const sdk::SteadyTime by_channel = learned_.next_send(channel_key(lane), now);
  *workspace = by_workspace >= by_channel;
  return std::max(by_workspace, by_channel);
}

void Dispatcher::forget_learned(sdk::SteadyTime now) {
  if (now < next_learned_sweep_) return;
  next_learned_sweep_ = now + std::chrono::seconds(1);
  for (const std::string& key : learned_.forget_recovered(now)) {
    auto it = learned_labels_.find(key);
    if (it == learned_labels_.end()) continue;
    if (!it->second.first.empty()) {
      metrics_.clear_effective_rate(it->second.first, it->second.second);
      log_->info("workspace {} of pipeline '{}' is back to its configured pace",
                 it->second.second, it->second.first);
    }
    learned_labels_.erase(it);
  }
  for (const auto& [key, labels] : learned_labels_) {
    if (labels.first.empty()) continue;
    metrics_.set_effective_rate(labels.first, labels.second, learned_.rate(key, now).value_or(0));
  }
  std::erase_if(budget_names_, [](const auto& name) { return name.second.expired(); });
  forget_recent(std::chrono::duration_cast<std::chrono::minutes>(now.time_since_epoch()).count());
  metrics_.set_learned_channels(static_cast<double>(learned_.paced() - learned_labels_.size()));
}

void Dispatcher::count_recent(const std::string& lane, bool delivered, sdk::SteadyTime now) {
  const std::int64_t minute =
      std::chrono::duration_cast<std::chrono::minutes>(now.time_since_epoch()).count();
  auto it = recent_.find(lane);
  if (it == recent_.end()) {
    if (recent_.size() >= kRecentChannels) return;
    it = recent_.emplace(lane, std::vector<RecentMinute>{}).first;
  }
  auto& minutes = it->second;
  if (minutes.empty() || minutes.back().minute != minute) {
    if (minutes.size() > static_cast<std::size_t>(kRecentMinutes)) minutes.erase(minutes.begin());
    minutes.push_back(RecentMinute{minute, {}});
  }
  (delivered ? minutes.back().counts.delivered : minutes.back().counts.failed) += 1;
}

void Dispatcher::forget_recent(std::int64_t minute) {
  std::erase_if(recent_, [&](const auto& lane) {
    return lane.second.empty() || lane.second.back().minute < minute - kRecentMinutes;
  });
}

void Dispatcher::take_look() {
  if (!look_wanted_.exchange(false)) return;
  const sdk::SteadyTime now = clock_.now();
  std::size_t max_lanes = 0;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    max_lanes = std::exchange(look_lanes_, 0);
  }
  Look look;
  look.at = now;
  look.max_lanes = max_lanes;
  look.lanes_total = lanes_.size();
  std::vector<const Lane*> listed;
  for (const auto& [key, lane] : lanes_) {
    const sdk::SteadyTime since =
        lane.window.empty() ? lane.head_since : lane.window.front().message.enqueued_at;
    if (lane.stored() > 0 && since != sdk::SteadyTime{}) {
      auto [it, fresh] = look.oldest.try_emplace(std::string(lane.channel()), since);
      if (!fresh) it->second = std::min(it->second, since);
    }
    if (max_lanes > 0) listed.push_back(&lane);
  }
  // The most queued first; among equals, the longest waiting.
  const auto more_queued = [](const Lane* a, const Lane* b) {
    return a->stored() != b->stored() ? a->stored() > b->stored()
                                      : a->head_order() < b->head_order();
  };
  const std::size_t shown = std::min(max_lanes, listed.size());
  std::partial_sort(listed.begin(), listed.begin() + static_cast<std::ptrdiff_t>(shown),
                    listed.end(), more_queued);
  // Where each waiting lane is: a lane that follows its batch unasked waits
  // for the batch's time, for the reason the lane ahead of it was given.
  std::unordered_map<const Lane*, std::pair<const char*, sdk::SteadyTime>> waiting;
  if (shown > 0) {
    for (const Timer& t : timers_)
      for (std::size_t i = t.batch->next; i < t.batch->lanes.size(); ++i) {
        const Lane* lane = t.batch->lanes[i];
        waiting[lane] = {t.batch->reason != nullptr ? t.batch->reason : lane->wait_reason, t.when};
      }
  }
  for (std::size_t i = 0; i < shown; ++i) {
    const Lane& lane = *listed[i];
    LaneView v;
    v.pipeline = std::string(pipeline_of_lane(lane.key()));
    v.workspace = workspace_of_lane(lane.key());
    v.channel = std::string(lane.channel());
    v.queued = lane.stored();
    v.oldest = lane.window.empty() ? lane.head_since : lane.window.front().message.enqueued_at;
    if (lane.state == Lane::State::Busy) {
      v.state = "sending";
    } else if (const auto it = waiting.find(&lane); it != waiting.end()) {
      v.state = "waiting";
      v.reason = it->second.first != nullptr ? it->second.first : "waiting";
      v.until = it->second.second;
    }
    look.lanes.push_back(std::move(v));
  }
  const std::int64_t minute =
      std::chrono::duration_cast<std::chrono::minutes>(now.time_since_epoch()).count();
  forget_recent(minute);
  for (const auto& [key, minutes] : recent_) {
    Recent sum;
    for (const RecentMinute& m : minutes) {
      if (m.minute < minute - kRecentMinutes) continue;
      sum.delivered += m.counts.delivered;
      sum.failed += m.counts.failed;
    }
    look.recent.push_back(RecentLane{std::string(pipeline_of_lane(key)), workspace_of_lane(key),
                                     std::string(channel_of_lane(key)), sum});
  }
  look.recent_seconds =
      kRecentMinutes * 60.0 +
      std::chrono::duration<double>(now.time_since_epoch() - std::chrono::minutes(minute)).count();
  for (const auto& [key, labels] : learned_labels_) {
    if (labels.first.empty()) continue;
    // The metric's label says "default" for the default workspace.
    look.learned_rates[{labels.first, labels.second == "default" ? "" : labels.second}] =
        learned_.rate(key, now).value_or(0);
  }
  std::lock_guard<std::mutex> lock(mutex_);
  look_ = std::move(look);
  ++looks_;
  idle_cv_.notify_all();
}

sdk::SteadyTime Dispatcher::paused_until(const Lane& lane, sdk::SteadyTime now, bool* workspace) {
  sdk::SteadyTime until = now;
  *workspace = false;
  const auto check = [&](Pauses& pauses, std::string_view key, bool is_workspace) {
    auto it = pauses.find(key);
    if (it == pauses.end()) return;
    if (it->second <= now) {
      pauses.erase(it);
      return;
    }
    if (it->second > until) {
      until = it->second;
      *workspace = is_workspace;
    }
  };
  if (shared_pauses_) {
    if (const sdk::SteadyTime shared = shared_pauses_->paused_until(workspace_key(lane), now);
        shared > until) {
      until = shared;
      *workspace = true;
    }
  }
  if (paused_workspaces_.empty() && paused_channels_.empty()) return until;
  check(paused_workspaces_, workspace_key(lane), true);
  check(paused_channels_, channel_key(lane), false);
  return until;
}

sdk::RetryDecision Dispatcher::ask_retry_policy(const Pipeline& p, const sdk::Message& m,
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

sdk::SteadyTime Dispatcher::retry_or_dead_letter(Lane& lane, const sdk::SendResult& result,
                                                 sdk::SteadyTime now) {
  sdk::Message& m = lane.window.front().message;
  const Pipeline& p = *lane.pipeline;

  sdk::SteadyTime paused = now;
  if (result.back_pressure) {
    // The receiver says "not now" for a whole scope: hold every message of
    // it until then, whatever the policy decides for this one.
    paused = result.back_pressure->until == sdk::SteadyTime{} ? now + kDefaultPause
                                                              : result.back_pressure->until;
    pause_scope(lane, *result.back_pressure, paused);
    metrics_.rate_limited(m.original_channel);
  }

  const sdk::RetryDecision decision = ask_retry_policy(p, m, result);
  if (decision.action == sdk::RetryDecision::Action::Retry) {
    const sdk::SteadyTime due = std::max(now + decision.delay, paused);
    if (result.back_pressure) {
      // The receiver did not look at the message: the attempt does not
      // spend its retry budget, and it keeps its place in the lane.
      if (m.attempts > 0) --m.attempts;
      log_->warn("message {} to {}: {}; the {} waits {} ms", m.id, m.channel, describe(result),
                 result.back_pressure->scope == sdk::BackPressure::Scope::Workspace
                     ? "workspace"
                     : "channel",
                 std::chrono::duration_cast<std::chrono::milliseconds>(due - now).count());
      return due;
    }
    metrics_.retried(m.original_channel);
    log_->warn("message {} to {} failed (attempt {}): {}; retrying in {} ms", m.id, m.channel,
               m.attempts, describe(result), decision.delay.count());
    return due;
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
  dead_letter_head(lane, DeadLetterKind::Failed, std::move(code), decision.reason,
                   result.http_status);
  return sdk::SteadyTime::max();
}

sdk::SteadyTime Dispatcher::fail_before_send(Lane& lane, std::string_view code,
                                             std::string detail, sdk::SteadyTime now) {
  ++lane.window.front().message.attempts;
  return retry_or_dead_letter(lane, sdk::SendResult::failure(code, std::move(detail)), now);
}

bool Dispatcher::guards_allow(Lane& lane, sdk::SteadyTime now, sdk::SteadyTime* retry_at) {
  const Pipeline& p = *lane.pipeline;
  sdk::Message& m = lane.window.front().message;
  for (const auto& guard : p.guards) {
    sdk::GuardVerdict v;
    std::string failure;
    if (!contained(p, guard.get(), "before_send", m, failure,
                   [&] { v = guard->before_send(m, now); })) {
      *retry_at = fail_before_send(lane, sdk::outcome::kInternalErrorInGuard, std::move(failure),
                                   now);
      return false;
    }
    if (!v.allow) {
      const LogScope denied({.error = "denied"});
      metrics_.not_processed(m.original_channel);
      log_->info("message {} to {} not sent: {}; kept as a dead letter", m.id, m.channel,
                 v.reason);
      dead_letter_head(lane, DeadLetterKind::NotProcessed, "denied", v.reason, 0);
      *retry_at = sdk::SteadyTime::max();
      return false;
    }
  }
  return true;
}

bool Dispatcher::limiters_allow(Lane& lane, sdk::SteadyTime now, sdk::SteadyTime* wait_until,
                                sdk::SteadyTime* retry_at) {
  const Pipeline& p = *lane.pipeline;
  sdk::Message& m = lane.window.front().message;
  sdk::SteadyTime due = now;
  std::string failure;
  for (const auto& limiter : p.limiters) {
    if (!contained(p, limiter.get(), "next_send_time", m, failure,
                   [&] { due = std::max(due, limiter->next_send_time(m, now)); })) {
      *retry_at = fail_before_send(lane, sdk::outcome::kInternalErrorInRateLimiter,
                                   std::move(failure), now);
      return false;
    }
  }
  if (due > now) {
    *wait_until = due;
    return false;
  }
  for (const auto& limiter : p.limiters) {
    if (!contained(p, limiter.get(), "on_send", m, failure, [&] { limiter->on_send(m, now); })) {
      *retry_at = fail_before_send(lane, sdk::outcome::kInternalErrorInRateLimiter,
                                   std::move(failure), now);
      return false;
    }
  }
  return true;
}

Dispatcher::Start Dispatcher::start_head(Lane& lane, sdk::SteadyTime now) {
  for (std::size_t settled = 0;; ++settled) {
    if (settled == kSettledPerAsk)
      return Start{Start::Kind::Waits, now, false, "yielding"};  // lets others go first
    const Load load = load_head(lane);
    if (load == Load::Empty) return Start{};
    if (load == Load::Unreadable)
      return Start{Start::Kind::Waits, now + kUnreadableRetry, false, "store_unreadable"};
    sdk::Message& m = lane.window.front().message;
    const LogScope scope(log_fields_of(m));  // copies: `m` may be dead-lettered below
    repoint(lane);
    if (!lane.pipeline) {
      apply_new_pipelines();  // as in take_arrivals
      repoint(lane);
    }
    if (!lane.pipeline) {
      // Stored by a configuration that had this pipeline (before a restart
      // or a reload): it cannot be delivered, so it is counted, logged and
      // kept.
      const LogScope unknown({.error = "unknown_pipeline"});
      log_->error("message {} names unknown pipeline '{}'; dead-lettered", m.id, m.pipeline);
      metrics_.failed(m.original_channel);
      dead_letter_head(lane, DeadLetterKind::Failed, "unknown_pipeline",
                       "no pipeline of this name in the configuration", 0);
      continue;
    }
    const Pipeline& p = *lane.pipeline;
    name_budget(lane);

    bool workspace_pause = false;
    if (const sdk::SteadyTime until = paused_until(lane, now, &workspace_pause); until > now)
      return Start{Start::Kind::Waits, until, workspace_pause,
                   workspace_pause ? "pause_workspace" : "pause_channel"};
    if (const sdk::SteadyTime until = learned_wait(lane, now, &workspace_pause); until > now)
      return Start{Start::Kind::Waits, until, workspace_pause,
                   workspace_pause ? "learned_pace_workspace" : "learned_pace_channel"};

    // A stage that failed on the head settled it: retried, it waits (even a
    // zero delay ends this round, so a stage that always throws cannot spin
    // here); dead-lettered or denied, the next message may go.
    sdk::SteadyTime retry_at = sdk::SteadyTime::max();
    if (!guards_allow(lane, now, &retry_at)) {
      if (retry_at != sdk::SteadyTime::max())
        return Start{Start::Kind::Waits, std::max(retry_at, now + sdk::SteadyTime::duration(1)),
                     false, "retry_backoff"};
      continue;
    }

    if (p.caller_token && m.delivery_token.empty()) {
      // The caller's token did not survive (sealed with a key this process
      // does not have, or a replay of a message queued without one): never
      // deliver it with the proxy's own token instead.
      const LogScope unavailable({.error = "token_unavailable"});
      metrics_.failed(m.original_channel);
      log_->error("message {} to {} has no caller token to deliver with; kept as a dead letter",
                  m.id, m.channel);
      dead_letter_head(lane, DeadLetterKind::Failed, "token_unavailable",
                       "the caller's token is no longer available; the caller must send it again",
                       0);
      continue;
    }

    sdk::SteadyTime wait = now;
    if (!limiters_allow(lane, now, &wait, &retry_at)) {
      if (wait > now) return Start{Start::Kind::Waits, wait, true, "rate_limit"};
      if (retry_at != sdk::SteadyTime::max())
        return Start{Start::Kind::Waits, std::max(retry_at, now + sdk::SteadyTime::duration(1)),
                     false, "retry_backoff"};
      continue;
    }
    send(lane, now);
    return Start{Start::Kind::Sent, {}, false};
  }
}

void Dispatcher::send(Lane& lane, sdk::SteadyTime now) {
  Queued& head = lane.window.front();
  sdk::Message& m = head.message;
  if (m.attempts == 0 && m.last_attempt_at == sdk::WallTime{})
    metrics_.queue_wait(seconds_between(m.enqueued_at, now));
  ++m.attempts;
  m.last_attempt_at = clock_.wall_now();
  lane.state = Lane::State::Busy;
  ++started_;
  if (learned_.paced() > 0) {
    learned_.sent(workspace_key(lane), now);
    learned_.sent(channel_key(lane), now);
  }
  {
    std::lock_guard<std::mutex> lock(mutex_);
    ++in_flight_;
  }
  executor_.post([this, pipeline = lane.pipeline, key = lane.key(), seq = head.seq,
                  message = m, now]() {
    const LogScope scope(log_fields_of(message));  // the sink's own lines too
    sdk::SendResult result;
    std::string failure;
    if (!contained(*pipeline, pipeline->sink.get(), "send", message, failure,
                   [&] { result = pipeline->sink->send(message); })) {
      result = sdk::SendResult::failure(sdk::outcome::kInternalErrorInSink, std::move(failure));
    }
    {
      std::lock_guard<std::mutex> lock(mutex_);
      completions_.push_back(Completion{key, seq, std::move(result), now});
      --in_flight_;
    }
    wake();
  });
}

// ---- scheduling ----

void Dispatcher::push_due(std::unique_ptr<Batch> batch) {
  if (!batch || batch->done()) return;
  const std::uint64_t head = batch->front()->head_order();
  due_.push_back(Due{head, next_order_++, std::move(batch)});
  std::push_heap(due_.begin(), due_.end(), [](const Due& a, const Due& b) {
    return a.head != b.head ? a.head > b.head : a.order > b.order;
  });
}

void Dispatcher::push_timer(sdk::SteadyTime when, std::unique_ptr<Batch> batch) {
  if (!batch || batch->done()) return;
  timers_.push_back(Timer{when, next_order_++, std::move(batch)});
  std::push_heap(timers_.begin(), timers_.end(), [](const Timer& a, const Timer& b) {
    return a.when != b.when ? a.when > b.when : a.order > b.order;
  });
}

void Dispatcher::make_due(Lane& lane) {
  lane.state = Lane::State::Scheduled;
  auto batch = std::make_unique<Batch>();
  batch->lanes.push_back(&lane);
  push_due(std::move(batch));
}

void Dispatcher::wait_until(Lane& lane, sdk::SteadyTime when) {
  lane.state = Lane::State::Scheduled;
  shed_window(lane);
  auto batch = std::make_unique<Batch>();
  batch->lanes.push_back(&lane);
  push_timer(when, std::move(batch));
}

void Dispatcher::settle_idle(Lane& lane) {
  if (lane.stored() > 0) {
    make_due(lane);
    return;
  }
  lane.state = Lane::State::Idle;
  lanes_.erase(lanes_.find(lane.key()));  // idle channels cost nothing
}

void Dispatcher::forget_pauses_over(sdk::SteadyTime now) {
  if (now < next_pause_sweep_) return;
  next_pause_sweep_ = now + kPauseSweep;
  for (auto* pauses : {&paused_workspaces_, &paused_channels_})
    std::erase_if(*pauses, [&](const auto& pause) { return pause.second <= now; });
}

void Dispatcher::fire_timers(sdk::SteadyTime now) {
  const auto later = [](const Timer& a, const Timer& b) {
    return a.when != b.when ? a.when > b.when : a.order > b.order;
  };
  while (!timers_.empty() && timers_.front().when <= now) {
    std::pop_heap(timers_.begin(), timers_.end(), later);
    std::unique_ptr<Batch> batch = std::move(timers_.back().batch);
    timers_.pop_back();
    ++last_round_.batches_fired;
    push_due(std::move(batch));
  }
}

void Dispatcher::start_due_lanes(sdk::SteadyTime now) {
  const auto after = [](const Due& a, const Due& b) {
    return a.head != b.head ? a.head > b.head : a.order > b.order;
  };
  // This round's shared waits, by group (wait_group) and time: each becomes
  // one batch.
  std::map<std::pair<std::string, sdk::SteadyTime>, std::unique_ptr<Batch>> waits;
  while (!due_.empty() && started_ < max_in_flight_) {
    std::pop_heap(due_.begin(), due_.end(), after);
    std::unique_ptr<Batch> batch = std::move(due_.back().batch);
    due_.pop_back();
    Lane& lane = *batch->front();
    ++batch->next;
    ++last_round_.lanes_asked;

    const Start start = start_head(lane, now);
    lane.wait_reason = start.reason;
    lane.waits_until = start.until;
    if (start.kind == Start::Kind::Sent) {
      // Busy until its result comes back.
    } else if (start.kind == Start::Kind::Empty) {
      settle_idle(lane);  // nothing stored: forgotten
    } else if (!start.shared) {
      wait_until(lane, start.until);
    } else {
      // Named before shed_window, which may give the head back.
      std::string group = wait_group(lane);
      shed_window(lane);
      // The batch it came in: one of the same group turned away together
      // last time, or the stored backlog of its scope (whose heads are not
      // read yet, so their callers are unknown).
      const bool same_as_batch =
          !batch->scope.empty() && (batch->scope == group || batch->scope == lane.scope());
      auto& shared = waits[{group, start.until}];
      if (!shared) {
        shared = std::make_unique<Batch>();
        shared->scope = std::move(group);
        shared->reason = start.reason;
      }
      shared->lanes.push_back(&lane);
      if (!batch->done() && same_as_batch) {
        // Turned away together last time, and again now: the rest of the
        // batch would hear the same answer, so it waits without asking.
        batch->reason = start.reason;
        push_timer(start.until, std::move(batch));
        continue;
      }
    }
    push_due(std::move(batch));
  }
  for (auto& [key, batch] : waits) push_timer(key.second, std::move(batch));
}

sdk::SteadyTime Dispatcher::run_once() {
  const sdk::SteadyTime now = clock_.now();
  last_round_ = RoundStats{};
  apply_new_pipelines();
  if (!adopted_) adopt_stored_backlog(now);
  // Arrivals only after the stored backlog is adopted: they are newer, and
  // a lane must page its older stored messages in before them.
  if (adopted_) {
    adopt_taken_over();
    take_arrivals();
  }

  std::vector<Completion> done;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    done.swap(completions_);
  }
  for (auto& c : done) record_result(std::move(c), now);

  fire_timers(now);
  start_due_lanes(now);
  forget_pauses_over(now);
  forget_learned(now);
  take_look();

  // Due lanes left waiting for a free worker are woken by that worker's
  // completion, not by the clock.
  sdk::SteadyTime next = sdk::SteadyTime::max();
  if (!due_.empty() && started_ < max_in_flight_) next = now;
  if (!timers_.empty()) next = std::min(next, timers_.front().when);
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (stored_ == 0 && in_flight_ == 0 && completions_.empty() && queue_.size() == 0)
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
    return stored_ == 0 && in_flight_ == 0 && completions_.empty() && queue_.size() == 0;
  });
}

std::map<std::string, std::size_t> Dispatcher::backlog() const {
  std::map<std::string, std::size_t> out;
  for (const auto& [key, lane] : lanes_)
    if (lane.stored() > 0) out[key] = lane.stored();
  return out;
}

Dispatcher::Look Dispatcher::look(std::chrono::milliseconds wait, std::size_t max_lanes) {
  std::unique_lock<std::mutex> lock(mutex_);
  const std::uint64_t asked_at = looks_;
  look_lanes_ = std::max(look_lanes_, max_lanes);
  look_wanted_.store(true);
  wake_pending_.store(true);
  wake_cv_.notify_one();
  // A look another caller asked for (a scrape's) may be under way without
  // the lanes this one wants: wait for one that has them.
  idle_cv_.wait_for(lock, wait,
                    [&] { return looks_ != asked_at && look_.max_lanes >= max_lanes; });
  return look_;
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

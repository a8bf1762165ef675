// The message queue between ingress and dispatcher, and the dead-letter
// store beside it.
//
// The store is the queue: the dispatcher keeps only a window of each lane
// (one lane per pipeline, workspace and channel) in memory and pages the
// rest in, in order, with read_lane(). So memory does not grow with the
// backlog, and a restart does not load the world.
//
// Contract every backend keeps (memory, SQLite, Redis). The shared
// contract test suite (tests/unit/queue_contract_test.cc) checks each point
// against every backend:
//   - push() checks both capacity limits and stores atomically: two racing
//     pushes can never both take the last slot. It returns only when the
//     message is as durable as the backend promises (SQLite: committed, and
//     fsynced when sync = "full"), so the ingress answers 200 only then.
//   - Every stored message has a sequence number, rising in push order
//     across restarts (a replayed dead letter gets a new one, behind what is
//     queued). take() announces each message pushed since it was opened
//     once, in that order; read_lane() reads a lane's stored messages again,
//     in order, as often as asked. A message stays stored, and counted in
//     size()/bytes(), until ack() or dead_letter() records its outcome; a
//     durable backend keeps it across a restart: delivery is at-least-once.
//   - What was stored before the queue was opened is not announced by
//     take(): backlog() names its lanes, and read_lane() reads them. A
//     stored message whose sealed delivery token this process cannot open
//     (another key) is kept and read with an empty delivery_token, never a
//     wrong one; the dispatcher decides its fate (token_unavailable).
//   - An outcome (ack() or dead_letter()) for a sequence that is not stored
//     (already finished, or never was) changes nothing.
//   - A push carrying a dedup key that was pushed before, within the dedup
//     window, is answered Duplicate and not stored again.
//   - push_async() reports to its callback exactly once, outside the
//     queue's lock, and only once push() could have returned that answer.
//   - The dispatcher is the only consumer; ingress threads push concurrently;
//     the admin API uses the dead-letter store from its own threads.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <slack_proxy/sdk/message.h>

namespace slack_proxy {

// The lane a message waits in: "pipeline/workspace:channel" (workspace
// empty for the pipeline's default one). Per-channel order is kept within a
// lane. Pipeline names cannot hold '/', and ':' and '%' in a workspace name
// are escaped, so the parts read back exactly: the pipeline is what comes
// before the first '/', the scope (pipeline/workspace, what a workspace
// pause or limiter covers) what comes before the first ':', the channel
// everything after it.
std::string lane_key(const sdk::Message& m);
std::string_view pipeline_of_lane(std::string_view lane);
std::string_view scope_of_lane(std::string_view lane);
std::string_view channel_of_lane(std::string_view lane);
// The workspace as the message named it (lane_key() escapes ':' and '%').
std::string workspace_of_lane(std::string_view lane);

// A stored message and its place in the queue.
struct Queued {
  std::uint64_t seq = 0;  // from 1, rising in push order; unique within the store
  sdk::Message message;
};

// Part of the stored backlog: a lane, its first message and how many.
struct LaneBacklog {
  std::string lane;
  std::uint64_t first_seq = 0;
  std::size_t count = 0;
  // The lane's last sequence when it was named (take_over() sets it; 0:
  // covered by backlog_upto()).
  std::uint64_t last_seq = 0;
};

// Why a message left the queue without being delivered.
enum class DeadLetterKind {
  Failed,        // permanent error, or retries/age exhausted
  NotProcessed,  // a guard refused it (deny-listed channel); never sent
};
const char* to_string(DeadLetterKind kind);  // "failed", "not_processed"
std::optional<DeadLetterKind> dead_letter_kind_from(std::string_view text);

// One dead letter: the message as accepted (never its delivery token) and
// what became of it. `message.attempts` and `message.last_attempt_at` are
// the last values the dispatcher saw.
struct DeadLetter {
  sdk::Message message;
  DeadLetterKind kind = DeadLetterKind::Failed;
  std::string error;     // last error code, e.g. "channel_not_found"
  std::string reason;    // human text, e.g. "permanent error" or the guard's reason
  int http_status = 0;   // of the last attempt; 0 if none or no reply
  sdk::WallTime dead_at{};
};

// Empty fields match everything.
struct DeadLetterFilter {
  std::string channel;  // matches the routed or the original channel, exactly
  std::string error;    // exact error code
  std::optional<DeadLetterKind> kind;
};

struct DeadLetterPage {
  std::vector<DeadLetter> items;  // oldest first
  std::string next_after;         // pass as `after` for the next page; empty at the end
};

class DeadLetterStore {
 public:
  virtual ~DeadLetterStore() = default;

  // Up to `limit` records matching `filter`, oldest first, starting after
  // the record with id `after` (empty: from the start).
  virtual DeadLetterPage list(const DeadLetterFilter& filter, const std::string& after,
                              std::size_t limit) = 0;
  virtual std::optional<DeadLetter> get(const std::string& id) = 0;
  virtual std::size_t count() = 0;

  // Deletes for good; returns how many were deleted.
  virtual bool remove(const std::string& id) = 0;
  virtual std::size_t remove_matching(const DeadLetterFilter& filter) = 0;

  // Moves dead letters back into the queue (in the same transaction for a
  // durable backend), with attempts reset and the attribute
  // sdk::kReplayedAttribute set. They keep their id and their place behind
  // what is already queued. Capacity limits apply: replay_matching stops at
  // the first message that does not fit and reports how many moved.
  // TokenUnavailable: the message needs a caller's token that can no longer
  // be opened (sealed under another key); it stays a dead letter.
  enum class ReplayStatus { Replayed, NotFound, Full, Unavailable, TokenUnavailable };
  virtual ReplayStatus replay(const std::string& id) = 0;
  struct ReplayCount {
    std::size_t replayed = 0;
    std::size_t left = 0;  // matched but not replayed (queue full, unavailable, no token)
  };
  virtual ReplayCount replay_matching(const DeadLetterFilter& filter) = 0;
};

struct QueueLimits {
  std::size_t max_messages = 10'000;        // stored
  std::size_t max_bytes = 64 * 1024 * 1024; // sum of payload sizes, stored
  // How long a dedup key is remembered; zero turns deduplication off.
  std::chrono::milliseconds dedup_window{std::chrono::minutes(10)};
};

class Queue {
 public:
  enum class PushStatus {
    Accepted,     // stored (durably, for a durable backend)
    Duplicate,    // the dedup key was seen within the window; not stored again
    Full,         // over max_messages or max_bytes
    Unavailable,  // the store cannot take writes (disk full, I/O error, closed)
  };
  struct PushResult {
    PushStatus status = PushStatus::Accepted;
    std::string detail;  // for Full/Unavailable: which limit, or the storage error
  };
  struct PushOptions {
    // Empty: no deduplication. Otherwise an opaque key, already scoped by
    // the caller (pipeline, workspace, client) and bounded in size.
    std::string dedup_key;
  };

  virtual ~Queue() = default;

  virtual PushResult push(sdk::Message message, const PushOptions& options) = 0;
  PushResult push(sdk::Message message) { return push(std::move(message), PushOptions{}); }

  // What push_async() reports: called exactly once, with what push() would
  // have returned, and never under the queue's lock. It must be quick and
  // must not throw or block (the ingress posts the reply to the
  // connection's event thread from it); it may call the queue's
  // non-blocking methods (size(), push_async()), never push(), which on the
  // writer thread would wait for itself.
  using PushDone = std::function<void(PushResult)>;

  // push() without waiting, for an event-driven caller that must not park a
  // thread until a group commit: `done` runs once the message is as durable
  // as push() promises, either on the calling thread before push_async
  // returns (a refusal, or a backend that stores at once) or later on the
  // backend's writer thread. A repeat of a dedup key whose first copy is
  // not stored yet is answered once that copy's fate is known. close()
  // returns only after every push handed over before it has had its `done`.
  // This default runs push() and then `done`.
  virtual void push_async(sdk::Message message, const PushOptions& options, PushDone done);

  // Up to `max` messages pushed (or replayed) since the last call, in push
  // order, without blocking: the dispatcher learns from them which lanes
  // grew. It may keep or drop each one; the message stays stored until
  // ack() or dead_letter().
  virtual std::vector<Queued> take(std::size_t max) = 0;

  // The lanes of the messages that were stored when the queue was opened
  // (and are still stored), each with its first sequence number and count,
  // ordered by first_seq. take() never announces these. Throws QueueError
  // when the store cannot be read; the caller asks again later.
  virtual std::vector<LaneBacklog> backlog() = 0;

  // Up to `max` stored messages of `lane` with after < seq <= upto, in
  // sequence order: how the dispatcher pages a lane in. `upto` is the
  // highest sequence the caller has seen (from take() or backlog()), so a
  // page never holds a message take() has yet to announce. A durable
  // backend reads its store here (SQLite: an indexed read on a connection
  // of its own, never waiting for a commit). A row that cannot be decoded
  // is skipped (and logged) without using up the page, so a page shorter
  // than `max` means nothing more is readable up to `upto`. A failed read
  // (I/O error, busy timeout) throws QueueError instead: it must not look
  // like the end of the lane, or newer messages would overtake the rest.
  virtual std::vector<Queued> read_lane(const std::string& lane, std::uint64_t after,
                                        std::uint64_t upto, std::size_t max) = 0;

  // Stored messages of `lane`, whoever has seen them. For tests and tools:
  // it may read the store, and throws QueueError when that read fails.
  virtual std::size_t lane_size(const std::string& lane) = 0;

  // A shared backend (Redis): lanes this replica became responsible for
  // since the last call, because the replica that delivered them died or
  // let them go. The dispatcher adopts them like the stored backlog, before
  // the arrivals that follow them: take() stops at a take-over that is
  // still to be collected here (and wakes the consumer again). Empty for a
  // backend that only one process uses.
  virtual std::vector<LaneBacklog> take_over() { return {}; }

  // Whether this process still delivers `lane`. False only on a shared
  // backend, once another replica took the lane over (this one was taken
  // for dead): read_lane() then reads nothing, and the caller forgets the
  // lane instead of reporting unreadable messages. May ask the store.
  virtual bool holds(const std::string& lane) {
    (void)lane;
    return true;
  }

  // The highest sequence number that backlog() covers (0 when none).
  virtual std::uint64_t backlog_upto() const = 0;

  // ack() and dead_letter() apply to stored messages the caller got from
  // take() or read_lane().
  //
  // Delivered (or otherwise finished without a record): it leaves the queue
  // for good. May be made durable lazily: after a crash an acked message can
  // be delivered once more, never lost.
  virtual void ack(const Queued& done) = 0;

  // Moves stored message `seq` to the dead-letter store; `letter.message` is
  // the dispatcher's copy (attempts, last attempt). Its delivery token is
  // kept only in memory or sealed (see token_seal.h), so a replay can still
  // deliver it, and is never shown by the dead-letter store's readers.
  virtual void dead_letter(std::uint64_t seq, DeadLetter letter) = 0;

  // Stored (announced or not, read or not), until their outcome is recorded.
  virtual std::size_t size() const = 0;
  virtual std::size_t bytes() const = 0;
  virtual QueueLimits limits() const = 0;

  // Messages found in the store when it was opened (0 for memory): what
  // backlog() covers, counted once at open.
  virtual std::size_t recovered() const { return 0; }

  virtual DeadLetterStore& dead_letters() = 0;

  // Called after messages become available to take() (or to read_lane()),
  // so the consumer can
  // wake up instead of polling: from the pushing thread (memory) or the
  // backend's writer thread (SQLite), possibly after push() returned. Set
  // once, before use.
  virtual void on_push(std::function<void()> listener) = 0;

  // Makes every recorded outcome durable and refuses further pushes
  // (Unavailable). Called once on shutdown, after the dispatcher stopped.
  virtual void close() {}
};

}  // namespace slack_proxy

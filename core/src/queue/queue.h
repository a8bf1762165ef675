// The message queue between ingress and dispatcher, and the dead-letter
// store beside it.
//
// Contract every backend keeps (memory, SQLite; Redis later). The shared
// contract test suite (tests/unit/queue_contract_test.cc) checks each point
// against every backend:
//   - push() checks both capacity limits and stores atomically: two racing
//     pushes can never both take the last slot. It returns only when the
//     message is as durable as the backend promises (SQLite: committed, and
//     fsynced when sync = "full"), so the ingress answers 200 only then.
//   - take() hands out messages in push order, and a message stays counted
//     in size()/bytes() (it is "leased") until ack() or dead_letter()
//     records its outcome. A durable backend hands leased messages out again
//     after a restart: delivery is at-least-once.
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
  std::size_t max_messages = 10'000;        // queued + leased
  std::size_t max_bytes = 64 * 1024 * 1024; // sum of payload sizes, queued + leased
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

  // Up to `max` messages in push order, without blocking. They stay leased
  // until ack() or dead_letter().
  virtual std::vector<sdk::Message> take(std::size_t max) = 0;

  // ack() and dead_letter() apply to messages handed out by take().
  //
  // Delivered (or otherwise finished without a record): it leaves the queue
  // for good. May be made durable lazily: after a crash an acked message can
  // be delivered once more, never lost.
  virtual void ack(const std::string& id) = 0;

  // Moves a leased message to the dead-letter store; `letter.message` is the
  // dispatcher's copy (attempts, last attempt). Its delivery token is kept
  // only in memory or sealed (see token_seal.h), so a replay can still
  // deliver it, and is never shown by the dead-letter store's readers.
  virtual void dead_letter(DeadLetter letter) = 0;

  // Queued + leased.
  virtual std::size_t size() const = 0;
  virtual std::size_t bytes() const = 0;
  virtual QueueLimits limits() const = 0;

  // Messages found in the store when it was opened (0 for memory).
  virtual std::size_t recovered() const { return 0; }

  virtual DeadLetterStore& dead_letters() = 0;

  // Called after messages become available to take(), so the consumer can
  // wake up instead of polling: from the pushing thread (memory) or the
  // backend's writer thread (SQLite), possibly after push() returned. Set
  // once, before use.
  virtual void on_push(std::function<void()> listener) = 0;

  // Makes every recorded outcome durable and refuses further pushes
  // (Unavailable). Called once on shutdown, after the dispatcher stopped.
  virtual void close() {}
};

}  // namespace slack_proxy

#include "admin_api.h"

#include <chrono>
#include <cstdint>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include <Poco/JSON/Array.h>
#include <Poco/JSON/Object.h>
#include <Poco/JSON/Parser.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <spdlog/logger.h>
#include <spdlog/sinks/ostream_sink.h>

#include <slack_proxy/sdk/testing/fakes.h>

#include "queue/memory_queue.h"
#include "queue/sqlite_queue.h"
#include "queue_test_support.h"

namespace slack_proxy {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Not;
using ::testing::UnorderedElementsAre;
using Poco::JSON::Array;
using Poco::JSON::Object;
using namespace std::chrono_literals;

constexpr const char* kToken = "xoxp-1111-2222-SECRET-caller-token";

// What the dispatcher would record for one message; built with letter(id).
struct Burial {
  std::string id;
  std::string channel = "#alerts";
  std::string original_channel;  // empty: same as channel
  std::string error = "channel_not_found";
  DeadLetterKind kind = DeadLetterKind::Failed;
  std::string payload;  // empty: a small body naming the channel
  std::uint32_t attempts = 1;

  Burial& in(std::string c) { channel = std::move(c); return *this; }
  Burial& asked_for(std::string c) { original_channel = std::move(c); return *this; }
  Burial& failing_with(std::string e) { error = std::move(e); return *this; }
  Burial& with_payload(std::string p) { payload = std::move(p); return *this; }
  Burial& after_attempts(std::uint32_t n) { attempts = n; return *this; }
  // Refused by a guard before any attempt, as the deny-list does.
  Burial& denied() {
    kind = DeadLetterKind::NotProcessed;
    attempts = 0;
    return *this;
  }
};

Burial letter(std::string id) {
  Burial b;
  b.id = std::move(id);
  return b;
}

Object::Ptr parse(const std::string& body) {
  Poco::JSON::Parser parser;
  return parser.parse(body).extract<Object::Ptr>();
}

std::vector<std::string> ids_of(const Object::Ptr& reply) {
  std::vector<std::string> out;
  const Array::Ptr items = reply->getArray("dead_letters");
  for (std::size_t i = 0; i < items->size(); ++i)
    out.push_back(items->getObject(static_cast<unsigned>(i))->getValue<std::string>("id"));
  return out;
}

std::string header(const HttpReply& reply, const std::string& name) {
  for (const auto& [k, v] : reply.headers)
    if (k == name) return v;
  return {};
}

// A real MemoryQueue on a FakeClock, filled the way the dispatcher fills it
// (push, take, dead_letter), with every reply body kept for the token check.
struct Harness {
  explicit Harness(QueueLimits limits = {}) : queue(limits, clock) {}

  // Pushes, takes and dead-letters one message. The clock moves 1 s between
  // acceptance, the last attempt and the burial, so the three times differ.
  void bury(const Burial& b) {
    sdk::Message m;
    m.id = b.id;
    m.pipeline = "slack";
    m.channel = b.channel;
    m.original_channel = b.original_channel.empty() ? b.channel : b.original_channel;
    m.workspace = "T-workspace";
    m.caller = "alertmanager";
    m.payload = b.payload.empty() ? R"({"channel":")" + b.channel + R"(","text":"disk full"})"
                                  : b.payload;
    m.content_type = "application/json";
    m.delivery_token = kToken;
    m.received_at = clock.wall_now();
    m.enqueued_at = clock.now();
    ASSERT_EQ(queue.push(m).status, Queue::PushStatus::Accepted);
    auto taken = queue.take(1);
    ASSERT_EQ(taken.size(), 1u);
    ASSERT_EQ(taken[0].message.id, b.id);
    DeadLetter dead;
    dead.message = taken[0].message;
    dead.message.attempts = b.attempts;
    if (b.attempts > 0) {
      clock.advance(1s);
      dead.message.last_attempt_at = clock.wall_now();
    }
    dead.kind = b.kind;
    dead.error = b.error;
    dead.reason = b.kind == DeadLetterKind::Failed ? "permanent error" : "channel is deny-listed";
    dead.http_status = b.attempts > 0 ? 200 : 0;
    clock.advance(1s);
    dead.dead_at = clock.wall_now();
    queue.dead_letter(taken[0].seq, std::move(dead));
  }

  HttpReply call(const std::string& method, const std::string& uri) {
    HttpReply reply = api.handle(method, uri);
    bodies.push_back(reply.body);
    return reply;
  }

  // The reply's JSON, after checking its status and content type.
  Object::Ptr expect(int status, const std::string& method, const std::string& uri) {
    const HttpReply reply = call(method, uri);
    EXPECT_EQ(reply.status, status) << method << " " << uri << ": " << reply.body;
    EXPECT_EQ(reply.content_type, "application/json; charset=utf-8");
    return parse(reply.body);
  }

  std::string error_of(int status, const std::string& method, const std::string& uri) {
    const Object::Ptr reply = expect(status, method, uri);
    EXPECT_FALSE(reply->getValue<bool>("ok"));
    return reply->getValue<std::string>("error");
  }

  sdk::testing::FakeClock clock;
  std::ostringstream log_text;
  std::shared_ptr<spdlog::logger> log = std::make_shared<spdlog::logger>(
      "admin", std::make_shared<spdlog::sinks::ostream_sink_mt>(log_text));
  MemoryQueue queue;
  AdminApi api{queue, log};
  std::vector<std::string> bodies;
};

// Every call throws as a broken SQLite store would.
class ThrowingQueue final : public Queue, private DeadLetterStore {
 public:
  static constexpr const char* kWhy = "disk I/O error on /var/lib/slack-proxy/queue.db";

  using Queue::push;
  PushResult push(sdk::Message, const PushOptions&) override { throw QueueError(kWhy); }
  std::vector<Queued> take(std::size_t) override { throw QueueError(kWhy); }
  std::vector<LaneBacklog> backlog() override { throw QueueError(kWhy); }
  std::vector<Queued> read_lane(const std::string&, std::uint64_t, std::uint64_t,
                                std::size_t) override {
    throw QueueError(kWhy);
  }
  std::size_t lane_size(const std::string&) override { throw QueueError(kWhy); }
  std::uint64_t backlog_upto() const override { throw QueueError(kWhy); }
  void ack(const Queued&) override { throw QueueError(kWhy); }
  void dead_letter(std::uint64_t, DeadLetter) override { throw QueueError(kWhy); }
  std::size_t size() const override { throw QueueError(kWhy); }
  std::size_t bytes() const override { throw QueueError(kWhy); }
  QueueLimits limits() const override { throw QueueError(kWhy); }
  DeadLetterStore& dead_letters() override { return *this; }
  void on_push(std::function<void()>) override {}

 private:
  DeadLetterPage list(const DeadLetterFilter&, const std::string&, std::size_t) override {
    throw QueueError(kWhy);
  }
  std::optional<DeadLetter> get(const std::string&) override { throw QueueError(kWhy); }
  std::size_t count() override { throw QueueError(kWhy); }
  bool remove(const std::string&) override { throw QueueError(kWhy); }
  std::size_t remove_matching(const DeadLetterFilter&) override { throw QueueError(kWhy); }
  ReplayStatus replay(const std::string&) override { throw QueueError(kWhy); }
  ReplayCount replay_matching(const DeadLetterFilter&) override { throw QueueError(kWhy); }
};

// A store whose replays answer what the test says: for outcomes the memory
// backend cannot produce (it keeps tokens in memory, so never loses one).
class ScriptedReplayQueue final : public test_support::EmptyQueue, private DeadLetterStore {
 public:
  ReplayStatus replay_status = ReplayStatus::Replayed;
  ReplayCount replay_count;

  DeadLetterStore& dead_letters() override { return *this; }

 private:
  DeadLetterPage list(const DeadLetterFilter&, const std::string&, std::size_t) override {
    return {};
  }
  std::optional<DeadLetter> get(const std::string&) override { return std::nullopt; }
  std::size_t count() override { return 0; }
  bool remove(const std::string&) override { return false; }
  std::size_t remove_matching(const DeadLetterFilter&) override { return 0; }
  ReplayStatus replay(const std::string&) override { return replay_status; }
  ReplayCount replay_matching(const DeadLetterFilter&) override { return replay_count; }
};

TEST(AdminApi, HandlesOnlyPathsUnderAdmin) {
  EXPECT_TRUE(AdminApi::handles("/admin/dead-letters"));
  EXPECT_TRUE(AdminApi::handles("/admin/queue"));
  EXPECT_FALSE(AdminApi::handles("/admin"));
  EXPECT_FALSE(AdminApi::handles("/metrics"));
  EXPECT_FALSE(AdminApi::handles("/administrator/queue"));
}

TEST(AdminApi, ListReturnsEveryFieldOldestFirstWithoutPayload) {
  Harness h;
  h.bury(letter("0a1b2c3d4e5f6a7b-1").in("#ops").asked_for("#alerts"));
  h.bury(letter("0a1b2c3d4e5f6a7b-2").denied());

  const Object::Ptr reply = h.expect(200, "GET", "/admin/dead-letters");

  EXPECT_TRUE(reply->getValue<bool>("ok"));
  EXPECT_EQ(reply->getValue<int>("total"), 2);
  EXPECT_FALSE(reply->has("next_after"));
  EXPECT_THAT(ids_of(reply), ElementsAre("0a1b2c3d4e5f6a7b-1", "0a1b2c3d4e5f6a7b-2"));
  const Object::Ptr first = reply->getArray("dead_letters")->getObject(0);
  std::vector<std::string> names;
  first->getNames(names);
  EXPECT_THAT(names, UnorderedElementsAre("id", "pipeline", "channel", "original_channel",
                                          "workspace", "caller", "kind", "error", "reason",
                                          "http_status", "attempts", "received_at",
                                          "last_attempt_at", "dead_at"));
  EXPECT_EQ(first->getValue<std::string>("pipeline"), "slack");
  EXPECT_EQ(first->getValue<std::string>("channel"), "#ops");
  EXPECT_EQ(first->getValue<std::string>("original_channel"), "#alerts");
  EXPECT_EQ(first->getValue<std::string>("workspace"), "T-workspace");
  EXPECT_EQ(first->getValue<std::string>("caller"), "alertmanager");
  EXPECT_EQ(first->getValue<std::string>("kind"), "failed");
  EXPECT_EQ(first->getValue<std::string>("error"), "channel_not_found");
  EXPECT_EQ(first->getValue<std::string>("reason"), "permanent error");
  EXPECT_EQ(first->getValue<int>("http_status"), 200);
  EXPECT_EQ(first->getValue<int>("attempts"), 1);
  const Object::Ptr second = reply->getArray("dead_letters")->getObject(1);
  EXPECT_EQ(second->getValue<std::string>("kind"), "not_processed");
  EXPECT_EQ(second->getValue<int>("attempts"), 0);
}

TEST(AdminApi, TimesAreRfc3339UtcWithMillisecondsAndNullWhenNever) {
  Harness h;
  h.clock.advance(123ms);  // the FakeClock's wall time starts at 2023-11-14T22:13:20Z
  h.bury(letter("a-1"));
  h.bury(letter("a-2").denied());

  const Object::Ptr reply = h.expect(200, "GET", "/admin/dead-letters");

  const Object::Ptr tried = reply->getArray("dead_letters")->getObject(0);
  EXPECT_EQ(tried->getValue<std::string>("received_at"), "2023-11-14T22:13:20.123Z");
  EXPECT_EQ(tried->getValue<std::string>("last_attempt_at"), "2023-11-14T22:13:21.123Z");
  EXPECT_EQ(tried->getValue<std::string>("dead_at"), "2023-11-14T22:13:22.123Z");
  const Object::Ptr never_tried = reply->getArray("dead_letters")->getObject(1);
  EXPECT_TRUE(never_tried->isNull("last_attempt_at"));
  EXPECT_EQ(never_tried->getValue<std::string>("dead_at"), "2023-11-14T22:13:23.123Z");
}

TEST(AdminApi, ListPagesWithLimitAfterAndNextAfter) {
  Harness h;
  for (const char* id : {"p-1", "p-2", "p-3", "p-4", "p-5"}) h.bury(letter(id));

  Object::Ptr page = h.expect(200, "GET", "/admin/dead-letters?limit=2");
  EXPECT_THAT(ids_of(page), ElementsAre("p-1", "p-2"));
  EXPECT_EQ(page->getValue<std::string>("next_after"), "p-2");
  EXPECT_EQ(page->getValue<int>("total"), 5);

  page = h.expect(200, "GET", "/admin/dead-letters?limit=2&after=p-2");
  EXPECT_THAT(ids_of(page), ElementsAre("p-3", "p-4"));
  EXPECT_EQ(page->getValue<std::string>("next_after"), "p-4");

  page = h.expect(200, "GET", "/admin/dead-letters?after=p%2D4&limit=2");  // %-encoded id
  EXPECT_THAT(ids_of(page), ElementsAre("p-5"));
  EXPECT_FALSE(page->has("next_after"));
}

TEST(AdminApi, ListShowsFiftyByDefault) {
  Harness h;
  for (int i = 1; i <= 51; ++i) h.bury(letter("d-" + std::to_string(i)));

  const Object::Ptr page = h.expect(200, "GET", "/admin/dead-letters");

  EXPECT_EQ(page->getArray("dead_letters")->size(), 50u);
  EXPECT_EQ(page->getValue<std::string>("next_after"), "d-50");
  EXPECT_EQ(page->getValue<int>("total"), 51);
}

TEST(AdminApi, ListAcceptsLimitsFromOneToAThousand) {
  Harness h;
  h.bury(letter("l-1"));
  h.bury(letter("l-2"));

  EXPECT_THAT(ids_of(h.expect(200, "GET", "/admin/dead-letters?limit=1")), ElementsAre("l-1"));
  EXPECT_THAT(ids_of(h.expect(200, "GET", "/admin/dead-letters?limit=1000")),
              ElementsAre("l-1", "l-2"));
}

TEST(AdminApi, ListRefusesLimitOutsideOneToAThousandWithInvalidLimit) {
  Harness h;
  for (const char* limit : {"0", "1001", "-1", "+5", "abc", "10x", "", "99999999999999999999"})
    EXPECT_EQ(h.error_of(400, "GET", std::string("/admin/dead-letters?limit=") + limit),
              "invalid_limit")
        << "limit=" << limit;
}

TEST(AdminApi, ListFiltersByChannelErrorAndKind) {
  Harness h;
  h.bury(letter("f-1").in("#ops"));
  h.bury(letter("f-2").in("#routed").asked_for("#ops"));
  h.bury(letter("f-3").in("#dev").failing_with("invalid_auth"));
  h.bury(letter("f-4").in("#ops").denied());

  // '#' must travel as %23: a raw '#' starts a fragment that clients drop.
  EXPECT_THAT(ids_of(h.expect(200, "GET", "/admin/dead-letters?channel=%23ops")),
              ElementsAre("f-1", "f-2", "f-4"));
  EXPECT_THAT(ids_of(h.expect(200, "GET", "/admin/dead-letters?error=invalid_auth")),
              ElementsAre("f-3"));
  EXPECT_THAT(ids_of(h.expect(200, "GET", "/admin/dead-letters?kind=not_processed")),
              ElementsAre("f-4"));
  EXPECT_THAT(
      ids_of(h.expect(200, "GET", "/admin/dead-letters?channel=%23ops&kind=failed&error=channel_not_found")),
      ElementsAre("f-1", "f-2"));
  const Object::Ptr none = h.expect(200, "GET", "/admin/dead-letters?channel=%23nobody");
  EXPECT_EQ(none->getArray("dead_letters")->size(), 0u);
  EXPECT_EQ(none->getValue<int>("total"), 4);  // every record stored, not the matches
}

TEST(AdminApi, UnknownKindIsInvalidKind) {
  Harness h;
  EXPECT_EQ(h.error_of(400, "GET", "/admin/dead-letters?kind=dropped"), "invalid_kind");
  EXPECT_EQ(h.error_of(400, "POST", "/admin/dead-letters/replay?kind=Failed"), "invalid_kind");
  EXPECT_EQ(h.error_of(400, "DELETE", "/admin/dead-letters?kind=x"), "invalid_kind");
}

TEST(AdminApi, UnknownQueryParameterIsInvalidArgumentsNamingIt) {
  Harness h;
  h.bury(letter("q-1"));
  struct Case {
    const char* method;
    const char* uri;
    const char* name;
  };
  for (const Case& c : {Case{"GET", "/admin/dead-letters?chanel=%23ops", "'chanel'"},
                        Case{"GET", "/admin/dead-letters?all=true", "'all'"},
                        Case{"DELETE", "/admin/dead-letters?channel=x&limit=5", "'limit'"},
                        Case{"POST", "/admin/dead-letters/replay?after=q-1&all=true", "'after'"},
                        Case{"GET", "/admin/dead-letters/q-1?verbose=1", "'verbose'"},
                        Case{"POST", "/admin/dead-letters/q-1/replay?force", "'force'"},
                        Case{"DELETE", "/admin/dead-letters/q-1?x=1", "'x'"},
                        Case{"GET", "/admin/queue?pretty=1", "'pretty'"}}) {
    const Object::Ptr reply = h.expect(400, c.method, c.uri);
    EXPECT_EQ(reply->getValue<std::string>("error"), "invalid_arguments") << c.uri;
    EXPECT_THAT(reply->getValue<std::string>("detail"), HasSubstr(c.name)) << c.uri;
  }
  EXPECT_EQ(h.queue.dead_letters().count(), 1u);  // nothing was touched
}

TEST(AdminApi, RepeatedOrMalformedQueryIsInvalidArguments) {
  Harness h;
  h.bury(letter("r-1"));
  const Object::Ptr twice = h.expect(400, "DELETE", "/admin/dead-letters?channel=a&channel=%23alerts");
  EXPECT_EQ(twice->getValue<std::string>("error"), "invalid_arguments");
  EXPECT_THAT(twice->getValue<std::string>("detail"), HasSubstr("'channel'"));
  EXPECT_EQ(h.error_of(400, "GET", "/admin/dead-letters?channel=%2"), "invalid_arguments");
  EXPECT_EQ(h.error_of(400, "GET", "/admin/dead-letters?channel=%zzops"), "invalid_arguments");
  EXPECT_EQ(h.error_of(400, "GET", "/admin/dead-letters/r%G1"), "invalid_arguments");
  EXPECT_EQ(h.queue.dead_letters().count(), 1u);
}

TEST(AdminApi, ShowReturnsTheRecordWithThePayloadAsAString) {
  Harness h;
  const std::string body = R"({"channel":"#ops","text":"disk \"full\"\n\u00e9 ✓","unfurl_links":false})";
  h.bury(letter("0a1b2c3d4e5f6a7b-12").in("#ops").with_payload(body));

  const Object::Ptr reply = h.expect(200, "GET", "/admin/dead-letters/0a1b2c3d4e5f6a7b-12");

  EXPECT_TRUE(reply->getValue<bool>("ok"));
  const Object::Ptr record = reply->getObject("dead_letter");
  EXPECT_EQ(record->getValue<std::string>("id"), "0a1b2c3d4e5f6a7b-12");
  EXPECT_EQ(record->getValue<std::string>("channel"), "#ops");
  EXPECT_EQ(record->getValue<std::string>("error"), "channel_not_found");
  EXPECT_EQ(record->getValue<std::string>("payload"), body);
  // The same id, %-encoded, names the same record.
  EXPECT_EQ(h.expect(200, "GET", "/admin/dead-letters/0a1b2c3d4e5f6a7b%2D12")
                ->getObject("dead_letter")
                ->getValue<std::string>("payload"),
            body);
}

TEST(AdminApi, PayloadAppearsOnlyWhenShowingOneRecord) {
  Harness h;
  h.bury(letter("s-1").with_payload(R"({"channel":"#alerts","text":"needle-in-the-payload"})"));

  EXPECT_THAT(h.call("GET", "/admin/dead-letters").body, Not(HasSubstr("needle-in-the-payload")));
  EXPECT_THAT(h.call("GET", "/admin/dead-letters").body, Not(HasSubstr("\"payload\"")));
  EXPECT_THAT(h.call("GET", "/admin/dead-letters/s-1").body, HasSubstr("needle-in-the-payload"));
}

TEST(AdminApi, ShowUnknownIdIsNotFound) {
  Harness h;
  h.bury(letter("n-1"));
  EXPECT_EQ(h.error_of(404, "GET", "/admin/dead-letters/n-2"), "not_found");
}

TEST(AdminApi, ReplayOneMovesTheMessageBackIntoTheQueue) {
  Harness h;
  h.bury(letter("m-1").after_attempts(3));
  h.bury(letter("m-2"));
  ASSERT_EQ(h.queue.size(), 0u);

  const Object::Ptr reply = h.expect(200, "POST", "/admin/dead-letters/m-1/replay");

  EXPECT_TRUE(reply->getValue<bool>("ok"));
  EXPECT_EQ(reply->getValue<int>("replayed"), 1);
  EXPECT_EQ(h.queue.size(), 1u);
  EXPECT_EQ(h.queue.dead_letters().count(), 1u);
  const auto taken = h.queue.take(10);
  ASSERT_EQ(taken.size(), 1u);
  EXPECT_EQ(taken[0].message.id, "m-1");
  EXPECT_EQ(taken[0].message.attempts, 0u);
  EXPECT_EQ(taken[0].message.attributes.at(sdk::kReplayedAttribute), "true");
  EXPECT_EQ(taken[0].message.delivery_token, kToken);  // it can still be delivered as its caller
  EXPECT_EQ(h.error_of(404, "GET", "/admin/dead-letters/m-1"), "not_found");
  EXPECT_THAT(h.log_text.str(), HasSubstr("admin: replayed dead letter m-1"));
}

TEST(AdminApi, ReplayOneUnknownIdIsNotFound) {
  Harness h;
  EXPECT_EQ(h.error_of(404, "POST", "/admin/dead-letters/x-1/replay"), "not_found");
  EXPECT_EQ(h.queue.size(), 0u);
}

TEST(AdminApi, ReplayOneIntoAFullQueueIsQueueFullWithRetryAfter) {
  QueueLimits limits;
  limits.max_messages = 1;
  Harness h(limits);
  h.bury(letter("full-1"));
  sdk::Message waiting;
  waiting.id = "waiting";
  ASSERT_EQ(h.queue.push(waiting).status, Queue::PushStatus::Accepted);

  const HttpReply reply = h.call("POST", "/admin/dead-letters/full-1/replay");

  EXPECT_EQ(reply.status, 503);
  EXPECT_EQ(parse(reply.body)->getValue<std::string>("error"), "queue_full");
  EXPECT_EQ(header(reply, "Retry-After"), "5");
  EXPECT_EQ(h.queue.size(), 1u);
  EXPECT_EQ(h.queue.dead_letters().count(), 1u);  // still there, to try again
}

TEST(AdminApi, ReplayOneIntoAClosedQueueIsQueueUnavailableWithRetryAfter) {
  Harness h;
  h.bury(letter("closed-1"));
  h.queue.close();

  const HttpReply reply = h.call("POST", "/admin/dead-letters/closed-1/replay");

  EXPECT_EQ(reply.status, 503);
  EXPECT_EQ(parse(reply.body)->getValue<std::string>("error"), "queue_unavailable");
  EXPECT_EQ(header(reply, "Retry-After"), "5");
  EXPECT_EQ(h.queue.dead_letters().count(), 1u);
}

TEST(AdminApi, ReplayOneWhoseCallerTokenCannotBeOpenedIsTokenUnavailableWithoutRetryAfter) {
  ScriptedReplayQueue queue;
  queue.replay_status = DeadLetterStore::ReplayStatus::TokenUnavailable;
  std::ostringstream log_text;
  AdminApi api(queue, std::make_shared<spdlog::logger>(
                          "admin", std::make_shared<spdlog::sinks::ostream_sink_mt>(log_text)));

  const HttpReply reply = api.handle("POST", "/admin/dead-letters/sealed-1/replay");

  EXPECT_EQ(reply.status, 409);
  EXPECT_EQ(parse(reply.body)->getValue<std::string>("error"), "token_unavailable");
  EXPECT_EQ(header(reply, "Retry-After"), "");  // trying again cannot help
  EXPECT_THAT(log_text.str(), HasSubstr("dead letter sealed-1 not replayed"));
}

TEST(AdminApi, ReplayMatchingReportsWhatTheStoreLeft) {
  ScriptedReplayQueue queue;
  queue.replay_count = {.replayed = 4, .left = 2};
  std::ostringstream log_text;
  AdminApi api(queue, std::make_shared<spdlog::logger>(
                          "admin", std::make_shared<spdlog::sinks::ostream_sink_mt>(log_text)));

  const HttpReply reply = api.handle("POST", "/admin/dead-letters/replay?error=token_unavailable");

  EXPECT_EQ(reply.status, 200);
  EXPECT_EQ(parse(reply.body)->getValue<int>("replayed"), 4);
  EXPECT_EQ(parse(reply.body)->getValue<int>("left"), 2);
  EXPECT_THAT(log_text.str(),
              HasSubstr("admin: replayed 4 dead letter(s) (error=token_unavailable); 2 left"));
}

TEST(AdminApi, ReplayMatchingMovesOnlyTheMatchesAndLogsTheCount) {
  Harness h;
  h.bury(letter("b-1").in("#x"));
  h.bury(letter("b-2").in("#y"));
  h.bury(letter("b-3").in("#x"));

  const Object::Ptr reply = h.expect(200, "POST", "/admin/dead-letters/replay?channel=%23x");

  EXPECT_EQ(reply->getValue<int>("replayed"), 2);
  EXPECT_EQ(reply->getValue<int>("left"), 0);
  EXPECT_EQ(h.queue.size(), 2u);
  std::vector<std::string> taken;
  for (const auto& m : h.queue.take(10)) taken.push_back(m.message.id);
  EXPECT_THAT(taken, ElementsAre("b-1", "b-3"));
  EXPECT_THAT(ids_of(h.expect(200, "GET", "/admin/dead-letters")), ElementsAre("b-2"));
  EXPECT_THAT(h.log_text.str(), HasSubstr("admin: replayed 2 dead letter(s) (channel=#x)"));
}

TEST(AdminApi, ReplayMatchingStopsWhenTheQueueIsFullAndReportsWhatIsLeft) {
  QueueLimits limits;
  limits.max_messages = 2;
  Harness h(limits);
  for (const char* id : {"c-1", "c-2", "c-3"}) h.bury(letter(id).failing_with("invalid_auth"));

  const Object::Ptr reply =
      h.expect(200, "POST", "/admin/dead-letters/replay?error=invalid_auth");

  EXPECT_EQ(reply->getValue<int>("replayed"), 2);
  EXPECT_EQ(reply->getValue<int>("left"), 1);
  EXPECT_EQ(h.queue.size(), 2u);
  EXPECT_THAT(ids_of(h.expect(200, "GET", "/admin/dead-letters")), ElementsAre("c-3"));
  EXPECT_THAT(h.log_text.str(),
              HasSubstr("admin: replayed 2 dead letter(s) (error=invalid_auth); 1 left"));
}

TEST(AdminApi, ReplayMatchingNeedsAFilterOrAllTrue) {
  Harness h;
  h.bury(letter("all-1").in("#x"));
  h.bury(letter("all-2").in("#y"));

  EXPECT_EQ(h.error_of(400, "POST", "/admin/dead-letters/replay"), "filter_required");
  EXPECT_EQ(h.error_of(400, "POST", "/admin/dead-letters/replay?all=false"), "filter_required");
  EXPECT_EQ(h.error_of(400, "POST", "/admin/dead-letters/replay?channel="), "filter_required");
  EXPECT_EQ(h.error_of(400, "POST", "/admin/dead-letters/replay?all=yes"), "invalid_arguments");
  EXPECT_EQ(h.error_of(400, "POST", "/admin/dead-letters/replay?all=true&channel=%23x"),
            "invalid_arguments");
  EXPECT_EQ(h.queue.size(), 0u);

  const Object::Ptr reply = h.expect(200, "POST", "/admin/dead-letters/replay?all=true");
  EXPECT_EQ(reply->getValue<int>("replayed"), 2);
  EXPECT_EQ(reply->getValue<int>("left"), 0);
  EXPECT_EQ(h.queue.size(), 2u);
  EXPECT_EQ(h.queue.dead_letters().count(), 0u);
  EXPECT_THAT(h.log_text.str(), HasSubstr("admin: replayed 2 dead letter(s) (all)"));
}

TEST(AdminApi, DeleteOneRemovesTheRecordForGood) {
  Harness h;
  h.bury(letter("del-1"));
  h.bury(letter("del-2"));

  const Object::Ptr reply = h.expect(200, "DELETE", "/admin/dead-letters/del-1");

  EXPECT_EQ(reply->getValue<int>("deleted"), 1);
  EXPECT_THAT(ids_of(h.expect(200, "GET", "/admin/dead-letters")), ElementsAre("del-2"));
  EXPECT_EQ(h.queue.size(), 0u);  // deleted, not replayed
  EXPECT_EQ(h.error_of(404, "DELETE", "/admin/dead-letters/del-1"), "not_found");
  EXPECT_THAT(h.log_text.str(), HasSubstr("admin: deleted dead letter del-1"));
}

TEST(AdminApi, DeleteMatchingRemovesOnlyTheMatchesAndNeedsAFilterOrAllTrue) {
  Harness h;
  h.bury(letter("dm-1").denied());
  h.bury(letter("dm-2"));
  h.bury(letter("dm-3").denied());

  EXPECT_EQ(h.error_of(400, "DELETE", "/admin/dead-letters"), "filter_required");
  EXPECT_EQ(h.queue.dead_letters().count(), 3u);

  Object::Ptr reply = h.expect(200, "DELETE", "/admin/dead-letters?kind=not_processed");
  EXPECT_EQ(reply->getValue<int>("deleted"), 2);
  EXPECT_THAT(ids_of(h.expect(200, "GET", "/admin/dead-letters")), ElementsAre("dm-2"));
  EXPECT_THAT(h.log_text.str(), HasSubstr("admin: deleted 2 dead letter(s) (kind=not_processed)"));

  reply = h.expect(200, "DELETE", "/admin/dead-letters?all=true");
  EXPECT_EQ(reply->getValue<int>("deleted"), 1);
  EXPECT_EQ(h.queue.dead_letters().count(), 0u);
  EXPECT_THAT(h.log_text.str(), HasSubstr("admin: deleted 1 dead letter(s) (all)"));
}

TEST(AdminApi, QueueReportsSizeBytesLimitsAndDeadLetters) {
  QueueLimits limits;
  limits.max_messages = 100;
  limits.max_bytes = 4096;
  Harness h(limits);
  h.bury(letter("qs-1"));
  sdk::Message waiting;
  waiting.id = "waiting";
  waiting.payload = std::string(10, 'x');
  ASSERT_EQ(h.queue.push(waiting).status, Queue::PushStatus::Accepted);
  waiting.id = "leased";
  waiting.payload = std::string(7, 'y');
  ASSERT_EQ(h.queue.push(waiting).status, Queue::PushStatus::Accepted);
  ASSERT_EQ(h.queue.take(1).size(), 1u);  // leased messages still count

  const Object::Ptr reply = h.expect(200, "GET", "/admin/queue");

  EXPECT_TRUE(reply->getValue<bool>("ok"));
  EXPECT_EQ(reply->getValue<int>("size"), 2);
  EXPECT_EQ(reply->getValue<int>("bytes"), 17);
  EXPECT_EQ(reply->getValue<int>("max_messages"), 100);
  EXPECT_EQ(reply->getValue<int>("max_bytes"), 4096);
  EXPECT_EQ(reply->getValue<int>("dead_letters"), 1);
}

TEST(AdminApi, WrongMethodOnAKnownRouteIsMethodNotAllowedWithAllow) {
  Harness h;
  h.bury(letter("w-1"));
  struct Case {
    const char* method;
    const char* uri;
    const char* allow;
  };
  for (const Case& c : {Case{"POST", "/admin/dead-letters", "GET, DELETE"},
                        Case{"PUT", "/admin/dead-letters/w-1", "GET, DELETE"},
                        Case{"POST", "/admin/dead-letters/w-1", "GET, DELETE"},
                        Case{"GET", "/admin/dead-letters/w-1/replay", "POST"},
                        Case{"DELETE", "/admin/dead-letters/replay?all=true", "POST"},
                        Case{"GET", "/admin/dead-letters/replay", "POST"},
                        Case{"DELETE", "/admin/queue", "GET"},
                        Case{"get", "/admin/queue", "GET"}}) {
    const HttpReply reply = h.call(c.method, c.uri);
    EXPECT_EQ(reply.status, 405) << c.method << " " << c.uri;
    EXPECT_EQ(parse(reply.body)->getValue<std::string>("error"), "method_not_allowed");
    EXPECT_EQ(header(reply, "Allow"), c.allow) << c.method << " " << c.uri;
  }
  EXPECT_EQ(h.queue.dead_letters().count(), 1u);  // the DELETE on replay touched nothing
}

TEST(AdminApi, UnknownAdminPathIsNotFound) {
  Harness h;
  for (const char* path : {"/admin/", "/admin/nope", "/admin/queue/", "/admin/dead-letters/",
                           "/admin/dead-letters//replay", "/admin/dead-letters/a-1/replay/x",
                           "/admin/dead-letters/a-1/retry", "/admin/dead-letterz"})
    EXPECT_EQ(h.error_of(404, "GET", path), "not_found") << path;
}

TEST(AdminApi, StoreExceptionIsQueueUnavailableLoggedButNotShown) {
  ThrowingQueue queue;
  std::ostringstream log_text;
  auto log = std::make_shared<spdlog::logger>(
      "admin", std::make_shared<spdlog::sinks::ostream_sink_mt>(log_text));
  AdminApi api(queue, log);
  struct Case {
    const char* method;
    const char* uri;
  };
  for (const Case& c : {Case{"GET", "/admin/dead-letters"},
                        Case{"GET", "/admin/dead-letters/e-1"},
                        Case{"POST", "/admin/dead-letters/e-1/replay"},
                        Case{"POST", "/admin/dead-letters/replay?all=true"},
                        Case{"DELETE", "/admin/dead-letters/e-1"},
                        Case{"DELETE", "/admin/dead-letters?channel=%23x"},
                        Case{"GET", "/admin/queue"}}) {
    HttpReply reply;
    ASSERT_NO_THROW(reply = api.handle(c.method, c.uri)) << c.method << " " << c.uri;
    EXPECT_EQ(reply.status, 503) << c.method << " " << c.uri;
    EXPECT_EQ(parse(reply.body)->getValue<std::string>("error"), "queue_unavailable");
    EXPECT_EQ(header(reply, "Retry-After"), "5");
    EXPECT_THAT(reply.body, Not(HasSubstr("disk I/O")));
    EXPECT_THAT(reply.body, Not(HasSubstr("/var/lib")));
  }
  EXPECT_THAT(log_text.str(), HasSubstr("admin: GET /admin/queue failed: " +
                                        std::string(ThrowingQueue::kWhy)));
  EXPECT_THAT(log_text.str(), HasSubstr("admin: POST /admin/dead-letters/e-1/replay failed"));
}

TEST(AdminApi, StringsAreEscapedAsValidJsonKeepingUtf8) {
  Harness h;
  Burial odd = letter("esc-1").in("#caf\xc3\xa9 \"q\" \\ \t\x01\x1f");
  odd.error = "bad\nline";
  odd.payload = "{\"text\":\"\xe2\x9c\x93\"} \xff";  // ends with a byte that is not UTF-8
  h.bury(odd);

  const HttpReply reply = h.call("GET", "/admin/dead-letters/esc-1");

  EXPECT_EQ(reply.status, 200);
  EXPECT_THAT(reply.body, HasSubstr("#caf\xc3\xa9 \\\"q\\\" \\\\ \\t\\u0001\\u001f"));  // UTF-8 kept
  EXPECT_THAT(reply.body, HasSubstr("\"bad\\nline\""));
  EXPECT_THAT(reply.body, HasSubstr("\\ufffd"));
  const Object::Ptr record = parse(reply.body)->getObject("dead_letter");
  EXPECT_EQ(record->getValue<std::string>("channel"), odd.channel);
  EXPECT_EQ(record->getValue<std::string>("error"), "bad\nline");
  EXPECT_EQ(record->getValue<std::string>("payload"), "{\"text\":\"\xe2\x9c\x93\"} \xef\xbf\xbd");
}

TEST(AdminApi, ChannelFilterValuesInTheLogStayOnOneLine) {
  Harness h;
  h.bury(letter("log-1"));
  h.expect(200, "DELETE", "/admin/dead-letters?channel=%23x%0Aforged%20line");
  EXPECT_THAT(h.log_text.str(), HasSubstr("(channel=#x?forged line)"));
}

TEST(AdminApi, DeliveryTokenNeverAppearsInAnyReplyOrLogLine) {
  QueueLimits limits;
  limits.max_messages = 3;
  Harness h(limits);
  for (const char* id : {"t-1", "t-2", "t-3", "t-4", "t-5"}) h.bury(letter(id).in("#t"));

  h.expect(200, "GET", "/admin/dead-letters");
  h.expect(200, "GET", "/admin/dead-letters?channel=%23t&kind=failed&limit=2");
  h.expect(200, "GET", "/admin/dead-letters/t-1");
  h.expect(200, "POST", "/admin/dead-letters/t-1/replay");
  h.expect(200, "POST", "/admin/dead-letters/replay?channel=%23t");  // 2 fit, 2 left
  h.expect(503, "POST", "/admin/dead-letters/t-4/replay");
  h.expect(200, "GET", "/admin/dead-letters/t-4");
  h.expect(200, "DELETE", "/admin/dead-letters/t-4");
  h.expect(200, "DELETE", "/admin/dead-letters?all=true");
  h.expect(200, "GET", "/admin/queue");

  ASSERT_EQ(h.bodies.size(), 10u);
  for (const auto& body : h.bodies) {
    EXPECT_THAT(body, Not(HasSubstr(kToken)));
    EXPECT_THAT(body, Not(HasSubstr("delivery_token")));
  }
  EXPECT_THAT(h.log_text.str(), Not(HasSubstr(kToken)));
  // The replayed messages kept their token: only readers never see it.
  const auto taken = h.queue.take(10);
  ASSERT_EQ(taken.size(), 3u);
  for (const auto& m : taken) EXPECT_EQ(m.message.delivery_token, kToken);
}

}  // namespace

// -- the admin key

TEST(AdminApiKey, WithoutAKeyTheApiIsOff) {
  Harness h;
  const auto refused = h.api.refuse_unauthorized(std::string("Bearer anything-at-all-1234"));
  ASSERT_TRUE(refused.has_value());
  EXPECT_EQ(refused->status, 403);
  EXPECT_NE(refused->body.find("admin_disabled"), std::string::npos);
}

TEST(AdminApiKey, TheRightKeyPassesAnyOtherIs401WithWwwAuthenticate) {
  Harness h;
  const std::string key = "admin-key-unit-test-4f1c9a";
  h.api.set_key(key);

  EXPECT_FALSE(h.api.refuse_unauthorized("Bearer " + key).has_value());
  EXPECT_FALSE(h.api.refuse_unauthorized("bearer  " + key + " ").has_value());  // scheme, spaces

  const auto missing = h.api.refuse_unauthorized(std::nullopt);
  ASSERT_TRUE(missing.has_value());
  EXPECT_EQ(missing->status, 401);
  EXPECT_NE(missing->body.find("not_authed"), std::string::npos);
  const auto wrong = h.api.refuse_unauthorized("Bearer " + key + "x");
  ASSERT_TRUE(wrong.has_value());
  EXPECT_EQ(wrong->status, 401);
  EXPECT_NE(wrong->body.find("invalid_auth"), std::string::npos);
  for (const auto* reply : {&*missing, &*wrong}) {
    bool has_challenge = false;
    for (const auto& [name, value] : reply->headers)
      if (name == "WWW-Authenticate" && value.rfind("Bearer", 0) == 0) has_challenge = true;
    EXPECT_TRUE(has_challenge);
    EXPECT_EQ(reply->body.find(key), std::string::npos);
  }
  EXPECT_EQ(h.log_text.str().find(key), std::string::npos);
}

}  // namespace slack_proxy

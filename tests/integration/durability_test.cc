// Issue #4 end to end: nothing the proxy answered 200 for is ever lost, not
// to kill -9, a Slack outage, a drain deadline or a full queue. What cannot be
// delivered becomes a dead letter that an operator lists, replays and
// deletes through the admin API on the metrics listener.
#include <gtest/gtest.h>
#include <signal.h>

#include <Poco/Exception.h>
#include <Poco/JSON/Array.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <condition_variable>
#include <functional>
#include <iostream>
#include <map>
#include <mutex>
#include <numeric>
#include <regex>
#include <set>
#include <thread>
#include <tuple>

#include "proxy_test.h"

namespace slack_proxy::testing {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

constexpr const char* kDuplicates = "slackproxy_requests_duplicate_total";
constexpr const char* kDenylistSize = "slackproxy_denylist_size";

// For waits that span a whole run (hundreds of messages), not one step.
constexpr milliseconds kRunDeadline{20'000};


std::vector<std::string> texts_to(const FakeSlack& slack, const std::string& channel) {
  std::vector<std::string> texts;
  for (const auto& r : slack.requests())
    if (r.channel == channel) texts.push_back(text_of(r));
  return texts;
}



// Query-string value: everything but unreserved characters as %XX.
std::string query_value(const std::string& value) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  for (const unsigned char c : value) {
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
      out += static_cast<char>(c);
    } else {
      out += '%';
      out += kHex[c >> 4];
      out += kHex[c & 0xF];
    }
  }
  return out;
}


// The `recovered N message(s)` a SQLite proxy logs at start-up.
std::optional<int> recovered_in(const std::string& log) {
  std::smatch m;
  if (!std::regex_search(log, m, std::regex(R"(recovered ([0-9]+) message\(s\))"))) return {};
  return std::stoi(m[1]);
}

// A fixture whose queue backend is the test's parameter.
class BackendTest : public ProxyTest, public ::testing::WithParamInterface<std::string> {
 protected:
  ProxyConfig backend_config() const {
    ProxyConfig c = config();
    c.queue_backend = GetParam();
    if (GetParam() == "sqlite") c.queue_settings = sqlite_settings(state_.path() / "queue.db");
    return c;
  }

  TempDir state_;
};

std::string backend_name(const ::testing::TestParamInfo<std::string>& info) { return info.param; }

// --------------------------------------------------------------- crash --

using CrashTest = ProxyTest;

TEST_F(CrashTest, KillNineLosesNothingThatGotOk) {
  constexpr int kMessages = 300;
  constexpr int kPosters = 8;
  constexpr int kChannels = 10;
  constexpr std::size_t kKillAfter = 100;

  TempDir state;  // the database, shared by both runs
  slack.set_default(Behaviour::http_status(503));  // Slack is down: nothing leaves the queue
  ProxyConfig c = config();
  c.queue_backend = "sqlite";
  c.queue_settings = sqlite_settings(state.path() / "queue.db");
  ProxyProcess& first = start(c);

  std::mutex mutex;
  std::condition_variable changed;
  std::set<std::string> accepted;  // texts answered 200
  int refused = 0;                 // answered, but not 200
  int unanswered = 0;              // no reply: the proxy died under it
  std::atomic<int> next{0};
  std::vector<std::thread> posters;
  for (int t = 0; t < kPosters; ++t) {
    posters.emplace_back([&] {
      for (int i = next++; i < kMessages; i = next++) {
        const std::string text = "crash-" + std::to_string(i);
        const std::string channel = "#crash-" + std::to_string(i % kChannels);
        bool ok = false;
        bool answered = true;
        try {
          ok = first.post(message(channel, text)).status == 200;
        } catch (const Poco::Exception&) {
          answered = false;
        }
        {
          std::lock_guard lock(mutex);
          if (ok) accepted.insert(text);
          else if (answered) ++refused;
          else ++unanswered;
        }
        changed.notify_all();
      }
    });
  }
  bool enough = false;
  std::size_t answered_at_kill = 0;
  {
    std::unique_lock lock(mutex);
    enough = changed.wait_for(lock, kDeadline, [&] { return accepted.size() >= kKillAfter; });
    answered_at_kill = accepted.size() + static_cast<std::size_t>(refused + unanswered);
    first.signal(SIGKILL);
  }
  for (auto& t : posters) t.join();
  ASSERT_TRUE(enough) << "only " << accepted.size() << " message(s) accepted within "
                      << kDeadline.count() << " ms; log:\n"
                      << first.log();
  ASSERT_EQ(first.wait_exit(kDeadline), 128 + SIGKILL);
  // Otherwise the kill proved nothing about requests in flight.
  ASSERT_LT(answered_at_kill, static_cast<std::size_t>(kMessages))
      << "every request was answered before the kill";
  EXPECT_EQ(refused, 0);

  FakeSlack back;  // Slack is back; a fresh fake records only what the restart sends
  back.start();
  c.slack_url = back.url();
  ProxyProcess second(c);
  ASSERT_TRUE(second.start());
  const auto recovered = recovered_in(second.log());
  ASSERT_TRUE(recovered.has_value()) << second.log();
  EXPECT_GE(*recovered, static_cast<int>(accepted.size())) << second.log();

  ASSERT_TRUE(wait_until_recorded(
      back,
      [&](const std::vector<RecordedRequest>& seen) {
        std::set<std::string> delivered;
        for (const auto& r : seen) delivered.insert(text_of(r));
        return std::includes(delivered.begin(), delivered.end(), accepted.begin(),
                             accepted.end());
      },
      "every accepted message", kRunDeadline));
  // Whatever else was recovered (committed, but the reply never arrived) is
  // sent too; counting duplicates is only final once nothing is left.
  ASSERT_TRUE(second.wait_for_metric(kQueueSize, 0, kRunDeadline));

  std::map<std::string, int> deliveries;
  for (const auto& r : back.requests()) ++deliveries[text_of(r)];
  int duplicates = 0;
  for (const auto& [text, n] : deliveries) {
    EXPECT_TRUE(text.starts_with("crash-")) << "delivered what nobody sent: " << text;
    EXPECT_LE(n, 2) << text << " delivered " << n << " times";
    duplicates += n - 1;
  }
  for (const auto& text : accepted) EXPECT_GE(deliveries[text], 1) << text << " was lost";
  std::cout << "[ crash    ] " << kMessages << " posted, " << accepted.size()
            << " answered 200 before kill -9 (" << answered_at_kill << " answered at the kill, "
            << unanswered << " unanswered); " << *recovered << " recovered; "
            << deliveries.size() << " distinct delivered, " << duplicates << " duplicate(s)"
            << std::endl;
}

// -------------------------------------------------------------- outage --

using OutageTest = ProxyTest;

TEST_F(OutageTest, NothingLostOrderKeptNoDeadLetters) {
  constexpr int kMaxRetries = 1;
  constexpr int kPerChannel = 10;
  const std::vector<std::string> channels{"#outage-a", "#outage-b", "#outage-c"};

  slack.set_default(Behaviour::http_status(503));
  ProxyConfig c = config();
  c.stages = stage("deny_list", "ttl = \"15m\"\n") +
             stage("slack_retry", "max_retries = " + std::to_string(kMaxRetries) +
                                      "\ninitial_backoff = \"50ms\"\nmax_backoff = \"200ms\"\n"
                                      "jitter = 0.0\n");
  auto& p = start(c);
  for (int i = 1; i <= kPerChannel; ++i)
    for (const auto& channel : channels)
      ASSERT_EQ(p.post(message(channel, std::to_string(i))).status, 200);

  // Each channel's first message failed more often than max_retries allows
  // for a transient error: the outage outlasted the retry budget.
  ASSERT_TRUE(wait_until_recorded(
      slack,
      [&](const std::vector<RecordedRequest>& seen) {
        for (const auto& channel : channels) {
          const auto n = std::count_if(seen.begin(), seen.end(),
                                       [&](const auto& r) { return r.channel == channel; });
          if (n < kMaxRetries + 2) return false;
        }
        return true;
      },
      "max_retries + 2 attempts on every channel"));
  slack.set_default(Behaviour::ok());

  for (const auto& channel : channels)
    ASSERT_TRUE(p.wait_for_metric(series(kSucceeded, channel), kPerChannel));

  for (const auto& channel : channels) {
    const auto texts = texts_to(slack, channel);
    std::vector<int> numbers;
    for (const auto& t : texts) numbers.push_back(std::stoi(t));
    // A lane retries its head until it is delivered, so attempts never go
    // back to an earlier number...
    EXPECT_TRUE(std::is_sorted(numbers.begin(), numbers.end())) << channel;
    // ...and the last attempt of each number is its delivery.
    std::vector<int> delivered;
    for (std::size_t i = 0; i < numbers.size(); ++i)
      if (i + 1 == numbers.size() || numbers[i + 1] != numbers[i]) delivered.push_back(numbers[i]);
    std::vector<int> expected(kPerChannel);
    std::iota(expected.begin(), expected.end(), 1);
    EXPECT_EQ(delivered, expected) << channel;
  }

  const HttpResponse list = admin_request(p, "GET", "/admin/dead-letters");
  ASSERT_EQ(list.status, 200) << list.body;
  const auto body = parse_object(list.body);
  EXPECT_EQ(body->getArray("dead_letters")->size(), 0u) << list.body;
  EXPECT_EQ(body->getValue<int>("total"), 0) << list.body;

  const std::string m = p.metrics();
  EXPECT_EQ(find_metric(m, kDeadLetters), 0.0) << m;
  EXPECT_TRUE(family_sums_to_zero(m, kFailed));
  EXPECT_GT(metric_sum(m, kRetried), 0) << m;
}

// --------------------------------------------------------------- drain --

using DrainTest = ProxyTest;

TEST_F(DrainTest, SigtermLeavesTheRestOnDisk) {
  constexpr int kMessages = 5;
  TempDir state;
  slack.set_default(Behaviour::http_status(503));
  ProxyConfig c = config();
  c.queue_backend = "sqlite";
  c.queue_settings = sqlite_settings(state.path() / "queue.db");
  c.shutdown_timeout = "1s";
  ProxyProcess& first = start(c);
  for (int i = 1; i <= kMessages; ++i)
    ASSERT_EQ(first.post(message("#drain", "drain-" + std::to_string(i))).status, 200);
  ASSERT_TRUE(slack.wait_for(1, kDeadline));  // the outage is what keeps them queued

  first.signal(SIGTERM);
  const auto code = first.wait_exit(5s);
  ASSERT_TRUE(code.has_value())
      << "still running 5 s after SIGTERM with shutdown_timeout 1s; log:\n" << first.log();
  EXPECT_EQ(*code, 0) << first.log();
  EXPECT_NE(first.log().find(std::to_string(kMessages) + " message(s) left undelivered"),
            std::string::npos)
      << first.log();
  EXPECT_NE(first.log().find("kept in the queue for the next start"), std::string::npos)
      << first.log();

  FakeSlack back;
  back.start();
  c.slack_url = back.url();
  ProxyProcess second(c);
  ASSERT_TRUE(second.start());
  EXPECT_EQ(recovered_in(second.log()), kMessages) << second.log();
  ASSERT_TRUE(second.wait_for_metric(series(kSucceeded, "#drain"), kMessages));
  std::vector<std::string> expected;
  for (int i = 1; i <= kMessages; ++i) expected.push_back("drain-" + std::to_string(i));
  EXPECT_EQ(texts_to(back, "#drain"), expected);
}

// --------------------------------------------------------------- dedup --

class DedupTest : public BackendTest {
 protected:
  // Messages to one channel are delivered in order, so once a sentinel
  // posted last has arrived, everything posted before it has too: what the
  // fake holds then is final, not a snapshot.
  std::vector<std::string> texts_after_sentinel(const std::string& channel) {
    EXPECT_EQ(proxy->post(message(channel, "sentinel")).status, 200);
    EXPECT_TRUE(wait_until_recorded(
        slack,
        [&](const std::vector<RecordedRequest>& seen) {
          return std::any_of(seen.begin(), seen.end(), [&](const auto& r) {
            return r.channel == channel && text_of(r) == "sentinel";
          });
        },
        "the sentinel"));
    return texts_to(slack, channel);
  }
};

TEST_P(DedupTest, SameIdempotencyKeyTwiceIsDeliveredOnce) {
  auto& p = start(backend_config());
  const std::string body = message("#dedup", "once");
  EXPECT_EQ(post_with_key(p, body, "key-1").status, 200);
  EXPECT_EQ(post_with_key(p, body, "key-1").status, 200);  // maybe still queued
  ASSERT_TRUE(slack.wait_for(1, kDeadline));
  EXPECT_EQ(post_with_key(p, body, "key-1").status, 200);  // already delivered
  EXPECT_EQ(texts_after_sentinel("#dedup"), (std::vector<std::string>{"once", "sentinel"}));
  EXPECT_EQ(metric(p.metrics(), series(kDuplicates, "#dedup")), 2);
}

TEST_P(DedupTest, SameClientMsgIdInTheBodyTwiceIsDeliveredOnce) {
  auto& p = start(backend_config());
  const std::string body = R"({"channel":"#dedup","text":"once",)"
                           R"("client_msg_id":"5b8a8c8e-0000-4000-8000-000000000001"})";
  EXPECT_EQ(p.post(body).status, 200);
  ASSERT_TRUE(slack.wait_for(1, kDeadline));
  EXPECT_EQ(p.post(body).status, 200);
  EXPECT_EQ(texts_after_sentinel("#dedup"), (std::vector<std::string>{"once", "sentinel"}));
  EXPECT_EQ(metric(p.metrics(), series(kDuplicates, "#dedup")), 1);
}

TEST_P(DedupTest, DifferentIdempotencyKeysAreDeliveredTwice) {
  auto& p = start(backend_config());
  const std::string body = message("#dedup", "twice");
  EXPECT_EQ(post_with_key(p, body, "key-1").status, 200);
  EXPECT_EQ(post_with_key(p, body, "key-2").status, 200);
  EXPECT_EQ(texts_after_sentinel("#dedup"),
            (std::vector<std::string>{"twice", "twice", "sentinel"}));
  EXPECT_TRUE(metric_is_zero(p.metrics(), series(kDuplicates, "#dedup")));
}

INSTANTIATE_TEST_SUITE_P(, DedupTest, ::testing::Values("memory", "sqlite"), backend_name);

// ------------------------------------------------------------ capacity --

class CapacityTest : public BackendTest {};

TEST_P(CapacityTest, RefusesBeyondMaxBytesWith503QueueFullAndRetryAfter) {
  constexpr std::size_t kMaxBytes = 2048;
  constexpr std::size_t kBodyBytes = 200;  // each payload; the queue counts payload bytes
  constexpr std::size_t kFits = kMaxBytes / kBodyBytes;

  slack.set_default(Behaviour::http_status(503));  // nothing leaves the queue
  ProxyConfig c = backend_config();
  c.queue_settings += "max_bytes = " + std::to_string(kMaxBytes) + "\n";
  c.queue_retry_after = "5s";
  auto& p = start(c);

  auto body_of = [&](std::size_t i) {
    std::string text = "cap-" + std::to_string(i) + "-";
    text += std::string(kBodyBytes - message("#cap", text).size(), 'x');
    return message("#cap", text);
  };
  for (std::size_t i = 0; i < kFits; ++i) {
    ASSERT_EQ(body_of(i).size(), kBodyBytes);
    const HttpResponse r = p.post(body_of(i));
    ASSERT_EQ(r.status, 200) << "message " << i << ": " << r.body;
  }
  for (int refused = 1; refused <= 3; ++refused) {
    const HttpResponse r = p.post(body_of(kFits + static_cast<std::size_t>(refused)));
    ASSERT_EQ(r.status, 503) << r.body;
    EXPECT_EQ(error_of(r), "queue_full");
    EXPECT_EQ(r.header("retry-after"), "5");
    EXPECT_EQ(metric(p.metrics(), rejected("queue_full")), refused);
  }
  EXPECT_EQ(metric(p.metrics(), series(kReceived, "#cap")), static_cast<double>(kFits));
}

INSTANTIATE_TEST_SUITE_P(, CapacityTest, ::testing::Values("memory", "sqlite"), backend_name);

// --------------------------------------------------------- dead letters --

// Four dead letters, in this order: #gone's first message (channel_not_found
// parks #gone), two #bad messages Slack refuses for good (invalid_blocks),
// and #gone's second message, which the deny-list stops (not_processed).
// The fake answers those errors exactly that often; after that it accepts
// both channels, so a replay can be delivered.
class DeadLetterApiTest : public BackendTest {
 protected:
  void SetUp() override {
    BackendTest::SetUp();
    slack.enqueue(Behaviour::error("channel_not_found"), 1, "#gone");
    slack.enqueue(Behaviour::error("invalid_blocks"), 2, "#bad");
    auto& p = start(backend_config());
    const std::vector<std::pair<std::string, std::string>> dead{
        {"#gone", "gone-1"}, {"#bad", "bad-1"}, {"#bad", "bad-2"}, {"#gone", "gone-2"}};
    for (std::size_t i = 0; i < dead.size(); ++i) {
      const auto& [channel, text] = dead[i];
      posted_[text] = message(channel, text);
      ASSERT_EQ(p.post(posted_[text]).status, 200);
      // One at a time, so "oldest first" has a known answer.
      ASSERT_TRUE(p.wait_for_metric(kDeadLetters, static_cast<double>(i + 1)));
    }
    ASSERT_EQ(slack.count(), 3u) << "gone-2 should have been stopped by the deny-list";

    for (const auto& record : list("")) {
      const std::string id = record->getValue<std::string>("id");
      ids_.push_back(id);
      const HttpResponse shown = admin_request(p, "GET", "/admin/dead-letters/" + id);
      ASSERT_EQ(shown.status, 200) << shown.body;
      const std::string payload =
          parse_object(shown.body)->getObject("dead_letter")->getValue<std::string>("payload");
      id_of_[parse_object(payload)->getValue<std::string>("text")] = id;
    }
    ASSERT_EQ(ids_.size(), 4u);
    ASSERT_EQ(id_of_.size(), 4u);
  }

  // GET /admin/dead-letters?<query>; fails the test unless it is a 200.
  std::vector<Poco::JSON::Object::Ptr> list(const std::string& query,
                                            std::string* next_after = nullptr) {
    const HttpResponse r =
        admin_request(*proxy, "GET", "/admin/dead-letters" + (query.empty() ? "" : "?" + query));
    EXPECT_EQ(r.status, 200) << query << ": " << r.body;
    std::vector<Poco::JSON::Object::Ptr> records;
    if (r.status != 200) return records;
    const auto body = parse_object(r.body);
    if (next_after) *next_after = body->optValue<std::string>("next_after", "");
    const auto array = body->getArray("dead_letters");
    for (std::size_t i = 0; array && i < array->size(); ++i) records.push_back(array->getObject(i));
    return records;
  }

  std::vector<std::string> listed_ids(const std::string& query) {
    std::vector<std::string> out;
    for (const auto& r : list(query)) out.push_back(r->getValue<std::string>("id"));
    return out;
  }

  std::vector<std::string> ids(std::initializer_list<const char*> texts) {
    std::vector<std::string> out;
    for (const char* t : texts) out.push_back(id_of_.at(t));
    return out;
  }

  int total() {
    const HttpResponse r = admin_request(*proxy, "GET", "/admin/dead-letters");
    EXPECT_EQ(r.status, 200) << r.body;
    return r.status == 200 ? parse_object(r.body)->getValue<int>("total") : -1;
  }

  HttpResponse replay(const std::string& text) {
    return admin_request(*proxy, "POST", "/admin/dead-letters/" + id_of_.at(text) + "/replay");
  }

  std::map<std::string, std::string> posted_;  // text -> body as posted
  std::map<std::string, std::string> id_of_;   // text -> dead-letter id
  std::vector<std::string> ids_;               // as first listed
};

TEST_P(DeadLetterApiTest, ListsEveryDeadLetterOldestFirstWithoutPayload) {
  const auto records = list("");
  ASSERT_EQ(records.size(), 4u);
  EXPECT_EQ(ids_, ids({"gone-1", "bad-1", "bad-2", "gone-2"}));
  const std::vector<std::tuple<std::string, std::string, std::string>> expected{
      {"#gone", "failed", "channel_not_found"},
      {"#bad", "failed", "invalid_blocks"},
      {"#bad", "failed", "invalid_blocks"},
      {"#gone", "not_processed", ""}};
  for (std::size_t i = 0; i < records.size(); ++i) {
    const auto& [channel, kind, error] = expected[i];
    EXPECT_EQ(records[i]->getValue<std::string>("channel"), channel) << i;
    EXPECT_EQ(records[i]->getValue<std::string>("kind"), kind) << i;
    if (!error.empty()) {
      EXPECT_EQ(records[i]->getValue<std::string>("error"), error) << i;
    }
    EXPECT_FALSE(records[i]->has("payload")) << i;
  }
  EXPECT_EQ(total(), 4);
}

TEST_P(DeadLetterApiTest, FiltersByChannel) {
  EXPECT_EQ(listed_ids("channel=" + query_value("#gone")), ids({"gone-1", "gone-2"}));
  EXPECT_EQ(listed_ids("channel=" + query_value("#bad")), ids({"bad-1", "bad-2"}));
  EXPECT_EQ(listed_ids("channel=" + query_value("#nowhere")), std::vector<std::string>{});
}

TEST_P(DeadLetterApiTest, FiltersByError) {
  EXPECT_EQ(listed_ids("error=invalid_blocks"), ids({"bad-1", "bad-2"}));
  EXPECT_EQ(listed_ids("error=channel_not_found"), ids({"gone-1"}));
  EXPECT_EQ(listed_ids("error=channel_not_found&channel=" + query_value("#bad")),
            std::vector<std::string>{});
}

TEST_P(DeadLetterApiTest, FiltersByKind) {
  EXPECT_EQ(listed_ids("kind=not_processed"), ids({"gone-2"}));
  EXPECT_EQ(listed_ids("kind=failed"), ids({"gone-1", "bad-1", "bad-2"}));
  const HttpResponse bad = admin_request(*proxy, "GET", "/admin/dead-letters?kind=lost");
  EXPECT_EQ(bad.status, 400) << bad.body;
  EXPECT_EQ(error_of(bad), "invalid_kind");
}

TEST_P(DeadLetterApiTest, PagesWithLimitAndAfter) {
  std::vector<std::string> walked;
  std::string after;
  int pages = 0;
  do {
    std::string next;
    const std::string query = "limit=1" + (after.empty() ? "" : "&after=" + query_value(after));
    const auto page = list(query, &next);
    ASSERT_EQ(page.size(), 1u) << "page " << pages << " after " << after;
    walked.push_back(page[0]->getValue<std::string>("id"));
    after = next;
    ASSERT_LT(++pages, 10) << "paging does not end";
  } while (!after.empty());
  EXPECT_EQ(walked, ids_);
  EXPECT_EQ(pages, 4) << "next_after is given only when there is a next page";

  // Paging composes with a filter.
  std::string next;
  EXPECT_EQ(list("channel=" + query_value("#bad") + "&limit=1", &next).size(), 1u);
  EXPECT_EQ(next, id_of_.at("bad-1"));
  const auto second = list("channel=" + query_value("#bad") + "&limit=1&after=" + next, &next);
  ASSERT_EQ(second.size(), 1u);
  EXPECT_EQ(second[0]->getValue<std::string>("id"), id_of_.at("bad-2"));
  EXPECT_EQ(next, "");
}

TEST_P(DeadLetterApiTest, ShowsOneWithThePayloadAsPosted) {
  for (const auto& [text, id] : id_of_) {
    const HttpResponse r = admin_request(*proxy, "GET", "/admin/dead-letters/" + id);
    ASSERT_EQ(r.status, 200) << r.body;
    const auto record = parse_object(r.body)->getObject("dead_letter");
    EXPECT_EQ(record->getValue<std::string>("id"), id);
    EXPECT_EQ(record->getValue<std::string>("payload"), posted_.at(text)) << text;
    EXPECT_EQ(r.body.find(kTestToken), std::string::npos) << r.body;
  }
  const HttpResponse missing = admin_request(*proxy, "GET", "/admin/dead-letters/no-such-id");
  EXPECT_EQ(missing.status, 404) << missing.body;
  EXPECT_EQ(error_of(missing), "not_found");
}

TEST_P(DeadLetterApiTest, ReplaysOneThatIsThenDeliveredAndGoneFromTheList) {
  // Both invalid_blocks answers are spent: the fake accepts #bad now.
  ASSERT_EQ(texts_to(slack, "#bad").size(), 2u);
  const HttpResponse r = replay("bad-1");
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(parse_object(r.body)->getValue<int>("replayed"), 1);
  ASSERT_TRUE(proxy->wait_for_metric(series(kSucceeded, "#bad"), 1));
  EXPECT_EQ(texts_to(slack, "#bad"), (std::vector<std::string>{"bad-1", "bad-2", "bad-1"}));
  EXPECT_EQ(listed_ids(""), ids({"gone-1", "bad-2", "gone-2"}));
  EXPECT_EQ(admin_request(*proxy, "GET", "/admin/dead-letters/" + id_of_.at("bad-1")).status, 404);
  const HttpResponse again = replay("bad-1");
  EXPECT_EQ(again.status, 404) << again.body;
}

TEST_P(DeadLetterApiTest, ReplaysEveryMatchOfAFilter) {
  const HttpResponse r = admin_request(*proxy, "POST", "/admin/dead-letters/replay?error=invalid_blocks");
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(parse_object(r.body)->getValue<int>("replayed"), 2) << r.body;
  EXPECT_EQ(parse_object(r.body)->getValue<int>("left"), 0) << r.body;
  ASSERT_TRUE(proxy->wait_for_metric(series(kSucceeded, "#bad"), 2));
  EXPECT_EQ(texts_to(slack, "#bad"),
            (std::vector<std::string>{"bad-1", "bad-2", "bad-1", "bad-2"}));
  EXPECT_EQ(listed_ids(""), ids({"gone-1", "gone-2"}));
}

TEST_P(DeadLetterApiTest, DeletesOne) {
  const HttpResponse r = admin_request(*proxy, "DELETE", "/admin/dead-letters/" + id_of_.at("bad-2"));
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(parse_object(r.body)->getValue<int>("deleted"), 1);
  EXPECT_EQ(listed_ids(""), ids({"gone-1", "bad-1", "gone-2"}));
  EXPECT_EQ(admin_request(*proxy, "GET", "/admin/dead-letters/" + id_of_.at("bad-2")).status, 404);
  EXPECT_EQ(admin_request(*proxy, "DELETE", "/admin/dead-letters/" + id_of_.at("bad-2")).status, 404);
  EXPECT_EQ(slack.count(), 3u) << "a deleted dead letter was sent";
}

TEST_P(DeadLetterApiTest, BulkDeleteAndBulkReplayNeedAFilter) {
  for (const char* method : {"DELETE", "POST"}) {
    const std::string target =
        std::string("/admin/dead-letters") + (method == std::string("POST") ? "/replay" : "");
    const HttpResponse r = admin_request(*proxy, method, target);
    EXPECT_EQ(r.status, 400) << method << " " << target << ": " << r.body;
    EXPECT_EQ(error_of(r), "filter_required") << method;
  }
  EXPECT_EQ(total(), 4) << "a request without a filter touched the store";

  const HttpResponse by_channel =
      admin_request(*proxy, "DELETE", "/admin/dead-letters?channel=" + query_value("#bad"));
  ASSERT_EQ(by_channel.status, 200) << by_channel.body;
  EXPECT_EQ(parse_object(by_channel.body)->getValue<int>("deleted"), 2);
  EXPECT_EQ(listed_ids(""), ids({"gone-1", "gone-2"}));

  const HttpResponse all = admin_request(*proxy, "DELETE", "/admin/dead-letters?all=true");
  ASSERT_EQ(all.status, 200) << all.body;
  EXPECT_EQ(parse_object(all.body)->getValue<int>("deleted"), 2);
  EXPECT_EQ(total(), 0);
}

TEST_P(DeadLetterApiTest, GaugeFollowsTheStore) {
  EXPECT_EQ(find_metric(proxy->metrics(), kDeadLetters), 4.0);
  ASSERT_EQ(admin_request(*proxy, "DELETE", "/admin/dead-letters/" + id_of_.at("bad-2")).status, 200);
  EXPECT_TRUE(proxy->wait_for_metric(kDeadLetters, 3));
  ASSERT_EQ(replay("bad-1").status, 200);
  EXPECT_TRUE(proxy->wait_for_metric(kDeadLetters, 2));
  ASSERT_TRUE(proxy->wait_for_metric(series(kSucceeded, "#bad"), 1));
  ASSERT_EQ(admin_request(*proxy, "DELETE", "/admin/dead-letters?all=true").status, 200);
  EXPECT_TRUE(proxy->wait_for_metric(kDeadLetters, 0));
}

TEST_P(DeadLetterApiTest, ReplaysADenyListedMessageAsAProbe) {
  const HttpResponse shown = admin_request(*proxy, "GET", "/admin/dead-letters/" + id_of_.at("gone-2"));
  ASSERT_EQ(shown.status, 200) << shown.body;
  EXPECT_EQ(parse_object(shown.body)->getObject("dead_letter")->getValue<std::string>("kind"),
            "not_processed");
  // #gone is still parked (ttl 15m), and the fake, its one channel_not_found
  // spent, accepts #gone again.
  ASSERT_EQ(find_metric(proxy->metrics(), kDenylistSize), 1.0);
  ASSERT_EQ(texts_to(slack, "#gone"), std::vector<std::string>{"gone-1"});

  const HttpResponse r = replay("gone-2");
  ASSERT_EQ(r.status, 200) << r.body;
  ASSERT_TRUE(proxy->wait_for_metric(series(kSucceeded, "#gone"), 1));
  EXPECT_EQ(texts_to(slack, "#gone"), (std::vector<std::string>{"gone-1", "gone-2"}));
  EXPECT_TRUE(proxy->wait_for_log("as a probe"));
  EXPECT_EQ(listed_ids(""), ids({"gone-1", "bad-1", "bad-2"}));
  // Delivered, so #gone is no longer parked.
  EXPECT_TRUE(proxy->wait_for_metric(kDenylistSize, 0));
}

INSTANTIATE_TEST_SUITE_P(, DeadLetterApiTest, ::testing::Values("memory", "sqlite"),
                         backend_name);

}  // namespace
}  // namespace slack_proxy::testing

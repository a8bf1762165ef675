// Durability promises of the README proven end to end against the real
// binary, where a kill -9 test cannot tell them apart from luck:
//   - sync = "full": every 200 for a POST is written only after an fsync of
//     the queue's WAL that began after that request's own message was
//     written to the WAL (traced by the LD_PRELOAD shim fsync_shim.c), for
//     one request at a time and for concurrent ones sharing a group commit;
//     sync = "normal": the message is in the WAL, but no fsync at all
//     between a request and its 200;
//   - a caller-token message left queued at a restart without
//     SLACK_PROXY_QUEUE_KEY becomes a token_unavailable dead letter, never a
//     send with the wrong token;
//   - a second proxy on the same database exits 2 saying why, and the first
//     keeps serving;
//   - a really full disk (a tmpfs in a private mount namespace) gets 503
//     queue_unavailable + Retry-After with the cause in the log only, the
//     proxy keeps running, and every 200 is delivered once space is freed.
#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <Poco/Exception.h>
#include <Poco/JSON/Array.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <map>
#include <mutex>
#include <set>
#include <sstream>
#include <thread>

#include "proxy_test.h"

namespace slack_proxy::testing {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

// Ends a proxy the way an operator does and requires a clean exit.
void stop_cleanly(ProxyProcess& p) {
  p.signal(SIGTERM);
  const auto code = p.wait_exit(kDeadline);
  ASSERT_TRUE(code.has_value()) << "still running " << kDeadline.count()
                                << " ms after SIGTERM; log:\n"
                                << p.log();
  EXPECT_EQ(*code, 0) << p.log();
}

// ------------------------------------------------------ the fsync order --

// Every message text of these tests starts with it: the shim follows each
// message by its text from the request to the WAL (see fsync_shim.c).
constexpr const char* kMarker = "durable-";

// One line of the shim's trace (see fsync_shim.c).
struct TraceEvent {
  std::uint64_t seq = 0;
  std::string kind;  // req, reply, sync, read, wrote
  int fd = -1;
  std::string what;  // the method, the status, the marker
  std::uint64_t began = 0;  // sync only
  std::string path;         // sync, read, wrote
};

std::vector<TraceEvent> read_trace(const std::filesystem::path& file) {
  std::vector<TraceEvent> events;
  std::ifstream in(file);
  for (std::string line; std::getline(in, line);) {
    std::istringstream fields(line);
    TraceEvent e;
    fields >> e.seq >> e.kind >> e.fd;
    if (e.kind == "sync") {
      fields >> e.began;
      std::getline(fields >> std::ws, e.path);
    } else if (e.kind == "read" || e.kind == "wrote") {
      fields >> e.what;
      std::getline(fields >> std::ws, e.path);
    } else {
      fields >> e.what;
    }
    events.push_back(std::move(e));
  }
  std::sort(events.begin(), events.end(),
            [](const TraceEvent& a, const TraceEvent& b) { return a.seq < b.seq; });
  return events;
}

// A request and the reply written for it on the same connection, and the
// marker its body carried.
struct Exchange {
  std::uint64_t request = 0, reply = 0;
  std::string method, status, marker;
};

std::vector<Exchange> exchanges_in(const std::vector<TraceEvent>& events) {
  std::vector<Exchange> out;
  std::map<int, Exchange> open;  // by descriptor: a request not answered yet
  for (const auto& e : events) {
    if (e.kind == "req") {
      open.try_emplace(e.fd, Exchange{e.seq, 0, e.what, "", ""});
    } else if (e.kind == "read" && e.path.starts_with("socket:")) {
      const auto it = open.find(e.fd);
      if (it != open.end() && it->second.marker.empty()) it->second.marker = e.what;
    } else if (e.kind == "reply") {
      const auto it = open.find(e.fd);
      if (it == open.end() || e.what == "100") continue;  // 100 Continue is not the answer
      it->second.reply = e.seq;
      it->second.status = e.what;
      out.push_back(it->second);
      open.erase(it);
    }
  }
  return out;
}

std::vector<Exchange> posts_answered_200(const std::vector<TraceEvent>& events) {
  std::vector<Exchange> out;
  for (const auto& x : exchanges_in(events))
    if (x.method == "POST" && x.status == "200") out.push_back(x);
  return out;
}

std::vector<TraceEvent> syncs_in(const std::vector<TraceEvent>& events) {
  std::vector<TraceEvent> out;
  std::copy_if(events.begin(), events.end(), std::back_inserter(out),
               [](const TraceEvent& e) { return e.kind == "sync"; });
  return out;
}

std::string dump(const std::vector<TraceEvent>& events) {
  std::ostringstream out;
  for (const auto& e : events) {
    out << e.seq << ' ' << e.kind << ' ' << e.fd << ' '
        << (e.kind == "sync" ? std::to_string(e.began) : e.what)
        << (e.path.empty() ? "" : " " + e.path) << '\n';
  }
  return out.str();
}

std::string exchange_name(const Exchange& x) {
  return x.marker + " (request " + std::to_string(x.request) + " -> " + x.status + " " +
         std::to_string(x.reply) + ")";
}

// When each marker was first written to `file`: for a message's text in
// the WAL, the commit that put it there (a later commit may write the same
// page again).
std::map<std::string, std::uint64_t> first_writes(const std::vector<TraceEvent>& events,
                                                  const std::string& file) {
  std::map<std::string, std::uint64_t> first;
  for (const auto& e : events)
    if (e.kind == "wrote" && e.path == file) first.try_emplace(e.what, e.seq);
  return first;
}

// The fsync of the WAL that made x's own message durable before its 200:
// one that began after the message was written to the WAL and returned
// before the reply. Its seq, or why there is none.
struct Durability {
  std::optional<std::uint64_t> fsync;
  std::string missing;
};
Durability durability_of(const Exchange& x, const std::map<std::string, std::uint64_t>& in_wal,
                         const std::vector<TraceEvent>& syncs, const std::string& wal) {
  if (x.marker.empty()) return {std::nullopt, "the shim saw no marker in its body"};
  const auto written = in_wal.find(x.marker);
  if (written == in_wal.end() || written->second > x.reply)
    return {std::nullopt, "its message was not in the WAL before the 200"};
  const auto made_durable = std::find_if(syncs.begin(), syncs.end(), [&](const TraceEvent& s) {
    return s.path == wal && s.began > written->second && s.seq < x.reply;
  });
  if (made_durable == syncs.end())
    return {std::nullopt, "no fsync of the WAL began after its write (" +
                              std::to_string(written->second) + ") and ended before the 200"};
  return {made_durable->seq, ""};
}

std::string join(const std::vector<std::string>& items) {
  std::string out;
  for (const auto& item : items) out += (out.empty() ? "" : ", ") + item;
  return out;
}

// The proxy's environment with the shim preloaded, tracing to `trace`.
Environment traced_environment(const std::filesystem::path& trace) {
  Environment env = default_environment();
  env.push_back(std::string("LD_PRELOAD=") + SP_FSYNC_SHIM);
  env.push_back("SP_IO_TRACE_FILE=" + trace.string());
  env.push_back(std::string("SP_IO_TRACE_MARK=") + kMarker);
  // Under ASan the runtime must come first in the initial library list, and
  // a preloaded library comes before it: ASan would abort at start. The shim
  // only forwards to what follows it (ASan's interceptors, then libc).
  std::string asan = "verify_asan_link_order=0";
  if (const char* own = std::getenv("ASAN_OPTIONS"); own != nullptr && *own != '\0')
    asan = std::string(own) + ":" + asan;
  env.push_back("ASAN_OPTIONS=" + asan);
  return env;
}

class SyncOrderTest : public ProxyTest {
 protected:
  static constexpr int kAlone = 6;
  static constexpr int kPosters = 4;
  static constexpr int kPerPoster = 6;
  static constexpr int kConcurrent = kPosters * kPerPoster;

  ProxyProcess& start_traced(const std::string& sync) {
    // Slack is down: nothing is delivered, so nothing is acked, and every
    // commit in the window is one of the pushes under test.
    slack.set_default(Behaviour::http_status(503));
    ProxyConfig c = config();
    c.queue_backend = "sqlite";
    c.queue_settings = sqlite_settings(db(), sync);
    c.shutdown_timeout = "1s";
    proxy = std::make_unique<ProxyProcess>(c, traced_environment(trace()));
    auto started = proxy->start();
    EXPECT_TRUE(started);
    if (!started) throw std::runtime_error("slack-proxy did not start");
    EXPECT_TRUE(proxy->wait_for_log("(sync " + sync + ")"));
    return *proxy;
  }

  // Empty when the proxy answered 200, else why not.
  std::string refusal_of(const std::string& channel, const std::string& text) {
    try {
      const HttpResponse r = proxy->post(message(channel, text));
      return r.status == 200 ? std::string() : std::to_string(r.status) + " " + r.body;
    } catch (const Poco::Exception& e) {
      return e.displayText();
    }
  }

  // One request in flight at a time ("durable-alone-<i>"): no other
  // request's commit can fall between a request and its 200, so the fsync
  // there can only be its own.
  void post_one_at_a_time() {
    for (int i = 0; i < kAlone; ++i) {
      const std::string text = std::string(kMarker) + "alone-" + std::to_string(i);
      const std::string why = refusal_of("#sync-alone", text);
      EXPECT_TRUE(why.empty()) << text << ": " << why;
    }
  }

  // Concurrent posters ("durable-<poster>-<i>"), so that group commit puts
  // several requests in one transaction (and one fsync); every one must be
  // accepted.
  void post_concurrently() {
    std::mutex mutex;
    std::vector<std::string> refused;
    std::vector<std::thread> posters;
    for (int t = 0; t < kPosters; ++t) {
      posters.emplace_back([&, t] {
        for (int i = 0; i < kPerPoster; ++i) {
          const std::string text =
              std::string(kMarker) + std::to_string(t) + "-" + std::to_string(i);
          const std::string why = refusal_of("#sync-" + std::to_string(t), text);
          if (!why.empty()) {
            std::lock_guard lock(mutex);
            refused.push_back(text + ": " + why);
          }
        }
      });
    }
    for (auto& t : posters) t.join();
    EXPECT_TRUE(refused.empty()) << refused.size() << " refused, e.g. " << refused.front();
  }

  std::filesystem::path db() const { return dir_.path() / "queue.db"; }
  std::filesystem::path trace() const { return dir_.path() / "io.trace"; }
  // As /proc/self/fd names it: resolved.
  std::string wal() const { return std::filesystem::weakly_canonical(db()).string() + "-wal"; }

  TempDir dir_;
};

bool is_queue_file(const std::string& path, const std::filesystem::path& db) {
  const std::string resolved = std::filesystem::weakly_canonical(db).string();
  return path == resolved || path == resolved + "-wal";
}

bool sent_alone(const Exchange& x) { return x.marker.starts_with(std::string(kMarker) + "alone-"); }

// The shim records each message's text where the proxy read it and where
// SQLite wrote it, so the proof needs no guess about which commit carried
// which request: a 200 must follow an fsync of the WAL that began after
// that request's own message was written there. Requests sent one at a
// time show each commit has its own fsync; concurrent ones, that a group
// commit's one fsync covers every request in the group, and no 200 of the
// group goes out before it.
TEST_F(SyncOrderTest, FullWritesEvery200OnlyAfterAnFsyncOfItsOwnMessageInTheWal) {
  ProxyProcess& p = start_traced("full");
  post_one_at_a_time();
  post_concurrently();
  // Each trace line is written before the reply it records leaves, so what
  // the posters saw is all in the file now.
  const auto events = read_trace(trace());
  const auto answered = posts_answered_200(events);
  ASSERT_EQ(answered.size(), static_cast<std::size_t>(kAlone + kConcurrent))
      << "the shim did not see every POST and its 200; trace:\n"
      << dump(events);
  const auto in_wal = first_writes(events, wal());
  const auto syncs = syncs_in(events);

  std::set<std::uint64_t> alone_fsyncs, group_fsyncs;
  std::vector<std::string> not_durable;
  for (const auto& x : answered) {
    const Durability d = durability_of(x, in_wal, syncs, wal());
    if (!d.fsync) not_durable.push_back(exchange_name(x) + ": " + d.missing);
    else (sent_alone(x) ? alone_fsyncs : group_fsyncs).insert(*d.fsync);
  }
  EXPECT_TRUE(not_durable.empty()) << not_durable.size() << " of " << answered.size()
                                   << " 200s were written before their own message was "
                                      "durable in "
                                   << wal() << ": " << join(not_durable) << "; trace:\n"
                                   << dump(events);
  // Implied by the above (an fsync that began after request k+1's write
  // ended after reply k), and said outright: one request, one fsync.
  EXPECT_EQ(alone_fsyncs.size(), static_cast<std::size_t>(kAlone)) << dump(events);
  std::cout << "[ sync full ] " << kAlone << " POSTs one at a time: " << alone_fsyncs.size()
            << " fsync(s) of the WAL; " << kConcurrent << " concurrent POSTs: "
            << group_fsyncs.size() << " fsync(s) (group commit)" << std::endl;
  stop_cleanly(p);
}

// What `normal` promises, precisely: SQLite in WAL mode with
// synchronous=NORMAL does not sync at a commit. It syncs the WAL before a
// checkpoint and the database after one (automatic once the WAL holds 1000
// pages, and when the last connection closes), and the WAL header when the
// WAL is restarted after a checkpoint. A few small messages stay far below
// that threshold, so no fsync may happen between any request and its 200,
// though each message is in the WAL by then (the commit wrote it); the
// fsync the closing checkpoint makes at exit proves the shim sees this
// process's fsyncs.
TEST_F(SyncOrderTest, NormalWrites200sWithoutAnyFsyncAndSyncsAtTheClosingCheckpoint) {
  ProxyProcess& p = start_traced("normal");
  post_one_at_a_time();
  post_concurrently();
  const auto during = read_trace(trace());
  const auto answered = posts_answered_200(during);
  ASSERT_EQ(answered.size(), static_cast<std::size_t>(kAlone + kConcurrent))
      << "the shim did not see every POST and its 200; trace:\n"
      << dump(during);
  const auto in_wal = first_writes(during, wal());
  std::vector<std::string> synced, unwritten;
  const auto syncs = syncs_in(during);
  for (const auto& x : answered) {
    const bool overlapped = std::any_of(syncs.begin(), syncs.end(), [&](const TraceEvent& s) {
      return s.began < x.reply && s.seq > x.request;
    });
    if (overlapped) synced.push_back(exchange_name(x));
    const auto written = in_wal.find(x.marker);
    if (written == in_wal.end() || written->second > x.reply) unwritten.push_back(exchange_name(x));
  }
  EXPECT_TRUE(synced.empty()) << synced.size() << " of " << answered.size()
                              << " 200s waited on an fsync: " << join(synced) << "; trace:\n"
                              << dump(during);
  EXPECT_TRUE(unwritten.empty()) << unwritten.size() << " of " << answered.size()
                                 << " 200s went out before their message was in " << wal()
                                 << ": " << join(unwritten) << "; trace:\n"
                                 << dump(during);

  stop_cleanly(p);
  const auto all = read_trace(trace());
  const std::uint64_t last_reply = answered.back().reply;
  const bool checkpoint_synced = std::any_of(all.begin(), all.end(), [&](const TraceEvent& e) {
    return e.kind == "sync" && e.began > last_reply && is_queue_file(e.path, db());
  });
  EXPECT_TRUE(checkpoint_synced) << "no fsync of the queue at the closing checkpoint; trace:\n"
                                 << dump(all);
}

// ----------------------------------------------------- callers' tokens --

using RestartTest = ProxyTest;

TEST_F(RestartTest, WithoutQueueKeyAQueuedCallerTokenMessageBecomesTokenUnavailable) {
  constexpr const char* kCallerToken = "xoxb-proofs-caller-token-5e1d";
  TempDir state;
  slack.set_default(Behaviour::http_status(503));  // Slack is down: the message stays queued
  ProxyConfig c = config();
  c.queue_backend = "sqlite";
  c.queue_settings = sqlite_settings(state.path() / "queue.db");
  c.pipeline_settings = "delivery_token = \"caller\"\n";
  c.shutdown_timeout = "1s";
  // default_environment() has no SLACK_PROXY_QUEUE_KEY: each run seals with
  // a key of its own.
  ProxyProcess& first = start(c);
  EXPECT_TRUE(first.wait_for_log("SLACK_PROXY_QUEUE_KEY is not set"));

  HttpRequest post;
  post.method = "POST";
  post.url = first.url();
  post.body = message("#tok", "sealed");
  post.content_type = "application/json";
  post.headers = {{"Authorization", std::string("Bearer ") + kCallerToken}};
  const HttpResponse accepted = http_send(post);
  ASSERT_EQ(accepted.status, 200) << accepted.body;
  ASSERT_TRUE(slack.wait_for(1, kDeadline));
  EXPECT_EQ(slack.requests().front().authorization, std::string("Bearer ") + kCallerToken);

  stop_cleanly(first);
  EXPECT_NE(first.log().find("1 message(s) left undelivered"), std::string::npos) << first.log();

  FakeSlack back;  // Slack is back: anything sent now would be recorded here
  back.start();
  c.slack_url = back.url();
  ProxyProcess second(c);
  ASSERT_TRUE(second.start());
  ASSERT_TRUE(second.wait_for_metric(kDeadLetters, 1));
  EXPECT_TRUE(second.wait_for_log("dead-lettered as token_unavailable"));

  const HttpResponse list = admin_request(second, "GET", "/admin/dead-letters");
  ASSERT_EQ(list.status, 200) << list.body;
  const auto records = parse_object(list.body)->getArray("dead_letters");
  ASSERT_EQ(records->size(), 1u) << list.body;
  const auto record = records->getObject(0);
  EXPECT_EQ(record->getValue<std::string>("error"), "token_unavailable");
  EXPECT_EQ(record->getValue<std::string>("kind"), "failed");
  EXPECT_EQ(record->getValue<std::string>("channel"), "#tok");
  EXPECT_EQ(list.body.find(kCallerToken), std::string::npos) << list.body;
  // Dead-lettered while the queue was opened, before any delivery: it was
  // never sent with another token (or none).
  EXPECT_EQ(back.count(), 0u);
  const std::string m = second.metrics();
  EXPECT_EQ(find_metric(m, kQueueSize), 0.0) << m;
  EXPECT_EQ(second.log().find(kCallerToken), std::string::npos);
  EXPECT_EQ(first.log().find(kCallerToken), std::string::npos);
}

// --------------------------------------------------- one database, one --

TEST_F(RestartTest, ASecondProxyOnTheSameDatabaseExits2AndTheFirstKeepsServing) {
  TempDir state;
  const auto db = state.path() / "queue.db";
  ProxyConfig c = config();
  c.queue_backend = "sqlite";
  c.queue_settings = sqlite_settings(db);
  ProxyProcess& first = start(c);

  ProxyProcess second(c);  // fresh ports, the same database
  second.spawn();
  const auto code = second.wait_exit(kDeadline);
  ASSERT_TRUE(code.has_value()) << "the second proxy kept running; log:\n" << second.log();
  EXPECT_EQ(*code, 2) << second.log();
  const std::string said = second.log();
  EXPECT_NE(said.find("cannot start"), std::string::npos) << said;
  EXPECT_NE(said.find("cannot open the queue database " + db.string()), std::string::npos)
      << said;
  EXPECT_NE(said.find("is another slack-proxy using this file?"), std::string::npos) << said;

  ASSERT_EQ(first.post(message("#one", "still here")).status, 200);
  EXPECT_TRUE(first.wait_for_metric(series(kSucceeded, "#one"), 1));
  EXPECT_EQ(first.get("/health").status, 200);
  ASSERT_TRUE(slack.wait_for(1, kDeadline));
  EXPECT_EQ(text_of(slack.requests().front()), "still here");
}

// ---------------------------------------------------------- disk full --

// The proxy in a private mount namespace, its queue on a tmpfs of its own:
// the disk it fills is real, and nobody else's. A filler file takes part of
// it, so that space can be freed later without remounting.
class DiskFullTest : public ProxyTest {
 protected:
  static constexpr const char* kDiskSize = "2m";
  static constexpr int kFillerKiB = 1280;

  // Empty when this machine lets `unshare` mount a tmpfs, else why not.
  static std::string cannot_mount(const std::filesystem::path& unshare) {
    if (::geteuid() != 0) return "mounting a tmpfs needs root";
    TempDir dir;
    ChildProcess probe({unshare.string(), "-m", "/bin/sh", "-c",
                        "mount -t tmpfs -o size=64k tmpfs \"$1\"", "sh", dir.path().string()},
                       {path_variable()}, dir.path() / "probe.log");
    const auto code = probe.wait_exit(kDeadline);
    if (code != 0) return "unshare -m and mount -t tmpfs are not permitted here: " + probe.output();
    return {};
  }

  // Spawns the proxy of `p` (its config and ports) inside the namespace,
  // writing to p's log, and waits until it is healthy.
  ::testing::AssertionResult spawn_on_tiny_disk(const std::filesystem::path& unshare,
                                                ProxyProcess& p) {
    std::filesystem::create_directories(disk());
    const std::string script =
        "mount -t tmpfs -o size=" + std::string(kDiskSize) + " tmpfs \"$1\" && " +
        "head -c " + std::to_string(kFillerKiB * 1024) + " /dev/zero > \"$1/filler\" && " +
        "echo $$ > \"$2\" && exec \"$3\" --config \"$4\"";
    Environment env = default_environment();
    env.push_back(path_variable());  // the shell runs `mount` and `head`
    child_ = std::make_unique<ChildProcess>(
        std::vector<std::string>{unshare.string(), "-m", "/bin/sh", "-c", script, "sh",
                                 disk().string(), pid_file().string(), SP_PROXY_BINARY,
                                 p.config_path().string()},
        env, p.log_path());
    const auto deadline = Clock::now() + kStartupDeadline;
    while (Clock::now() < deadline) {
      if (auto code = child_->wait_exit(0ms))
        return ::testing::AssertionFailure() << "exited with " << *code << "; log:\n" << p.log();
      try {
        HttpRequest health;
        health.url = p.metrics_url("/health");
        health.timeout = 500ms;
        if (http_send(health).status == 200) return ::testing::AssertionSuccess();
      } catch (const Poco::Exception&) {
        // Not listening yet.
      }
      std::this_thread::sleep_for(20ms);
    }
    return ::testing::AssertionFailure() << "not healthy in time; log:\n" << p.log();
  }

  // The filler as the proxy's namespace sees it.
  std::filesystem::path filler_in_namespace() const {
    std::ifstream in(pid_file());
    int pid = 0;
    in >> pid;
    return std::filesystem::path("/proc/" + std::to_string(pid) + "/root") /
           disk().relative_path() / "filler";
  }

  std::filesystem::path disk() const { return dir_.path() / "disk"; }
  std::filesystem::path pid_file() const { return dir_.path() / "proxy.pid"; }

  TempDir dir_;
  std::unique_ptr<ChildProcess> child_;
};

TEST_F(DiskFullTest, Answers503QueueUnavailableKeepsRunningAndDeliversEvery200OnceFreed) {
  SP_REQUIRE_TOOL(unshare, "util-linux", "unshare");
  if (const std::string why = cannot_mount(unshare); !why.empty()) {
    // Like a missing tool: a skip on a developer's machine, a failure in CI.
    if (every_tool_required()) GTEST_FAIL() << why;
    GTEST_SKIP() << why;
  }
  slack.set_default(Behaviour::http_status(503));  // nothing leaves the queue while it fills
  ProxyConfig c = config();
  c.queue_backend = "sqlite";
  c.queue_settings = sqlite_settings(disk() / "queue.db");
  c.queue_retry_after = "5s";
  c.shutdown_timeout = "2s";
  ProxyProcess p(c);  // its config, ports and log; spawned below, in the namespace
  ASSERT_TRUE(spawn_on_tiny_disk(unshare, p));

  std::set<std::string> accepted;
  std::optional<HttpResponse> refusal;
  const std::string padding(4000, 'x');
  for (int i = 0; i < 1000 && !refusal; ++i) {
    const std::string text = "full-" + std::to_string(i) + "-" + padding;
    HttpResponse r = p.post(message("#full-" + std::to_string(i % 4), text));
    if (r.status == 200) accepted.insert(text);
    else refusal = r;
  }
  ASSERT_TRUE(refusal) << "the disk never filled up";
  ASSERT_FALSE(accepted.empty()) << "refused from the start: " << refusal->body;
  EXPECT_EQ(refusal->status, 503) << refusal->body;
  EXPECT_EQ(error_of(*refusal), "queue_unavailable") << refusal->body;
  EXPECT_EQ(refusal->header("retry-after"), "5");
  // The cause is logged, never sent.
  EXPECT_EQ(refusal->body.find("disk"), std::string::npos) << refusal->body;
  EXPECT_EQ(refusal->body.find(disk().string()), std::string::npos) << refusal->body;
  EXPECT_TRUE(p.wait_for_log("database or disk is full"));
  EXPECT_NE(p.log().find("queue cannot store message"), std::string::npos) << p.log();

  // Still full, still refused, still running.
  const HttpResponse again = p.post(message("#full-0", "still full-" + padding));
  EXPECT_EQ(again.status, 503) << again.body;
  EXPECT_EQ(find_metric(p.metrics(), rejected("queue_unavailable")), 2.0) << p.metrics();
  EXPECT_EQ(p.get("/health").status, 200);
  EXPECT_TRUE(child_->running());

  // Space is freed and Slack recovers: new messages are taken again, and
  // everything that got a 200 is delivered and acked.
  std::error_code removed;
  ASSERT_TRUE(std::filesystem::remove(filler_in_namespace(), removed)) << removed.message();
  const std::string after = "after-freeing";
  ASSERT_EQ(p.post(message("#full-0", after)).status, 200);
  accepted.insert(after);
  slack.set_default(Behaviour::ok());
  EXPECT_TRUE(wait_for_texts(slack, accepted, 20'000ms));
  EXPECT_TRUE(p.wait_for_metric(kQueueSize, 0));
  std::cout << "[ disk full ] " << accepted.size() - 1
            << " message(s) accepted before the tmpfs filled up; all delivered" << std::endl;

  child_->signal(SIGTERM);
  EXPECT_EQ(child_->wait_exit(kDeadline), 0) << p.log();
}

}  // namespace
}  // namespace slack_proxy::testing

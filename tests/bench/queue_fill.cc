// queue-fill: writes a backlog straight into a SQLite queue file, for
// scripts/bench.sh --backlog (issue #12: a million queued messages).
//
// Posting a million messages through the proxy takes a minute of wrk and
// lets the proxy deliver some on the way; this pushes them through the
// project's own SqliteQueue (push_async, a bounded number in flight, then
// close()), shaped as the ingress shapes them, so the proxy started on the
// file afterwards finds exactly the backlog it would have after a storm.
//
//   queue-fill --db FILE [--messages N] [--channels C] [--pipeline NAME]
//              [--payload-bytes B] [--in-flight K] [--sync normal|full]
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <limits>
#include <mutex>
#include <optional>
#include <random>
#include <string>
#include <string_view>

#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>

#include "host_services.h"
#include "queue/sqlite_queue.h"

namespace {

using slack_proxy::Queue;
using slack_proxy::SqliteQueue;
using slack_proxy::SqliteQueueOptions;

struct Options {
  std::string db;
  std::uint64_t messages = 1'000'000;
  std::uint64_t channels = 50;
  std::string pipeline = "slack";  // scripts/bench.sh's pipeline
  std::size_t payload_bytes = 200;  // scripts/bench.sh's wrk body
  std::size_t in_flight = 20'000;
  SqliteQueueOptions::Sync sync = SqliteQueueOptions::Sync::Normal;
};

void usage(std::FILE* out) {
  std::fprintf(out,
               "usage: queue-fill --db FILE [--messages N] [--channels C] [--pipeline NAME]\n"
               "                  [--payload-bytes B] [--in-flight K] [--sync normal|full]\n"
               "  Pushes N messages (default 1000000), round-robin over C channels\n"
               "  #bench-0 .. #bench-<C-1> (default 50) of pipeline NAME (default slack),\n"
               "  into the SQLite queue FILE, each shaped as the ingress makes it, its\n"
               "  payload a chat.postMessage JSON body of B bytes (default 200) naming its\n"
               "  channel. At most K pushes wait for their commit at once (default 20000).\n"
               "  sync defaults to normal: the file is closed cleanly, so no fsync per\n"
               "  commit is needed for it to hold everything.\n");
}

std::optional<std::uint64_t> whole_number(std::string_view text) {
  if (text.empty() || text.find_first_not_of("0123456789") != std::string_view::npos)
    return std::nullopt;
  try {
    return std::stoull(std::string(text));
  } catch (const std::exception&) {
    return std::nullopt;
  }
}

// nullopt after printing why, for a command line that cannot be run.
std::optional<Options> parse(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    const std::string_view arg = argv[i];
    if (arg == "--help" || arg == "-h") {
      usage(stdout);
      std::exit(0);
    }
    if (i + 1 >= argc) {
      std::fprintf(stderr, "queue-fill: %s needs a value\n", argv[i]);
      return std::nullopt;
    }
    const std::string_view value = argv[++i];
    const auto number = whole_number(value);
    if (arg == "--db") {
      o.db = value;
    } else if (arg == "--pipeline") {
      o.pipeline = value;
    } else if (arg == "--sync" && (value == "normal" || value == "full")) {
      o.sync = value == "full" ? SqliteQueueOptions::Sync::Full : SqliteQueueOptions::Sync::Normal;
    } else if (arg == "--messages" && number) {
      o.messages = *number;
    } else if (arg == "--channels" && number && *number > 0) {
      o.channels = *number;
    } else if (arg == "--payload-bytes" && number) {
      o.payload_bytes = *number;
    } else if (arg == "--in-flight" && number && *number > 0) {
      o.in_flight = *number;
    } else {
      std::fprintf(stderr, "queue-fill: bad argument %s %s\n", argv[i - 1], argv[i]);
      usage(stderr);
      return std::nullopt;
    }
  }
  if (o.db.empty()) {
    std::fprintf(stderr, "queue-fill: --db FILE is required\n");
    usage(stderr);
    return std::nullopt;
  }
  return o;
}

// The ingress's id shape: a random prefix per process, so ids never collide
// with those of an earlier fill or of the proxy.
std::string id_prefix() {
  std::random_device rd;
  char buf[24];
  std::snprintf(buf, sizeof(buf), "%08x%08x", rd(), rd());
  return buf;
}

// A chat.postMessage body naming `channel`, padded with text to `bytes`
// when it is shorter.
std::string payload_for(const std::string& channel, std::uint64_t n, std::size_t bytes) {
  std::string body = R"({"channel":")" + channel + R"(","text":"fill )" + std::to_string(n) + " ";
  const std::size_t tail = 2;  // "}
  if (body.size() + tail < bytes) body.append(bytes - body.size() - tail, 'x');
  body += "\"}";
  return body;
}

// Counts the pushes waiting for their commit, and the refusals.
class InFlight {
 public:
  explicit InFlight(std::size_t limit) : limit_(limit) {}

  void wait_for_room() {
    std::unique_lock lock(mutex_);
    changed_.wait(lock, [&] { return waiting_ < limit_; });
    ++waiting_;
  }
  // push_async's callback: quick, never blocks for long (a short lock).
  void done(const Queue::PushResult& result) {
    {
      std::lock_guard lock(mutex_);
      --waiting_;
      if (result.status != Queue::PushStatus::Accepted) {
        if (refused_ == 0) first_refusal_ = result.detail;
        ++refused_;
      }
    }
    changed_.notify_all();
  }
  void wait_all() {
    std::unique_lock lock(mutex_);
    changed_.wait(lock, [&] { return waiting_ == 0; });
  }
  std::uint64_t refused() const {
    std::lock_guard lock(mutex_);
    return refused_;
  }
  std::string first_refusal() const {
    std::lock_guard lock(mutex_);
    return first_refusal_;
  }

 private:
  const std::size_t limit_;
  mutable std::mutex mutex_;
  std::condition_variable changed_;
  std::size_t waiting_ = 0;
  std::uint64_t refused_ = 0;
  std::string first_refusal_;
};

constexpr std::uint64_t kTakeEvery = 4096;

int fill(const Options& o) {
  SqliteQueueOptions q;
  q.path = o.db;
  q.sync = o.sync;
  // Whatever the file already holds plus N must fit: the limits are the
  // proxy's business when it opens the file, not the fill's.
  q.limits.max_messages = std::numeric_limits<std::size_t>::max() / 2;
  q.limits.max_bytes = std::numeric_limits<std::size_t>::max() / 2;
  q.limits.dedup_window = std::chrono::milliseconds(0);
  auto log = std::make_shared<spdlog::logger>("queue-fill",
                                              std::make_shared<spdlog::sinks::stderr_sink_mt>());
  log->set_level(spdlog::level::warn);
  const slack_proxy::SystemClock clock;
  SqliteQueue queue(std::move(q), clock, log);

  const std::string prefix = id_prefix();
  InFlight in_flight(o.in_flight);
  const auto started = std::chrono::steady_clock::now();
  for (std::uint64_t n = 0; n < o.messages; ++n) {
    slack_proxy::sdk::Message m;
    m.id = prefix + "-" + std::to_string(n + 1);
    m.pipeline = o.pipeline;
    m.channel = "#bench-" + std::to_string(n % o.channels);
    m.original_channel = m.channel;
    m.content_type = "application/json";
    m.received_at = clock.wall_now();
    m.enqueued_at = clock.now();
    m.payload = payload_for(m.channel, n, o.payload_bytes);
    in_flight.wait_for_room();
    queue.push_async(std::move(m), Queue::PushOptions{},
                     [&in_flight](Queue::PushResult r) { in_flight.done(r); });
    // No dispatcher runs here: the announcements take() hands out would
    // otherwise pile up in memory until close(), a copy of every message.
    if (n % kTakeEvery == 0) queue.take(kTakeEvery);
  }
  in_flight.wait_all();
  const std::size_t held = queue.size();
  queue.close();
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();

  const std::uint64_t refused = in_flight.refused();
  std::printf("queue-fill: %llu of %llu messages stored over %llu channels in %.1f s (%.0f/s); "
              "the file holds %zu\n",
              static_cast<unsigned long long>(o.messages - refused),
              static_cast<unsigned long long>(o.messages),
              static_cast<unsigned long long>(o.channels), seconds,
              seconds > 0 ? static_cast<double>(o.messages - refused) / seconds : 0.0, held);
  if (refused > 0) {
    std::fprintf(stderr, "queue-fill: %llu pushes refused, the first: %s\n",
                 static_cast<unsigned long long>(refused), in_flight.first_refusal().c_str());
    return 1;
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  const auto options = parse(argc, argv);
  if (!options) return 2;
  try {
    return fill(*options);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "queue-fill: %s\n", e.what());
    return 1;
  }
}

// storm-bench: an alert storm through the real slack-proxy into a fake Slack
// that enforces Slack's rate limits (per channel and per workspace, 429 with
// Retry-After when exceeded). N channels x M messages are POSTed as fast as
// possible; the bench then waits until the fake has every accepted message
// and reports what was lost or duplicated, how many 429s the fake sent, and
// the drain time against the least the fake's limits allow, and how many
// requests arrived while a 429's Retry-After should have paused the
// workspace (FakeSlack::early_after_429).
//
//   storm-bench [--channels 20] [--messages 10] [--faster] ...   (--help)
//
// Exit status: 0 all delivered (and within --max-429 / --max-ratio when
// given); 1 messages lost, refused or delivered twice, the proxy's queue not
// empty at the end, slackproxy_rate_limited_total not equal to the 429s the
// fake sent, or the proxy not exiting 0 within 10 s of SIGTERM; 3 a budget
// exceeded (in --faster mode also: any request early after a 429); 2 bad
// usage or the proxy did not start.
#include <Poco/Exception.h>
#include <Poco/JSON/Object.h>
#include <Poco/JSON/Parser.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <iostream>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "fake_slack.h"
#include "harness.h"
#include "http_client.h"
#include "redis_server.h"

namespace {

using namespace slack_proxy::testing;
using Clock = std::chrono::steady_clock;
using Seconds = std::chrono::duration<double>;

// An exact pacer's sends still reach Slack bunched: latencies differ, and the
// very first send of a run also pays for connection set-up, so everything
// after it looks early by the difference. A real limiter tolerates that; the
// fake, strict by default, is told to tolerate this much (it never raises the
// sustained rate: an early request takes the token it anticipated).
constexpr std::chrono::milliseconds kDefaultJitterTolerance{25};

struct ProxyLimits {
  double channel_rate = 1.0;
  int channel_burst = 3;
  double workspace_per_minute = 600;  // 0: no workspace bucket
  int workspace_burst = 10;
};

struct Options {
  int channels = 20;
  int messages = 10;
  int senders = 8;
  int workers = 8;
  Limits fake;
  ProxyLimits proxy;
  bool faster = false;
  // Which proxy values were given explicitly, so --faster does not undo them.
  std::set<std::string> proxy_overrides;
  std::string pipeline_extra;
  std::string sink_extra;
  std::optional<Seconds> deadline;
  std::optional<long> max_rate_limited;
  std::optional<double> max_ratio;
  std::string log_level = "warn";
  int replicas = 1;  // > 1: that many proxies sharing their buckets through Redis
  bool unshared = false;  // replicas without Redis: each spends the whole budget
  bool redis_queue = false;  // the replicas share one queue in Redis too
};

void usage(std::ostream& out) {
  out << R"(usage: storm-bench [options]
  --channels N                 channels in the storm (20)
  --messages M                 messages per channel (10)
  --senders T                  threads POSTing to the proxy (8)
  --workers W                  the proxy's [dispatcher] workers (8)
 The fake Slack's limits (Slack's documented shape):
  --channel-rate R             per channel, per second (1)
  --channel-burst B            (3)
  --workspace-per-minute W     whole workspace, per minute (600; 0 = none)
  --workspace-burst B          (10)
  --retry-after S              fixed Retry-After on 429 (default: time to the next token)
  --jitter-tolerance-ms MS     admit requests this early, as a real limiter would (25)
 The proxy's pacing (default: the same as the fake's):
  --faster                     per channel 5x the fake's rate, no workspace bucket:
                               delivery then relies on 429s and Retry-After, and
                               any request early after a 429 fails the run
  --proxy-channel-rate R (0 = no channel bucket), --proxy-channel-burst B,
  --proxy-workspace-per-minute W (0 = no workspace bucket), --proxy-workspace-burst B
  --proxy-config-extra TOML    lines added to the [[pipeline]] table, e.g.
                               'delivery_token = "proxy"'
  --proxy-sink-extra TOML      lines added to the slack_sink stage's table, e.g.
                               'rate_limit_scope = "channel"'
  --log-level L                the proxy's log level (warn)
  --replicas N                 N proxies (1), posted to in turn, sharing their token
                               buckets through a redis-server the bench starts
  --unshared                   the replicas without Redis (the comparison)
  --redis-queue                the replicas share one queue in Redis too
                               ([queue] backend = "redis"; else each its own)
 Run:
  --deadline S                 give up waiting for deliveries after S seconds
                               (default 3 x the theoretical minimum + 30)
  --max-429 N                  exit 3 if the fake sent more than N 429s
  --max-ratio X                exit 3 if drain time / theoretical minimum > X
)";
}

std::optional<double> number(const char* text) {
  char* end = nullptr;
  errno = 0;
  const double value = std::strtod(text, &end);
  if (errno != 0 || end == text || *end != '\0') return std::nullopt;
  return value;
}

// nullopt after printing why, for a usage error.
std::optional<Options> parse_options(int argc, char** argv) {
  Options o;
  o.fake.jitter_tolerance = kDefaultJitterTolerance;
  using Setter = std::function<void(Options&, double)>;
  const std::map<std::string, Setter> numeric = {
      {"--channels", [](Options& o, double v) { o.channels = static_cast<int>(v); }},
      {"--replicas", [](Options& o, double v) { o.replicas = static_cast<int>(v); }},
      {"--messages", [](Options& o, double v) { o.messages = static_cast<int>(v); }},
      {"--senders", [](Options& o, double v) { o.senders = static_cast<int>(v); }},
      {"--workers", [](Options& o, double v) { o.workers = static_cast<int>(v); }},
      {"--channel-rate", [](Options& o, double v) { o.fake.channel_rate = v; }},
      {"--channel-burst", [](Options& o, double v) { o.fake.channel_burst = static_cast<int>(v); }},
      {"--workspace-per-minute", [](Options& o, double v) { o.fake.workspace_per_minute = v; }},
      {"--workspace-burst",
       [](Options& o, double v) { o.fake.workspace_burst = static_cast<int>(v); }},
      {"--retry-after",
       [](Options& o, double v) { o.fake.retry_after_seconds = static_cast<int>(v); }},
      {"--jitter-tolerance-ms",
       [](Options& o, double v) {
         o.fake.jitter_tolerance = std::chrono::milliseconds(static_cast<long>(v));
       }},
      {"--proxy-channel-rate", [](Options& o, double v) { o.proxy.channel_rate = v; }},
      {"--proxy-channel-burst",
       [](Options& o, double v) { o.proxy.channel_burst = static_cast<int>(v); }},
      {"--proxy-workspace-per-minute",
       [](Options& o, double v) { o.proxy.workspace_per_minute = v; }},
      {"--proxy-workspace-burst",
       [](Options& o, double v) { o.proxy.workspace_burst = static_cast<int>(v); }},
      {"--deadline", [](Options& o, double v) { o.deadline = Seconds(v); }},
      {"--max-429", [](Options& o, double v) { o.max_rate_limited = static_cast<long>(v); }},
      {"--max-ratio", [](Options& o, double v) { o.max_ratio = v; }},
  };
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "--help" || arg == "-h") {
      usage(std::cout);
      std::exit(0);
    } else if (arg == "--faster") {
      o.faster = true;
    } else if (arg == "--unshared") {
      o.unshared = true;
    } else if (arg == "--redis-queue") {
      o.redis_queue = true;
    } else if (arg == "--proxy-config-extra" && i + 1 < argc) {
      o.pipeline_extra += std::string(argv[++i]) + "\n";
    } else if (arg == "--proxy-sink-extra" && i + 1 < argc) {
      o.sink_extra += std::string(argv[++i]) + "\n";
    } else if (arg == "--log-level" && i + 1 < argc) {
      o.log_level = argv[++i];
    } else if (auto it = numeric.find(arg); it != numeric.end() && i + 1 < argc) {
      const auto value = number(argv[++i]);
      if (!value) {
        std::cerr << "storm-bench: " << arg << " needs a number, got '" << argv[i] << "'\n";
        return std::nullopt;
      }
      it->second(o, *value);
      if (arg.starts_with("--proxy-")) o.proxy_overrides.insert(arg);
    } else {
      std::cerr << "storm-bench: unknown or incomplete argument '" << arg << "'\n";
      usage(std::cerr);
      return std::nullopt;
    }
  }
  if (o.channels < 1 || o.messages < 1 || o.senders < 1 || o.workers < 1 || o.replicas < 1) {
    std::cerr << "storm-bench: channels, messages, senders, workers and replicas must be >= 1\n";
    return std::nullopt;
  }
  if (o.redis_queue && o.unshared) {
    std::cerr << "storm-bench: --redis-queue shares through Redis; --unshared does not\n";
    return std::nullopt;
  }
  // The proxy matches the fake unless told otherwise.
  const auto unless_given = [&](const char* flag, auto& field, auto value) {
    if (!o.proxy_overrides.contains(flag)) field = value;
  };
  unless_given("--proxy-channel-rate", o.proxy.channel_rate,
               o.faster ? 5 * o.fake.channel_rate : o.fake.channel_rate);
  unless_given("--proxy-channel-burst", o.proxy.channel_burst, o.fake.channel_burst);
  unless_given("--proxy-workspace-per-minute", o.proxy.workspace_per_minute,
               o.faster ? 0.0 : o.fake.workspace_per_minute);
  unless_given("--proxy-workspace-burst", o.proxy.workspace_burst, o.fake.workspace_burst);
  try {
    o.fake.validate();
  } catch (const std::invalid_argument& e) {
    std::cerr << "storm-bench: fake limits: " << e.what() << "\n";
    return std::nullopt;
  }
  return o;
}

std::string channel_name(int c) {
  char name[32];
  std::snprintf(name, sizeof name, "#storm-%03d", c);
  return name;
}

// The message's id is its whole text: unique per (channel, index).
std::string message_text(int c, int k) { return "storm " + channel_name(c) + " " + std::to_string(k); }

std::string text_of(const std::string& body) {
  try {
    Poco::JSON::Parser parser;
    auto object = parser.parse(body).extract<Poco::JSON::Object::Ptr>();
    if (object && object->has("text")) return object->getValue<std::string>("text");
  } catch (const std::exception&) {
    // Not ours.
  }
  return {};
}

// What the fake received past its limits, by message id.
class Deliveries {
 public:
  void record(const RecordedRequest& r) {
    const std::string id = text_of(r.body);
    {
      std::lock_guard lock(mutex_);
      if (!ids_.insert(id).second) {
        ++duplicates_;
        return;
      }
      last_new_at_ = r.at;
    }
    changed_.notify_all();
  }
  bool wait_unique(std::size_t n, Clock::time_point deadline) {
    std::unique_lock lock(mutex_);
    return changed_.wait_until(lock, deadline, [&] { return ids_.size() >= n; });
  }
  std::size_t unique() const {
    std::lock_guard lock(mutex_);
    return ids_.size();
  }
  std::size_t delivered_of(const std::set<std::string>& wanted) const {
    std::lock_guard lock(mutex_);
    return std::count_if(wanted.begin(), wanted.end(),
                         [&](const std::string& id) { return ids_.contains(id); });
  }
  std::size_t duplicates() const {
    std::lock_guard lock(mutex_);
    return duplicates_;
  }
  std::optional<Clock::time_point> last_new_at() const {
    std::lock_guard lock(mutex_);
    return last_new_at_;
  }

 private:
  mutable std::mutex mutex_;
  std::condition_variable changed_;
  std::set<std::string> ids_;
  std::size_t duplicates_ = 0;
  std::optional<Clock::time_point> last_new_at_;
};

// The least time, from the first delivery, in which the fake can admit
// everything: each channel gets its burst at once and then one message per
// 1/rate; the workspace likewise. Whichever is slower decides, and the last
// message may come as early as the jitter tolerance allows.
struct Minimum {
  Seconds channel{0}, workspace{0}, tolerance{0};
  Seconds total() const {
    return std::max(Seconds(0), std::max(channel, workspace) - tolerance);
  }
};

Minimum theoretical_minimum(const Options& o) {
  Minimum m;
  m.tolerance = o.fake.jitter_tolerance;
  if (o.fake.channel_rate > 0) {
    m.channel = Seconds(std::max(0, o.messages - o.fake.channel_burst) / o.fake.channel_rate);
  }
  if (o.fake.workspace_per_minute > 0) {
    const long total = static_cast<long>(o.channels) * o.messages;
    m.workspace = Seconds(std::max(0L, total - o.fake.workspace_burst) /
                          (o.fake.workspace_per_minute / 60.0));
  }
  return m;
}

std::string proxy_config(const Options& o, const std::string& slack_url) {
  const long total = static_cast<long>(o.channels) * o.messages;
  std::ostringstream t;
  t << std::fixed;  // "1.000000", never "1": rates are TOML floats
  t << "[server]\nlisten = \"@LISTEN@\"\nthreads = " << std::max(16, o.senders * 2) << "\n\n"
    << "[metrics]\nlisten = \"@METRICS@\"\n\n"
    << "[queue]\nbackend = \"" << (o.redis_queue ? "redis" : "memory")
    << "\"\ncapacity = " << std::max(1000L, 2 * total) << "\n\n"
    << "[dispatcher]\nworkers = " << o.workers << "\nshutdown_timeout = \"5s\"\n\n"
    << "[log]\nlevel = \"" << o.log_level << "\"\n\n"
    << "[[pipeline]]\nname = \"storm\"\npaths = [\"/\"]\n"
    << o.pipeline_extra << "\n";
  if (o.proxy.channel_rate > 0) {
    t << "[[pipeline.stage]]\nplugin = \"token_bucket\"\nname = \"per_channel\"\n"
      << "key = \"channel\"\nrate = " << o.proxy.channel_rate
      << "\nburst = " << o.proxy.channel_burst << "\n\n";
  }
  if (o.proxy.workspace_per_minute > 0) {
    t << "[[pipeline.stage]]\nplugin = \"token_bucket\"\nname = \"per_workspace\"\n"
      << "key = \"workspace\"\nrate = " << o.proxy.workspace_per_minute / 60.0
      << "\nburst = " << o.proxy.workspace_burst << "\n\n";
  }
  t << "[[pipeline.stage]]\nplugin = \"slack_retry\"\nmax_retries = 3\ninitial_backoff = \"1s\"\n\n"
    << "[[pipeline.stage]]\nplugin = \"slack_sink\"\nurl = \"" << slack_url << "\"\n"
    << o.sink_extra;
  return t.str();
}

struct PostResults {
  std::set<std::string> accepted;
  std::map<int, long> refused;  // HTTP status (0: no reply) -> count
};

// Every message, channels interleaved as a storm would bring them, from
// `senders` threads as fast as the proxies answer, each message to the
// next proxy in turn (a load balancer's round robin).
PostResults post_storm(const Options& o, const std::vector<std::string>& urls) {
  std::vector<std::pair<std::string, std::string>> messages;  // id, body
  for (int k = 0; k < o.messages; ++k) {
    for (int c = 0; c < o.channels; ++c) {
      Poco::JSON::Object body;
      body.set("channel", channel_name(c));
      body.set("text", message_text(c, k));
      std::ostringstream json;
      body.stringify(json);
      messages.emplace_back(message_text(c, k), json.str());
    }
  }
  std::atomic<std::size_t> next{0};
  std::mutex mutex;
  PostResults results;
  std::vector<std::thread> senders;
  for (int s = 0; s < o.senders; ++s) {
    senders.emplace_back([&] {
      for (std::size_t i = next++; i < messages.size(); i = next++) {
        int status = 0;
        try {
          status = http_post(urls[i % urls.size()], messages[i].second).status;
        } catch (const Poco::Exception&) {
          // No reply: counted as refused with status 0.
        }
        std::lock_guard lock(mutex);
        if (status == 200) {
          results.accepted.insert(messages[i].first);
        } else {
          ++results.refused[status];
        }
      }
    });
  }
  for (auto& t : senders) t.join();
  return results;
}

std::string limits_text(double channel_rate, int channel_burst, double per_minute, int burst) {
  std::ostringstream out;
  if (channel_rate > 0) {
    out << channel_rate << "/s per channel (burst " << channel_burst << ")";
  } else {
    out << "no channel limit";
  }
  if (per_minute > 0) {
    out << " + " << per_minute << "/min workspace (burst " << burst << ")";
  } else {
    out << ", no workspace limit";
  }
  return out.str();
}

constexpr const char* kRateLimitedFamily = "slackproxy_rate_limited_total";

// The proxy's count of Slack's 429s, summed over channels; nullopt when the
// family is not in the scrape (prometheus-cpp prints nothing for a family
// that has no series yet, as after a storm without 429s).
std::optional<long> proxy_rate_limited(const std::string& metrics) {
  if (!family_exposed(metrics, kRateLimitedFamily)) return std::nullopt;
  return std::lround(metric_sum(metrics, kRateLimitedFamily));
}

// Whether the proxy counted exactly the 429s the fake sent. When the fake
// sent none, zero is read the harness's way (family_sums_to_zero: exposed
// and summing to 0, or without series but documented in README.md), never
// from an absent name alone.
::testing::AssertionResult rate_limited_counts_agree(const std::string& metrics, long fake_sent) {
  if (fake_sent == 0) return family_sums_to_zero(metrics, kRateLimitedFamily);
  const auto counted = proxy_rate_limited(metrics);
  if (!counted) {
    return ::testing::AssertionFailure() << kRateLimitedFamily << " is not exposed, but the fake sent "
                                         << fake_sent << " 429s";
  }
  if (*counted != fake_sent) {
    return ::testing::AssertionFailure() << "the fake sent " << fake_sent
                                         << " 429s but the proxy counted " << *counted;
  }
  return ::testing::AssertionSuccess();
}

}  // namespace

int main(int argc, char** argv) {
  const auto parsed = parse_options(argc, argv);
  if (!parsed) return 2;
  const Options& o = *parsed;
  const Minimum minimum = theoretical_minimum(o);
  const Seconds deadline = o.deadline.value_or(3 * minimum.total() + Seconds(30));
  std::signal(SIGPIPE, SIG_IGN);

  Deliveries deliveries;
  FakeSlack slack;
  slack.on_request([&](const RecordedRequest& r) { deliveries.record(r); });
  slack.enforce_limits(o.fake);
  slack.start();

  std::unique_ptr<RedisServer> redis;
  std::string redis_section;
  if ((o.replicas > 1 && !o.unshared) || o.redis_queue) {
    const auto program = find_program({"redis-server"});
    if (!program) {
      std::cerr << "storm-bench: --replicas needs redis-server (Debian: redis-server)\n";
      return 2;
    }
    redis = std::make_unique<RedisServer>(*program);
    redis_section = "\n[redis]\nurl = \"" + redis->url() + "\"\n";
  }
  std::vector<std::unique_ptr<ProxyProcess>> proxies;
  std::vector<std::string> urls;
  for (int r = 0; r < o.replicas; ++r) {
    proxies.push_back(std::make_unique<ProxyProcess>(proxy_config(o, slack.url()) + redis_section));
    if (auto started = proxies.back()->start(); !started) {
      std::cerr << "storm-bench: " << started.message() << "\n";
      return 2;
    }
    urls.push_back(proxies.back()->url("/"));
  }

  std::printf("storm: %d channels x %d messages, %d senders, %d proxy workers%s\n", o.channels,
              o.messages, o.senders, o.workers,
              o.replicas == 1 ? ""
              : o.unshared    ? (", " + std::to_string(o.replicas) + " replicas, each with its own buckets").c_str()
                              : (", " + std::to_string(o.replicas) +
                                 (o.redis_queue ? " replicas sharing their buckets and one queue "
                                                  "through Redis"
                                                : " replicas sharing their buckets through Redis"))
                                    .c_str());
  std::printf("  fake Slack: %s%s\n",
              limits_text(o.fake.channel_rate, o.fake.channel_burst, o.fake.workspace_per_minute,
                          o.fake.workspace_burst)
                  .c_str(),
              o.fake.jitter_tolerance.count()
                  ? (", jitter tolerance " + std::to_string(o.fake.jitter_tolerance.count()) +
                     " ms")
                        .c_str()
                  : "");
  std::printf("  proxy:      %s%s\n",
              limits_text(o.proxy.channel_rate, o.proxy.channel_burst,
                          o.proxy.workspace_per_minute, o.proxy.workspace_burst)
                  .c_str(),
              o.faster ? " (deliberately faster than the fake)" : "");
  std::fflush(stdout);

  const auto first_post = Clock::now();
  const PostResults posted = post_storm(o, urls);
  const auto all_posted = Clock::now();
  const bool drained =
      deliveries.wait_unique(posted.accepted.size(), first_post + std::chrono::duration_cast<
                                                                      Clock::duration>(deadline));
  // Late duplicates (a retry of something already delivered) would still be
  // in the proxy's queue: wait for it to empty before counting them.
  bool queue_empty = true;
  for (auto& proxy : proxies) {
    queue_empty = queue_empty && static_cast<bool>(proxy->wait_for_metric(
                                     "slackproxy_queue_size", 0, std::chrono::seconds(10)));
  }
  std::vector<std::string> scrapes;
  for (auto& proxy : proxies) {
    try {
      scrapes.push_back(proxy->metrics());
    } catch (const Poco::Exception&) {
      scrapes.emplace_back();  // reported as absent below
    }
  }
  for (auto& proxy : proxies) proxy->signal(SIGTERM);
  constexpr std::chrono::seconds kExitDeadline{10};
  std::vector<std::optional<int>> exits;
  for (auto& proxy : proxies) exits.push_back(proxy->wait_exit(kExitDeadline));

  const long total = static_cast<long>(o.channels) * o.messages;
  const long accepted = static_cast<long>(posted.accepted.size());
  const long delivered = static_cast<long>(deliveries.delivered_of(posted.accepted));
  const long lost = accepted - delivered;
  const long duplicates = static_cast<long>(deliveries.duplicates());
  const long rate_limited = static_cast<long>(slack.rate_limited());
  const long early = static_cast<long>(slack.early_after_429());
  const auto last = deliveries.last_new_at();
  const Seconds drain = last ? Seconds(*last - first_post) : Seconds(0);
  const double ratio = minimum.total().count() > 0 ? drain / minimum.total() : 0;

  std::printf("  posted     %ld in %.3f s\n", total, Seconds(all_posted - first_post).count());
  std::printf("  accepted   %ld", accepted);
  for (const auto& [status, count] : posted.refused) {
    std::printf(", %ld refused with %s", count,
                status ? ("HTTP " + std::to_string(status)).c_str() : "no reply");
  }
  std::printf("\n  delivered  %ld unique%s\n", delivered,
              drained ? "" : "  (deadline passed before everything arrived)");
  std::printf("  lost       %ld\n", lost);
  std::printf("  duplicates %ld%s\n", duplicates,
              queue_empty ? "" : "  (the proxy's queue never emptied: more may follow)");
  // The proxies' own 429 counts, summed; nullopt when none exposes any.
  std::optional<long> proxy_counted;
  for (const auto& scrape : scrapes) {
    if (const auto counted = proxy_rate_limited(scrape))
      proxy_counted = proxy_counted.value_or(0) + *counted;
  }
  std::printf("  429s       %ld sent by the fake; the proxy counted %s\n", rate_limited,
              proxy_counted ? std::to_string(*proxy_counted).c_str()
                            : "none (no series)");
  std::printf("  early      %ld request(s) arrived inside a 429's Retry-After (after %lld ms "
              "in-flight grace)\n",
              early, static_cast<long long>(kInFlightGrace.count()));
  if (redis) {
    double commands = 0;
    for (const auto& scrape : scrapes) {
      if (family_exposed(scrape, "slackproxy_redis_commands_total"))
        commands += metric_sum(scrape, "slackproxy_redis_commands_total");
    }
    std::printf("  redis      %.0f commands, %.2f per delivered message\n", commands,
                delivered > 0 ? commands / static_cast<double>(delivered) : 0.0);
  }
  std::printf("  drain      %.3f s (first POST -> last new delivery)\n", drain.count());
  std::printf("  minimum    %.3f s (channel %.3f s, workspace %.3f s, less %.3f s tolerance)\n",
              minimum.total().count(), minimum.channel.count(), minimum.workspace.count(),
              minimum.tolerance.count());
  if (minimum.total().count() > 0) {
    std::printf("  ratio      %.3f\n", ratio);
  } else {
    std::printf("  ratio      n/a (the bursts cover the whole storm)\n");
  }
  std::printf(
      "RESULT channels=%d messages=%d faster=%d accepted=%ld delivered=%ld lost=%ld "
      "duplicates=%ld rate_limited=%ld early_after_429=%ld drain_s=%.3f min_s=%.3f ratio=%.3f\n",
      o.channels, o.messages, o.faster ? 1 : 0, accepted, delivered, lost, duplicates, rate_limited,
      early, drain.count(), minimum.total().count(), ratio);

  // Correctness first (exit 1), then the budgets (exit 3); every failure is
  // printed, so one run shows all that went wrong.
  int status = 0;
  const auto fail = [&](int code, const std::string& why) {
    std::fprintf(stderr, "storm-bench: FAIL: %s\n", why.c_str());
    if (status == 0 || code < status) status = code;
  };
  if (lost > 0 || accepted < total) {
    fail(1, std::to_string(lost) + " lost, " + std::to_string(total - accepted) + " refused");
  }
  if (!queue_empty) {
    fail(1, "the proxy's queue never emptied (slackproxy_queue_size still above 0 10 s after "
            "the wait for deliveries ended)");
  }
  if (duplicates > 0) fail(1, std::to_string(duplicates) + " message(s) delivered more than once");
  bool scraped = true;
  for (const auto& scrape : scrapes) scraped = scraped && !scrape.empty();
  if (!scraped) {
    fail(1, "a proxy's /metrics could not be read, so its 429 count cannot be checked");
  } else if (scrapes.size() == 1) {
    if (const auto agree = rate_limited_counts_agree(scrapes[0], rate_limited); !agree)
      fail(1, agree.message());
  } else if (rate_limited == 0) {
    for (const auto& scrape : scrapes) {
      if (const auto zero = family_sums_to_zero(scrape, kRateLimitedFamily); !zero)
        fail(1, zero.message());
    }
  } else if (proxy_counted.value_or(0) != rate_limited) {
    fail(1, "the fake sent " + std::to_string(rate_limited) + " 429s but the proxies counted " +
                std::to_string(proxy_counted.value_or(0)));
  }
  // Their queues are empty by now, so the drain has nothing to wait for: a
  // non-zero exit or a hang is a shutdown bug (or a sanitizer report).
  for (const auto& proxy_exit : exits) {
    if (proxy_exit == 0) continue;
    fail(1, proxy_exit ? "a proxy exited with " + std::to_string(*proxy_exit) + " after SIGTERM"
                       : "a proxy was still running " + std::to_string(kExitDeadline.count()) +
                             " s after SIGTERM");
  }
  if (o.max_rate_limited && rate_limited > *o.max_rate_limited) {
    fail(3, std::to_string(rate_limited) + " 429s, at most " +
                std::to_string(*o.max_rate_limited) + " allowed");
  }
  if (o.faster && early > 0) {
    fail(3, std::to_string(early) + " request(s) arrived before a 429's Retry-After had passed");
  }
  if (o.max_ratio && minimum.total().count() > 0 && ratio > *o.max_ratio) {
    char why[128];
    std::snprintf(why, sizeof why, "drain took %.3f x the minimum, at most %.3f allowed", ratio,
                  *o.max_ratio);
    fail(3, why);
  }
  if (status != 0) {
    for (std::size_t r = 0; r < proxies.size(); ++r) {
      std::fprintf(stderr, "storm-bench: end of proxy %zu's log:\n%s\n", r + 1,
                   last_lines(proxies[r]->log(), 40).c_str());
    }
  }
  return status;
}

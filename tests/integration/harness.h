// Runs the real slack-proxy binary for end-to-end tests: writes its config
// into a fresh temporary directory, spawns it, waits until it is healthy,
// talks HTTP to it, reads its metrics and log, signals it and reaps it.
#ifndef SLACK_PROXY_TESTS_INTEGRATION_HARNESS_H
#define SLACK_PROXY_TESTS_INTEGRATION_HARNESS_H

#include <gtest/gtest.h>
#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "http_client.h"

namespace slack_proxy::testing {

// Handed to every proxy as SLACK_TOKEN; tests grep for it to prove it leaks
// nowhere.
inline constexpr const char* kTestToken = "xoxb-test-4242-integration-secret";
// The admin API's key in every test proxy's environment (SLACK_PROXY_ADMIN_KEY).
inline constexpr const char* kAdminKey = "admin-key-test-9d2f7c41e0b8";

// Only reached when something is broken; the suite stays fast when it works.
inline constexpr std::chrono::milliseconds kStartupDeadline{10'000};
inline constexpr std::chrono::milliseconds kDeadline{10'000};

// A TCP port on 127.0.0.1 that was free a moment ago.
std::uint16_t free_port();

// The whole file, bytes as they are; "" when it cannot be read.
std::string read_file(const std::filesystem::path& path);
// `text` with every occurrence of `from` replaced by `to`.
std::string replace_all(std::string text, const std::string& from, const std::string& to);
// The last `lines` lines of a log, enough to see why a process ended as it
// did; "(empty)" for an empty one.
std::string last_lines(const std::string& text, int lines);

// A fresh directory under the system temp dir, removed on destruction
// unless the current test failed (so its files can be inspected).
class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::filesystem::path& path() const { return path_; }
  std::filesystem::path write(const std::string& name, const std::string& content) const;

 private:
  std::filesystem::path path_;
};

// "KEY=VALUE" entries; the child gets exactly these (and the sanitizers'
// options, see ChildProcess).
using Environment = std::vector<std::string>;
Environment default_environment();  // SLACK_TOKEN=kTestToken, SLACK_PROXY_ADMIN_KEY=kAdminKey
// "PATH=" and this process's PATH, for a child that runs programs by name (a
// script, a shell in a mount namespace); the system's directories when the
// test has no PATH.
std::string path_variable();

// The first sanitizer report (ASan, LSan, UBSan) in a process's output and
// what follows it, or nullopt when there is none.
std::optional<std::string> sanitizer_report(const std::string& output);

// How long a child still running when it is destroyed has to exit after
// SIGTERM. A proxy drains for at most its shutdown_timeout first.
inline constexpr std::chrono::milliseconds kStopDeadline{15'000};

// Whether a spawned process leads a process group of its own: a script and
// whatever it starts. Then every ending (kill_hard(), the destructor) also
// kills what is left of the group, so nothing it started outlives the test.
enum class ProcessGroup { inherit, own };

// A spawned process whose stdout and stderr go to one log file. It also gets
// the test's own ASAN_OPTIONS, LSAN_OPTIONS and UBSAN_OPTIONS.
//
// Destroyed while still running, it is ended as in production, with SIGTERM,
// so that it runs its shutdown and LeakSanitizer its leak check; it fails the
// current test if it does not exit 0 within kStopDeadline (then it is killed
// with SIGKILL). A test that expects another ending says so by reaping the
// child itself (wait_exit: then the exit status is the test's to check) or,
// for kill -9, with kill_hard(). Either way, a sanitizer report in its output
// fails the current test.
class ChildProcess {
 public:
  ChildProcess(const std::vector<std::string>& argv, const Environment& env,
               const std::filesystem::path& log_file,
               ProcessGroup group = ProcessGroup::inherit);
  ~ChildProcess();
  ChildProcess(const ChildProcess&) = delete;
  ChildProcess& operator=(const ChildProcess&) = delete;

  void signal(int signal_number);
  // Exit status once it exited within `timeout`: the exit code, or 128 + the
  // signal that killed it. nullopt when it is still running.
  std::optional<int> wait_exit(std::chrono::milliseconds timeout);
  // SIGKILL and reap, for tests about a crash; returns the exit status.
  // With ProcessGroup::own, the SIGKILL goes to the whole group.
  int kill_hard();
  bool running();
  // With ProcessGroup::own: whether any process of its group, the leader
  // included, is still running (a zombie is not).
  bool group_running() const;
  std::string output() const;
  pid_t pid() const { return pid_; }

 private:
  // The destructor's SIGTERM and wait; fails the test when the exit is not 0.
  void stop();
  // With ProcessGroup::own: SIGKILL to every process of the group.
  void kill_group();

  std::string program_;
  ProcessGroup group_;
  pid_t pid_ = -1;
  int pidfd_ = -1;
  std::optional<int> status_;
  std::filesystem::path log_file_;
};

struct CommandResult {
  int exit_code = -1;  // -1 when it did not finish in time (then it was killed)
  std::string output;  // stdout and stderr, interleaved
};

// --- external programs --------------------------------------------------------
// A test that needs a program this repository does not build (Alertmanager,
// promtool) starts with
//   SP_REQUIRE_TOOL(var, "debian-package", "name", "other-name");
// which declares `const std::filesystem::path var`, the first of the names found
// on PATH. When none is installed the test is skipped on a developer's
// machine, but fails when SLACK_PROXY_REQUIRE_ALL=1 is set: scripts/test.sh
// (CI) sets it, so a missing dependency there is a failure, never a skip
// that passes. scripts/install-deps.sh installs every such package.

std::optional<std::filesystem::path> find_program(const std::vector<std::string>& names);
bool every_tool_required();  // SLACK_PROXY_REQUIRE_ALL=1
std::string missing_tool(const std::string& package, const std::vector<std::string>& names);

#define SP_REQUIRE_TOOL(var, package, ...)                                                    \
  const auto var##_found = ::slack_proxy::testing::find_program({__VA_ARGS__});              \
  if (!var##_found) {                                                                       \
    if (::slack_proxy::testing::every_tool_required())                                       \
      GTEST_FAIL() << ::slack_proxy::testing::missing_tool(package, {__VA_ARGS__});          \
    GTEST_SKIP() << ::slack_proxy::testing::missing_tool(package, {__VA_ARGS__});            \
  }                                                                                          \
  const std::filesystem::path var = *var##_found

// Runs the proxy binary with `args` to completion (bounded by kDeadline).
CommandResult run_proxy_command(const std::vector<std::string>& args,
                                const Environment& env = default_environment());

// `slack-proxy validate <file>` on `config_text`, written to a temp file
// named slack-proxy.toml. "@CONFIG_DIR@" in the text is replaced by that
// file's directory, "@LISTEN@" and "@METRICS@" by 127.0.0.1:0.
CommandResult run_validate(const std::string& config_text,
                           const Environment& env = default_environment());

// What most tests run: a pipeline on "/" whose last stage is slack_sink
// pointing at `slack_url`, after `stages` (raw [[pipeline.stage]] tables).
// Listen addresses are the placeholders ProxyProcess fills in.
struct ProxyConfig {
  std::string slack_url;
  std::string stages = fast_retry_stages();
  std::string queue_backend = "memory";  // "sqlite": set `path` in queue_settings
  std::size_t queue_capacity = 1000;
  std::string queue_settings;  // extra lines inside [queue]
  std::string queue_retry_after = "5s";
  std::size_t max_body_bytes = 1 << 20;
  int threads = 0;  // event threads; 0: one per core, the default
  std::string server_settings;  // extra lines inside [server]
  // Short: every proxy ends with SIGTERM (see ChildProcess), and one whose
  // messages are stuck (a paused bucket, a slow or failing Slack) drains
  // until this deadline. A test about draining sets its own.
  std::string shutdown_timeout = "1s";
  int workers = 8;
  std::string log_level = "info";
  std::string log_settings;  // extra lines inside [log] (format = "json")
  std::vector<std::string> plugin_paths;
  std::string sink_settings;  // extra lines inside the slack_sink table
  std::string pipeline_settings;  // extra keys of the [[pipeline]] table itself

  // Retries quickly, so transient-error tests stay fast; then the deny-list.
  static std::string fast_retry_stages();
  std::string toml() const;
};

// The proxy under test. The config text may use "@LISTEN@" and "@METRICS@"
// (replaced by free 127.0.0.1 addresses) and "@CONFIG_DIR@".
class ProxyProcess {
 public:
  explicit ProxyProcess(std::string config_text, Environment env = default_environment(),
                        std::vector<std::string> extra_args = {});
  explicit ProxyProcess(const ProxyConfig& config, Environment env = default_environment());

  // Spawns it and waits until GET /health on the metrics listener answers
  // 200; fails with the log when it does not within kStartupDeadline.
  ::testing::AssertionResult start();
  // Spawns it without waiting for health: for runs expected to fail.
  void spawn();

  void signal(int signal_number) { child().signal(signal_number); }
  std::optional<int> wait_exit(std::chrono::milliseconds timeout) {
    return child().wait_exit(timeout);
  }
  int kill_hard() { return child().kill_hard(); }
  pid_t pid() { return child().pid(); }
  std::string log() const;  // everything it wrote to stdout and stderr so far
  // Waits until the log contains `needle`.
  ::testing::AssertionResult wait_for_log(const std::string& needle,
                                          std::chrono::milliseconds timeout = kDeadline);

  std::string url(const std::string& path = "/") const;  // on the ingress listener
  std::string metrics_url(const std::string& path = "/metrics") const;
  HttpResponse post(const std::string& body, const std::string& path = "/",
                    const std::string& content_type = "application/json") const;
  HttpResponse get(const std::string& path) const;
  std::string metrics() const;  // GET /metrics body
  // Polls /metrics until `series` is exposed and equals `expected`, or
  // `timeout` passes. An absent series equals nothing, not even 0.
  ::testing::AssertionResult wait_for_metric(const std::string& series, double expected,
                                             std::chrono::milliseconds timeout = kDeadline) const;

  // Writes `config_text` over the config file, with the placeholders filled
  // in as at the start (the same ports): what a reload then reads. The
  // file is replaced by a rename, as an editor or a deployment does.
  void rewrite_config(const std::string& config_text);

  const std::filesystem::path& config_path() const { return config_path_; }
  const std::filesystem::path& log_path() const { return log_path_; }
  std::uint16_t listen_port() const { return listen_port_; }

 private:
  ChildProcess& child();
  // Picks fresh ports and writes the config file from the template.
  void write_config();
  std::string filled_in(const std::string& config_text) const;

  TempDir dir_;
  std::string config_template_;
  std::uint16_t listen_port_ = 0;
  std::uint16_t metrics_port_ = 0;
  std::filesystem::path config_path_;
  std::filesystem::path log_path_;
  Environment env_;
  std::vector<std::string> extra_args_;
  std::unique_ptr<ChildProcess> child_;
};

// --- metrics ----------------------------------------------------------------
// A metric that is not exposed is not zero: a renamed series must fail the
// tests that read it, never pass an `== 0` check. So metric() and
// metric_sum() throw MetricAbsent (which fails the test, naming the series
// and showing the scrape), and an expected zero is written metric_is_zero()
// or family_sums_to_zero().
//
// prometheus-cpp (1.0) prints nothing at all, not even `# TYPE`, for a
// family that has no series yet, and a labelled family (a counter by
// channel) gets its first series on first use. So "zero" for a series that
// is absent means: its family is in this scrape, or it is one of the
// families README.md's "## Metrics" table documents (which
// MetricsFamiliesTest proves the real binary exports, by name, type and
// labels, after real traffic). A family that is neither fails.

struct MetricAbsent : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// Value of one series in Prometheus text format, e.g.
// find_metric(text, "slackproxy_requests_succeeded_total{channel=\"#a\"}").
// Label order does not matter. nullopt when the series is absent.
std::optional<double> find_metric(const std::string& text, const std::string& series);
// The value of a series that must be exposed; throws MetricAbsent if not.
double metric(const std::string& text, const std::string& series);
// Sum of every series of family `name`, whatever their labels; throws
// MetricAbsent unless the family is in the scrape (its `# TYPE` line).
double metric_sum(const std::string& text, const std::string& name);
// Every sample line of a scrape, in order.
struct Sample {
  std::string name;
  std::map<std::string, std::string> labels;
  double value = 0;
};
std::vector<Sample> samples(const std::string& text);
// Whether the scrape has family `name`'s `# TYPE` line.
bool family_exposed(const std::string& text, const std::string& name);

// Passes when `series` is exposed with value 0, or is absent while its
// family is exposed or documented (see above). So an absent series whose
// family is only in README.md's table passes: this check alone cannot tell
// "no series yet" from "the family is never exported". MetricsFamiliesTest
// is what proves every documented family really is exported (after real
// traffic, by name, type and labels); a family renamed in the code but not
// in README.md fails there, not here.
::testing::AssertionResult metric_is_zero(const std::string& text, const std::string& series);
// Passes when `series` is exposed with value `expected`; for 0, as metric_is_zero.
::testing::AssertionResult metric_equals(const std::string& text, const std::string& series,
                                         double expected);
// Passes when family `name` is exposed and its series sum to 0, or it has no
// series and is documented in README.md's table: like metric_is_zero, it
// relies on MetricsFamiliesTest to prove that a documented family is
// really exported.
::testing::AssertionResult family_sums_to_zero(const std::string& text, const std::string& name);

// A row of README.md's "## Metrics" table: `name{label,...}` and whether its
// meaning says "(histogram)".
struct DocumentedFamily {
  std::string name;
  std::vector<std::string> labels;
  bool histogram = false;
  std::string meaning;
};
// Read from README.md at run time, so tests and table cannot drift; throws
// std::runtime_error when the table cannot be found.
const std::vector<DocumentedFamily>& documented_metric_families();

// `name{channel="<channel>"}`
std::string series(const std::string& name, const std::string& channel);

}  // namespace slack_proxy::testing

#endif  // SLACK_PROXY_TESTS_INTEGRATION_HARNESS_H

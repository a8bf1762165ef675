#include "harness.h"

#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <Poco/Exception.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <map>
#include <sstream>
#include <stdexcept>
#include <string_view>
#include <thread>

namespace slack_proxy::testing {

namespace {

using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

// Between two looks at something that has no event to wait on (a file, an
// HTTP endpoint); every such loop is bounded by a deadline.
constexpr auto kPollInterval = 20ms;

int exit_code_of(int status) {
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return -1;
}

// --- Prometheus text format -------------------------------------------------

struct Series {
  std::string name;
  std::map<std::string, std::string> labels;
  bool operator==(const Series&) const = default;
};

// Parses `name{label="value",...}` at the start of `text`; returns the series
// and how many characters it used, or nullopt when malformed.
std::optional<std::pair<Series, std::size_t>> parse_series(std::string_view text) {
  Series s;
  std::size_t i = 0;
  while (i < text.size() && text[i] != '{' && text[i] != ' ' && text[i] != '\t') ++i;
  s.name = std::string(text.substr(0, i));
  if (s.name.empty()) return std::nullopt;
  if (i == text.size() || text[i] != '{') return std::pair{s, i};
  ++i;
  while (true) {
    while (i < text.size() && (text[i] == ',' || text[i] == ' ')) ++i;
    if (i >= text.size()) return std::nullopt;
    if (text[i] == '}') return std::pair{s, i + 1};
    const std::size_t eq = text.find('=', i);
    if (eq == std::string_view::npos || eq + 1 >= text.size() || text[eq + 1] != '"') {
      return std::nullopt;
    }
    std::string key(text.substr(i, eq - i));
    std::string value;
    i = eq + 2;
    for (; i < text.size() && text[i] != '"'; ++i) {
      if (text[i] == '\\' && i + 1 < text.size()) {
        ++i;
        value += text[i] == 'n' ? '\n' : text[i];
      } else {
        value += text[i];
      }
    }
    if (i >= text.size()) return std::nullopt;
    ++i;  // closing quote
    s.labels.emplace(std::move(key), std::move(value));
  }
}

// The value of a sample line whose series ends at `series_end`.
double sample_value(const std::string& line, std::size_t series_end) {
  std::istringstream value(line.substr(series_end));
  std::string token;
  value >> token;
  return std::stod(token);
}

// The rows of the table under "## Metrics" (before any subsection, such as
// the admin API's, whose tables are not metrics): "| `name{a,b}` | meaning |".
std::vector<DocumentedFamily> parse_metrics_table(const std::string& readme,
                                                  const std::string& where) {
  std::vector<DocumentedFamily> families;
  std::istringstream lines(readme);
  bool in_section = false;
  bool in_code = false;  // a "# comment" in a code block is no heading
  for (std::string line; std::getline(lines, line);) {
    if (line.rfind("```", 0) == 0) in_code = !in_code;
    if (!in_code && line.rfind('#', 0) == 0) {
      in_section = line == "## Metrics";
      continue;
    }
    if (!in_section || line.rfind("| `", 0) != 0) continue;
    const std::size_t open = 3;
    const std::size_t close = line.find('`', open);
    const std::size_t bar = line.find('|', close);
    if (close == std::string::npos || bar == std::string::npos) {
      throw std::runtime_error(where + ": malformed metrics table row: " + line);
    }
    const std::string cell = line.substr(open, close - open);
    DocumentedFamily f;
    const std::size_t brace = cell.find('{');
    f.name = cell.substr(0, brace);
    if (brace != std::string::npos) {
      std::istringstream labels(cell.substr(brace + 1, cell.find('}') - brace - 1));
      for (std::string label; std::getline(labels, label, ',');) f.labels.push_back(label);
    }
    f.meaning = line.substr(bar + 1);
    f.meaning = f.meaning.substr(0, f.meaning.rfind('|'));
    f.histogram = f.meaning.find("(histogram)") != std::string::npos;
    families.push_back(std::move(f));
  }
  if (families.empty()) throw std::runtime_error(where + " has no \"## Metrics\" table");
  return families;
}

// What ASan, LSan and UBSan print when they find something (UBSan:
// "file:line:col: runtime error: ...").
constexpr std::string_view kSanitizerMarkers[] = {
    "ERROR: AddressSanitizer", "ERROR: LeakSanitizer", ": runtime error: "};

// The sanitizers read their options from the environment, and a child gets
// only the environment a test hands it: pass the test's own on, so that the
// proxy runs with the same options (and leak suppressions) as the tests.
Environment with_sanitizer_options(Environment env) {
  for (const char* name : {"ASAN_OPTIONS", "LSAN_OPTIONS", "UBSAN_OPTIONS"}) {
    const char* value = std::getenv(name);
    if (value == nullptr) continue;
    const std::string prefix = std::string(name) + "=";
    const bool set_by_test = std::any_of(env.begin(), env.end(), [&](const std::string& e) {
      return e.rfind(prefix, 0) == 0;
    });
    if (!set_by_test) env.push_back(prefix + value);
  }
  return env;
}

}  // namespace

std::optional<std::string> sanitizer_report(const std::string& output) {
  std::size_t first = std::string::npos;
  for (std::string_view marker : kSanitizerMarkers) first = std::min(first, output.find(marker));
  if (first == std::string::npos) return std::nullopt;
  // From the start of the report's line: enough for the stack, not a whole log.
  const std::size_t line = output.rfind('\n', first);
  const std::size_t from = line == std::string::npos ? 0 : line + 1;
  return output.substr(from, 8000);
}

// ------------------------------------------------------------- basics --

std::string replace_all(std::string text, const std::string& from, const std::string& to) {
  for (std::size_t at = text.find(from); at != std::string::npos;
       at = text.find(from, at + to.size())) {
    text.replace(at, from.size(), to);
  }
  return text;
}

std::string read_file(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

std::string last_lines(const std::string& text, int lines) {
  if (text.empty()) return "(empty)";
  std::size_t at = text.size();
  for (int n = 0; at > 0 && n <= lines; ++n) {
    const std::size_t newline = text.rfind('\n', at - 1);
    if (newline == std::string::npos) return text;
    at = newline;
  }
  return text.substr(at + 1);
}


std::uint16_t free_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) throw std::runtime_error("socket: " + std::string(std::strerror(errno)));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  socklen_t len = sizeof(addr);
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 ||
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    const std::string why = std::strerror(errno);
    ::close(fd);
    throw std::runtime_error("cannot find a free port: " + why);
  }
  ::close(fd);
  return ntohs(addr.sin_port);
}

TempDir::TempDir() {
  std::string pattern = (std::filesystem::temp_directory_path() / "slack-proxy-it-XXXXXX").string();
  if (::mkdtemp(pattern.data()) == nullptr) {
    throw std::runtime_error("mkdtemp: " + std::string(std::strerror(errno)));
  }
  path_ = pattern;
}

TempDir::~TempDir() {
  if (::testing::Test::HasFailure()) {
    std::fprintf(stderr, "kept %s for inspection\n", path_.c_str());
    return;
  }
  std::error_code ignored;
  std::filesystem::remove_all(path_, ignored);
}

std::filesystem::path TempDir::write(const std::string& name, const std::string& content) const {
  const auto file = path_ / name;
  std::ofstream out(file, std::ios::binary | std::ios::trunc);
  out << content;
  if (!out) throw std::runtime_error("cannot write " + file.string());
  return file;
}

Environment default_environment() {
  return {std::string("SLACK_TOKEN=") + kTestToken,
          std::string("SLACK_PROXY_ADMIN_KEY=") + kAdminKey};
}

std::string path_variable() {
  const char* path = std::getenv("PATH");
  return std::string("PATH=") + (path != nullptr ? path : "/usr/sbin:/usr/bin:/sbin:/bin");
}

// -------------------------------------------------------- ChildProcess --

ChildProcess::ChildProcess(const std::vector<std::string>& argv, const Environment& env,
                           const std::filesystem::path& log_file, ProcessGroup group)
    : program_(argv.at(0)), group_(group), log_file_(log_file) {
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  const Environment full_env = with_sanitizer_options(env);
  std::vector<char*> envp;
  for (const auto& e : full_env) envp.push_back(const_cast<char*>(e.c_str()));
  envp.push_back(nullptr);

  posix_spawn_file_actions_t files;
  posix_spawn_file_actions_init(&files);
  posix_spawn_file_actions_addopen(&files, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_addopen(&files, 1, log_file.c_str(), O_WRONLY | O_CREAT | O_TRUNC,
                                   0644);
  posix_spawn_file_actions_adddup2(&files, 1, 2);
  // The fake Slack's sockets must not stay open in the proxy after it stops.
  posix_spawn_file_actions_addclosefrom_np(&files, 3);

  posix_spawnattr_t attributes;
  posix_spawnattr_init(&attributes);
  sigset_t none;
  sigemptyset(&none);
  sigset_t defaults;
  sigemptyset(&defaults);
  sigaddset(&defaults, SIGTERM);
  sigaddset(&defaults, SIGINT);
  sigaddset(&defaults, SIGPIPE);
  posix_spawnattr_setsigmask(&attributes, &none);
  posix_spawnattr_setsigdefault(&attributes, &defaults);
  short flags = POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF;
  if (group_ == ProcessGroup::own) {
    posix_spawnattr_setpgroup(&attributes, 0);  // its own pid becomes the group's id
    flags |= POSIX_SPAWN_SETPGROUP;
  }
  posix_spawnattr_setflags(&attributes, flags);

  const int rc = posix_spawn(&pid_, args[0], &files, &attributes, args.data(), envp.data());
  posix_spawn_file_actions_destroy(&files);
  posix_spawnattr_destroy(&attributes);
  if (rc != 0) throw std::runtime_error("cannot spawn " + argv[0] + ": " + std::strerror(rc));
  // Lets wait_exit() block on the exit itself instead of polling for it.
  pidfd_ = static_cast<int>(::syscall(SYS_pidfd_open, pid_, 0));
}

ChildProcess::~ChildProcess() {
  if (!status_) stop();
  kill_group();
  if (pidfd_ >= 0) ::close(pidfd_);
  // A sanitizer report fails the test even when the test itself saw nothing
  // wrong (a leak reported at exit, UB on a thread the test never asked about).
  if (auto report = sanitizer_report(output())) {
    ADD_FAILURE() << program_ << " reported a sanitizer error (log " << log_file_ << "):\n"
                  << *report;
  }
}

void ChildProcess::stop() {
  ::kill(pid_, SIGTERM);
  const auto code = wait_exit(kStopDeadline);
  if (code == 0) return;
  if (!code) kill_hard();
  auto failure = ::testing::AssertionFailure();
  if (code) {
    failure << program_ << " exited with " << *code << " after SIGTERM";
  } else {
    failure << program_ << " was still running " << kStopDeadline.count()
            << " ms after SIGTERM, so it was killed with SIGKILL";
  }
  ADD_FAILURE() << failure.message() << " (log " << log_file_ << "); it ended with:\n"
                << last_lines(output(), 30);
}

void ChildProcess::kill_group() {
  if (group_ == ProcessGroup::own) ::kill(-pid_, SIGKILL);
}

namespace {

// Whether a process that is not a zombie is in process group `pgid`. Read
// from /proc, since kill(-pgid, 0) also counts an orphan's zombie, which
// waits for init to reap it (here, for seconds).
bool live_process_in_group(pid_t pgid) {
  std::error_code error;
  for (std::filesystem::directory_iterator it("/proc", error), end; !error && it != end;
       it.increment(error)) {
    const std::string name = it->path().filename().string();
    if (name.find_first_not_of("0123456789") != std::string::npos) continue;
    const std::string stat = read_file(it->path() / "stat");  // empty once it is gone
    const std::size_t command_end = stat.rfind(')');
    if (command_end == std::string::npos) continue;
    std::istringstream fields(stat.substr(command_end + 1));
    char state = 0;
    pid_t parent = 0, group = 0;
    fields >> state >> parent >> group;
    if (group == pgid && state != 'Z' && state != 'X') return true;
  }
  return false;
}

}  // namespace

bool ChildProcess::group_running() const {
  if (group_ != ProcessGroup::own) throw std::logic_error("group_running() needs ProcessGroup::own");
  return live_process_in_group(pid_);
}

int ChildProcess::kill_hard() {
  kill_group();
  if (!status_) {
    ::kill(pid_, SIGKILL);
    int status = 0;
    while (::waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
    }
    status_ = exit_code_of(status);
  }
  return *status_;
}

void ChildProcess::signal(int signal_number) {
  if (!status_) ::kill(pid_, signal_number);
}

std::optional<int> ChildProcess::wait_exit(std::chrono::milliseconds timeout) {
  const auto deadline = Clock::now() + timeout;
  while (!status_) {
    int status = 0;
    const pid_t done = ::waitpid(pid_, &status, WNOHANG);
    if (done == pid_) {
      status_ = exit_code_of(status);
      break;
    }
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
    if (left.count() <= 0) return std::nullopt;
    if (pidfd_ >= 0) {
      pollfd p{pidfd_, POLLIN, 0};
      ::poll(&p, 1, static_cast<int>(left.count()));
    } else {
      std::this_thread::sleep_for(std::min<std::chrono::milliseconds>(left, kPollInterval));
    }
  }
  return status_;
}

bool ChildProcess::running() { return !wait_exit(0ms).has_value(); }

std::string ChildProcess::output() const { return read_file(log_file_); }

// ------------------------------------------------------------ commands --

namespace {

CommandResult run_in(const TempDir& dir, const std::vector<std::string>& args,
                     const Environment& env) {
  std::vector<std::string> argv{SP_PROXY_BINARY};
  argv.insert(argv.end(), args.begin(), args.end());
  ChildProcess child(argv, env, dir.path() / "output.log");
  CommandResult result;
  if (auto code = child.wait_exit(kDeadline)) {
    result.exit_code = *code;
  } else {
    child.kill_hard();  // a hung command: exit_code -1 fails the test that ran it
  }
  result.output = child.output();
  return result;
}

}  // namespace

// --------------------------------------------------- external programs --

std::optional<std::filesystem::path> find_program(const std::vector<std::string>& names) {
  const char* path = std::getenv("PATH");
  for (const auto& name : names) {
    std::istringstream dirs(path != nullptr ? path : "/usr/bin:/bin");
    for (std::string dir; std::getline(dirs, dir, ':');) {
      const auto candidate = std::filesystem::path(dir.empty() ? "." : dir) / name;
      if (::access(candidate.c_str(), X_OK) == 0) return candidate;
    }
  }
  return std::nullopt;
}

bool every_tool_required() {
  const char* value = std::getenv("SLACK_PROXY_REQUIRE_ALL");
  return value != nullptr && std::string_view(value) == "1";
}

std::string missing_tool(const std::string& package, const std::vector<std::string>& names) {
  std::string listed;
  for (const auto& name : names) listed += (listed.empty() ? "" : " or ") + name;
  return listed + " is not on PATH (Debian package " + package +
         ", scripts/install-deps.sh installs it)" +
         (every_tool_required() ? "; SLACK_PROXY_REQUIRE_ALL=1 makes that a failure"
                                : "; skipped here, a failure under SLACK_PROXY_REQUIRE_ALL=1");
}

CommandResult run_proxy_command(const std::vector<std::string>& args, const Environment& env) {
  TempDir dir;
  return run_in(dir, args, env);
}

CommandResult run_validate(const std::string& config_text, const Environment& env) {
  TempDir dir;
  std::string text = replace_all(config_text, "@CONFIG_DIR@", dir.path().string());
  // validate binds nothing, so any address will do.
  text = replace_all(std::move(text), "@LISTEN@", "127.0.0.1:0");
  text = replace_all(std::move(text), "@METRICS@", "127.0.0.1:0");
  const auto file = dir.write("slack-proxy.toml", text);
  return run_in(dir, {"validate", file.string()}, env);
}

// ---------------------------------------------------------- ProxyConfig --

std::string ProxyConfig::fast_retry_stages() {
  return R"(
[[pipeline.stage]]
plugin = "deny_list"
ttl = "15m"

[[pipeline.stage]]
plugin = "slack_retry"
max_retries = 3
initial_backoff = "50ms"
max_backoff = "200ms"
jitter = 0.0
)";
}

std::string ProxyConfig::toml() const {
  std::ostringstream t;
  t << "[server]\n"
    << "listen = \"@LISTEN@\"\n"
    << "threads = " << threads << "\n"
    << "max_body_bytes = " << max_body_bytes << "\n"
    << server_settings << "\n"
    << "[metrics]\n"
    << "listen = \"@METRICS@\"\n\n"
    << "[queue]\n"
    << "backend = \"" << queue_backend << "\"\n"
    << "capacity = " << queue_capacity << "\n"
    << "retry_after = \"" << queue_retry_after << "\"\n"
    << queue_settings << "\n"
    << "[dispatcher]\n"
    << "workers = " << workers << "\n"
    << "shutdown_timeout = \"" << shutdown_timeout << "\"\n\n"
    << "[log]\n"
    << "level = \"" << log_level << "\"\n"
    << log_settings << "\n";
  if (!plugin_paths.empty()) {
    t << "[plugins]\npaths = [";
    for (std::size_t i = 0; i < plugin_paths.size(); ++i) {
      t << (i ? ", " : "") << '"' << plugin_paths[i] << '"';
    }
    t << "]\n\n";
  }
  t << "[[pipeline]]\n"
    << "name = \"slack\"\n"
    << "paths = [\"/\", \"/api/chat.postMessage\"]\n"
    << pipeline_settings << "\n"
    << stages << "\n"
    << "[[pipeline.stage]]\n"
    << "plugin = \"slack_sink\"\n"
    << "url = \"" << slack_url << "\"\n"
    << sink_settings << "\n";
  return t.str();
}

// --------------------------------------------------------- ProxyProcess --

ProxyProcess::ProxyProcess(std::string config_text, Environment env,
                           std::vector<std::string> extra_args)
    : config_template_(std::move(config_text)),
      log_path_(dir_.path() / "proxy.log"),
      env_(std::move(env)),
      extra_args_(std::move(extra_args)) {
  write_config();
}

std::string ProxyProcess::filled_in(const std::string& config_text) const {
  std::string text =
      replace_all(config_text, "@LISTEN@", "127.0.0.1:" + std::to_string(listen_port_));
  text = replace_all(std::move(text), "@METRICS@", "127.0.0.1:" + std::to_string(metrics_port_));
  return replace_all(std::move(text), "@CONFIG_DIR@", dir_.path().string());
}

void ProxyProcess::write_config() {
  listen_port_ = free_port();
  metrics_port_ = free_port();
  config_path_ = dir_.write("slack-proxy.toml", filled_in(config_template_));
}

void ProxyProcess::rewrite_config(const std::string& config_text) {
  const std::filesystem::path next = dir_.write("slack-proxy.toml.next", filled_in(config_text));
  std::filesystem::rename(next, config_path_);
}

ProxyProcess::ProxyProcess(const ProxyConfig& config, Environment env)
    : ProxyProcess(config.toml(), std::move(env)) {}

void ProxyProcess::spawn() {
  std::vector<std::string> argv{SP_PROXY_BINARY, "--config", config_path_.string()};
  argv.insert(argv.end(), extra_args_.begin(), extra_args_.end());
  child_ = std::make_unique<ChildProcess>(argv, env_, log_path_);
}

ChildProcess& ProxyProcess::child() {
  if (!child_) throw std::logic_error("the proxy was never started");
  return *child_;
}

::testing::AssertionResult ProxyProcess::start() {
  // The proxy loads these from next to its binary; say so plainly when they
  // were not built rather than fail with a plugin-not-found from the proxy.
  if (!std::filesystem::exists(std::filesystem::path(SP_PLUGIN_DIR) / "slack_sink.so")) {
    return ::testing::AssertionFailure() << "built-in plugins missing in " << SP_PLUGIN_DIR;
  }
  spawn();
  const auto deadline = Clock::now() + kStartupDeadline;
  // free_port() can race with other processes on this shared machine.
  int port_retries = 2;
  while (Clock::now() < deadline) {
    if (auto code = child_->wait_exit(0ms)) {
      if (port_retries-- > 0 && log().find("already in use") != std::string::npos) {
        write_config();
        spawn();
        continue;
      }
      return ::testing::AssertionFailure()
             << "slack-proxy exited with " << *code << " before it was healthy; config "
             << config_path_ << "; log:\n"
             << log();
    }
    try {
      HttpRequest health;
      health.url = metrics_url("/health");
      health.timeout = 500ms;
      if (http_send(health).status == 200) return ::testing::AssertionSuccess();
    } catch (const Poco::Exception&) {
      // Not listening yet.
    }
    std::this_thread::sleep_for(kPollInterval);
  }
  return ::testing::AssertionFailure()
         << "slack-proxy did not answer GET /health within " << kStartupDeadline.count()
         << " ms; log:\n"
         << log();
}

std::string ProxyProcess::log() const { return read_file(log_path_); }

::testing::AssertionResult ProxyProcess::wait_for_log(const std::string& needle,
                                                      std::chrono::milliseconds timeout) {
  const auto deadline = Clock::now() + timeout;
  while (true) {
    if (log().find(needle) != std::string::npos) return ::testing::AssertionSuccess();
    if (Clock::now() >= deadline) break;
    std::this_thread::sleep_for(kPollInterval);
  }
  return ::testing::AssertionFailure() << "the log never said \"" << needle << "\"; log:\n"
                                       << log();
}

std::string ProxyProcess::url(const std::string& path) const {
  return "http://127.0.0.1:" + std::to_string(listen_port_) + path;
}

std::string ProxyProcess::metrics_url(const std::string& path) const {
  return "http://127.0.0.1:" + std::to_string(metrics_port_) + path;
}

HttpResponse ProxyProcess::post(const std::string& body, const std::string& path,
                                const std::string& content_type) const {
  return http_post(url(path), body, content_type);
}

HttpResponse ProxyProcess::get(const std::string& path) const { return http_get(url(path)); }

std::string ProxyProcess::metrics() const { return http_get(metrics_url()).body; }

::testing::AssertionResult ProxyProcess::wait_for_metric(const std::string& series,
                                                         double expected,
                                                         std::chrono::milliseconds timeout) const {
  const auto deadline = Clock::now() + timeout;
  std::optional<std::string> scrape;
  std::optional<double> last;
  while (true) {
    try {
      scrape = metrics();
      last = find_metric(*scrape, series);
      if (last == expected) return ::testing::AssertionSuccess();
    } catch (const Poco::Exception&) {
      // The metrics listener is briefly unavailable; look again.
    }
    if (Clock::now() >= deadline) break;
    std::this_thread::sleep_for(kPollInterval);
  }
  auto failure = ::testing::AssertionFailure();
  failure << series << " never became " << expected << " within " << timeout.count() << " ms; ";
  if (last) {
    failure << "last value " << *last;
  } else if (scrape) {
    failure << "it is not exposed; last scrape:\n" << *scrape;
  } else {
    failure << "metrics unreadable";
  }
  return failure << "; log:\n" << log();
}

// ------------------------------------------------------------- metrics --

std::optional<double> find_metric(const std::string& text, const std::string& series) {
  const auto wanted = parse_series(series);
  if (!wanted) throw std::invalid_argument("malformed series: " + series);
  std::istringstream lines(text);
  std::string line;
  while (std::getline(lines, line)) {
    if (line.empty() || line[0] == '#') continue;
    const auto found = parse_series(line);
    if (!found || !(found->first == wanted->first)) continue;
    return sample_value(line, found->second);
  }
  return std::nullopt;
}

double metric(const std::string& text, const std::string& series) {
  if (auto value = find_metric(text, series)) return *value;
  throw MetricAbsent(series + " is not exposed; scrape:\n" + text);
}

std::vector<Sample> samples(const std::string& text) {
  std::vector<Sample> all;
  std::istringstream lines(text);
  for (std::string line; std::getline(lines, line);) {
    if (line.empty() || line[0] == '#') continue;
    auto found = parse_series(line);
    if (!found) throw std::invalid_argument("malformed sample line: " + line);
    all.push_back({std::move(found->first.name), std::move(found->first.labels),
                   sample_value(line, found->second)});
  }
  return all;
}

bool family_exposed(const std::string& text, const std::string& name) {
  const std::string type_line = "# TYPE " + name + " ";
  return text.rfind(type_line, 0) == 0 || text.find("\n" + type_line) != std::string::npos;
}

double metric_sum(const std::string& text, const std::string& name) {
  if (!family_exposed(text, name)) {
    throw MetricAbsent("metric family " + name + " is not exposed; scrape:\n" + text);
  }
  double sum = 0;
  std::istringstream lines(text);
  std::string line;
  while (std::getline(lines, line)) {
    if (line.empty() || line[0] == '#') continue;
    const auto found = parse_series(line);
    if (!found || found->first.name != name) continue;
    sum += sample_value(line, found->second);
  }
  return sum;
}

namespace {

// The family a series name belongs to: a histogram's _bucket, _sum and
// _count belong to the histogram's name.
std::vector<std::string> families_of(const std::string& series_name) {
  std::vector<std::string> names{series_name};
  for (std::string_view suffix : {"_bucket", "_sum", "_count"}) {
    if (series_name.size() > suffix.size() && series_name.ends_with(suffix)) {
      names.push_back(series_name.substr(0, series_name.size() - suffix.size()));
    }
  }
  return names;
}

bool documented(const std::string& family) {
  const auto& all = documented_metric_families();
  return std::any_of(all.begin(), all.end(),
                     [&](const DocumentedFamily& f) { return f.name == family; });
}

// Why an absent series of `series_name` may read as zero, or nullopt.
std::optional<std::string> known_family(const std::string& text, const std::string& series_name) {
  for (const auto& family : families_of(series_name)) {
    if (family_exposed(text, family)) return "family " + family + " is exposed";
    if (documented(family)) {
      return "family " + family + " is documented in README.md (and has no series yet)";
    }
  }
  return std::nullopt;
}

}  // namespace

::testing::AssertionResult metric_is_zero(const std::string& text, const std::string& series) {
  if (const auto value = find_metric(text, series)) {
    if (*value == 0) return ::testing::AssertionSuccess() << series << " is 0";
    return ::testing::AssertionFailure() << series << " is " << *value << ", not 0";
  }
  const std::string name = parse_series(series)->first.name;
  if (auto why = known_family(text, name)) {
    return ::testing::AssertionSuccess() << series << " has no series; " << *why;
  }
  return ::testing::AssertionFailure()
         << series << " is not exposed, and " << name
         << " is neither a family in the scrape nor in README.md's metrics table; scrape:\n"
         << text;
}

::testing::AssertionResult metric_equals(const std::string& text, const std::string& series,
                                         double expected) {
  if (expected == 0) return metric_is_zero(text, series);
  const auto value = find_metric(text, series);
  if (value == expected) return ::testing::AssertionSuccess();
  auto failure = ::testing::AssertionFailure() << series << " is ";
  if (value) return failure << *value << ", not " << expected;
  return failure << "not exposed (expected " << expected << "); scrape:\n" << text;
}

::testing::AssertionResult family_sums_to_zero(const std::string& text, const std::string& name) {
  if (family_exposed(text, name)) {
    const double sum = metric_sum(text, name);
    if (sum == 0) return ::testing::AssertionSuccess();
    return ::testing::AssertionFailure() << "the series of " << name << " sum to " << sum
                                         << ", not 0; scrape:\n"
                                         << text;
  }
  if (documented(name)) return ::testing::AssertionSuccess() << name << " has no series yet";
  return ::testing::AssertionFailure()
         << name << " is neither a family in the scrape nor in README.md's metrics table; scrape:\n"
         << text;
}

const std::vector<DocumentedFamily>& documented_metric_families() {
  static const std::vector<DocumentedFamily> families = [] {
#ifdef SP_SOURCE_DIR
    const std::filesystem::path readme = std::filesystem::path(SP_SOURCE_DIR) / "README.md";
#else
    const std::filesystem::path readme;
    throw std::runtime_error("this binary was built without SP_SOURCE_DIR: no README.md to read");
#endif
    return parse_metrics_table(read_file(readme), readme.string());
  }();
  return families;
}

std::string series(const std::string& name, const std::string& channel) {
  return name + "{channel=\"" + channel + "\"}";
}

}  // namespace slack_proxy::testing

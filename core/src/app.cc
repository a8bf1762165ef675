#include "app.h"

#include <pthread.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <map>
#include <fstream>
#include <iostream>
#include <memory>
#include <optional>
#include <span>
#include <sstream>
#include <thread>

#include <Poco/Environment.h>
#include <Poco/Exception.h>
#include <Poco/Net/HTTPRequestHandler.h>
#include <Poco/Net/HTTPRequestHandlerFactory.h>
#include <Poco/Net/HTTPServer.h>
#include <Poco/Net/HTTPServerParams.h>
#include <Poco/Net/HTTPServerRequest.h>
#include <Poco/Net/HTTPServerResponse.h>
#include <Poco/Net/ServerSocket.h>
#include <Poco/SHA2Engine.h>
#include <Poco/ThreadPool.h>
#include <boost/dll/runtime_symbol_info.hpp>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include <slack_proxy/sdk/fingerprint.h>
#include <slack_proxy/sdk/secret_file.h>

#include "dispatcher.h"
#include "executor.h"
#include "host_services.h"
#include "ingress.h"
#include "log_format.h"
#include "metrics.h"
#include "pipeline.h"
#include "plugin_host.h"
#include "config/core_schema.h"
#include "config/stage_config.h"
#include "admin_api.h"
#include "reload.h"
#include "status_api.h"
#include "queue/memory_queue.h"
#include "queue/sqlite_queue.h"
#include "queue/token_seal.h"
#include "redis/redis_buckets.h"
#include "redis/redis_marks.h"
#include "redis/redis_queue.h"
#include "server_params.h"
#include "transport/http_server.h"
#include "transport/tls.h"

namespace slack_proxy {
namespace {

constexpr const char* kUsage = R"(usage:
  slack-proxy [--config FILE] [--log-level LEVEL]   run the proxy
  slack-proxy validate FILE                         check a config; start nothing
  slack-proxy plugins [--config FILE]               list plugins and their settings
  slack-proxy --version | --help

FILE defaults to config/slack-proxy.toml. LEVEL is trace, debug, info, warn or
error and overrides [log] level. The Slack token is read from the environment
variable named by the sink's token_env setting (default SLACK_TOKEN).
)";

struct Options {
  std::string command = "run";
  std::string config_path = "config/slack-proxy.toml";
  std::optional<std::string> log_level;
};

std::optional<Options> parse_args(int argc, char** argv, int& exit_code) {
  Options o;
  const std::vector<std::string> args(argv + 1, argv + argc);
  exit_code = kExitInvalid;
  auto fail = [&](const std::string& why) -> std::optional<Options> {
    std::cerr << "slack-proxy: " << why << "\n" << kUsage;
    return std::nullopt;
  };
  for (std::size_t i = 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    const bool has_value = i + 1 < args.size();
    if (a == "--help" || a == "-h") {
      std::cout << kUsage;
      exit_code = kExitOk;
      return std::nullopt;
    }
    if (a == "--version") {
      std::cout << "slack-proxy " SLACK_PROXY_VERSION " (plugin ABI " << SLACK_PROXY_ABI_MAJOR << "."
                << SLACK_PROXY_ABI_MINOR << ", " SLACK_PROXY_BUILD_FINGERPRINT ")\n";
      exit_code = kExitOk;
      return std::nullopt;
    }
    if (a == "--config" || a == "-c") {
      if (!has_value) return fail(a + " needs a FILE");
      o.config_path = args[++i];
    } else if (a == "--log-level") {
      if (!has_value) return fail(a + " needs a LEVEL");
      o.log_level = args[++i];
    } else if (i == 0 && (a == "run" || a == "plugins")) {
      o.command = a;
    } else if (i == 0 && a == "validate") {
      if (!has_value) return fail("validate needs a FILE");
      o.command = a;
      o.config_path = args[++i];
    } else {
      return fail("unknown argument '" + a + "'");
    }
  }
  return o;
}

std::shared_ptr<spdlog::logger> make_logger(const std::string& level, const std::string& format) {
  auto log = spdlog::stderr_color_mt("slack-proxy");
  log->set_formatter(make_log_formatter(format));
  log->set_level(spdlog::level::from_str(level));
  log->flush_on(spdlog::level::info);
  return log;
}

// With `tls`, a TLS listener (the handshake happens on the connection's thread).
Poco::Net::ServerSocket bind(const config::ListenAddress& addr, int backlog) {
  Poco::Net::ServerSocket socket;
  // SO_REUSEADDR lets a restart bind while old connections sit in TIME_WAIT.
  // Not SO_REUSEPORT (Poco's default with reuseAddress): a second proxy on
  // the same port must fail, not silently take half the traffic.
  socket.bind(Poco::Net::SocketAddress(addr.host, addr.port), /*reuseAddress=*/true,
              /*reusePort=*/false);
  socket.listen(backlog);
  return socket;
}

 // Serves GET /metrics (Prometheus text), GET /health, the admin API and the
// status page.
class MetricsHandler final : public Poco::Net::HTTPRequestHandler {
 public:
  MetricsHandler(PrometheusMetrics& metrics, std::function<void()> refresh, AdminApi* admin,
                 StatusApi* status)
      : metrics_(metrics), refresh_(std::move(refresh)), admin_(admin), status_(status) {}
  void handleRequest(Poco::Net::HTTPServerRequest& req,
                     Poco::Net::HTTPServerResponse& resp) override {
    std::string body;
    const std::string path = req.getURI().substr(0, req.getURI().find('?'));
    const bool for_admin = admin_ != nullptr && AdminApi::handles(path);
    const bool for_status = status_ != nullptr && StatusApi::handles(path);
    if (for_admin || for_status) {
      std::optional<std::string> authorization;
      if (req.has("Authorization")) authorization = req.get("Authorization");
      // The status page is open unless [admin] status_public = false; its
      // JSON then needs the key as the admin API does (the page asks).
      std::optional<HttpReply> refused;
      if (for_admin || (!admin_->status_public() && path == "/status.json"))
        refused = admin_->refuse_unauthorized(authorization);
      // The public view leaves out what the key guards (dead letters'
      // details, a refused reload's errors); a key sent with it shows them.
      const bool with_key =
          !refused && authorization && !admin_->refuse_unauthorized(authorization);
      HttpReply reply = refused     ? std::move(*refused)
                        : for_admin ? admin_->handle(req.getMethod(), req.getURI())
                                    : status_->handle(req.getMethod(), path, with_key);
      // The admin API takes no body; one sent anyway is not read, so the
      // connection cannot be reused safely.
      if (req.hasContentLength() ? req.getContentLength() > 0 : req.getChunkedTransferEncoding())
        resp.setKeepAlive(false);
      resp.setStatusAndReason(static_cast<Poco::Net::HTTPResponse::HTTPStatus>(reply.status));
      for (const auto& [k, v] : reply.headers) resp.set(k, v);
      resp.setContentType(reply.content_type);
      resp.setContentLength(static_cast<std::streamsize>(reply.body.size()));
      resp.send().write(reply.body.data(), static_cast<std::streamsize>(reply.body.size()));
      return;
    }
    if (path == "/metrics" && (req.getMethod() == "GET" || req.getMethod() == "HEAD")) {
      refresh_();
      body = metrics_.serialize();
      resp.setContentType("text/plain; version=0.0.4; charset=utf-8");
    } else if (path == "/health") {
      body = R"({"ok":true})";
      resp.setContentType("application/json; charset=utf-8");
    } else {
      resp.setStatus(Poco::Net::HTTPResponse::HTTP_NOT_FOUND);
      body = R"({"ok":false,"error":"not_found"})";
      resp.setContentType("application/json; charset=utf-8");
    }
    resp.setContentLength(static_cast<std::streamsize>(body.size()));
    resp.send() << body;
  }

 private:
  PrometheusMetrics& metrics_;
  std::function<void()> refresh_;
  AdminApi* admin_;
  StatusApi* status_;
};

class MetricsFactory final : public Poco::Net::HTTPRequestHandlerFactory {
 public:
  MetricsFactory(PrometheusMetrics& metrics, std::function<void()> refresh, AdminApi* admin,
                 StatusApi* status)
      : metrics_(metrics), refresh_(std::move(refresh)), admin_(admin), status_(status) {}
  Poco::Net::HTTPRequestHandler* createRequestHandler(
      const Poco::Net::HTTPServerRequest&) override {
    return new MetricsHandler(metrics_, refresh_, admin_, status_);
  }

 private:
  PrometheusMetrics& metrics_;
  std::function<void()> refresh_;
  AdminApi* admin_;
  StatusApi* status_;
};

// The Redis password from [redis] password_file or password_env; empty when
// neither gives one. Never echoes it.
std::string load_redis_password(const config::RedisConfig& redis) {
  if (!redis.password_file.empty()) {
    std::string problem;
    auto password = sdk::read_secret_file(redis.password_file, problem);
    if (!password) throw std::runtime_error("[redis] password_file: " + problem);
    return *password;
  }
  if (redis.password_env.empty()) return {};
  const char* env = std::getenv(redis.password_env.c_str());
  return env == nullptr ? std::string() : std::string(env);
}

// [redis] as connection settings; nullopt without a url.
std::optional<RedisSettings> redis_settings(const config::RedisConfig& redis) {
  if (redis.url.empty()) return std::nullopt;
  RedisSettings s;
  parse_redis_url(redis.url, s);  // checked with the config
  s.user = redis.user;
  s.password = load_redis_password(redis);
  s.connect_timeout = redis.connect_timeout;
  s.command_timeout = redis.command_timeout;
  s.key_prefix = redis.key_prefix;
  return s;
}

// Pacing shared by every replica (token buckets and 429 pauses) when [redis]
// says so; null otherwise, and then each process keeps its own.
std::shared_ptr<RedisSharedBuckets> open_shared_pacing(const config::ProxyConfig& cfg,
                                                       const std::optional<RedisSettings>& settings,
                                                       const sdk::Clock& clock,
                                                       prometheus::Registry& registry,
                                                       const std::shared_ptr<spdlog::logger>& log) {
  if (!settings || !cfg.redis.pacing) return nullptr;
  log->info("shared token buckets and 429 pauses live in Redis at {} (keys under \"{}\"); every "
            "replica using it draws from one budget",
            settings->where(), settings->key_prefix);
  auto connection = std::make_unique<RedisConnection>(
      *settings, log, std::make_shared<RedisMetrics>(registry, "pacing"), "pacing");
  return std::make_shared<RedisSharedBuckets>(std::move(connection), clock, log);
}

// The stages' marks in Redis (the deny-list's parked channels), when [redis]
// says so; null: each stage keeps its own in this process. A connection of
// its own, so that a slow read-back never delays a token claim.
std::shared_ptr<RedisSharedMarks> open_shared_marks(const config::ProxyConfig& cfg,
                                                    const std::optional<RedisSettings>& settings,
                                                    const sdk::Clock& clock,
                                                    prometheus::Registry& registry,
                                                    const std::shared_ptr<spdlog::logger>& log) {
  if (!settings || !cfg.redis.marks) return nullptr;
  log->info("stages' shared marks (the deny-list's parked channels) live in Redis at {}: every "
            "replica using it sees them",
            settings->where());
  return std::make_shared<RedisSharedMarks>(
      std::make_unique<RedisConnection>(*settings, log,
                                        std::make_shared<RedisMetrics>(registry, "marks"), "marks"),
      clock, log);
}

// The key that seals callers' tokens in a durable queue; null when no
// pipeline takes the caller's token.
std::shared_ptr<const TokenSealer> token_sealer(const config::ProxyConfig& cfg,
                                                const std::shared_ptr<spdlog::logger>& log) {
  const bool caller_tokens = std::any_of(cfg.pipelines.begin(), cfg.pipelines.end(),
                                         [](const auto& p) { return p.delivery_token == "caller"; });
  if (!caller_tokens) return nullptr;
  const char* key = std::getenv(cfg.queue.token_key_env.c_str());
  if (key != nullptr && *key != '\0') {
    try {
      return std::make_shared<TokenSealer>(TokenSealer::from_hex(key));
    } catch (const std::exception& e) {
      throw std::runtime_error("$" + cfg.queue.token_key_env + ": " + e.what());
    }
  }
  if (cfg.queue.backend == "redis")
    throw std::runtime_error("$" + cfg.queue.token_key_env +
                             " is not set: with [queue] backend = \"redis\", a caller-token "
                             "pipeline needs the same sealing key on every replica, or another "
                             "replica could not open the tokens it takes over");
  log->warn("${} is not set: callers' tokens are sealed in the queue with a key that dies "
            "with this process, so caller-token messages left at exit are dead-lettered "
            "as token_unavailable on the next start",
            cfg.queue.token_key_env);
  return std::make_shared<TokenSealer>(TokenSealer::random());
}

// Set when the Redis queue took this replica for dead (see open_queue).
std::atomic<bool> g_fenced{false};

// With the Redis queue, callers' tenants are named alike on every replica,
// so that a caller's channel is one lane whichever replica took its
// message: the salt comes from the sealing key they must share (never the
// key itself). Empty otherwise: each process salts its own.
std::string fleet_tenant_salt(const config::ProxyConfig& cfg) {
  if (cfg.queue.backend != "redis") return {};
  const char* key = std::getenv(cfg.queue.token_key_env.c_str());
  if (key == nullptr || *key == '\0') return {};
  Poco::SHA2Engine sha(Poco::SHA2Engine::SHA_256);
  sha.update(std::string("slack-proxy tenant salt\n"));
  sha.update(std::string(key));
  const auto digest = sha.digest();
  return std::string(digest.begin(), digest.end());
}

// The configured queue backend, opened (and, for SQLite, recovered).
std::unique_ptr<Queue> open_queue(const config::ProxyConfig& cfg,
                                  const std::optional<RedisSettings>& redis,
                                  const sdk::Clock& clock, prometheus::Registry& registry,
                                  const std::shared_ptr<spdlog::logger>& log) {
  QueueLimits limits;
  limits.max_messages = cfg.queue.capacity;
  limits.max_bytes = cfg.queue.max_bytes;
  limits.dedup_window = cfg.queue.dedup_window;
  if (cfg.queue.backend == "memory")
    return std::make_unique<MemoryQueue>(limits, clock, cfg.queue.max_dead_letters);

  if (cfg.queue.backend == "redis") {
    if (!redis) throw std::runtime_error("[queue] backend = \"redis\" needs [redis] url");
    RedisQueueOptions o;
    o.limits = limits;
    o.max_dead_letters = cfg.queue.max_dead_letters;
    o.sealer = token_sealer(cfg, log);
    o.lease = cfg.queue.lease;
    o.wait_replicas = cfg.queue.wait_replicas;
    o.wait_timeout = std::min(cfg.queue.wait_timeout, redis->command_timeout / 2);
    o.replica = Poco::Environment::nodeName();
    log->info("queue: Redis at {} (keys under \"{}q:\"), shared by every replica using it; a "
              "replica silent for {} ms has its channels taken over",
              redis->where(), redis->key_prefix, cfg.queue.lease.count());
    const RedisSettings settings = *redis;
    auto queue = std::make_unique<RedisQueue>(
        std::move(o),
        [&](const std::string& role) {
          return std::make_unique<RedisConnection>(
              settings, log, std::make_shared<RedisMetrics>(registry, role), role);
        },
        clock, log);
    // Taken for dead: the others deliver its channels now. It stops as if
    // told to (serve() exits with kExitFenced), and starts again as a new
    // replica under its supervisor.
    queue->on_lost([] {
      g_fenced.store(true);
      ::kill(::getpid(), SIGTERM);
    });
    return queue;
  }

  SqliteQueueOptions o;
  o.path = cfg.queue.path;
  o.limits = limits;
  o.sync = cfg.queue.sync == "normal" ? SqliteQueueOptions::Sync::Normal
                                      : SqliteQueueOptions::Sync::Full;
  o.max_dead_letters = cfg.queue.max_dead_letters;
  o.sealer = token_sealer(cfg, log);
  return std::make_unique<SqliteQueue>(std::move(o), clock, log);
}

std::string describe_pipeline(const config::PipelineSpec& p) {
  std::string s = "'" + p.name + "' on";
  for (const auto& path : p.paths) s += " " + path;
  s += ":";
  for (std::size_t i = 0; i < p.stages.size(); ++i)
    s += (i == 0 ? " " : " -> ") + p.stages[i].name;
  return s;
}

int run_validate(const Options& o) {
  try {
    config::ProxyConfig cfg = config::load_config(o.config_path);
    PluginHost plugins(plugin_search_path(cfg));
    validate_pipelines(cfg, plugins);
    std::cout << o.config_path << ": OK\n";
    for (const auto& p : cfg.pipelines) std::cout << "  pipeline " << describe_pipeline(p) << "\n";
    return kExitOk;
  } catch (const std::exception& e) {
    std::cerr << e.what() << "\n";
    return kExitInvalid;
  }
}

// A schema's rows as `slack-proxy plugins` shows them. A secret's row has
// no value to show: the host reads it only when a stage is created.
void print_schema(std::span<const sp_config_key> schema) {
  for (const sp_config_key& k : schema) {
    std::cout << "  " << k.key << ": " << config::describe_setting(k) << "\n";
    if (k.doc != nullptr && *k.doc != '\0') std::cout << "      " << k.doc << "\n";
  }
}

int run_plugins(const Options& o) {
  config::ProxyConfig cfg;
  try {
    cfg = config::load_config(o.config_path);
  } catch (const std::exception&) {
    // Listing plugins needs no config; fall back to the default search path.
  }
  // The core's sections are checked by the same machinery as a plugin's
  // settings, so they are listed the same way.
  for (const auto& section : config::core_sections()) {
    std::cout << section.name << " (core)\n";
    print_schema({section.keys, section.size});
  }
  PluginHost plugins(plugin_search_path(cfg));
  int rc = kExitOk;
  for (const auto& name : plugins.available()) {
    try {
      const LoadedPlugin& p = plugins.load(name);
      const auto& d = *p.descriptor;
      std::cout << name << " (" << stage_kind_name(d.kind) << "): " << (d.summary ? d.summary : "")
                << "\n  file: " << p.path << "\n";
      print_schema(p.schema);
    } catch (const std::exception& e) {
      std::cout << name << ": NOT LOADABLE: " << e.what() << "\n";
      rc = kExitInvalid;
    }
  }
  return rc;
}

// Blocks SIGINT/SIGTERM (stop) and SIGHUP (reload) in this and every thread
// started later, so that the main thread alone receives them through
// sigwait().
sigset_t block_signals() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGHUP);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  return set;
}

// Logs what a drain left behind, largest lanes first, without one line per
// channel: a storm can leave thousands.
void log_leftovers(spdlog::logger& log, const std::map<std::string, std::size_t>& backlog) {
  std::vector<std::pair<std::string, std::size_t>> lanes(backlog.begin(), backlog.end());
  std::sort(lanes.begin(), lanes.end(),
            [](const auto& a, const auto& b) { return a.second > b.second; });
  constexpr std::size_t kShown = 10;
  for (std::size_t i = 0; i < lanes.size() && i < kShown; ++i)
    log.warn("  {}: {} message(s) left", lanes[i].first, lanes[i].second);
  if (lanes.size() > kShown) log.warn("  ... and {} more channel(s)", lanes.size() - kShown);
}

// The ingress server's settings from [server]; threads 0 is one per core.
ServerOptions ingress_server_options(const config::ServerConfig& server,
                                     const IngressOptions& ingress) {
  ServerOptions o;
  o.threads = server.threads > 0
                  ? server.threads
                  : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  o.max_connections = server.max_connections;
  o.retry_after = ingress.retry_after;
  o.read_timeout = server.read_timeout;
  o.keep_alive_timeout = server.keep_alive_timeout;
  o.max_keep_alive_requests = server.max_keep_alive_requests;
  o.max_header_fields = server.max_header_fields;
  o.max_header_bytes = server.max_header_bytes;
  return o;
}

// Every connection is a descriptor: make room for max_connections and what
// the rest of the process holds (queue, plugins, metrics listener, sends).
void log_open_files_limit(spdlog::logger& log, const ServerOptions& options) {
  constexpr std::size_t kOtherDescriptors = 1024;
  const std::size_t needed = static_cast<std::size_t>(options.max_connections) + kOtherDescriptors;
  const std::size_t limit = raise_open_files_limit(needed);
  if (limit >= needed) {
    log.info("open files limit {} (max_connections {} needs {})", limit,
             options.max_connections, needed);
  } else {
    log.warn("open files limit {} is below the {} that max_connections {} needs (the hard "
             "limit, `ulimit -Hn`, is lower): beyond it connections fail at accept",
             limit, needed, options.max_connections);
  }
}

// How long a scrape waits for the dispatcher to look at its lanes' heads;
// after that it reports the previous look's.
constexpr std::chrono::milliseconds kOldestWait{250};

// Seconds each channel's oldest message has waited, at `now`.
std::map<std::string, double> oldest_ages(const std::map<std::string, sdk::SteadyTime>& since,
                                          sdk::SteadyTime now) {
  std::map<std::string, double> ages;
  for (const auto& [channel, at] : since)
    ages.emplace(channel, std::chrono::duration<double>(std::max(now - at, now - now)).count());
  return ages;
}

// Runs the proxy until SIGTERM/SIGINT, then drains. Throws on start-up
// failures; the caller turns them into exit code 2.
int serve(const Options& o, const config::ProxyConfig& cfg,
          const std::shared_ptr<spdlog::logger>& log, const sigset_t& signals) {
  PrometheusMetrics metrics(log);
  CoreMetrics core_metrics(metrics.registry(), cfg.metrics.max_channel_labels);
  SystemClock clock;
  auto plugins = std::make_unique<PluginHost>(plugin_search_path(cfg));
  // Read once: the password file or variable is read here, for every use.
  const std::optional<RedisSettings> redis = redis_settings(cfg.redis);
  const std::shared_ptr<RedisSharedBuckets> shared_pacing =
      open_shared_pacing(cfg, redis, clock, metrics.registry(), log);
  // The stages' marks: in Redis when [redis] says so, else in this process,
  // each stage's set kept for the process's life (across reloads).
  std::shared_ptr<MarkScopes> shared_marks =
      open_shared_marks(cfg, redis, clock, metrics.registry(), log);
  if (!shared_marks) shared_marks = std::make_shared<LocalMarkScopes>();
  // One set of buckets for the process's life, so that a reload keeps
  // every bucket whose definition did not change.
  const std::shared_ptr<sdk::SharedBuckets> buckets =
      shared_pacing ? std::shared_ptr<sdk::SharedBuckets>(shared_pacing)
                    : std::make_shared<sdk::LocalSharedBuckets>();
  const Reloader::Build build = [&](const config::ProxyConfig& c, PluginHost& host,
                                    const CarryOver* previous, std::vector<std::string>* carried) {
    return build_pipelines(c, host, log, metrics, clock, buckets, shared_marks, previous,
                           carried);
  };
  std::vector<std::shared_ptr<Pipeline>> pipelines = build(cfg, *plugins, nullptr, nullptr);

  std::unique_ptr<Queue> queue_owner = open_queue(cfg, redis, clock, metrics.registry(), log);
  Queue& queue = *queue_owner;
  if (cfg.queue.backend == "sqlite") {
    log->info("queue: {} (sync {}): recovered {} message(s); {} dead letter(s) stored",
              cfg.queue.path, cfg.queue.sync, queue.recovered(), queue.dead_letters().count());
  }
  AdminApi admin(queue, log);
  if (const std::string key = load_admin_key(cfg.admin); !key.empty()) {
    admin.set_key(key);
  } else if (cfg.metrics.enabled) {
    log->warn("admin API is off: no admin key (set ${} or [admin] key_file); POST "
              "/admin/reload with it, SIGHUP without",
              cfg.admin.key_env);
  }
  const auto worker_count = static_cast<std::size_t>(cfg.dispatcher.workers);
  ThreadPool workers(worker_count);
  Dispatcher dispatcher(queue, pipelines, clock, core_metrics, log, workers, worker_count,
                        DispatcherWindow{static_cast<std::size_t>(cfg.dispatcher.lane_window),
                                         cfg.dispatcher.window_bytes});
  if (shared_pacing) dispatcher.share_pauses(shared_pacing);

  IngressOptions ingress_options;
  ingress_options.max_body_bytes = cfg.server.max_body_bytes;
  ingress_options.max_json_depth = cfg.server.max_json_depth;
  ingress_options.retry_after = std::chrono::duration_cast<std::chrono::seconds>(
      cfg.queue.retry_after + std::chrono::milliseconds(999));
  ingress_options.tenant_salt = fleet_tenant_salt(cfg);
  Ingress ingress(queue, pipelines, core_metrics, clock, log, ingress_options);

  // Without a caller-token pipeline at start, a durable queue has no key
  // to seal callers' tokens with (token_sealer): adding one needs a restart.
  const bool can_seal_tokens =
      cfg.queue.backend == "memory" ||
      std::any_of(cfg.pipelines.begin(), cfg.pipelines.end(),
                  [](const auto& p) { return p.delivery_token == "caller"; });
  // The pipelines move into the reloader: after a reload nothing holds the
  // first ones but what still uses them.
  Reloader reloader(o.config_path,
                    Reloader::Running{cfg, std::move(plugins), std::move(pipelines)}, build,
                    Reloader::Targets{ingress, dispatcher, admin, log, o.log_level,
                                      can_seal_tokens},
                    metrics.registry(), clock);
  admin.set_status_public(cfg.admin.status_public);
  StatusApi status(StatusApi::Sources{dispatcher, queue, admin, reloader, shared_marks, clock,
                                      cfg.queue.backend});
  admin.set_reload([&reloader] {
    ReloadOutcome r = reloader.reload(/*wait=*/false);
    return AdminApi::ReloadReply{r.ok, r.ok ? std::move(r.changes) : std::move(r.errors)};
  });

  ServerOptions server_options = ingress_server_options(cfg.server, ingress_options);
  Poco::Net::Context::Ptr tls;
  if (!cfg.server.tls_cert.empty()) {
    tls = make_tls_server_context(cfg.server.tls_cert, cfg.server.tls_key,
                                  cfg.server.tls_min_version);
    log->info("ingress speaks TLS (at least {}) with certificate {}", cfg.server.tls_min_version,
              cfg.server.tls_cert);
  }
  log_open_files_limit(*log, server_options);

  // Declared before the servers so that they are destroyed after them.
  Poco::ThreadPool metrics_threads(1, 4);
  auto server = std::make_unique<IngressServer>(
      ingress, bind(cfg.server.listen, cfg.server.max_queued), tls, server_options, log);
  std::unique_ptr<Poco::Net::HTTPServer> metrics_server;
  if (cfg.metrics.enabled) {
    auto mparams = Poco::AutoPtr<Poco::Net::HTTPServerParams>(new Poco::Net::HTTPServerParams);
    mparams->setMaxThreads(4);
    mparams->setTimeout(Poco::Timespan(10, 0));
    bound_idle_thread_wait(*mparams);
    metrics_server = std::make_unique<Poco::Net::HTTPServer>(
        new MetricsFactory(metrics,
                           [&] {
                             core_metrics.set_queue_size(static_cast<double>(queue.size()));
                             core_metrics.set_queue_bytes(static_cast<double>(queue.bytes()));
                             core_metrics.set_dead_letters(
                                 static_cast<double>(queue.dead_letters().count()));
                             core_metrics.set_channel_depths(dispatcher.channel_depths());
                             core_metrics.set_oldest_ages(
                                 oldest_ages(dispatcher.look(kOldestWait).oldest, clock.now()));
                           },
                           &admin, &status),
        metrics_threads, bind(cfg.metrics.listen, 64), mparams);
  }

  dispatcher.start();
  server->start();
  if (metrics_server) metrics_server->start();
  log->info(
      "slack-proxy {} listening on {} ({} event thread(s), at most {} connections) (metrics {}), "
      "queue {} (capacity {}), {} worker(s)",
      SLACK_PROXY_VERSION, cfg.server.listen.str(), server_options.threads,
      server_options.max_connections,
      cfg.metrics.enabled ? cfg.metrics.listen.str() : std::string("off"), cfg.queue.backend,
      cfg.queue.capacity, cfg.dispatcher.workers);
  for (const auto& p : cfg.pipelines) log->info("pipeline {}", describe_pipeline(p));

  int signal_number = 0;
  for (;;) {
    sigwait(&signals, &signal_number);
    if (signal_number != SIGHUP) break;
    reloader.reload();  // logs what it did
  }

  // Drain: refuse new work, deliver what was accepted, up to the deadline.
  const auto shutdown_timeout = reloader.config().dispatcher.shutdown_timeout;
  const auto deadline = std::chrono::steady_clock::now() + shutdown_timeout;
  ingress.set_draining(true);  // open keep-alive connections now get 503
  server->stop();              // and no new connection is accepted
  log->info("received {}; draining {} message(s), deadline {} ms", strsignal(signal_number),
            queue.size(), shutdown_timeout.count());
  // Taken for dead by the Redis queue: its channels are other replicas'
  // now, so it waits for nothing (what is in flight is left to them).
  const bool drained = !g_fenced.load() && dispatcher.wait_idle(deadline);
  dispatcher.stop();
  if (drained) {
    log->info("drained: every accepted message was processed");
  } else {
    log->warn("drain deadline passed: {} message(s) left undelivered ({} in flight), {}",
              queue.size(), dispatcher.in_flight(),
              cfg.queue.backend == "memory" ? "lost with the memory queue"
                                            : "kept in the queue for the next start");
    log_leftovers(*log, dispatcher.backlog());
  }

  // Idle keep-alive clients would otherwise hold us until keep_alive_timeout;
  // close them, and wait for every reply the queue still owes, before the
  // ingress and the queue go away.
  server->stop_all();
  if (metrics_server) {
    metrics_server->stopAll(true);
    metrics_threads.joinAll();
  }
  // In-flight sends cannot be interrupted; the deadline is a promise, so do
  // not wait for them (they would hold us up to the sink's timeout).
  const bool sends_done = workers.shutdown_until(deadline);
  // Records every outcome the dispatcher reported; what is left stays queued.
  queue.close();
  if (!sends_done) {
    log->warn("stopped with {} send(s) still in flight; their outcome is unknown{}",
              dispatcher.in_flight(),
              cfg.queue.backend == "memory" ? "" : " (they are sent again after the restart)");
    log->flush();
    std::_Exit(g_fenced.load() ? kExitFenced : kExitOk);
  }
  log->info("stopped");
  log->flush();
  return g_fenced.load() ? kExitFenced : kExitOk;
}

int run_proxy(const Options& o) {
  const sigset_t signals = block_signals();

  config::ProxyConfig cfg;
  try {
    cfg = config::load_config(o.config_path);
  } catch (const std::exception& e) {
    std::cerr << "slack-proxy: invalid configuration:\n" << e.what() << "\n";
    return kExitStartup;
  }
  const std::string level = o.log_level.value_or(cfg.log.level);
  if (spdlog::level::from_str(level) == spdlog::level::off && level != "off") {
    std::cerr << "slack-proxy: unknown log level '" << level
              << "'; use trace, debug, info, warn or error\n";
    return kExitStartup;
  }
  auto log = make_logger(level, cfg.log.format);
  // Config and plugin problems name their file and line; everything else (a
  // port in use, no threads) says what failed. Poco's what() is only the
  // exception's class name, so its message comes from displayText().
  // The logger also writes to stderr: one line, not two. In JSON every line
  // on stderr is a record, this one too (unless logging is off).
  auto fail = [&](const std::string& why) {
    if (cfg.log.format == "json" && log->should_log(spdlog::level::critical)) {
      log->critical("cannot start: {}", why);
      log->flush();
      return kExitStartup;
    }
    log->flush();
    std::cerr << "slack-proxy: cannot start: " << why << "\n";
    return kExitStartup;
  };
  try {
    return serve(o, cfg, log, signals);
  } catch (const Poco::Exception& e) {
    return fail(e.displayText());
  } catch (const std::exception& e) {
    return fail(e.what());
  }
}

}  // namespace

std::vector<std::filesystem::path> plugin_search_path(const config::ProxyConfig& config) {
  std::vector<std::filesystem::path> dirs;
  for (const auto& p : config.plugins.paths) dirs.emplace_back(p);
  if (const char* env = std::getenv("SLACK_PROXY_PLUGIN_PATH"); env != nullptr) {
    std::stringstream ss(env);
    std::string item;
    while (std::getline(ss, item, ':'))
      if (!item.empty()) dirs.emplace_back(item);
  }
  try {
    dirs.push_back(boost::dll::program_location().parent_path().parent_path() / "lib" /
                   "slack-proxy" / "plugins");
  } catch (const std::exception&) {
    // Without /proc the built-in directory is unknown; configured paths still work.
  }
  return dirs;
}

int run_main(int argc, char** argv) {
  int exit_code = kExitInvalid;
  auto options = parse_args(argc, argv, exit_code);
  if (!options) return exit_code;
  if (options->command == "validate") return run_validate(*options);
  if (options->command == "plugins") return run_plugins(*options);
  return run_proxy(*options);
}

}  // namespace slack_proxy

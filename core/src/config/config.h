// The proxy's configuration file (TOML), parsed and checked.
//
// Every problem found is reported with file, line and column, and for unknown
// keys the list of allowed ones. Loading collects all problems it can find
// before throwing, so a user fixes a file in one go.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include <toml++/toml.h>

namespace slack_proxy::config {

// Where a value came from: "config/slack-proxy.toml:12:3".
struct SourceRef {
  std::string file;
  int line = 0;
  int column = 0;
  std::string str() const;
};

// Thrown with every problem found; what() is all of them, one per line.
class ConfigError : public std::runtime_error {
 public:
  explicit ConfigError(std::vector<std::string> errors);
  const std::vector<std::string>& errors() const noexcept { return errors_; }

 private:
  std::vector<std::string> errors_;
};

// "host:port". Port 0 means "any free port" (tests).
struct ListenAddress {
  std::string host = "0.0.0.0";
  std::uint16_t port = 8080;
  std::string str() const;
  bool operator==(const ListenAddress&) const = default;
};

// The section structs' initialisers are the defaults of the schemas in
// core_schema.cc, said twice; config_test's defaults guard keeps them equal.
struct ServerConfig {                       // [server]
  ListenAddress listen{"0.0.0.0", 8080};    // listen = "0.0.0.0:8080"
  int threads = 0;                          // event threads; 0: one per core
  int max_queued = 256;                     // the listen backlog (not yet accepted)
  // Open ingress connections; beyond it a new one is answered 503
  // too_many_connections (with Retry-After) and closed.
  int max_connections = 10'000;
  std::size_t max_body_bytes = 1 << 20;     // larger bodies get 413
  std::chrono::milliseconds read_timeout{10'000};        // a request, from its first byte
  std::chrono::milliseconds keep_alive_timeout{15'000};  // idle keep-alive connection
  int max_keep_alive_requests = 10'000;     // then the connection is closed
  // The request head (request line and header fields): more fields, or more
  // bytes, get 431. A field name is also capped at 256 bytes, a value at
  // 8192 and the URI at 16384 (414), which no setting changes.
  int max_header_fields = 100;
  std::size_t max_header_bytes = 64 << 10;
  std::size_t max_json_depth = 64;          // deeper JSON gets 400 invalid_json
  // TLS on the ingress listener: PEM files, both or neither (empty: plain
  // HTTP). Relative paths are relative to the working directory.
  std::string tls_cert;
  std::string tls_key;
  std::string tls_min_version = "1.2";      // "1.2" or "1.3"
  bool operator==(const ServerConfig&) const = default;
};

struct MetricsConfig {                      // [metrics] (also serves the admin API)
  bool enabled = true;
  ListenAddress listen{"127.0.0.1", 9090};  // listen = "127.0.0.1:9090"
  // A non-loopback `listen` is refused unless this is true.
  bool public_listener = false;             // public = false
  // Distinct `channel` label values; later channels count under "_other".
  std::size_t max_channel_labels = 1000;
  bool operator==(const MetricsConfig&) const = default;
};

struct AdminConfig {                        // [admin]
  // The admin API (dead letters, ...) needs `Authorization: Bearer <key>`;
  // the key comes from this environment variable or file (file wins).
  // Without a key the admin API is off (403 admin_disabled).
  std::string key_env = "SLACK_PROXY_ADMIN_KEY";
  std::string key_file;
  bool status_public = true;                // the status page's read-only view needs no key
  bool operator==(const AdminConfig&) const = default;
};

struct QueueConfig {                        // [queue]
  // "sqlite": durable (a 200 means on disk); "memory": faster, and lost on
  // a crash or restart; "redis": in Redis ([redis] url), shared by every
  // replica (a 200 means Redis has it, as durable as Redis' persistence).
  std::string backend = "sqlite";
  // The SQLite database; a relative path is relative to the working
  // directory. Its directory is created if missing.
  std::string path = "state/queue.db";
  // "full": fsync every group commit; "normal": no fsync (a process crash
  // loses nothing, a power cut may lose the last commits).
  std::string sync = "full";
  std::size_t capacity = 10'000;            // messages, queued + in flight
  std::size_t max_bytes = 64 << 20;         // payload bytes, queued + in flight
  std::chrono::milliseconds retry_after{5'000};  // Retry-After on 503 queue_full
  // A repeated Idempotency-Key / client_msg_id within this window is
  // answered 200 and not queued again; "0s" turns deduplication off.
  std::chrono::milliseconds dedup_window{600'000};
  std::size_t max_dead_letters = 100'000;   // beyond it the oldest are deleted
  // Redis queue: a replica silent this long (crashed, cut off) is taken for
  // dead, and the others take its channels over.
  std::chrono::milliseconds lease{8'000};
  // Redis queue: a push is answered 200 only once this many Redis replicas
  // have it too (Redis' WAIT), within wait_timeout; 0: the primary's word.
  int wait_replicas = 0;
  std::chrono::milliseconds wait_timeout{500};
  // Environment variable holding the key (64 hex digits) that seals callers'
  // tokens in the database (delivery_token = "caller" only).
  std::string token_key_env = "SLACK_PROXY_QUEUE_KEY";
  bool operator==(const QueueConfig&) const = default;
};

struct RedisConfig {                        // [redis]
  // "redis://host[:port][/db]"; empty: no Redis. The user and password are
  // never in the URL (nor anywhere in the file): see below.
  std::string url;
  std::string user;                         // ACL user; empty: the default user
  // The password comes from this environment variable, or from this file
  // (file wins). Neither set, or the variable empty: no AUTH.
  std::string password_env = "SLACK_PROXY_REDIS_PASSWORD";
  std::string password_file;
  std::chrono::milliseconds connect_timeout{1'000};
  std::chrono::milliseconds command_timeout{1'000};
  std::string key_prefix = "slack-proxy:";  // before every key this proxy writes
  // Pacing state lives in Redis, so that every replica draws from one
  // budget: token_bucket's shared (workspace and channel) buckets and the
  // workspace pauses a 429's Retry-After asks for.
  bool pacing = true;
  // Stages' shared marks live in Redis, so that every replica sees them:
  // the deny_list's parked channels (HostServices::shared_marks()).
  bool marks = true;
  bool operator==(const RedisConfig&) const = default;
};

struct DispatcherConfig {                   // [dispatcher]
  int workers = 8;                          // concurrent sends (one per channel at most)
  std::chrono::milliseconds shutdown_timeout{30'000};  // drain deadline on SIGTERM
  int lane_window = 16;                     // messages a lane holds in memory, head included
  std::size_t window_bytes = 8 << 20;       // all windows together: payload + ~500 a message
  bool operator==(const DispatcherConfig&) const = default;
};

struct LogConfig {                          // [log]
  std::string level = "info";               // trace|debug|info|warn|error
  std::string format = "text";              // text|json (one JSON object a line)
  bool operator==(const LogConfig&) const = default;
};

struct PluginsConfig {                      // [plugins]
  // Extra directories searched before the built-in one, resolved relative to
  // the config file's directory.
  std::vector<std::string> paths;
  bool operator==(const PluginsConfig&) const = default;
};

// One [[pipeline.stage]] table: `plugin` (required) and `name` (optional,
// defaults to the plugin name) are the host's; every other key belongs to
// the plugin and is checked against its schema later (see stage_config.h).
//
// Move it rather than copy it: toml++ drops source positions when a node is
// copied, and StageConfig then reports the stage's position instead.
struct StageSpec {
  std::string plugin;
  std::string name;
  toml::table settings;  // the table minus `plugin` and `name`
  SourceRef where;       // the stage table's position
};

// One [[pipeline]] table.
struct PipelineSpec {
  std::string name;                  // required, unique
  // Ingress paths; unique across pipelines. One ending in "/*" serves every
  // path below it ("/services/*").
  std::vector<std::string> paths{"/"};
  // "api": replies like chat.postMessage (JSON); "webhook": like an
  // incoming webhook (200 "ok", errors as plain-text codes).
  std::string style = "api";
  // Used when a request names no channel (a webhook is bound to one).
  std::string default_channel;
  // Which Slack token delivers: the sink's own ("proxy") or the one the
  // caller sent ("caller": Authorization: Bearer or a token field).
  std::string delivery_token = "proxy";
  std::vector<StageSpec> stages;     // in file order; at least one
  SourceRef where;
};

struct ProxyConfig {
  std::string file;                  // path it was loaded from ("<string>" for parse_config)
  ServerConfig server;
  MetricsConfig metrics;
  AdminConfig admin;
  QueueConfig queue;
  RedisConfig redis;
  DispatcherConfig dispatcher;
  LogConfig log;
  PluginsConfig plugins;
  std::vector<PipelineSpec> pipelines;  // at least one
};

// Parses TOML text. `source_name` is used in messages and to resolve
// relative plugin paths (its directory). Throws ConfigError.
ProxyConfig parse_config(std::string_view text, const std::string& source_name);

// Reads and parses a file. Throws ConfigError (also for an unreadable file).
ProxyConfig load_config(const std::string& path);

// "250ms", "1s", "1.5s", "15m", "2h" -> milliseconds. Accepted: an unsigned
// integer or decimal number immediately followed by exactly one unit: ms, s,
// m or h. Rejected: bare numbers ("10"), signs, spaces, compound forms
// ("1m30s"), and values that are not a whole number of milliseconds
// ("1.5ms"), and anything longer than 365 days (deadlines are now + d on a
// nanosecond clock). "0s" is valid; each setting decides its own minimum.
// Throws std::invalid_argument naming the accepted forms.
std::chrono::milliseconds parse_duration(std::string_view text);

// A TOML value's type for messages: "string", "integer", "float", "array"...
std::string_view type_name(const toml::node& node);

}  // namespace slack_proxy::config

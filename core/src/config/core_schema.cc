#include "config/core_schema.h"

#include <utility>

namespace slack_proxy::config {

namespace {

// A setting stored in `member` of the section's `config` (the parts of
// ServerSection and MetricsSection that are plain config values).
template <typename Section, typename Config, typename T>
sdk::Setting<Section> in_config(const char* key, T Config::*member, const char* doc) {
  return sdk::setting_at<Section, T>(
      key, [member](Section& s) -> T& { return s.config.*member; }, doc);
}

}  // namespace

const sdk::Schema<ServerSection>& server_schema() {
  using S = ServerSection;
  using C = ServerConfig;
  static const sdk::Schema<S> schema{
      sdk::setting("listen", &S::listen, "ingress address, \"host:port\" or \"[ipv6]:port\"")
          .default_to("0.0.0.0:8080"),
      in_config<S>("threads", &C::threads, "event threads; 0: one per core")
          .at_least(0).at_most(1024).default_to("0"),
      in_config<S>("max_queued", &C::max_queued, "the listen backlog (connections not yet accepted)")
          .at_least(1).default_to("256"),
      in_config<S>("max_connections", &C::max_connections,
                   "open ingress connections; beyond it 503 too_many_connections")
          .at_least(1).at_most(1'000'000).default_to("10000"),
      in_config<S>("max_body_bytes", &C::max_body_bytes, "larger request bodies get 413")
          .at_least(1024).default_to("1048576"),
      in_config<S>("read_timeout", &C::read_timeout, "limit for a request, from its first byte")
          .at_least(1).default_to("10s"),
      in_config<S>("keep_alive_timeout", &C::keep_alive_timeout, "idle keep-alive connection")
          .at_least(1).default_to("15s"),
      in_config<S>("max_keep_alive_requests", &C::max_keep_alive_requests,
                   "requests on one connection, then it is closed")
          .at_least(1).default_to("10000"),
      in_config<S>("max_header_fields", &C::max_header_fields, "more header fields get 431")
          .at_least(1).at_most(10'000).default_to("100"),
      in_config<S>("max_header_bytes", &C::max_header_bytes, "a larger request head gets 431")
          .at_least(1024).at_most(16 << 20).default_to("65536"),
      in_config<S>("max_json_depth", &C::max_json_depth, "deeper JSON gets 400 invalid_json")
          .at_least(1).at_most(512).default_to("64"),
      // No defaults: TLS is on only when both files are named.
      in_config<S>("tls_cert", &C::tls_cert, "PEM certificate chain; with tls_key turns on TLS")
          .at_least(1),
      in_config<S>("tls_key", &C::tls_key, "PEM private key of tls_cert").at_least(1),
      in_config<S>("tls_min_version", &C::tls_min_version, "oldest TLS version accepted")
          .one_of({"1.2", "1.3"}).default_to("1.2"),
  };
  return schema;
}

const sdk::Schema<MetricsSection>& metrics_schema() {
  using S = MetricsSection;
  using C = MetricsConfig;
  static const sdk::Schema<S> schema{
      in_config<S>("enabled", &C::enabled, "serve /metrics and the admin API").default_to("true"),
      sdk::setting("listen", &S::listen, "metrics and admin address, \"host:port\"")
          .default_to("127.0.0.1:9090"),
      in_config<S>("public", &C::public_listener, "allow a non-loopback listen address")
          .default_to("false"),
      in_config<S>("max_channel_labels", &C::max_channel_labels,
                   "distinct channel label values; later channels count under \"_other\"")
          .at_least(1).default_to("1000"),
  };
  return schema;
}

const sdk::Schema<AdminConfig>& admin_schema() {
  using C = AdminConfig;
  static const sdk::Schema<C> schema{
      sdk::setting("key_env", &C::key_env, "environment variable holding the admin API key")
          .default_to("SLACK_PROXY_ADMIN_KEY"),
      sdk::setting("key_file", &C::key_file, "file holding the admin API key (wins over key_env)")
          .default_to(""),
      sdk::setting("status_public", &C::status_public,
                   "GET /status.json needs no key (false: the admin key; the page then asks for it)")
          .default_to("true"),
  };
  return schema;
}

const sdk::Schema<QueueConfig>& queue_schema() {
  using C = QueueConfig;
  static const sdk::Schema<C> schema{
      sdk::setting("backend", &C::backend,
                   "sqlite: durable; memory: lost on a crash or restart; redis: shared by "
                   "replicas ([redis] url)")
          .one_of({"sqlite", "memory", "redis"}).default_to("sqlite"),
      sdk::setting("path", &C::path, "the SQLite database (its directory is created)")
          .at_least(1).default_to("state/queue.db"),
      sdk::setting("sync", &C::sync, "full: fsync every group commit; normal: no fsync")
          .one_of({"full", "normal"}).default_to("full"),
      sdk::setting("capacity", &C::capacity, "messages, queued + in flight")
          .at_least(1).default_to("10000"),
      sdk::setting("max_bytes", &C::max_bytes, "payload bytes, queued + in flight")
          .at_least(1024).default_to("67108864"),
      // Retry-After is sent in whole seconds, so less than 1s cannot be expressed.
      sdk::setting("retry_after", &C::retry_after, "Retry-After on 503 queue_full")
          .at_least(1000).default_to("5s"),
      sdk::setting("dedup_window", &C::dedup_window,
                   "a repeated Idempotency-Key within it is not queued again; 0s: off")
          .default_to("10m"),
      sdk::setting("max_dead_letters", &C::max_dead_letters, "beyond it the oldest are deleted")
          .at_least(1).default_to("100000"),
      sdk::setting("lease", &C::lease,
                   "redis: how long a replica may be silent before others take its channels over")
          .at_least(1000).default_to("8s"),
      sdk::setting("wait_replicas", &C::wait_replicas,
                   "redis: Redis replicas that must have a push before its 200 (WAIT); 0: none")
          .at_least(0).default_to("0"),
      sdk::setting("wait_timeout", &C::wait_timeout,
                   "redis: how long a push waits for them (below [redis] command_timeout)")
          .at_least(1).default_to("500ms"),
      sdk::setting("token_key_env", &C::token_key_env,
                   "environment variable holding the key that seals callers' tokens")
          .default_to("SLACK_PROXY_QUEUE_KEY"),
  };
  return schema;
}

const sdk::Schema<RedisConfig>& redis_schema() {
  using C = RedisConfig;
  static const sdk::Schema<C> schema{
      sdk::setting("url", &C::url, "redis://host[:port][/db]; empty: no Redis").default_to(""),
      sdk::setting("user", &C::user, "ACL user; empty: the default user").default_to(""),
      sdk::setting("password_env", &C::password_env,
                   "environment variable holding the Redis password")
          .default_to("SLACK_PROXY_REDIS_PASSWORD"),
      sdk::setting("password_file", &C::password_file,
                   "file holding the Redis password (wins over password_env)")
          .default_to(""),
      sdk::setting("connect_timeout", &C::connect_timeout, "to open a connection")
          .at_least(1).default_to("1s"),
      sdk::setting("command_timeout", &C::command_timeout, "for Redis to answer a command")
          .at_least(1).default_to("1s"),
      sdk::setting("key_prefix", &C::key_prefix, "before every key this proxy writes")
          .default_to("slack-proxy:"),
      sdk::setting("pacing", &C::pacing,
                   "token buckets and 429 pauses live in Redis: every replica draws from one "
                   "budget")
          .default_to("true"),
      sdk::setting("marks", &C::marks,
                   "stages' shared marks (the deny-list's parked channels) live in Redis: "
                   "every replica sees them")
          .default_to("true"),
  };
  return schema;
}

const sdk::Schema<DispatcherConfig>& dispatcher_schema() {
  using C = DispatcherConfig;
  static const sdk::Schema<C> schema{
      sdk::setting("workers", &C::workers, "concurrent sends (one per channel at most)")
          .at_least(1).default_to("8"),
      // 0 is allowed: exit at once and report what was left.
      sdk::setting("shutdown_timeout", &C::shutdown_timeout, "drain deadline on SIGTERM")
          .default_to("30s"),
      sdk::setting("lane_window", &C::lane_window,
                   "messages a channel's lane holds in memory, its head included; the queue "
                   "holds the rest")
          .at_least(1).at_most(10000).default_to("16"),
      sdk::setting("window_bytes", &C::window_bytes,
                   "bytes all lanes' windows may hold together (payload plus about 500 a "
                   "message); beyond it a waiting lane keeps only a head it already tried")
          .default_to("8388608"),
  };
  return schema;
}

const sdk::Schema<LogConfig>& log_schema() {
  static const sdk::Schema<LogConfig> schema{
      sdk::setting("level", &LogConfig::level, "least severe level logged")
          .one_of({"trace", "debug", "info", "warn", "error"}).default_to("info"),
      sdk::setting("format", &LogConfig::format,
                   "text: one line a record for people; json: one JSON object a line for Loki "
                   "or Elasticsearch")
          .one_of({"text", "json"}).default_to("text"),
  };
  return schema;
}

const sdk::Schema<PluginsConfig>& plugins_schema() {
  static const sdk::Schema<PluginsConfig> schema{
      sdk::setting("paths", &PluginsConfig::paths,
                   "directories searched before the built-in one, relative to the config file")
          .default_to("[]"),
  };
  return schema;
}

const sdk::Schema<PipelineSpec>& pipeline_schema() {
  using C = PipelineSpec;
  static const sdk::Schema<C> schema{
      sdk::setting("name", &C::name, "unique name of the pipeline, [A-Za-z0-9_-]+").required(),
      sdk::setting("paths", &C::paths, "ingress paths; one ending in \"/*\" serves those below it")
          .at_least(1).default_to("[\"/\"]"),
      sdk::setting("style", &C::style, "api: replies like chat.postMessage; webhook: like an incoming webhook")
          .one_of({"api", "webhook"}).default_to("api"),
      sdk::setting("default_channel", &C::default_channel, "channel for requests that name none")
          .default_to(""),
      sdk::setting("delivery_token", &C::delivery_token,
                   "proxy: the sink's own token; caller: the token the caller sent")
          .one_of({"proxy", "caller"}).default_to("proxy"),
  };
  return schema;
}

std::vector<CoreSection> core_sections() {
  auto row = [](std::string name, const auto& schema) {
    return CoreSection{std::move(name), schema.data(), schema.size()};
  };
  return {row("[server]", server_schema()),         row("[metrics]", metrics_schema()),
          row("[admin]", admin_schema()),           row("[queue]", queue_schema()),
          row("[redis]", redis_schema()),
          row("[dispatcher]", dispatcher_schema()), row("[log]", log_schema()),
          row("[plugins]", plugins_schema()),       row("[[pipeline]]", pipeline_schema())};
}

}  // namespace slack_proxy::config

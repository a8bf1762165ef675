// HTTP ingress: turns a request into a queued message or a Slack-style error.
//
// The rules are a chain of small steps (see Ingress's private part), each
// of which lets the request go on or answers it. The transport
// (transport/http_server.h) reads a request's head and calls open(), which
// runs the steps that need only the head; it then reads the body and hands
// it to the exchange, which runs the rest and answers once the queue has
// stored the message. admit() runs the whole chain over a body already
// read, for tests. Nothing here knows about sockets.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <exception>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include <spdlog/logger.h>

#include <slack_proxy/sdk/host.h>
#include <slack_proxy/sdk/stages.h>

#include "log_throttle.h"
#include "metrics.h"
#include "pipeline.h"
#include "queue/queue.h"
#include "transport/http_handler.h"

namespace slack_proxy {

struct IngressOptions {
  std::size_t max_body_bytes = 1 << 20;
  std::size_t max_json_depth = 64;      // deeper JSON is 400 invalid_json
  std::chrono::seconds retry_after{5};  // sent with 503 queue_full / shutting_down
  // Names callers' tenants (tenant_of); empty: a random one per process.
  // Replicas sharing the Redis queue share one, so that a caller's channel
  // is one lane (one holder, its order kept) whichever replica took it.
  std::string tenant_salt;
};

class Ingress final : public HttpHandler {
 public:
  Ingress(Queue& queue, std::vector<std::shared_ptr<Pipeline>> pipelines, CoreMetrics& metrics,
          const sdk::Clock& clock, std::shared_ptr<spdlog::logger> log, IngressOptions options);

  // Runs the steps that need only the head (the path, the method, the
  // drain, the authenticator, the media type). A refusal is answered at
  // once, without reading the body. Otherwise the exchange takes the body (finish) and runs the
  // rest of the chain; its reply comes when the queue has stored the
  // message (after the group commit), from the queue's writer thread or
  // before finish() returns. Never throws.
  Opened open(const sdk::RequestView& request) noexcept override;

  // The whole chain for a request whose body was read whole (framed, and
  // within max_body_bytes: a longer one is still 413), waiting for the
  // queue. For tests and tools; the transport uses open(). Never throws.
  HttpReply admit(const sdk::RequestView& request, std::string body) noexcept;

  // A request whose head could not be read (too large, malformed, too
  // slow): counted and logged like any refusal, with no path or pipeline
  // to name. Always closes the connection.
  HttpReply refuse_head(const std::string& remote_address, int status, std::string_view error,
                        std::string_view detail) override;

  const IngressOptions& options() const { return options_; }

  // While draining, pipelines answer 503 shutting_down and /health 503.
  void set_draining(bool draining) { draining_.store(draining); }

  // Serves `pipelines` from now on (a reload). A request already past
  // find_pipeline finishes on the pipeline it found: it holds the routes
  // it started with. Safe from any thread.
  void set_pipelines(std::vector<std::shared_ptr<Pipeline>> pipelines);

 private:
  struct Admission;  // one request's way through the chain
  class Exchange;    // an Admission waiting for its body (HttpExchange)
  // What a step decided: nullopt, go on to the next step; a reply, answer
  // with it and stop.
  using Step = std::optional<HttpReply>;

  // The chain, in order. Before the body: the path finds a pipeline (404),
  // POST only (405), not draining (503), the pipeline's authenticator
  // (its 401/403), a media type we decode (415).
  Step admit_head(Admission& a);
  Step find_pipeline(Admission& a);
  Step check_method(Admission& a);
  Step check_draining(Admission& a);
  Step authenticate(Admission& a);
  Step check_media_type(Admission& a);
  // The body, read whole by the transport: within max_body_bytes (413).
  Step take_body(Admission& a, std::string body);
  Step too_large(Admission& a, std::uint64_t size);
  // After the body: decode it (400s), bind the caller's Slack token (401
  // not_authed), make the message, let the routers judge it, key it for
  // deduplication, and queue it: `reply` gets 200, or 503 when the queue
  // cannot, once the queue has answered.
  void admit_body(std::shared_ptr<Admission> a, ReplySink reply) noexcept;
  Step decode(Admission& a);
  Step bind_caller_token(Admission& a);
  Step compose_message(Admission& a);
  // Runs the routers in order; after the last one, a channel a router
  // changed is written into the payload too, so that the two never
  // disagree by the time a sink sends the payload as it is.
  Step route(Admission& a);
  // `payload` (JSON) with its "channel" set to `channel`, every other byte
  // kept where the key is spelled plainly.
  static std::string with_channel(std::string payload, const std::string& channel);
  Step deduplicate(Admission& a);
  void enqueue(std::shared_ptr<Admission> a, ReplySink reply);
  HttpReply queued(const Admission& a, const Queue::PushResult& pushed);
  HttpReply acknowledge(const Admission& a, std::string_view outcome);

  HttpReply health() const;
  HttpReply internal_error(const Admission& a, const std::exception& e);
  // Runs `call`, a call into one of the pipeline's stages. If it throws, the
  // request fails alone: the exception is logged (throttled) with the
  // pipeline, stage and plugin, counted in slackproxy_plugin_exceptions_total,
  // and the reply is 500 internal_error.
  template <typename Call>
  Step call_stage(const Admission& a, const sdk::Stage* stage, std::string_view method,
                  Call&& call);
  // An error reply in the request's style, counted and (throttled) logged
  // with the pipeline's name or, without one, a sanitised path: never the
  // raw URI, which may hold secrets.
  HttpReply reject(const Admission& a, int status, std::string_view error,
                   std::string_view detail);
  // reject(), also counted under the authenticated caller, if any.
  HttpReply refuse(const Admission& a, int status, std::string_view error,
                   std::string_view detail);
  HttpReply with_retry_after(HttpReply reply) const;
  // Counts a refusal and logs it, at most 20 lines a second with a count of
  // those suppressed, so a storm refused with queue_full cannot flood the
  // log. `subject` says who asked for what; it is built, and `detail`
  // cleared of secrets, only for a line that is written.
  void count_and_log_refusal(const std::function<std::string()>& subject, int status,
                             std::string_view error, std::string_view detail);
  // Every pipeline and the paths that reach them; replaced whole by a
  // reload, never changed in place.
  struct Routes {
    explicit Routes(std::vector<std::shared_ptr<Pipeline>> pipelines);
    // The pipeline serving `path`: exact paths first, then the longest "/x/*".
    const Pipeline* find(std::string_view path) const;

    std::vector<std::shared_ptr<Pipeline>> pipelines;
    std::unordered_map<std::string, const Pipeline*> by_path;
    std::vector<std::pair<std::string, const Pipeline*>> by_prefix;  // longest first
  };
  std::string next_id();
  // A stable, non-reversible name for the tenant behind a caller's token
  // (sdk::caller_tenant() of a salted digest), used as its workspace so that tenants never share buckets, 429 pauses
  // or deny-list entries. Salted per process (or per fleet, when
  // IngressOptions::tenant_salt says): never the token itself.
  std::string tenant_of(const std::string& token) const;
  std::string dedup_key(const Pipeline& pipeline, const sdk::Message& m,
                        const std::string& key) const;

  Queue& queue_;
  std::atomic<std::shared_ptr<const Routes>> routes_;
  CoreMetrics& metrics_;
  const sdk::Clock& clock_;
  std::shared_ptr<spdlog::logger> log_;
  IngressOptions options_;
  std::atomic<bool> draining_{false};
  LogThrottle reject_log_{20};
  LogThrottle fault_log_{20};

  std::atomic<std::uint64_t> counter_{0};
  std::string id_prefix_;
  std::string tenant_salt_;
};

// "application/json; charset=utf-8" -> "application/json" (lower-cased).
std::string media_type(std::string_view content_type);

}  // namespace slack_proxy

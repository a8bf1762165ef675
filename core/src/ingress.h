// HTTP ingress: turns a request into a queued message or a Slack-style error.
//
// handle() holds all the rules and knows nothing about Poco, so unit tests
// drive it directly; make_factory() adapts it to Poco's HTTPServer.
#pragma once

#include <atomic>
#include <chrono>
#include <istream>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include <Poco/Net/HTTPRequestHandlerFactory.h>
#include <spdlog/logger.h>

#include <slack_proxy/sdk/host.h>
#include <slack_proxy/sdk/stages.h>

#include "log_throttle.h"
#include "metrics.h"
#include "pipeline.h"
#include "queue/queue.h"

namespace slack_proxy {

struct IngressOptions {
  std::size_t max_body_bytes = 1 << 20;
  std::chrono::seconds retry_after{5};  // sent with 503 queue_full / shutting_down
};

struct HttpReply {
  int status = 200;
  std::string body;
  std::string content_type = "application/json; charset=utf-8";
  std::vector<std::pair<std::string, std::string>> headers;
  bool close = false;  // the request body was not consumed: drop the connection
};

class Ingress {
 public:
  Ingress(Queue& queue, std::vector<std::shared_ptr<Pipeline>> pipelines, CoreMetrics& metrics,
          const sdk::Clock& clock, std::shared_ptr<spdlog::logger> log, IngressOptions options);

  // Reads the body from `body` as framed by the request's headers
  // (Content-Length, or chunked). Never throws.
  HttpReply handle(const sdk::RequestView& request, std::istream& body) noexcept;

  // While draining, pipelines answer 503 shutting_down and /health 503.
  void set_draining(bool draining) { draining_.store(draining); }

  // A factory for Poco's HTTPServer (which takes ownership).
  Poco::Net::HTTPRequestHandlerFactory* make_factory();

 private:
  HttpReply handle_post(const Pipeline& pipeline, const sdk::RequestView& request,
                        std::istream& body, bool chunked);
  // An error reply in the pipeline's style, counted and (throttled) logged
  // with the pipeline's name or, without one, a sanitised path: never the
  // raw URI, which may hold secrets.
  HttpReply reject(const sdk::RequestView& request, const Pipeline* pipeline, int status,
                   std::string_view error, std::string_view detail);
  // The pipeline serving `path`: exact paths first, then the longest "/x/*".
  const Pipeline* find(std::string_view path) const;
  std::string next_id();
  // A stable, non-reversible name for the tenant behind a caller's token,
  // used as its workspace so that tenants never share buckets, 429 pauses
  // or deny-list entries. Salted per process: never the token itself.
  std::string tenant_of(const std::string& token) const;

  Queue& queue_;
  std::vector<std::shared_ptr<Pipeline>> pipelines_;
  std::unordered_map<std::string, const Pipeline*> by_path_;
  std::vector<std::pair<std::string, const Pipeline*>> by_prefix_;  // longest first
  CoreMetrics& metrics_;
  const sdk::Clock& clock_;
  std::shared_ptr<spdlog::logger> log_;
  IngressOptions options_;
  std::atomic<bool> draining_{false};
  LogThrottle reject_log_{20};
  std::string dedup_key(const Pipeline& pipeline, const sdk::Message& m,
                        const std::string& key) const;

  std::atomic<std::uint64_t> counter_{0};
  std::string id_prefix_;
  std::string tenant_salt_;
};

// "application/json; charset=utf-8" -> "application/json" (lower-cased).
std::string media_type(std::string_view content_type);

// Minimal JSON string escaping for error details.
std::string json_escape(std::string_view text);

}  // namespace slack_proxy

// The admin HTTP API, served on the metrics listener (loopback by default).
//
// Dead letters:
//   GET    /admin/dead-letters[?channel=&error=&kind=&after=&limit=]   list, oldest first
//   GET    /admin/dead-letters/{id}                                   show one, with payload
//   POST   /admin/dead-letters/{id}/replay                            move one back to the queue
//   POST   /admin/dead-letters/replay?channel=&error=&kind=|all=true  replay every match
//   DELETE /admin/dead-letters/{id}                                   delete one
//   DELETE /admin/dead-letters?channel=&error=&kind=|all=true         delete every match
// Queue:
//   GET    /admin/queue                                               size, bytes, limits
// Configuration:
//   POST   /admin/reload     read the config and every secret again (reload.h):
//                            200 {"ok":true,"changes":[...]}, or 409
//                            {"ok":false,"error":"reload_refused","errors":[...]}
//                            with the running configuration left as it was
//
// Replies are Slack-style JSON: {"ok":true,...} or {"ok":false,"error":"..."}
// with a 4xx/5xx status (400 invalid_arguments, invalid_kind, invalid_limit,
// filter_required; 404 not_found; 405 method_not_allowed with Allow; 409
// token_unavailable when a replay needs a caller's token that can no longer
// be opened; 503 queue_full or queue_unavailable with Retry-After). `kind` is
// "failed" or "not_processed"; `limit` defaults to 50, at most 1000; `total` in a list
// is every dead letter stored, not only the matching ones. A bulk replay or
// delete needs a filter or all=true (alone), so an empty query never touches
// every record by accident. Query values and ids are %-decoded ("#" is
// %23); an unknown or repeated query parameter is a 400 naming it.
//
// Records carry no delivery token, ever; only the single-record GET carries
// the payload. A store that throws (the SQLite backend's QueueError) becomes
// 503 queue_unavailable, with the exception's text in the log only.
// Replays and deletes are logged at info (warn when the queue has no room).
#pragma once

#include <atomic>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include <spdlog/logger.h>

#include "ingress.h"
#include "queue/queue.h"

namespace slack_proxy {

class AdminApi {
 public:
  AdminApi(Queue& queue, std::shared_ptr<spdlog::logger> log);

  // True when `path` (without the query) belongs to this API.
  static bool handles(const std::string& path);

  // `uri` is the request target with its query string; the request body is
  // not read (filters travel in the query). Never throws. Safe to call from
  // several listener threads at once: it keeps no state, and the store
  // locks.
  HttpReply handle(const std::string& method, const std::string& uri);

  // Every admin request must carry `Authorization: Bearer <admin key>`.
  // Only its SHA-256 is kept. Without a key the API is off: every request
  // gets 403 admin_disabled. A reload sets it again while requests are
  // served: a request is judged by the key of its moment.
  void set_key(const std::string& key);

  // Whether the status page (status_api.h) needs the admin key too; a
  // reload sets it again.
  void set_status_public(bool open) { status_public_.store(open); }
  bool status_public() const { return status_public_.load(); }

  // What POST /admin/reload runs: true and what changed, or false and why
  // not. Set once, before serving; without it the route is 404.
  struct ReloadReply {
    bool ok = false;
    std::vector<std::string> lines;
  };
  void set_reload(std::function<ReloadReply()> reload) { reload_ = std::move(reload); }
  // nullopt when `authorization` (the header's value, if any) carries the
  // key; otherwise the refusal to send (401 not_authed / invalid_auth with
  // WWW-Authenticate, or 403 admin_disabled). Compares in constant time.
  std::optional<HttpReply> refuse_unauthorized(const std::optional<std::string>& authorization) const;

 private:
  Queue& queue_;
  mutable std::mutex key_mutex_;
  std::string key_digest_;  // SHA-256 of the admin key; empty: API off
  std::function<ReloadReply()> reload_;
  std::atomic<bool> status_public_{true};
  std::shared_ptr<spdlog::logger> log_;
};

}  // namespace slack_proxy

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
//
// Replies are Slack-style JSON: {"ok":true,...} or {"ok":false,"error":"..."}
// with a 4xx/5xx status. `kind` is "failed" or "not_processed"; `limit`
// defaults to 50, at most 1000. A bulk replay or delete needs a filter or
// all=true, so an empty query never touches every record by accident.
#pragma once

#include <memory>
#include <string>

#include <spdlog/logger.h>

#include "ingress.h"
#include "queue/queue.h"

namespace slack_proxy {

class AdminApi {
 public:
  AdminApi(Queue& queue, std::shared_ptr<spdlog::logger> log);

  // True when `path` (without the query) belongs to this API.
  static bool handles(const std::string& path);

  // `uri` is the request target with its query string; `body` is unused
  // today (filters travel in the query).
  HttpReply handle(const std::string& method, const std::string& uri);

 private:
  Queue& queue_;
  std::shared_ptr<spdlog::logger> log_;
};

}  // namespace slack_proxy

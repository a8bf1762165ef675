// The status page, on the admin listener:
//   GET /status        one self-contained HTML page (no CDN, no fonts from
//                      elsewhere: the binary carries it) that shows
//   GET /status.json   what it reads, refreshed every few seconds:
//     - per lane (pipeline, workspace, channel), the most queued first:
//       queued, the oldest message's age, sending / waiting / due, and why
//       it waits with the time left (its bucket, a backoff, a 429 pause,
//       learned pacing);
//     - per lane, delivered and failed in the last minutes;
//     - per workspace, the rate it delivered at and the rate learned pacing
//       holds it to after 429s;
//     - channels parked by a stage's marks (the deny-list), with time left;
//     - the queue, and the dead letters: their total for everyone; with
//       the admin key, the oldest kDeadLettersShown of them (ids,
//       channels, errors: never a payload or a token), which the page
//       replays and deletes through the admin API with the key typed into
//       it, never put in a URL, a cookie or storage;
//     - the configuration file's digest and load time, the last reload (its
//       errors with the admin key only: a plugin's refusal may quote a
//       setting), and the plugins loaded with their files.
// Neither needs a key unless [admin] status_public = false; then the JSON
// needs the admin key like the admin API (the page asks for it).
#pragma once

#include <chrono>
#include <memory>
#include <string>

#include <slack_proxy/sdk/host.h>

#include "admin_api.h"
#include "dispatcher.h"
#include "queue/queue.h"
#include "reload.h"
#include "shared_marks.h"

namespace slack_proxy {

class StatusApi {
 public:
  static constexpr std::size_t kLanesShown = 200;
  static constexpr std::size_t kMarksShown = 200;
  static constexpr std::size_t kDeadLettersShown = 50;

  struct Sources {
    Dispatcher& dispatcher;
    Queue& queue;
    AdminApi& admin;
    Reloader& reloader;
    std::shared_ptr<MarkScopes> marks;  // null: none to list
    const sdk::Clock& clock;
    std::string backend;  // [queue] backend
  };
  explicit StatusApi(Sources sources);

  // True for the paths above.
  static bool handles(const std::string& path);
  // GET (or HEAD) only; others get 405. `with_key`: the request carried
  // the admin key. Never throws.
  HttpReply handle(const std::string& method, const std::string& path, bool with_key);

 private:
  HttpReply json(bool with_key);

  Sources s_;
  const sdk::WallTime started_;
};

// The page itself (status_page.html, compiled in).
extern const char* const kStatusPage;

}  // namespace slack_proxy

#include "status_api.h"

#include <algorithm>
#include <map>
#include <set>
#include <tuple>

#include "json_text.h"

namespace slack_proxy {
namespace {

// How long a request waits for the dispatcher to look at its lanes; after
// that it shows the previous look.
constexpr std::chrono::milliseconds kLookWait{250};

double seconds(sdk::SteadyTime::duration d) {
  return std::max(0.0, std::chrono::duration<double>(d).count());
}

// Ends an object or array whose members were written with trailing commas.
void close(std::string& out, char bracket) {
  if (out.back() == ',')
    out.back() = bracket;
  else
    out.push_back(bracket);
}

void append_key(std::string& out, std::string_view key) {
  append_json_string(out, key);
  out.push_back(':');
}

// `{...},`: an element of an array, its members written by `members`.
template <typename Members>
void append_element(std::string& out, Members&& members) {
  out += "{";
  members();
  close(out, '}');
  out += ",";
}

// Where a lane is: its pipeline, workspace and channel.
void append_place(std::string& out, std::string_view pipeline, std::string_view workspace,
                  std::string_view channel) {
  append_member(out, "pipeline", pipeline);
  append_member(out, "workspace", workspace);
  append_member(out, "channel", channel);
}

}  // namespace

StatusApi::StatusApi(Sources sources)
    : s_(std::move(sources)), started_(s_.clock.wall_now()) {}

bool StatusApi::handles(const std::string& path) {
  return path == "/status" || path == "/status.json";
}

HttpReply StatusApi::handle(const std::string& method, const std::string& path,
                            bool with_key) {
  if (method != "GET" && method != "HEAD") {
    HttpReply r;
    r.status = 405;
    r.body = R"({"ok":false,"error":"method_not_allowed"})";
    r.headers.emplace_back("Allow", "GET, HEAD");
    return r;
  }
  if (path == "/status.json") {
    try {
      return json(with_key);
    } catch (const std::exception&) {
      // A store that throws (SQLite's QueueError); its text is for the log,
      // which the store already wrote.
      HttpReply r;
      r.status = 503;
      r.body = R"({"ok":false,"error":"queue_unavailable"})";
      return r;
    }
  }
  HttpReply page;
  page.body = kStatusPage;
  page.content_type = "text/html; charset=utf-8";
  // Everything the page needs is in it: nothing from elsewhere may load,
  // and no other site may frame it.
  page.headers.emplace_back("Content-Security-Policy",
                            "default-src 'none'; script-src 'unsafe-inline'; style-src "
                            "'unsafe-inline'; img-src data:; connect-src 'self'; "
                            "frame-ancestors 'none'; base-uri 'none'; form-action 'none'");
  page.headers.emplace_back("X-Content-Type-Options", "nosniff");
  page.headers.emplace_back("Referrer-Policy", "no-referrer");
  page.headers.emplace_back("Cache-Control", "no-store");
  return page;
}

HttpReply StatusApi::json(bool with_key) {
  const Dispatcher::Look look = s_.dispatcher.look(kLookWait, kLanesShown);
  const sdk::SteadyTime now = s_.clock.now();
  const Reloader::Info info = s_.reloader.info();

  std::string out = R"({"ok":true,)";
  append_member(out, "version", SLACK_PROXY_VERSION);
  append_time_member(out, "now", s_.clock.wall_now());
  append_time_member(out, "started_at", started_);

  // The configuration and the plugins.
  append_key(out, "config");
  out += "{";
  append_member(out, "file", info.file);
  append_member(out, "digest", info.digest);
  append_time_member(out, "loaded_at", info.loaded_at);
  append_key(out, "last_reload");
  if (!info.last_reload_at) {
    out += "null,";
  } else {
    out += "{";
    append_time_member(out, "at", *info.last_reload_at);
    out += R"("ok":)";
    out += info.last_reload.ok ? "true," : "false,";
    if (info.last_reload.ok || with_key) {
      append_key(out, info.last_reload.ok ? "changes" : "errors");
      out += "[";
      for (const auto& line : info.last_reload.ok ? info.last_reload.changes
                                                  : info.last_reload.errors) {
        append_json_string(out, line);
        out += ",";
      }
      close(out, ']');
    }
    close(out, '}');
    out += ",";
  }
  close(out, '}');
  out += ",";
  append_key(out, "plugins");
  out += "[";
  for (const Reloader::Info::Plugin& p : info.plugins) {
    append_element(out, [&] {
      append_member(out, "name", p.name);
      append_member(out, "kind", p.kind);
      append_member(out, "file", p.file);
      out += std::string(R"("from_copy":)") + (p.from_copy ? "true" : "false");
    });
  }
  close(out, ']');
  out += ",";

  // The queue.
  const QueueLimits limits = s_.queue.limits();
  double oldest = 0;
  for (const auto& [channel, at] : look.oldest) oldest = std::max(oldest, seconds(now - at));
  append_key(out, "queue");
  out += "{";
  append_member(out, "backend", s_.backend);
  append_number(out, "size", s_.queue.size());
  append_number(out, "bytes", s_.queue.bytes());
  append_number(out, "max_messages", limits.max_messages);
  append_number(out, "max_bytes", limits.max_bytes);
  append_number(out, "oldest_age_seconds", oldest);
  close(out, '}');
  out += ",";

  // Lanes, the most queued first.
  append_key(out, "lanes");
  out += "{";
  append_number(out, "total", look.lanes_total);
  append_key(out, "shown");
  out += "[";
  for (const auto& lane : look.lanes) {
    append_element(out, [&] {
      append_place(out, lane.pipeline, lane.workspace, lane.channel);
      append_number(out, "queued", lane.queued);
      if (lane.oldest != sdk::SteadyTime{})
        append_number(out, "oldest_age_seconds", seconds(now - lane.oldest));
      append_member(out, "state", lane.state);
      if (lane.reason != nullptr) {
        append_member(out, "reason", lane.reason);
        append_number(out, "seconds_left", seconds(lane.until - now));
      }
    });
  }
  close(out, ']');
  out += "},";

  // What each lane delivered and failed lately, and each workspace's rate.
  // The window the counts cover: the last whole minutes and this one so
  // far, or less, since the start.
  const double window = std::min(
      look.recent_seconds,
      std::max(1.0, std::chrono::duration<double>(s_.clock.wall_now() - started_).count()));
  append_key(out, "recent");
  out += "{";
  append_number(out, "seconds", window);
  append_key(out, "lanes");
  out += "[";
  std::map<std::pair<std::string, std::string>, std::size_t> delivered_by_workspace;
  for (const auto& r : look.recent) {
    delivered_by_workspace[{r.pipeline, r.workspace}] += r.counts.delivered;
    append_element(out, [&] {
      append_place(out, r.pipeline, r.workspace, r.channel);
      append_number(out, "delivered", r.counts.delivered);
      append_number(out, "failed", r.counts.failed);
    });
  }
  close(out, ']');
  out += "},";
  append_key(out, "workspaces");
  out += "[";
  std::set<std::pair<std::string, std::string>> workspaces;
  for (const auto& [key, n] : delivered_by_workspace) workspaces.insert(key);
  for (const auto& [key, rate] : look.learned_rates) workspaces.insert(key);
  for (const std::pair<std::string, std::string>& key : workspaces) {
    append_element(out, [&] {
      append_member(out, "pipeline", key.first);
      append_member(out, "workspace", key.second);
      const auto delivered = delivered_by_workspace.find(key);
      append_number(out, "delivered_per_minute",
                    delivered == delivered_by_workspace.end()
                        ? 0.0
                        : static_cast<double>(delivered->second) * 60.0 / window);
      if (const auto learned = look.learned_rates.find(key); learned != look.learned_rates.end())
        append_number(out, "learned_rate_per_second", learned->second);
    });
  }
  close(out, ']');
  out += ",";

  // Marks of the stages (the deny-list's parked channels).
  append_key(out, "parked");
  out += "[";
  if (s_.marks) {
    for (const std::pair<std::string, std::string>& stage_of : info.stages) {
      const std::string& pipeline = stage_of.first;
      const std::string& stage = stage_of.second;
      for (const std::pair<std::string, sdk::Mark>& marked :
           s_.marks->list(pipeline + "/" + stage, now, kMarksShown)) {
        const std::string& key = marked.first;
        const sdk::Mark& mark = marked.second;
        append_element(out, [&] {
          // Keys are "<workspace>\n<channel>" (sdk::channel_key) for the
          // deny-list; any other stage's key is shown whole as the channel.
          const auto newline = key.find('\n');
          const bool split = newline != std::string::npos;
          append_place(out, pipeline, split ? key.substr(0, newline) : "",
                       split ? key.substr(newline + 1) : key);
          append_member(out, "stage", stage);
          append_member(out, "note", mark.note);
          append_number(out, "seconds_left", seconds(mark.until - now));
        });
      }
    }
  }
  close(out, ']');
  out += ",";

  // The dead letters: with the key, the oldest as the admin API lists them
  // and their total; without, the total.
  append_key(out, "dead_letters");
  if (with_key) {
    const HttpReply letters =
        s_.admin.handle("GET", "/admin/dead-letters?limit=" + std::to_string(kDeadLettersShown));
    out += letters.status == 200 ? letters.body : std::string("null");
  } else {
    out += "{";
    append_number(out, "total", s_.queue.dead_letters().count());
    close(out, '}');
  }
  out += "}";
  HttpReply r;
  r.body = std::move(out);
  r.headers.emplace_back("Cache-Control", "no-store");
  return r;
}

}  // namespace slack_proxy

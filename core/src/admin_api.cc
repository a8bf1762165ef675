#include "admin_api.h"

#include "json_text.h"
#include "hex.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <exception>
#include <initializer_list>
#include <optional>
#include <string_view>
#include <utility>
#include <vector>

#include <openssl/crypto.h>
#include <openssl/sha.h>
#include <Poco/String.h>

namespace slack_proxy {

namespace {

constexpr std::size_t kDefaultLimit = 50;
constexpr std::size_t kMaxLimit = 1000;
// With a 503: the queue drains (or the disk recovers) on its own, so a
// script can simply try again.
constexpr const char* kRetryAfterSeconds = "5";


// One record. The delivery token is never written, whatever the store
// returned: it is a secret, and the record is for humans.
void append_record(std::string& out, const DeadLetter& d, bool with_payload) {
  const sdk::Message& m = d.message;
  out.push_back('{');
  append_member(out, "id", m.id);
  append_member(out, "pipeline", m.pipeline);
  append_member(out, "channel", m.channel);
  append_member(out, "original_channel", m.original_channel);
  append_member(out, "workspace", m.workspace);
  append_member(out, "caller", m.caller);
  append_member(out, "kind", to_string(d.kind));
  append_member(out, "error", d.error);
  append_member(out, "reason", d.reason);
  append_number(out, "http_status", d.http_status);
  append_number(out, "attempts", m.attempts);
  append_time_member(out, "received_at", m.received_at);
  append_time_member(out, "last_attempt_at", m.last_attempt_at);
  append_time_member(out, "dead_at", d.dead_at);
  if (with_payload) append_member(out, "payload", m.payload);
  out.back() = '}';  // replaces the last member's comma
}

HttpReply json_reply(int status, std::string body) {
  HttpReply r;
  r.status = status;
  r.body = std::move(body);
  return r;
}

HttpReply error_reply(int status, std::string_view error, std::string_view detail = {}) {
  std::string body = R"({"ok":false,"error":)";
  append_json_string(body, error);
  if (!detail.empty()) {
    body += R"(,"detail":)";
    append_json_string(body, detail);
  }
  body.push_back('}');
  HttpReply r = json_reply(status, std::move(body));
  if (status == 503) r.headers.emplace_back("Retry-After", kRetryAfterSeconds);
  return r;
}

HttpReply not_found() { return error_reply(404, "not_found"); }

HttpReply invalid_arguments(std::string_view detail) {
  return error_reply(400, "invalid_arguments", detail);
}

// %XX-decodes `text`; nullopt on a '%' not followed by two hex digits. In a
// query, '+' means a space (HTML form encoding); in a path it is itself.
std::optional<std::string> percent_decode(std::string_view text, bool plus_is_space) {
  std::string out;
  out.reserve(text.size());
  for (std::size_t i = 0; i < text.size(); ++i) {
    if (text[i] == '%') {
      if (i + 2 >= text.size()) return std::nullopt;
      const int hi = hex_value(text[i + 1]);
      const int lo = hex_value(text[i + 2]);
      if (hi < 0 || lo < 0) return std::nullopt;
      out.push_back(static_cast<char>(hi * 16 + lo));
      i += 2;
    } else if (text[i] == '+' && plus_is_space) {
      out.push_back(' ');
    } else {
      out.push_back(text[i]);
    }
  }
  return out;
}

enum class Route {
  Queue,           // /admin/queue
  Reload,          // /admin/reload
  DeadLetters,     // /admin/dead-letters
  ReplayMatching,  // /admin/dead-letters/replay
  DeadLetter,      // /admin/dead-letters/{id}
  ReplayOne,       // /admin/dead-letters/{id}/replay
};

// The methods a route answers, as sent in the 405's Allow header.
const char* allowed_methods(Route route) {
  switch (route) {
    case Route::Queue: return "GET";
    case Route::Reload: return "POST";
    case Route::DeadLetters: return "GET, DELETE";
    case Route::ReplayMatching: return "POST";
    case Route::DeadLetter: return "GET, DELETE";
    case Route::ReplayOne: return "POST";
  }
  return "";
}

bool allows(Route route, const std::string& method) {
  switch (route) {
    case Route::Queue: return method == "GET";
    case Route::Reload: return method == "POST";
    case Route::DeadLetters: return method == "GET" || method == "DELETE";
    case Route::ReplayMatching: return method == "POST";
    case Route::DeadLetter: return method == "GET" || method == "DELETE";
    case Route::ReplayOne: return method == "POST";
  }
  return false;
}

struct Target {
  Route route;
  std::string id_segment;  // still %-encoded
};

// Which route `path` names; nullopt for any other path under /admin/.
// "replay" is never an id (ids are "<hex>-<n>"), so /admin/dead-letters/replay
// is always the bulk replay.
std::optional<Target> resolve(std::string_view path) {
  constexpr std::string_view kPrefix = "/admin/";
  if (path.substr(0, kPrefix.size()) != kPrefix) return std::nullopt;
  path.remove_prefix(kPrefix.size());
  std::vector<std::string_view> segments;
  while (true) {
    const auto slash = path.find('/');
    segments.push_back(path.substr(0, slash));
    if (slash == std::string_view::npos) break;
    path.remove_prefix(slash + 1);
  }
  if (segments.size() == 1 && segments[0] == "queue") return Target{Route::Queue, {}};
  if (segments.size() == 1 && segments[0] == "reload") return Target{Route::Reload, {}};
  if (segments.empty() || segments[0] != "dead-letters") return std::nullopt;
  if (segments.size() == 1) return Target{Route::DeadLetters, {}};
  if (segments[1].empty()) return std::nullopt;
  if (segments.size() == 2) {
    if (segments[1] == "replay") return Target{Route::ReplayMatching, {}};
    return Target{Route::DeadLetter, std::string(segments[1])};
  }
  if (segments.size() == 3 && segments[2] == "replay")
    return Target{Route::ReplayOne, std::string(segments[1])};
  return std::nullopt;
}

struct QueryParams {
  std::vector<std::pair<std::string, std::string>> items;  // decoded, in order
  const std::string* find(std::string_view key) const {
    for (const auto& [k, v] : items)
      if (k == key) return &v;
    return nullptr;
  }
};

// Parses and checks a query string against the parameters a route takes.
// Returns the 400 to send, if any.
std::optional<HttpReply> parse_query(std::string_view query,
                                     std::initializer_list<std::string_view> allowed,
                                     QueryParams& out) {
  while (!query.empty()) {
    const auto amp = query.find('&');
    const std::string_view pair = query.substr(0, amp);
    query = amp == std::string_view::npos ? std::string_view{} : query.substr(amp + 1);
    if (pair.empty()) continue;  // "a=1&&b=2", a trailing '&'
    const auto eq = pair.find('=');
    auto key = percent_decode(pair.substr(0, eq), true);
    auto value = percent_decode(eq == std::string_view::npos ? std::string_view{} : pair.substr(eq + 1),
                                true);
    if (!key || !value) return invalid_arguments("malformed %-encoding in the query string");
    bool known = false;
    for (std::string_view a : allowed) known = known || a == *key;
    if (!known) return invalid_arguments("unknown query parameter '" + *key + "'");
    if (out.find(*key) != nullptr)
      return invalid_arguments("query parameter '" + *key + "' given more than once");
    out.items.emplace_back(std::move(*key), std::move(*value));
  }
  return std::nullopt;
}

// channel, error and kind; an empty value is no filter, as in DeadLetterFilter.
std::optional<HttpReply> parse_filter(const QueryParams& q, DeadLetterFilter& filter) {
  if (const auto* v = q.find("channel")) filter.channel = *v;
  if (const auto* v = q.find("error")) filter.error = *v;
  if (const auto* v = q.find("kind"); v != nullptr && !v->empty()) {
    filter.kind = dead_letter_kind_from(*v);
    if (!filter.kind)
      return error_reply(400, "invalid_kind", "kind must be failed or not_processed");
  }
  return std::nullopt;
}

bool has_filter(const DeadLetterFilter& f) {
  return !f.channel.empty() || !f.error.empty() || f.kind.has_value();
}

// A bulk replay or delete names what it touches: a filter, or all=true
// (alone, so that "all" always means every record).
std::optional<HttpReply> parse_bulk_filter(const QueryParams& q, DeadLetterFilter& filter) {
  if (auto error = parse_filter(q, filter)) return error;
  const std::string* all = q.find("all");
  if (all != nullptr && *all != "true" && *all != "false")
    return invalid_arguments("all must be true or false");
  const bool everything = all != nullptr && *all == "true";
  if (everything && has_filter(filter))
    return invalid_arguments("all=true cannot be combined with channel, error or kind");
  if (!everything && !has_filter(filter))
    return error_reply(400, "filter_required",
                       "name channel, error or kind, or pass all=true to touch every dead letter");
  return std::nullopt;
}

// "1".."1000"; anything else (empty, signs, spaces, too large) is refused.
std::optional<std::size_t> parse_limit(const std::string& text) {
  if (text.empty() || text.size() > 4) return std::nullopt;
  std::size_t n = 0;
  for (char c : text) {
    if (c < '0' || c > '9') return std::nullopt;
    n = n * 10 + static_cast<std::size_t>(c - '0');
  }
  if (n < 1 || n > kMaxLimit) return std::nullopt;
  return n;
}

// For the log: "channel=#x, kind=failed", or "all". Control characters in
// a value (a %0A in the query) become '?', so a log line stays one line.
std::string describe(const DeadLetterFilter& f) {
  std::string out;
  const auto add = [&](std::string_view key, std::string_view value) {
    if (!out.empty()) out += ", ";
    out.append(key).push_back('=');
    for (char c : value) out.push_back(static_cast<unsigned char>(c) < 0x20 || c == 0x7f ? '?' : c);
  };
  if (!f.channel.empty()) add("channel", f.channel);
  if (!f.error.empty()) add("error", f.error);
  if (f.kind) add("kind", to_string(*f.kind));
  return out.empty() ? "all" : out;
}

}  // namespace

AdminApi::AdminApi(Queue& queue, std::shared_ptr<spdlog::logger> log)
    : queue_(queue), log_(std::move(log)) {}

bool AdminApi::handles(const std::string& path) { return path.rfind("/admin/", 0) == 0; }

namespace {
std::string sha256(std::string_view text) {
  std::string digest(SHA256_DIGEST_LENGTH, '\0');
  SHA256(reinterpret_cast<const unsigned char*>(text.data()), text.size(),
         reinterpret_cast<unsigned char*>(digest.data()));
  return digest;
}
}  // namespace

void AdminApi::set_key(const std::string& key) {
  std::string digest = key.empty() ? "" : sha256(key);
  std::lock_guard<std::mutex> lock(key_mutex_);
  key_digest_ = std::move(digest);
}

std::optional<HttpReply> AdminApi::refuse_unauthorized(
    const std::optional<std::string>& authorization) const {
  std::string key_digest;
  {
    std::lock_guard<std::mutex> lock(key_mutex_);
    key_digest = key_digest_;
  }
  if (key_digest.empty()) {
    return error_reply(403, "admin_disabled",
                       "the admin API is off: start the proxy with an admin key ([admin] key_env "
                       "or key_file)");
  }
  std::string presented;
  if (authorization && authorization->size() > 7 &&
      Poco::icompare(authorization->substr(0, 7), "bearer ") == 0)
    presented = Poco::trim(authorization->substr(7));
  if (presented.empty()) {
    HttpReply r = error_reply(401, "not_authed", "send Authorization: Bearer <admin key>");
    r.headers.emplace_back("WWW-Authenticate", R"(Bearer realm="slack-proxy-admin")");
    return r;
  }
  // Digests have a fixed length, so the comparison's time says nothing
  // about the key.
  const std::string digest = sha256(presented);
  if (CRYPTO_memcmp(digest.data(), key_digest.data(), digest.size()) != 0) {
    log_->warn("admin: request with a wrong admin key refused");
    HttpReply r = error_reply(401, "invalid_auth", "the admin key is wrong");
    r.headers.emplace_back("WWW-Authenticate",
                           R"(Bearer realm="slack-proxy-admin", error="invalid_token")");
    return r;
  }
  return std::nullopt;
}

HttpReply AdminApi::handle(const std::string& method, const std::string& uri) {
  const auto question = uri.find('?');
  const std::string path = uri.substr(0, question);
  const std::string_view query =
      question == std::string::npos ? std::string_view{} : std::string_view(uri).substr(question + 1);
  try {
    const auto target = resolve(path);
    if (!target) return not_found();
    if (!allows(target->route, method)) {
      HttpReply r = error_reply(405, "method_not_allowed");
      r.headers.emplace_back("Allow", allowed_methods(target->route));
      return r;
    }
    std::string id;
    if (!target->id_segment.empty()) {
      auto decoded = percent_decode(target->id_segment, false);
      if (!decoded) return invalid_arguments("malformed %-encoding in the id");
      id = std::move(*decoded);
      // Ids are printable; one with a control character (a %0A) names no
      // record, and must not reach the log where it could forge a line.
      if (std::any_of(id.begin(), id.end(), [](char c) {
            return static_cast<unsigned char>(c) < 0x20 || c == 0x7f;
          }))
        return not_found();
    }

    DeadLetterStore& store = queue_.dead_letters();
    QueryParams q;
    switch (target->route) {
      case Route::Queue: {
        if (auto error = parse_query(query, {}, q)) return std::move(*error);
        const QueueLimits limits = queue_.limits();
        std::string body = R"({"ok":true,)";
        append_number(body, "size", queue_.size());
        append_number(body, "bytes", queue_.bytes());
        append_number(body, "max_messages", limits.max_messages);
        append_number(body, "max_bytes", limits.max_bytes);
        append_number(body, "dead_letters", store.count());
        body.back() = '}';
        return json_reply(200, std::move(body));
      }

      case Route::Reload: {
        if (auto error = parse_query(query, {}, q)) return std::move(*error);
        if (!reload_) return not_found();
        const ReloadReply outcome = reload_();  // logs what it did
        std::string body = outcome.ok ? R"({"ok":true,"changes":[)"
                                      : R"({"ok":false,"error":"reload_refused","errors":[)";
        for (const auto& line : outcome.lines) {
          append_json_string(body, line);
          body.push_back(',');
        }
        if (!outcome.lines.empty()) body.pop_back();
        body += "]}";
        return json_reply(outcome.ok ? 200 : 409, std::move(body));
      }

      case Route::DeadLetters:
        if (method == "GET") {
          if (auto error = parse_query(query, {"channel", "error", "kind", "after", "limit"}, q))
            return std::move(*error);
          DeadLetterFilter filter;
          if (auto error = parse_filter(q, filter)) return std::move(*error);
          std::size_t limit = kDefaultLimit;
          if (const auto* v = q.find("limit")) {
            const auto parsed = parse_limit(*v);
            if (!parsed)
              return error_reply(400, "invalid_limit",
                                 "limit must be a whole number from 1 to " +
                                     std::to_string(kMaxLimit));
            limit = *parsed;
          }
          const std::string* after = q.find("after");
          const DeadLetterPage page = store.list(filter, after ? *after : std::string{}, limit);
          const std::size_t total = store.count();
          std::string body = R"({"ok":true,"dead_letters":[)";
          for (const auto& d : page.items) {
            append_record(body, d, false);
            body.push_back(',');
          }
          if (!page.items.empty()) body.pop_back();
          body += "],";
          if (!page.next_after.empty()) append_member(body, "next_after", page.next_after);
          append_number(body, "total", total);
          body.back() = '}';
          return json_reply(200, std::move(body));
        } else {
          if (auto error = parse_query(query, {"channel", "error", "kind", "all"}, q))
            return std::move(*error);
          DeadLetterFilter filter;
          if (auto error = parse_bulk_filter(q, filter)) return std::move(*error);
          const std::size_t deleted = store.remove_matching(filter);
          log_->info("admin: deleted {} dead letter(s) ({})", deleted, describe(filter));
          return json_reply(200, R"({"ok":true,"deleted":)" + std::to_string(deleted) + "}");
        }

      case Route::ReplayMatching: {
        if (auto error = parse_query(query, {"channel", "error", "kind", "all"}, q))
          return std::move(*error);
        DeadLetterFilter filter;
        if (auto error = parse_bulk_filter(q, filter)) return std::move(*error);
        const auto n = store.replay_matching(filter);
        if (n.left == 0) {
          log_->info("admin: replayed {} dead letter(s) ({})", n.replayed, describe(filter));
        } else {
          log_->warn(
              "admin: replayed {} dead letter(s) ({}); {} left: the queue is full or "
              "unavailable, or a caller's token cannot be opened",
              n.replayed, describe(filter), n.left);
        }
        return json_reply(200, R"({"ok":true,"replayed":)" + std::to_string(n.replayed) +
                                   R"(,"left":)" + std::to_string(n.left) + "}");
      }

      case Route::DeadLetter:
        if (auto error = parse_query(query, {}, q)) return std::move(*error);
        if (method == "GET") {
          const auto letter = store.get(id);
          if (!letter) return not_found();
          std::string body = R"({"ok":true,"dead_letter":)";
          append_record(body, *letter, true);
          body.push_back('}');
          return json_reply(200, std::move(body));
        } else {
          if (!store.remove(id)) return not_found();
          log_->info("admin: deleted dead letter {}", id);
          return json_reply(200, R"({"ok":true,"deleted":1})");
        }

      case Route::ReplayOne: {
        if (auto error = parse_query(query, {}, q)) return std::move(*error);
        switch (store.replay(id)) {
          case DeadLetterStore::ReplayStatus::Replayed:
            log_->info("admin: replayed dead letter {}", id);
            return json_reply(200, R"({"ok":true,"replayed":1})");
          case DeadLetterStore::ReplayStatus::NotFound:
            return not_found();
          case DeadLetterStore::ReplayStatus::Full:
            log_->warn("admin: dead letter {} not replayed: the queue is full", id);
            return error_reply(503, "queue_full");
          case DeadLetterStore::ReplayStatus::Unavailable:
            log_->warn("admin: dead letter {} not replayed: the queue is unavailable", id);
            return error_reply(503, "queue_unavailable");
          case DeadLetterStore::ReplayStatus::TokenUnavailable:
            // The caller's token was sealed under another key: replaying it
            // could only fail again. The caller must send the message anew.
            log_->warn("admin: dead letter {} not replayed: its caller token cannot be opened", id);
            return error_reply(409, "token_unavailable");
        }
        return error_reply(503, "queue_unavailable");
      }
    }
    return not_found();
  } catch (const std::exception& e) {
    // The store's text (paths, SQLite's words) is for the operator's log,
    // not for whoever can reach the listener.
    log_->error("admin: {} {} failed: {}", method, path, e.what());
  } catch (...) {
    log_->error("admin: {} {} failed: unknown error", method, path);
  }
  return error_reply(503, "queue_unavailable");
}

}  // namespace slack_proxy

#include "identity_router.h"

#include <stdexcept>
#include <utility>

namespace slack_proxy::plugins::identity_router {

namespace {

constexpr std::size_t kMaxName = 64;
constexpr std::string_view kArrow = "->";
constexpr std::string_view kWhitespace = " \t\r\n\v\f";
// The core's name for the tenant of a caller's own token (ingress.cc).
constexpr std::string_view kCallerTenantPrefix = "caller-";

std::vector<std::string_view> words(std::string_view text) {
  std::vector<std::string_view> out;
  std::size_t pos = 0;
  while ((pos = text.find_first_not_of(kWhitespace, pos)) != std::string_view::npos) {
    const std::size_t end = text.find_first_of(kWhitespace, pos);
    out.push_back(text.substr(pos, end == std::string_view::npos ? end : end - pos));
    if (end == std::string_view::npos) break;
    pos = end;
  }
  return out;
}

bool is_continuation(unsigned char c) { return (c & 0xC0) == 0x80; }

// Moves `i` past the rest of the UTF-8 sequence it is in, so that `?` takes a
// whole character and a `*` retry never starts inside one.
std::size_t next_character(std::string_view text, std::size_t i) {
  ++i;
  while (i < text.size() && is_continuation(static_cast<unsigned char>(text[i]))) ++i;
  return i;
}

bool only_stars(std::string_view glob) {
  return glob.find_first_not_of('*') == std::string_view::npos;
}

// True when every message `later` matches is taken by `earlier` first.
bool covers(const Route& earlier, const Route& later) {
  const bool client = earlier.client == kAnyClient || earlier.client == later.client;
  const bool channel = !earlier.channel_glob || only_stars(*earlier.channel_glob) ||
                       (later.channel_glob && *later.channel_glob == *earlier.channel_glob);
  return client && channel;
}

std::string quoted(std::string_view text) { return "\"" + std::string(text) + "\""; }

}  // namespace

bool is_name(std::string_view text) {
  if (text.empty() || text.size() > kMaxName) return false;
  for (unsigned char c : text) {
    const bool ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                    c == '_' || c == '.' || c == '-';
    if (!ok) return false;
  }
  return true;
}

std::string workspace_name_problem(std::string_view workspace) {
  if (!is_name(workspace)) return "is not a name of 1 to 64 characters from A-Z a-z 0-9 _ . -";
  if (workspace.substr(0, kCallerTenantPrefix.size()) == kCallerTenantPrefix) {
    return "starts with \"caller-\", a prefix reserved for the tenants of callers' own tokens "
           "(delivery_token = \"caller\")";
  }
  return {};
}

bool glob_match(std::string_view pattern, std::string_view text) {
  std::size_t p = 0;
  std::size_t t = 0;
  // Where the last `*` was, and where in `text` its current try ends; on a
  // mismatch that `*` takes one more character. Linear in practice, never
  // exponential.
  std::size_t star = std::string_view::npos;
  std::size_t star_end = 0;
  while (t < text.size()) {
    if (p < pattern.size() && pattern[p] == '*') {
      star = p++;
      star_end = t;
    } else if (p < pattern.size() && pattern[p] == '?') {
      ++p;
      t = next_character(text, t);
    } else if (p < pattern.size() && pattern[p] == text[t]) {
      ++p;
      ++t;
    } else if (star != std::string_view::npos) {
      p = star + 1;
      star_end = next_character(text, star_end);
      t = star_end;
    } else {
      return false;
    }
  }
  while (p < pattern.size() && pattern[p] == '*') ++p;
  return p == pattern.size();
}

Route parse_route(std::string_view entry) {
  const std::size_t arrow = entry.find(kArrow);
  if (arrow == std::string_view::npos) {
    throw std::invalid_argument(
        "has no \"->\": expected \"<client> [<channel-glob>] -> <workspace>\"");
  }
  if (entry.find(kArrow, arrow + kArrow.size()) != std::string_view::npos) {
    throw std::invalid_argument("has more than one \"->\"");
  }
  const auto left = words(entry.substr(0, arrow));
  const auto right = words(entry.substr(arrow + kArrow.size()));
  if (left.empty()) {
    throw std::invalid_argument("names no client before \"->\" (use * for any client)");
  }
  if (left.size() > 2) {
    throw std::invalid_argument("has " + std::to_string(left.size()) +
                                " words before \"->\": expected <client> [<channel-glob>]");
  }
  if (right.empty()) throw std::invalid_argument("names no workspace after \"->\"");
  if (right.size() > 1) {
    throw std::invalid_argument("has " + std::to_string(right.size()) +
                                " words after \"->\": expected one workspace name");
  }
  Route route;
  route.client = std::string(left[0]);
  if (route.client != kAnyClient && !is_name(route.client)) {
    throw std::invalid_argument("has client " + quoted(route.client) +
                                ", which is neither * nor a name of 1 to 64 characters from "
                                "A-Z a-z 0-9 _ . - (client names are not globs)");
  }
  if (left.size() == 2) route.channel_glob = std::string(left[1]);
  route.workspace = std::string(right[0]);
  if (auto problem = workspace_name_problem(route.workspace); !problem.empty()) {
    throw std::invalid_argument("has workspace " + quoted(route.workspace) + ", which " + problem);
  }
  route.text = std::string(entry);
  return route;
}

RouteTable parse_routes(const Settings& settings) {
  RouteTable table;
  const auto& entries = settings.routes;
  for (std::size_t i = 0; i < entries.size(); ++i) {
    const std::string where = "routes[" + std::to_string(i) + "] " + quoted(entries[i]);
    try {
      table.routes.push_back(parse_route(entries[i]));
    } catch (const std::invalid_argument& e) {
      throw std::invalid_argument(where + " " + e.what());
    }
    for (std::size_t earlier = 0; earlier < i; ++earlier) {
      if (covers(table.routes[earlier], table.routes[i])) {
        throw std::invalid_argument(where + " can never match: routes[" +
                                    std::to_string(earlier) + "] " +
                                    quoted(table.routes[earlier].text) +
                                    " comes first and takes every message it would; put the "
                                    "more specific route first");
      }
    }
  }
  table.default_workspace = settings.default_workspace;
  if (!table.default_workspace.empty()) {
    if (auto problem = workspace_name_problem(table.default_workspace); !problem.empty()) {
      throw std::invalid_argument("default_workspace " + quoted(table.default_workspace) + " " +
                                  problem);
    }
  } else if (table.routes.empty()) {
    throw std::invalid_argument(
        "routes is empty and default_workspace is not set: every message would be refused");
  }
  return table;
}

IdentityRouter::IdentityRouter(const Settings& settings) : table_(parse_routes(settings)) {}

const Route* IdentityRouter::match(const sdk::Message& message) const {
  for (const Route& route : table_.routes) {
    // A named client never matches an empty caller: names are never empty.
    if (route.client != kAnyClient && route.client != message.caller) continue;
    if (route.channel_glob && !glob_match(*route.channel_glob, message.channel)) continue;
    return &route;
  }
  return nullptr;
}

sdk::RouteResult IdentityRouter::route(sdk::Message& message) noexcept {
  return sdk::guarded(
      [&] {
        const Route* route = match(message);
        if (route == nullptr && table_.default_workspace.empty()) {
          return sdk::RouteResult::reject(403, "not_allowed",
                                          "no route for this client and channel");
        }
        const std::string& workspace =
            route != nullptr ? route->workspace : table_.default_workspace;
        message.workspace = workspace;
        message.attributes[kWorkspaceAttribute] = workspace;
        return sdk::RouteResult::ok();
      },
      [](std::string_view what) {
        return sdk::RouteResult::reject(500, "internal_error",
                                        "identity_router failed: " + std::string(what));
      });
}

}  // namespace slack_proxy::plugins::identity_router

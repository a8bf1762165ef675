// Picks the Slack workspace (and so the token and the rate budget) of a
// message from who sent it and where it goes, so that one proxy serves
// several teams and several workspaces.
#ifndef SLACK_PROXY_PLUGINS_IDENTITY_ROUTER_H
#define SLACK_PROXY_PLUGINS_IDENTITY_ROUTER_H

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <slack_proxy/sdk/host.h>
#include <slack_proxy/sdk/settings.h>
#include <slack_proxy/sdk/stages.h>

namespace slack_proxy::plugins::identity_router {

// Set in Message::attributes as well as Message::workspace, for later stages
// and for people reading a dead letter.
inline constexpr const char* kWorkspaceAttribute = "workspace";

// Matches any caller, including a message without one.
inline constexpr const char* kAnyClient = "*";

// One entry of `routes`: "<client> [<channel-glob>] -> <workspace>".
struct Route {
  std::string client;                       // kAnyClient or an identity name
  std::optional<std::string> channel_glob;  // nullopt: any channel
  std::string workspace;
  std::string text;  // the entry as written, for error messages
};

struct Settings {
  std::vector<std::string> routes;  // Route entries as written
  // Where a message no route matches goes; "" refuses it instead.
  std::string default_workspace;
};

inline const sdk::Schema<Settings> kSchema{
    sdk::setting("routes", &Settings::routes,
                 "\"<client> [<channel-glob>] -> <workspace>\" entries, first match wins; "
                 "client * = anyone")
        .required(),
    sdk::setting("default_workspace", &Settings::default_workspace,
                 "workspace for messages no route matches; empty refuses them (403 not_allowed)")
        .default_to(""),
};

// The routes parsed, in order, and the default.
struct RouteTable {
  std::vector<Route> routes;
  std::string default_workspace;
};

// True for [A-Za-z0-9_.-]{1,64}: the shape of both identity names (the
// authenticator's) and workspace names.
bool is_name(std::string_view text);

// What is wrong with `workspace` as a workspace name ("is not a name ...",
// "starts with \"caller-\" ..."), or "" when nothing is. "caller-..." is
// reserved: the core names the tenants of callers' own tokens so.
std::string workspace_name_problem(std::string_view workspace);

// Glob match over the whole of `text`: `*` is any run of characters, `?` is
// one character (a UTF-8 code point); everything else matches itself,
// case-sensitively.
bool glob_match(std::string_view pattern, std::string_view text);

// Parses one entry. Throws std::invalid_argument saying what is wrong
// (without the entry's position, which the caller adds).
Route parse_route(std::string_view entry);

// Parses `routes` and checks `default_workspace`. Throws
// std::invalid_argument naming the entry (routes[<index>]) and what is wrong
// with it, including a route that can never match because an earlier one
// takes all of its messages.
RouteTable parse_routes(const Settings& settings);

// First match wins: sets `workspace` and the "workspace" attribute. No match
// and no default_workspace: 403 not_allowed, nothing queued.
class IdentityRouter final : public sdk::Router {
 public:
  // Throws as parse_routes() does.
  explicit IdentityRouter(const Settings& settings);
  // Thread-safe: reads only what the constructor set.
  sdk::RouteResult route(sdk::Message& message) noexcept override;

 private:
  const Route* match(const sdk::Message& message) const;

  RouteTable table_;
};

}  // namespace slack_proxy::plugins::identity_router

#endif  // SLACK_PROXY_PLUGINS_IDENTITY_ROUTER_H

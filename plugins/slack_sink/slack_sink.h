// Delivers messages to Slack's chat.postMessage (or any URL that answers like
// it, such as the fake Slack) over HTTP or HTTPS, with the token of the
// message's workspace.
#ifndef SLACK_PROXY_PLUGINS_SLACK_SINK_H
#define SLACK_PROXY_PLUGINS_SLACK_SINK_H

#include <cstddef>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include <slack_proxy/sdk/host.h>
#include <slack_proxy/sdk/plugin.h>
#include <slack_proxy/sdk/stages.h>
#include <slack_sink/slack_poster.h>

namespace slack_proxy::plugins::slack_sink {

// The error of a message whose workspace has no token here.
inline constexpr const char* kNoTokenForWorkspace = "no_token_for_workspace";

// Where one workspace's token comes from.
struct WorkspaceTokenSource {
  enum class Kind { Env, File };
  std::string workspace;
  Kind kind = Kind::Env;
  std::string source;   // variable name or file path; not secret
  std::string setting;  // "workspace_tokens[1]", for messages
};

struct Settings : HttpSettings {
  // The default token (messages without a workspace): from token_file when
  // that is set, else from the variable token_env names.
  std::string token_env = "SLACK_TOKEN";
  std::string token_file;
  std::vector<WorkspaceTokenSource> workspace_tokens;
};

// SECRET: the tokens a sink delivers with.
struct Tokens {
  std::string fallback;  // the default token
  std::map<std::string, std::string, std::less<>> by_workspace;
};

// Throws std::invalid_argument when a value makes no sense. Reads no
// environment and no file.
Settings parse_settings(const sdk::ConfigView& config);

// The bot token from environment variable `name`. Throws std::runtime_error
// with a one-line, secret-free explanation when it is unset, empty or not a
// plausible header value.
std::string read_token(const std::string& name);

// The bot token in file `path`, trimmed; `setting` names where the path came
// from. Throws std::runtime_error naming the setting and the path, never the
// content, when the file is missing, unreadable, empty or holds more than a
// token.
std::string read_token_file(std::string_view setting, const std::string& path);

// Every token `settings` points at. Throws std::runtime_error naming the
// variable or path that fails, never a token.
Tokens read_tokens(const Settings& settings);

class SlackSink final : public sdk::Sink {
 public:
  // `token` is the default token; no workspace has one of its own.
  SlackSink(sdk::HostServices& host, Settings settings, std::string token);
  SlackSink(sdk::HostServices& host, Settings settings, Tokens tokens);
  ~SlackSink() override;

  // Thread-safe: the dispatcher sends for different channels concurrently.
  // The token is the message's delivery_token when it has one, else its
  // workspace's, else the default one; a workspace without a token here
  // (other than a caller-token tenant) fails with no_token_for_workspace
  // and nothing is sent.
  sdk::SendResult send(const sdk::Message& message) noexcept override;

 private:
  // Null when the message's workspace has no token here.
  const std::string* token_for(const sdk::Message& message) const;
  void warn_no_token(const std::string& workspace);
  std::string redacted(std::string text, const sdk::Message& message) const;

  sdk::Logger& log_;
  SlackPoster poster_;
  Tokens tokens_;
  std::mutex warned_mutex_;
  std::set<std::string, std::less<>> warned_;  // workspaces already logged
};

// The plugin's factory. In check-only mode (`slack-proxy validate`) it reads
// no environment variable and no file: tokens are secrets, and where
// validate runs (CI) they are absent. The settings are still checked.
std::unique_ptr<sdk::Sink> make_slack_sink(const sdk::PluginContext& ctx);

}  // namespace slack_proxy::plugins::slack_sink

#endif  // SLACK_PROXY_PLUGINS_SLACK_SINK_H

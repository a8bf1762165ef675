// Delivers messages to Slack's chat.postMessage (or any URL that answers like
// it, such as the fake Slack) over HTTP or HTTPS, with the token of the
// message's workspace, through the host's HTTP client.
#ifndef SLACK_PROXY_PLUGINS_SLACK_SINK_H
#define SLACK_PROXY_PLUGINS_SLACK_SINK_H

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
#include <slack_proxy/sdk/settings.h>
#include <slack_proxy/sdk/stages.h>

namespace slack_proxy::plugins::slack_sink {

// The settings as the host checked them against kSchema.
struct Settings {
  std::string url;
  std::string token_env;
  std::string token_file;
  std::vector<std::string> workspace_tokens;
  std::vector<std::string> workspace_token_files;
  std::string rate_limit_scope;
  sdk::HttpClientSettings http;
};

inline const sdk::Schema<Settings> kSchema{
    sdk::setting("url", &Settings::url, "where messages are POSTed (http or https)")
        .default_to("https://slack.com/api/chat.postMessage"),
    sdk::setting("token_env", &Settings::token_env,
                 "environment variable that holds the default bot token (xoxb-...); unused with "
                 "token_file")
        .at_least(1)
        .default_to("SLACK_TOKEN"),
    sdk::setting("token_file", &Settings::token_file,
                 "file holding the default bot token (trimmed); when set it wins over token_env")
        .default_to(""),
    sdk::setting("workspace_tokens", &Settings::workspace_tokens,
                 "\"<workspace>=<ENV_VAR>\": the token for messages routed to that workspace")
        .default_to("[]"),
    sdk::setting("workspace_token_files", &Settings::workspace_token_files,
                 "\"<workspace>=<path>\": the token for that workspace, read from a file")
        .default_to("[]"),
    sdk::setting("rate_limit_scope", &Settings::rate_limit_scope,
                 "what Slack's 429 pauses until its Retry-After: every channel of the message's "
                 "workspace, or only its channel")
        .one_of({"workspace", "channel"})
        .default_to("workspace"),
    sdk::http_client_settings(&Settings::http),
};

// The error of a message whose workspace has no token here.
inline constexpr const char* kNoTokenForWorkspace = "no_token_for_workspace";

inline constexpr const char* kDurationMetric = "slackproxy_slack_request_duration_seconds";

// Where one workspace's token comes from.
struct WorkspaceTokenSource {
  enum class Kind { Env, File };
  std::string workspace;
  Kind kind = Kind::Env;
  std::string source;   // variable name or file path; not secret
  std::string setting;  // "workspace_tokens[1]", for messages
};

// The settings once their meaning is checked.
struct SinkConfig {
  std::string url;
  // The default token (messages without a workspace): from token_file when
  // that is set, else from the variable token_env names.
  std::string token_env;
  std::string token_file;
  std::vector<WorkspaceTokenSource> workspace_tokens;
  sdk::BackPressure::Scope rate_limit_scope = sdk::BackPressure::Scope::Workspace;
  sdk::HttpClientSettings http;
};

// SECRET: the tokens a sink delivers with.
struct Tokens {
  std::string fallback;  // the default token
  std::map<std::string, std::string, std::less<>> by_workspace;
};

// Throws std::invalid_argument when a value makes no sense in a way the
// schema cannot say. Reads no environment and no file.
SinkConfig check_settings(const Settings& settings);

// The bot token from environment variable `name`. Throws std::runtime_error
// with a one-line, secret-free explanation when it is unset, empty or not a
// plausible header value.
std::string read_token(const std::string& name);

// The bot token in file `path`, trimmed; `setting` names where the path came
// from. Throws std::runtime_error naming the setting and the path, never the
// content, when the file is missing, unreadable, empty or holds more than a
// token.
std::string read_token_file(std::string_view setting, const std::string& path);

// Every token `config` points at. Throws std::runtime_error naming the
// variable or path that fails, never a token.
Tokens read_tokens(const SinkConfig& config);

class SlackSink final : public sdk::Sink {
 public:
  // Throws std::runtime_error when the host cannot make the HTTP client
  // (an unusable ca_file, say).
  SlackSink(sdk::HostServices& host, SinkConfig config, Tokens tokens);
  ~SlackSink() override;

  // Thread-safe: the dispatcher sends for different channels concurrently.
  // The token is the message's delivery_token when it has one, else its
  // workspace's, else the default one; a workspace without a token here
  // (other than a caller-token tenant) fails with no_token_for_workspace
  // and nothing is sent. The payload goes as it is: the host has already
  // written the routed channel into it.
  sdk::SendResult send(const sdk::Message& message) override;

  // The budget of the token send() would use (HostServices::budget_id), so
  // every pipeline delivering with that token shares its pacing and its 429
  // pauses; "" when the message's workspace has no token here.
  std::string budget_of(const sdk::Message& message) override;

 private:
  // Null when the message's workspace has no token here.
  const std::string* token_for(const sdk::Message& message) const;
  void warn_no_token(const std::string& workspace);
  std::string redacted(std::string text, const sdk::Message& message) const;
  sdk::SendResult deliver(const sdk::Message& message, const std::string& token);

  sdk::Logger& log_;
  const sdk::Clock& clock_;
  sdk::Histogram& duration_;
  SinkConfig config_;
  std::shared_ptr<sdk::HttpClient> http_;
  Tokens tokens_;
  sdk::HostServices& host_;
  // budget_id() of each configured token (by where tokens_ keeps it, which
  // never moves), worked out once.
  std::map<const std::string*, std::string> budget_of_token_;
  std::mutex warned_mutex_;
  std::set<std::string, std::less<>> warned_;  // workspaces already logged
};

// What Slack's reply means, as a sink result: JSON ok/error (Web API) or a
// plain-text ok/code (incoming webhooks), 429 and 5xx with Retry-After, or
// the client's transport failure. No back-pressure: the sink adds that.
sdk::SendResult read_reply(const sdk::HttpResponse& response);

// The plugin's factory. In check-only mode (`slack-proxy validate`) it reads
// no environment variable and no file: tokens are secrets, and where
// validate runs (CI) they are absent. The settings, ca_file included, are
// still checked; then there is nothing to build.
std::unique_ptr<sdk::Sink> make_slack_sink(const sdk::PluginContext& ctx, const Settings& settings);

}  // namespace slack_proxy::plugins::slack_sink

#endif  // SLACK_PROXY_PLUGINS_SLACK_SINK_H

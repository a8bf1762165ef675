#include "slack_sink.h"

#include <chrono>
#include <cstdlib>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string_view>
#include <utility>

#include <Poco/Exception.h>
#include <Poco/JSON/Object.h>
#include <Poco/JSON/ParseHandler.h>
#include <Poco/JSON/Parser.h>
#include <slack_proxy/sdk/message.h>
#include <slack_proxy/sdk/outcome.h>
#include <slack_proxy/sdk/secret_file.h>

namespace slack_proxy::plugins::slack_sink {

namespace {

bool has_control(std::string_view text) {
  for (unsigned char c : text) {
    if (c < 0x20 || c == 0x7f) return true;
  }
  return false;
}

// True for text that cannot go into an HTTP header or URL as is.
bool has_control_or_space(std::string_view text) {
  for (unsigned char c : text) {
    if (c <= 0x20 || c == 0x7f) return true;
  }
  return false;
}

Poco::JSON::Object::Ptr parse_object(const std::string& text) {
  Poco::JSON::Parser parser(new Poco::JSON::ParseHandler(true));
  return parser.parse(text).extract<Poco::JSON::Object::Ptr>();
}

constexpr std::size_t kMaxWorkspaceName = 64;
// What Slack's 429 means without a Retry-After; back_pressure_of's fallback too.
constexpr std::chrono::seconds kDefaultRetryAfter{1};
// Remembering more workspaces than this would let a buggy router grow the set
// without bound; beyond it every such message is logged.
constexpr std::size_t kMaxWarnedWorkspaces = 1024;
constexpr std::string_view kWhitespace = " \t\r\n\v\f";
constexpr const char* kTokenWhat = "the Slack bot token (xoxb-...)";

std::string_view trim(std::string_view text) {
  const auto first = text.find_first_not_of(kWhitespace);
  if (first == std::string_view::npos) return {};
  const auto last = text.find_last_not_of(kWhitespace);
  return text.substr(first, last - first + 1);
}

bool starts_with(std::string_view text, std::string_view prefix) {
  return text.substr(0, prefix.size()) == prefix;
}

// xoxb-, xoxp-, xoxe-...: a token pasted where a variable name or a path
// belongs. Such a value is never repeated in an error.
bool looks_like_token(std::string_view text) { return starts_with(trim(text), "xox"); }

void check_variable_name(std::string_view setting, const std::string& name) {
  if (name.empty() || name.find('=') != std::string::npos || has_control_or_space(name)) {
    throw std::invalid_argument(std::string(setting) + " must name an environment variable, got \"" +
                                name + "\"");
  }
}

// http(s)://host[...]: the client checks the rest when it sends. The URL is
// not repeated, in case it is a webhook's (a secret).
void check_url(const std::string& url) {
  const auto scheme_end = url.find("://");
  const std::string scheme = scheme_end == std::string::npos ? "" : url.substr(0, scheme_end);
  if (scheme != "http" && scheme != "https") {
    throw std::invalid_argument("url must start with http:// or https://" +
                                (scheme.empty() ? std::string() : ", got scheme \"" + scheme + "\""));
  }
  if (has_control_or_space(url)) {
    throw std::invalid_argument("url contains whitespace or control characters");
  }
  const std::string_view rest = std::string_view(url).substr(scheme_end + 3);
  const std::string_view authority = rest.substr(0, rest.find_first_of("/?#"));
  const std::string_view host = authority.substr(authority.find('@') + 1);
  if (host.empty() || host.front() == ':') throw std::invalid_argument("url has no host");
}

// Slack's error code from a JSON reply ({"ok":false,"error":"..."}), or from
// an incoming webhook's plain-text reply ("channel_not_found").
std::optional<std::string> error_code_in(const std::string& body) {
  try {
    auto reply = parse_object(body);
    if (reply && reply->has("error")) return reply->getValue<std::string>("error");
    return std::nullopt;
  } catch (const Poco::Exception&) {
  }
  const std::string_view text = trim(body);
  const bool looks_like_code =
      !text.empty() && text.size() <= 64 &&
      text.find_first_not_of("abcdefghijklmnopqrstuvwxyz_") == std::string_view::npos;
  if (looks_like_code) return std::string(text);
  return std::nullopt;
}

void replace_all(std::string& text, std::string_view needle, std::string_view with) {
  if (needle.empty()) return;
  for (auto pos = text.find(needle); pos != std::string::npos;
       pos = text.find(needle, pos + with.size())) {
    text.replace(pos, needle.size(), with);
  }
}

// The identity_router's rule for workspace names, and the same reservation.
std::string workspace_name_problem(std::string_view workspace) {
  const bool name_shaped =
      !workspace.empty() && workspace.size() <= kMaxWorkspaceName &&
      workspace.find_first_not_of("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
                                  "0123456789_.-") == std::string_view::npos;
  if (!name_shaped) return "is not a name of 1 to 64 characters from A-Z a-z 0-9 _ . -";
  if (sdk::is_caller_tenant(workspace)) {
    return "starts with \"" + std::string(sdk::kCallerTenantPrefix) +
           "\", a prefix reserved for the tenants of callers' own tokens";
  }
  return {};
}

void parse_workspace_sources(const std::vector<std::string>& entries, const std::string& key,
                             WorkspaceTokenSource::Kind kind, SinkConfig& settings) {
  const bool env = kind == WorkspaceTokenSource::Kind::Env;
  const std::string shape = env ? "<workspace>=<ENV_VAR>" : "<workspace>=<path>";
  for (std::size_t i = 0; i < entries.size(); ++i) {
    const std::string setting = key + "[" + std::to_string(i) + "]";
    const std::string_view entry = entries[i];
    const auto equals = entry.find('=');
    const std::string_view right =
        equals == std::string_view::npos ? entry : entry.substr(equals + 1);
    if (looks_like_token(entry) || looks_like_token(right)) {
      throw std::invalid_argument(
          setting + " looks like it holds a Slack token: give " +
          (env ? "the name of the environment variable that holds it"
               : "the path of the file that holds it") +
          ", as " + shape + ", never the token itself");
    }
    const std::string quoted = setting + " \"" + std::string(entry) + "\"";
    if (equals == std::string_view::npos) {
      throw std::invalid_argument(quoted + " has no '=': expected " + shape);
    }
    WorkspaceTokenSource source;
    source.kind = kind;
    source.setting = setting;
    source.workspace = std::string(trim(entry.substr(0, equals)));
    source.source = std::string(trim(right));
    if (auto problem = workspace_name_problem(source.workspace); !problem.empty()) {
      throw std::invalid_argument(quoted + ": workspace \"" + source.workspace + "\" " + problem);
    }
    if (env) {
      check_variable_name(setting, source.source);
    } else if (source.source.empty()) {
      throw std::invalid_argument(quoted + " names no file: expected " + shape);
    } else if (has_control(source.source)) {
      throw std::invalid_argument(setting + "'s path contains control characters");
    }
    for (const auto& earlier : settings.workspace_tokens) {
      if (earlier.workspace == source.workspace) {
        throw std::invalid_argument("workspace \"" + source.workspace + "\" has two tokens: " +
                                    earlier.setting + " and " + setting);
      }
    }
    settings.workspace_tokens.push_back(std::move(source));
  }
}

// The token in variable `name`; `remedy` says how to fix a missing one.
std::string token_from_env(const std::string& name, const std::string& remedy) {
  const char* value = std::getenv(name.c_str());
  if (value == nullptr || *value == '\0') {
    throw std::runtime_error("environment variable " + name + " is not set: " + remedy);
  }
  // A stray newline or space would corrupt the Authorization header.
  if (has_control_or_space(value)) {
    throw std::runtime_error(
        "environment variable " + name +
        " contains whitespace or control characters: it must hold only the token");
  }
  return value;
}

}  // namespace

SinkConfig check_settings(const Settings& settings) {
  SinkConfig s;
  check_url(settings.url);
  s.url = settings.url;
  s.http = settings.http;
  s.token_env = settings.token_env;
  if (looks_like_token(s.token_env)) {
    throw std::invalid_argument(
        "token_env looks like a Slack token: give the name of the environment variable that "
        "holds it, never the token itself");
  }
  check_variable_name("token_env", s.token_env);
  s.token_file = settings.token_file;
  if (looks_like_token(s.token_file)) {
    throw std::invalid_argument(
        "token_file looks like a Slack token: give the path of the file that holds it, never "
        "the token itself");
  }
  if (has_control(s.token_file)) {
    throw std::invalid_argument("token_file contains control characters");
  }
  parse_workspace_sources(settings.workspace_tokens, "workspace_tokens",
                          WorkspaceTokenSource::Kind::Env, s);
  parse_workspace_sources(settings.workspace_token_files, "workspace_token_files",
                          WorkspaceTokenSource::Kind::File, s);
  if (settings.rate_limit_scope == "channel") {
    s.rate_limit_scope = sdk::BackPressure::Scope::Channel;
  } else if (settings.rate_limit_scope == "workspace") {
    s.rate_limit_scope = sdk::BackPressure::Scope::Workspace;
  } else {
    throw std::invalid_argument("rate_limit_scope must be \"workspace\" or \"channel\", got \"" +
                                settings.rate_limit_scope + "\"");
  }
  return s;
}

std::string read_token(const std::string& name) {
  return token_from_env(name, "export your Slack bot token (xoxb-...) or set token_env");
}

std::string read_token_file(std::string_view setting, const std::string& path) {
  std::string problem;
  std::optional<std::string> read = sdk::read_secret_file(path, problem);
  if (!read) {
    // An empty file is the one failure where saying what belongs in it helps.
    if (problem.ends_with(" is empty")) problem += std::string(": it must hold ") + kTokenWhat;
    throw std::runtime_error(std::string(setting) + " " + problem);
  }
  std::string token = *std::move(read);
  if (has_control_or_space(token)) {
    throw std::runtime_error(std::string(setting) + " \"" + path +
                             "\" has whitespace or control characters inside the token: it "
                             "must hold only the token");
  }
  return token;
}

Tokens read_tokens(const SinkConfig& config) {
  Tokens tokens;
  tokens.fallback = config.token_file.empty() ? read_token(config.token_env)
                                              : read_token_file("token_file", config.token_file);
  for (const auto& source : config.workspace_tokens) {
    const std::string workspace = "workspace " + source.workspace;
    tokens.by_workspace[source.workspace] =
        source.kind == WorkspaceTokenSource::Kind::Env
            ? token_from_env(source.source, "export " + workspace +
                                                "'s Slack bot token (xoxb-...) or fix " +
                                                source.setting)
            : read_token_file(source.setting + " (" + workspace + ")", source.source);
  }
  return tokens;
}

sdk::SendResult read_reply(const sdk::HttpResponse& response) {
  if (response.status == 0) return sdk::SendResult::failure(response.error, response.detail);
  const int status = response.status;
  if (status >= 200 && status <= 299) {
    // Incoming webhooks answer a plain "ok".
    if (trim(response.body) == "ok") return sdk::SendResult::ok(status);
    Poco::JSON::Object::Ptr parsed;
    try {
      parsed = parse_object(response.body);
    } catch (const Poco::Exception&) {
      return sdk::SendResult::failed(status, std::string(sdk::outcome::kBadResponse),
                                     response.detail);
    }
    if (parsed && parsed->has("ok") && parsed->get("ok").isBoolean()) {
      if (parsed->getValue<bool>("ok")) return sdk::SendResult::ok(status);
      if (parsed->has("error")) {
        return sdk::SendResult::failed(status, parsed->getValue<std::string>("error"),
                                       response.detail);
      }
    }
    return sdk::SendResult::failed(status, std::string(sdk::outcome::kBadResponse),
                                   response.detail);
  }
  const auto code = error_code_in(response.body);
  auto result = sdk::SendResult::failed(status, "", response.detail);
  if (status == 429) {
    result.error = code.value_or("rate_limited");
    result.retry_after = response.retry_after.value_or(kDefaultRetryAfter);
  } else {
    result.error = code.value_or("http_" + std::to_string(status));
    if (status >= 500) result.retry_after = response.retry_after;
  }
  return result;
}

namespace {

std::shared_ptr<sdk::HttpClient> client_from(sdk::HostServices& host,
                                             const sdk::HttpClientSettings& settings) {
  std::string error;
  auto client = host.http_client(settings, error);
  if (!client) throw std::runtime_error(error.empty() ? "the host made no HTTP client" : error);
  return client;
}

// The URL's origin for the log; the path is left out (a webhook's is a secret).
std::string origin_of(const std::string& url) {
  const auto scheme_end = url.find("://");
  const auto path = url.find_first_of("/?#", scheme_end + 3);
  std::string origin = url.substr(0, path);
  const auto at = origin.find('@', scheme_end + 3);
  if (at != std::string::npos) origin.erase(scheme_end + 3, at - scheme_end - 2);
  return origin;
}

}  // namespace

SlackSink::SlackSink(sdk::HostServices& host, SinkConfig config, Tokens tokens)
    : log_(host.logger()),
      clock_(host.clock()),
      duration_(host.metrics().histogram(kDurationMetric,
                                         "Time taken by one request to Slack, in seconds",
                                         {0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10})),
      config_(std::move(config)),
      http_(client_from(host, config_.http)),
      tokens_(std::move(tokens)),
      host_(host) {
  budget_of_token_.emplace(&tokens_.fallback, host.budget_id(tokens_.fallback));
  for (const auto& [workspace, token] : tokens_.by_workspace)
    budget_of_token_.emplace(&token, host.budget_id(token));
  log_.info("delivering to " + origin_of(config_.url));
}

SlackSink::~SlackSink() = default;

const std::string* SlackSink::token_for(const sdk::Message& message) const {
  // A pipeline with delivery_token = "caller" hands us the caller's own.
  if (!message.delivery_token.empty()) return &message.delivery_token;
  if (message.workspace.empty()) return &tokens_.fallback;
  if (auto it = tokens_.by_workspace.find(message.workspace); it != tokens_.by_workspace.end()) {
    return &it->second;
  }
  // A caller-token tenant whose message lost its token (an old queue row)
  // falls back to the default token, as before workspaces had tokens.
  if (sdk::is_caller_tenant(message.workspace)) return &tokens_.fallback;
  return nullptr;
}

std::string SlackSink::budget_of(const sdk::Message& message) {
  // The budget of the token send() would use.
  const std::string* token = token_for(message);
  if (token == nullptr) return {};
  if (auto it = budget_of_token_.find(token); it != budget_of_token_.end()) return it->second;
  return host_.budget_id(*token);  // the caller's own
}

void SlackSink::warn_no_token(const std::string& workspace) {
  bool first = false;
  {
    std::lock_guard lock(warned_mutex_);
    if (warned_.size() < kMaxWarnedWorkspaces) {
      first = warned_.insert(workspace).second;
    } else {
      first = warned_.count(workspace) == 0;
    }
  }
  const std::string line = "workspace \"" + workspace +
                           "\" has no token here: its messages fail with " +
                           kNoTokenForWorkspace + " (add it to workspace_tokens or "
                           "workspace_token_files)";
  // Once per workspace is enough to act on; every failure is also a dead letter.
  if (first) {
    log_.warn(line);
  } else {
    log_.debug(line);
  }
}

// The client hides the token it sent; a reply may quote another of ours.
std::string SlackSink::redacted(std::string text, const sdk::Message& message) const {
  replace_all(text, tokens_.fallback, "[redacted]");
  for (const auto& [workspace, token] : tokens_.by_workspace) replace_all(text, token, "[redacted]");
  replace_all(text, message.delivery_token, "[redacted]");
  return text;
}

sdk::SendResult SlackSink::deliver(const sdk::Message& message, const std::string& token) {
  sdk::HttpRequest request;
  request.url = config_.url;
  request.body = message.payload;
  request.bearer_token = token;
  const auto started = clock_.now();
  const sdk::HttpResponse response = http_->send(request);
  const auto now = clock_.now();
  duration_.observe(std::chrono::duration<double>(now - started).count());

  sdk::SendResult result = read_reply(response);
  // Slack's limit is a fact about the scope, not about this message: the
  // dispatcher holds the scope until then.
  result.back_pressure =
      sdk::back_pressure_of(response, config_.rate_limit_scope, now, kDefaultRetryAfter);
  result.detail = redacted(std::move(result.detail), message);
  return result;
}

sdk::SendResult SlackSink::send(const sdk::Message& message) {
  return sdk::guarded(
      [&] {
        const std::string* token = token_for(message);
        if (token == nullptr) {
          warn_no_token(message.workspace);
          return sdk::SendResult::failure(kNoTokenForWorkspace,
                                          "message " + message.id + ": workspace \"" +
                                              message.workspace + "\" has no token here");
        }
        return deliver(message, *token);
      },
      [&](std::string_view what) {
        return sdk::SendResult::failure(
            sdk::outcome::kInternalErrorInSink,
            redacted("slack_sink failed: " + std::string(what), message));
      });
}

std::unique_ptr<sdk::Sink> make_slack_sink(const sdk::PluginContext& ctx, const Settings& settings) {
  SinkConfig config = check_settings(settings);
  if (ctx.check_only) {
    // `validate` checks the settings, not the secrets (CI has no tokens);
    // making the client still judges ca_file and the proxy variables.
    client_from(ctx.host, config.http);
    return nullptr;
  }
  Tokens tokens = read_tokens(config);
  sdk::Logger& log = ctx.host.logger();
  log.info(config.token_file.empty()
               ? "default token from environment variable " + config.token_env
               : "default token from token_file \"" + config.token_file + "\"");
  for (const auto& source : config.workspace_tokens) {
    log.info("workspace \"" + source.workspace + "\" token from " +
             (source.kind == WorkspaceTokenSource::Kind::Env
                  ? "environment variable " + source.source
                  : "file \"" + source.source + "\""));
  }
  return std::make_unique<SlackSink>(ctx.host, std::move(config), std::move(tokens));
}

}  // namespace slack_proxy::plugins::slack_sink

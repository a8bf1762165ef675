#include "slack_sink.h"

#include <cstdlib>
#include <memory>
#include <sstream>
#include <stdexcept>
#include <string_view>
#include <utility>

#include <Poco/Exception.h>
#include <Poco/JSON/Object.h>
#include <Poco/JSON/ParseHandler.h>
#include <Poco/JSON/Parser.h>
#include <slack_sink/secret_file.h>

namespace slack_proxy::plugins::slack_sink {

namespace {

bool has_control(std::string_view text) {
  for (unsigned char c : text) {
    if (c < 0x20 || c == 0x7f) return true;
  }
  return false;
}

Poco::JSON::Object::Ptr parse_object(const std::string& text) {
  // Keeps the caller's field order when a payload is re-serialized.
  Poco::JSON::Parser parser(new Poco::JSON::ParseHandler(true));
  return parser.parse(text).extract<Poco::JSON::Object::Ptr>();
}

constexpr std::size_t kMaxWorkspaceName = 64;
// The core's name for the tenant of a caller's own token (ingress.cc). Such
// a message without its token falls back to the default token, as before
// workspaces had tokens of their own.
constexpr std::string_view kCallerTenantPrefix = "caller-";
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

// The identity_router's rule for workspace names, and the same reservation.
std::string workspace_name_problem(std::string_view workspace) {
  const bool name_shaped =
      !workspace.empty() && workspace.size() <= kMaxWorkspaceName &&
      workspace.find_first_not_of("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
                                  "0123456789_.-") == std::string_view::npos;
  if (!name_shaped) return "is not a name of 1 to 64 characters from A-Z a-z 0-9 _ . -";
  if (starts_with(workspace, kCallerTenantPrefix)) {
    return "starts with \"caller-\", a prefix reserved for the tenants of callers' own tokens";
  }
  return {};
}

void parse_workspace_sources(const sdk::ConfigView& config, const std::string& key,
                             WorkspaceTokenSource::Kind kind, Settings& settings) {
  const bool env = kind == WorkspaceTokenSource::Kind::Env;
  const std::string shape = env ? "<workspace>=<ENV_VAR>" : "<workspace>=<path>";
  const auto entries = config.get_string_list(key);
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

Settings parse_settings(const sdk::ConfigView& config) {
  Settings s;
  static_cast<HttpSettings&>(s) = parse_http_settings(config);
  s.endpoint = parse_endpoint(config.get_string("url"));
  s.token_env = config.get_string("token_env");
  if (looks_like_token(s.token_env)) {
    throw std::invalid_argument(
        "token_env looks like a Slack token: give the name of the environment variable that "
        "holds it, never the token itself");
  }
  check_variable_name("token_env", s.token_env);
  s.token_file = config.get_string("token_file");
  if (looks_like_token(s.token_file)) {
    throw std::invalid_argument(
        "token_file looks like a Slack token: give the path of the file that holds it, never "
        "the token itself");
  }
  if (has_control(s.token_file)) {
    throw std::invalid_argument("token_file contains control characters");
  }
  parse_workspace_sources(config, "workspace_tokens", WorkspaceTokenSource::Kind::Env, s);
  parse_workspace_sources(config, "workspace_token_files", WorkspaceTokenSource::Kind::File, s);
  return s;
}

std::string read_token(const std::string& name) {
  return token_from_env(name, "export your Slack bot token (xoxb-...) or set token_env");
}

std::string read_token_file(std::string_view setting, const std::string& path) {
  std::string token = read_secret_file(setting, path, kTokenWhat);
  if (has_control_or_space(token)) {
    throw std::runtime_error(std::string(setting) + " \"" + path +
                             "\" has whitespace or control characters inside the token: it "
                             "must hold only the token");
  }
  return token;
}

Tokens read_tokens(const Settings& settings) {
  Tokens tokens;
  tokens.fallback = settings.token_file.empty()
                        ? read_token(settings.token_env)
                        : read_token_file("token_file", settings.token_file);
  for (const auto& source : settings.workspace_tokens) {
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

SlackSink::SlackSink(sdk::HostServices& host, Settings settings, std::string token)
    : SlackSink(host, std::move(settings), Tokens{std::move(token), {}}) {}

SlackSink::SlackSink(sdk::HostServices& host, Settings settings, Tokens tokens)
    : log_(host.logger()), poster_(host, std::move(settings)), tokens_(std::move(tokens)) {}

SlackSink::~SlackSink() = default;

const std::string* SlackSink::token_for(const sdk::Message& message) const {
  // A pipeline with delivery_token = "caller" hands us the caller's own.
  if (!message.delivery_token.empty()) return &message.delivery_token;
  if (message.workspace.empty()) return &tokens_.fallback;
  if (auto it = tokens_.by_workspace.find(message.workspace); it != tokens_.by_workspace.end()) {
    return &it->second;
  }
  if (starts_with(message.workspace, kCallerTenantPrefix)) return &tokens_.fallback;
  return nullptr;
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

std::string SlackSink::redacted(std::string text, const sdk::Message& message) const {
  text = poster_.redacted(std::move(text), tokens_.fallback);
  for (const auto& [workspace, token] : tokens_.by_workspace) {
    text = poster_.redacted(std::move(text), token);
  }
  return poster_.redacted(std::move(text), message.delivery_token);
}

sdk::SendResult SlackSink::send(const sdk::Message& message) noexcept {
  return sdk::guarded(
      [&] {
        const std::string* token = token_for(message);
        if (token == nullptr) {
          warn_no_token(message.workspace);
          return sdk::SendResult::failed(0, kNoTokenForWorkspace,
                                         "message " + message.id + ": workspace \"" +
                                             message.workspace + "\" has no token here");
        }
        std::string rewritten;
        const std::string* body = &message.payload;
        // Ingress took original_channel from this very payload: unless a
        // router changed the channel there is nothing to rewrite, or parse.
        const bool maybe_rerouted =
            message.original_channel.empty() || message.channel != message.original_channel;
        if (!maybe_rerouted && !looks_like_object(message.payload)) {
          return sdk::SendResult::failed(0, "invalid_payload",
                                         "message " + message.id + " is not a JSON object");
        }
        if (maybe_rerouted) {
          try {
            auto payload = parse_object(message.payload);
            const bool rerouted = !message.channel.empty() &&
                                  (!payload->has("channel") ||
                                   payload->getValue<std::string>("channel") != message.channel);
            if (rerouted) {
              payload->set("channel", message.channel);
              std::ostringstream out;
              payload->stringify(out);
              rewritten = out.str();
              body = &rewritten;
            }
          } catch (const Poco::Exception&) {
            return sdk::SendResult::failed(0, "invalid_payload",
                                           "message " + message.id + " is not a JSON object");
          }
        }
        auto result = poster_.post(*body, *token);
        // The poster hides the token it sent; a reply may quote another.
        if (!tokens_.by_workspace.empty()) {
          result.detail = redacted(std::move(result.detail), message);
        }
        return result;
      },
      [&](std::string_view what) {
        return sdk::SendResult::failed(
            0, "internal_error_in_sink",
            redacted("slack_sink failed: " + std::string(what), message));
      });
}

std::unique_ptr<sdk::Sink> make_slack_sink(const sdk::PluginContext& ctx) {
  Settings settings = parse_settings(ctx.config);
  // `validate` checks the settings, not the secrets: CI has no tokens.
  if (ctx.check_only) return std::make_unique<SlackSink>(ctx.host, std::move(settings), Tokens{});
  Tokens tokens = read_tokens(settings);
  sdk::Logger& log = ctx.host.logger();
  log.info(settings.token_file.empty()
               ? "default token from environment variable " + settings.token_env
               : "default token from token_file \"" + settings.token_file + "\"");
  for (const auto& source : settings.workspace_tokens) {
    log.info("workspace \"" + source.workspace + "\" token from " +
             (source.kind == WorkspaceTokenSource::Kind::Env
                  ? "environment variable " + source.source
                  : "file \"" + source.source + "\""));
  }
  return std::make_unique<SlackSink>(ctx.host, std::move(settings), std::move(tokens));
}

}  // namespace slack_proxy::plugins::slack_sink

#include <memory>

#include <slack_proxy/sdk/plugin.h>

#include "slack_sink.h"

namespace {

using slack_proxy::plugins::slack_sink::parse_settings;
using slack_proxy::plugins::slack_sink::read_token;
using slack_proxy::plugins::slack_sink::SlackSink;

constexpr sp_config_key kSchema[] = {
    {"url", SP_VALUE_STRING, "https://slack.com/api/chat.postMessage", 0,
     "where messages are POSTed (http or https)"},
    {"token_env", SP_VALUE_STRING, "SLACK_TOKEN", 0,
     "environment variable that holds the bot token (xoxb-...)"},
    {"timeout", SP_VALUE_DURATION, "10s", 0, "limit for each of connect, send and receive"},
    {"max_connections", SP_VALUE_INTEGER, "8", 0, "keep-alive connections kept open for reuse"},
    {"user_agent", SP_VALUE_STRING, "slack-proxy/0.1", 0, "User-Agent header sent to Slack"},
    {"ca_file", SP_VALUE_STRING, "", 0,
     "PEM file of CA certificates to trust for https instead of the system store"},
};

std::unique_ptr<slack_proxy::sdk::Sink> make(const slack_proxy::sdk::PluginContext& ctx) {
  auto settings = parse_settings(ctx.config);
  // `validate` checks the settings, not the secrets: CI has no token.
  auto token = ctx.check_only ? std::string() : read_token(settings.token_env);
  return std::make_unique<SlackSink>(ctx.host, std::move(settings), std::move(token));
}

}  // namespace

SLACK_PROXY_PLUGIN(slack_proxy::sdk::Sink, "slack_sink",
                   "Posts messages to Slack's chat.postMessage (or a webhook) over HTTPS", kSchema,
                   make)

#include <slack_proxy/sdk/plugin.h>

#include "slack_sink.h"

namespace {

constexpr sp_config_key kSchema[] = {
    {"url", SP_VALUE_STRING, "https://slack.com/api/chat.postMessage", 0,
     "where messages are POSTed (http or https)"},
    {"token_env", SP_VALUE_STRING, "SLACK_TOKEN", 0,
     "environment variable that holds the default bot token (xoxb-...); unused with token_file"},
    {"token_file", SP_VALUE_STRING, "", 0,
     "file holding the default bot token (trimmed); when set it wins over token_env"},
    {"workspace_tokens", SP_VALUE_STRING_LIST, "[]", 0,
     "\"<workspace>=<ENV_VAR>\": the token for messages routed to that workspace"},
    {"workspace_token_files", SP_VALUE_STRING_LIST, "[]", 0,
     "\"<workspace>=<path>\": the token for that workspace, read from a file"},
    {"timeout", SP_VALUE_DURATION, "10s", 0, "limit for each of connect, send and receive"},
    {"max_connections", SP_VALUE_INTEGER, "8", 0, "keep-alive connections kept open for reuse"},
    {"user_agent", SP_VALUE_STRING, "slack-proxy/0.1", 0, "User-Agent header sent to Slack"},
    {"ca_file", SP_VALUE_STRING, "", 0,
     "PEM file of CA certificates to trust for https instead of the system store"},
};

}  // namespace

SLACK_PROXY_PLUGIN(slack_proxy::sdk::Sink, "slack_sink",
                   "Posts messages to Slack's chat.postMessage (or a webhook) over HTTPS", kSchema,
                   slack_proxy::plugins::slack_sink::make_slack_sink)

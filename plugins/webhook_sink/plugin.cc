#include <slack_proxy/sdk/plugin.h>

#include "webhook_sink.h"

namespace {

constexpr sp_config_key kSchema[] = {
    {"url", SP_VALUE_STRING, "", 0,
     "incoming-webhook URL (http or https); prefer url_env, the URL is a secret"},
    {"url_file", SP_VALUE_STRING, "", 0,
     "file holding the webhook URL (trimmed), read when url is empty; wins over url_env"},
    {"url_env", SP_VALUE_STRING, "SLACK_WEBHOOK_URL", 0,
     "environment variable holding the webhook URL, read when url and url_file are empty"},
    {"timeout", SP_VALUE_DURATION, "10s", 0, "limit for each of connect, send and receive"},
    {"max_connections", SP_VALUE_INTEGER, "4", 0, "keep-alive connections kept open for reuse"},
    {"ca_file", SP_VALUE_STRING, "", 0,
     "PEM file of CA certificates to trust for https instead of the system store"},
    {"user_agent", SP_VALUE_STRING, "slack-proxy/0.1", 0, "User-Agent header sent to Slack"},
};

}  // namespace

SLACK_PROXY_PLUGIN(slack_proxy::sdk::Sink, "webhook_sink",
                   "Posts messages to a Slack incoming webhook (200 \"ok\" is success)", kSchema,
                   slack_proxy::plugins::webhook_sink::make_webhook_sink)

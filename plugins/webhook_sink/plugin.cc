#include <slack_proxy/sdk/plugin.h>

#include "webhook_sink.h"

SLACK_PROXY_PLUGIN(slack_proxy::sdk::Sink, "webhook_sink",
                   "Posts messages to a Slack incoming webhook (200 \"ok\" is success)",
                   slack_proxy::plugins::webhook_sink::kSchema,
                   slack_proxy::plugins::webhook_sink::make_webhook_sink)

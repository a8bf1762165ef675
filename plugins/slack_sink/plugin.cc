#include <slack_proxy/sdk/plugin.h>

#include "slack_sink.h"

SLACK_PROXY_PLUGIN(slack_proxy::sdk::Sink, "slack_sink",
                   "Posts messages to Slack's chat.postMessage (or a webhook) over HTTPS",
                   slack_proxy::plugins::slack_sink::kSchema,
                   slack_proxy::plugins::slack_sink::make_slack_sink)

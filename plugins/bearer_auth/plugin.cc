#include <slack_proxy/sdk/plugin.h>

#include "bearer_auth.h"

SLACK_PROXY_PLUGIN(slack_proxy::sdk::Authenticator, "bearer_auth",
                   "Authenticates callers by a key (Authorization: Bearer, or the path)",
                   slack_proxy::plugins::bearer_auth::kSchema,
                   slack_proxy::plugins::bearer_auth::make_bearer_auth)

#include <slack_proxy/sdk/plugin.h>

#include "bearer_auth.h"

namespace {

// No setting holds a key: keys are secrets and live in a file or the
// environment, never in the config file.
constexpr sp_config_key kSchema[] = {
    {"keys_file", SP_VALUE_STRING, "", 0,
     "file of '<name> <key>' or '<name> sha256:<hex>' lines; empty: none"},
    {"keys_env", SP_VALUE_STRING, "SLACK_PROXY_CLIENT_KEYS", 0,
     "environment variable holding 'name=key,name2=sha256:<hex>'; empty: not read"},
    {"path_keys", SP_VALUE_BOOLEAN, "false", 0,
     "also accept the key as the last path segment (webhook-style callers)"},
};

}  // namespace

SLACK_PROXY_PLUGIN(slack_proxy::sdk::Authenticator, "bearer_auth",
                   "Authenticates callers by a key (Authorization: Bearer, or the path)", kSchema,
                   slack_proxy::plugins::bearer_auth::make_bearer_auth)

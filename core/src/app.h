// The slack-proxy program: command line, start-up, signal handling, drain.
#pragma once

#include <filesystem>
#include <string>
#include <vector>

#include "config/config.h"

namespace slack_proxy {

// Exit codes, documented in README.md.
enum ExitCode : int {
  kExitOk = 0,
  kExitInvalid = 1,  // `validate` found problems; bad command line
  kExitStartup = 2,  // could not start: config, plugin, listener
  kExitFenced = 3,   // the Redis queue took this replica for dead: start it again
};

// Where plugins are looked for: the config's [plugins] paths, then
// $SLACK_PROXY_PLUGIN_PATH (colon-separated), then the built-in directory
// next to the executable (<exe>/../lib/slack-proxy/plugins).
std::vector<std::filesystem::path> plugin_search_path(const config::ProxyConfig& config);

// `slack-proxy [--config FILE] ...` and subcommands; returns the exit code.
int run_main(int argc, char** argv);

}  // namespace slack_proxy

// Registration: the descriptor the proxy reads through the C ABI.
#include <memory>

#include <slack_proxy/sdk/plugin.h>

#include "file_sink.h"

namespace {

using example::file_sink::FileSink;
using example::file_sink::Settings;

std::unique_ptr<slack_proxy::sdk::Sink> make(const slack_proxy::sdk::PluginContext& ctx,
                                             const Settings& settings) {
  // `slack-proxy validate`: the schema has checked everything there is to
  // check, and a check must not create the file. Nothing to build.
  if (ctx.check_only) return nullptr;
  return std::make_unique<FileSink>(settings);
}

}  // namespace

SLACK_PROXY_PLUGIN(slack_proxy::sdk::Sink, "file_sink",
                   "Appends each message to a file as one JSON line", example::file_sink::kSchema,
                   make)

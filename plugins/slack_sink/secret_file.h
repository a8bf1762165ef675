// Reading a token from a file, e.g. one mounted by Docker or Kubernetes
// secrets, so that it stays out of the environment and of config files.
#ifndef SLACK_PROXY_PLUGINS_SLACK_SINK_SECRET_FILE_H
#define SLACK_PROXY_PLUGINS_SLACK_SINK_SECRET_FILE_H

#include <cstddef>
#include <string>
#include <string_view>

namespace slack_proxy::plugins::slack_sink {

// Larger than any token or URL: a bigger file is the wrong file.
inline constexpr std::size_t kMaxSecretFileBytes = 64 * 1024;

// The content of the regular file `path`, without leading and trailing
// whitespace (editors and `echo` add a newline). Throws std::runtime_error
// when the file is missing, not a regular file, unreadable, larger than
// kMaxSecretFileBytes or empty after trimming. The message starts with
// `setting` and the path, says what is wrong, and for an empty file what it
// should hold (`what`, e.g. "the Slack bot token (xoxb-...)"); it never
// contains any of the file's content.
std::string read_secret_file(std::string_view setting, const std::string& path,
                             std::string_view what);

}  // namespace slack_proxy::plugins::slack_sink

#endif  // SLACK_PROXY_PLUGINS_SLACK_SINK_SECRET_FILE_H

// Reading a secret (a token, a webhook URL) from a file, e.g. one mounted by
// Docker or Kubernetes secrets, so that it stays out of the environment and
// of config files. One reader for the host (secret settings, see settings.h)
// and for plugins whose settings name a file themselves.
#ifndef SLACK_PROXY_SDK_SECRET_FILE_H
#define SLACK_PROXY_SDK_SECRET_FILE_H

#include <cerrno>
#include <cstddef>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>

namespace slack_proxy::sdk {

// Larger than any token or URL: a bigger file is the wrong file.
inline constexpr std::size_t kMaxSecretFileBytes = 64 * 1024;

// The content of the regular file `path` (symlinks followed: mounted secrets
// are usually links), without leading and trailing whitespace (editors and
// `echo` add a newline). nullopt when the file is missing, not a regular
// file (a FIFO or a device would block or never end), unreadable, larger
// than kMaxSecretFileBytes or empty after trimming; then `problem` says
// which, naming the path and never any of the content.
inline std::optional<std::string> read_secret_file(const std::string& path, std::string& problem) {
  const std::string named = "\"" + path + "\"";
  std::error_code error;
  const auto status = std::filesystem::status(path, error);
  if (!std::filesystem::exists(status)) {
    problem = named + " does not exist";
    return std::nullopt;
  }
  if (!std::filesystem::is_regular_file(status)) {
    problem = named + " is not a regular file";
    return std::nullopt;
  }
  std::ifstream in(path, std::ios::binary);
  if (!in.is_open()) {
    const int cause = errno;
    problem = named + " cannot be read" + (cause != 0 ? ": " + std::string(std::strerror(cause)) : "");
    return std::nullopt;
  }
  std::string content(kMaxSecretFileBytes + 1, '\0');
  in.read(content.data(), static_cast<std::streamsize>(content.size()));
  if (in.bad()) {
    problem = named + " cannot be read";
    return std::nullopt;
  }
  content.resize(static_cast<std::size_t>(in.gcount()));
  if (content.size() > kMaxSecretFileBytes) {
    problem = named + " is larger than " + std::to_string(kMaxSecretFileBytes / 1024) +
              " KiB, which no secret is";
    return std::nullopt;
  }
  constexpr std::string_view kWhitespace = " \t\r\n\v\f";
  const auto first = content.find_first_not_of(kWhitespace);
  if (first == std::string::npos) {
    problem = named + " is empty";
    return std::nullopt;
  }
  const auto last = content.find_last_not_of(kWhitespace);
  return content.substr(first, last - first + 1);
}

}  // namespace slack_proxy::sdk

#endif  // SLACK_PROXY_SDK_SECRET_FILE_H

#include "secret_file.h"

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <stdexcept>
#include <system_error>

namespace slack_proxy::plugins::slack_sink {

namespace {

constexpr std::string_view kWhitespace = " \t\r\n\v\f";

}  // namespace

std::string read_secret_file(std::string_view setting, const std::string& path,
                             std::string_view what) {
  const std::string named = std::string(setting) + " \"" + path + "\"";
  std::error_code error;
  // Follows symlinks: mounted secrets are usually links to the real file.
  const auto status = std::filesystem::status(path, error);
  if (!std::filesystem::exists(status)) throw std::runtime_error(named + " does not exist");
  // A FIFO or a device would block or never end.
  if (!std::filesystem::is_regular_file(status)) {
    throw std::runtime_error(named + " is not a regular file");
  }
  std::ifstream in(path, std::ios::binary);
  if (!in.is_open()) {
    const int cause = errno;
    throw std::runtime_error(named + " cannot be read" +
                             (cause != 0 ? ": " + std::string(std::strerror(cause)) : ""));
  }
  std::string content(kMaxSecretFileBytes + 1, '\0');
  in.read(content.data(), static_cast<std::streamsize>(content.size()));
  if (in.bad()) throw std::runtime_error(named + " cannot be read");
  content.resize(static_cast<std::size_t>(in.gcount()));
  if (content.size() > kMaxSecretFileBytes) {
    throw std::runtime_error(named + " is larger than " +
                             std::to_string(kMaxSecretFileBytes / 1024) +
                             " KiB: it must hold only " + std::string(what));
  }
  const auto first = content.find_first_not_of(kWhitespace);
  if (first == std::string::npos) {
    throw std::runtime_error(named + " is empty: it must hold " + std::string(what));
  }
  const auto last = content.find_last_not_of(kWhitespace);
  return content.substr(first, last - first + 1);
}

}  // namespace slack_proxy::plugins::slack_sink

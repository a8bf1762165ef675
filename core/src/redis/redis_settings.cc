#include "redis/redis_settings.h"

#include <charconv>
#include <stdexcept>
#include <string_view>

namespace slack_proxy {
namespace {

bool parse_number(std::string_view text, long max, long& out) {
  if (text.empty()) return false;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), out);
  return ec == std::errc() && end == text.data() + text.size() && out >= 0 && out <= max;
}

}  // namespace

std::string RedisSettings::where() const {
  return host + ":" + std::to_string(port) + "/" + std::to_string(database);
}

void parse_redis_url(const std::string& url, RedisSettings& out) {
  constexpr std::string_view scheme = "redis://";
  if (url.rfind(scheme, 0) != 0)
    throw std::invalid_argument("must start with redis:// (rediss:// is not supported)");
  std::string_view rest = std::string_view(url).substr(scheme.size());
  if (rest.find('@') != std::string_view::npos)
    throw std::invalid_argument(
        "must not hold a user or password: set user, and password_env or password_file");
  std::string_view path;
  if (const auto slash = rest.find('/'); slash != std::string_view::npos) {
    path = rest.substr(slash + 1);
    rest = rest.substr(0, slash);
  }
  std::string_view host = rest;
  long port = 6379;
  if (const auto colon = rest.rfind(':'); colon != std::string_view::npos && rest.front() != '[') {
    host = rest.substr(0, colon);
    if (!parse_number(rest.substr(colon + 1), 65535, port) || port == 0)
      throw std::invalid_argument("has no valid port (1 to 65535)");
  }
  if (host.empty()) throw std::invalid_argument("names no host");
  long database = 0;
  if (!path.empty() && !parse_number(path, 15, database))
    throw std::invalid_argument("names no valid database after '/' (0 to 15)");
  out.host = std::string(host);
  out.port = static_cast<std::uint16_t>(port);
  out.database = static_cast<int>(database);
}

}  // namespace slack_proxy

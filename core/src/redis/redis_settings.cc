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
  const bool ipv6 = host.find(':') != std::string::npos;
  return (ipv6 ? "[" + host + "]" : host) + ":" + std::to_string(port) + "/" +
         std::to_string(database);
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
  std::string_view port_text;
  bool has_port = false;
  if (!rest.empty() && rest.front() == '[') {
    // An IPv6 literal: redis://[::1]:6379
    const auto close = rest.find(']');
    if (close == std::string_view::npos) throw std::invalid_argument("has a '[' without its ']'");
    host = rest.substr(1, close - 1);
    const std::string_view after = rest.substr(close + 1);
    if (!after.empty()) {
      if (after.front() != ':')
        throw std::invalid_argument("has something after ']' that is no port");
      port_text = after.substr(1);
      has_port = true;
    }
  } else if (const auto colon = rest.rfind(':'); colon != std::string_view::npos) {
    host = rest.substr(0, colon);
    port_text = rest.substr(colon + 1);
    has_port = true;
  }
  if (host.empty()) throw std::invalid_argument("names no host");
  if (rest.front() != '[' && host.find(':') != std::string_view::npos)
    throw std::invalid_argument("must put an IPv6 address in brackets: redis://[::1]:6379");
  long port = 6379;
  if (has_port && (!parse_number(port_text, 65535, port) || port == 0))
    throw std::invalid_argument("has no valid port (1 to 65535)");
  long database = 0;
  if (!path.empty() && !parse_number(path, 15, database))
    throw std::invalid_argument("names no valid database after '/' (0 to 15)");
  out.host = std::string(host);
  out.port = static_cast<std::uint16_t>(port);
  out.database = static_cast<int>(database);
}

}  // namespace slack_proxy

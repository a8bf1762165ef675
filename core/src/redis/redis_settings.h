// Where Redis is and how to talk to it: [redis] without the secrets' sources
// (app.cc reads the password). Kept apart from the connection so that the
// config checker can parse a URL without linking the client.
#ifndef SLACK_PROXY_CORE_REDIS_REDIS_SETTINGS_H
#define SLACK_PROXY_CORE_REDIS_REDIS_SETTINGS_H

#include <chrono>
#include <cstdint>
#include <string>

namespace slack_proxy {

struct RedisSettings {
  std::string host = "127.0.0.1";
  std::uint16_t port = 6379;
  int database = 0;
  std::string user;      // ACL user; empty: the default user
  std::string password;  // a secret: never logged; empty: no AUTH
  std::chrono::milliseconds connect_timeout{1000};
  std::chrono::milliseconds command_timeout{1000};
  std::string key_prefix = "slack-proxy:";
  // Where the address came from, for messages: "127.0.0.1:6379/0".
  std::string where() const;
};

// "redis://host[:port][/db]", the host an IPv6 literal in brackets
// ("redis://[::1]:6379") or a name or IPv4 address (no user or password in it: those come from
// the environment or a file). Throws std::invalid_argument saying what is
// wrong; the message never repeats anything after an '@'.
void parse_redis_url(const std::string& url, RedisSettings& out);

}  // namespace slack_proxy

#endif  // SLACK_PROXY_CORE_REDIS_REDIS_SETTINGS_H

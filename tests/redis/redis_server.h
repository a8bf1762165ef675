// A real redis-server for a test: its own free loopback port and temporary
// directory, started and stopped by the test (scripts/install-deps.sh
// installs the Debian package; SP_REQUIRE_TOOL makes its absence a failure
// in CI).
#ifndef SLACK_PROXY_TESTS_REDIS_REDIS_SERVER_H
#define SLACK_PROXY_TESTS_REDIS_REDIS_SERVER_H

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "harness.h"

namespace slack_proxy::testing {

class RedisServer {
 public:
  // `extra`: more redis-server arguments ("--requirepass", "...").
  RedisServer(std::filesystem::path program, std::vector<std::string> extra = {});
  ~RedisServer();

  std::uint16_t port() const { return port_; }
  std::string url() const { return "redis://127.0.0.1:" + std::to_string(port_); }
  // Starts it (again, on the same port and directory) and waits until it
  // answers PING; fails the test after kStartupDeadline.
  void start();
  // kill -9, as a crash or a lost host would.
  void kill();
  bool running() const { return process_ != nullptr; }
  // Runs one command as the default user (after AUTH with the
  // --requirepass it was started with, if any) and returns Redis' answer as
  // text: "OK", a bulk string, a number, the error's message, or an
  // array's strings one per line.
  std::string admin(const std::vector<std::string>& words) const;
  std::string log() const;

 private:
  std::filesystem::path program_;
  std::vector<std::string> extra_;
  TempDir dir_;
  std::uint16_t port_;
  std::unique_ptr<ChildProcess> process_;
  int starts_ = 0;
};

}  // namespace slack_proxy::testing

#endif  // SLACK_PROXY_TESTS_REDIS_REDIS_SERVER_H

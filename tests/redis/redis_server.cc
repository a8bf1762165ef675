#include "redis_server.h"

#include <thread>

#include <Poco/Net/SocketAddress.h>
#include <Poco/Redis/Array.h>
#include <Poco/Redis/Client.h>
#include <Poco/Redis/Error.h>
#include <Poco/Redis/Type.h>
#include <Poco/Timespan.h>
#include <gtest/gtest.h>

namespace slack_proxy::testing {

RedisServer::RedisServer(std::filesystem::path program, std::vector<std::string> extra)
    : program_(std::move(program)), extra_(std::move(extra)), port_(free_port()) {
  start();
}

RedisServer::~RedisServer() {
  if (process_) kill();
}

void RedisServer::start() {
  std::vector<std::string> argv = {program_.string(), "--port", std::to_string(port_),
                                   "--bind", "127.0.0.1", "--dir", dir_.path().string(),
                                   "--save", "", "--appendonly", "no"};
  argv.insert(argv.end(), extra_.begin(), extra_.end());
  process_ = std::make_unique<ChildProcess>(
      argv, Environment{path_variable()}, dir_.path() / ("redis-" + std::to_string(++starts_) + ".log"));
  // Up when it answers (a NOAUTH error is an answer too).
  const auto deadline = std::chrono::steady_clock::now() + kStartupDeadline;
  for (;;) {
    try {
      Poco::Redis::Client client;
      client.connect(Poco::Net::SocketAddress("127.0.0.1", port_), Poco::Timespan(1, 0));
      Poco::Redis::Array ping;
      ping << "PING";
      client.sendCommands({ping});
      return;
    } catch (const std::exception&) {
    }
    if (!process_->running() || std::chrono::steady_clock::now() > deadline) {
      ADD_FAILURE() << "redis-server did not answer on port " << port_ << ":\n" << log();
      return;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));  // polling a condition, with a deadline
  }
}

void RedisServer::kill() {
  if (!process_) return;
  process_->kill_hard();
  process_.reset();
}

std::string RedisServer::admin(const std::vector<std::string>& words) const {
  Poco::Redis::Client client;
  client.connect(Poco::Net::SocketAddress("127.0.0.1", port_));
  std::vector<Poco::Redis::Array> commands;
  for (std::size_t i = 0; i + 1 < extra_.size(); ++i) {
    if (extra_[i] != "--requirepass") continue;
    Poco::Redis::Array auth;
    auth << "AUTH" << extra_[i + 1];
    commands.push_back(std::move(auth));
  }
  Poco::Redis::Array command;
  for (const auto& word : words) command << word;
  commands.push_back(std::move(command));
  const Poco::Redis::Array replies = client.sendCommands(commands);
  const std::size_t last = commands.size() - 1;
  switch (replies.getType(last)) {
    case Poco::Redis::RedisTypeTraits<Poco::Redis::Error>::TypeId:
      return replies.get<Poco::Redis::Error>(last).getMessage();
    case Poco::Redis::RedisTypeTraits<Poco::Int64>::TypeId:
      return std::to_string(replies.get<Poco::Int64>(last));
    case Poco::Redis::RedisTypeTraits<Poco::Redis::BulkString>::TypeId:
      return replies.get<Poco::Redis::BulkString>(last).value();
    case Poco::Redis::RedisTypeTraits<std::string>::TypeId:
      return replies.get<std::string>(last);
    case Poco::Redis::RedisTypeTraits<Poco::Redis::Array>::TypeId: {
      // Strings, one per line (an empty array reads as a null one).
      const auto items = replies.get<Poco::Redis::Array>(last);
      std::string out;
      for (std::size_t i = 0; !items.isNull() && i < items.size(); ++i) {
        if (i > 0) out += '\n';
        if (items.getType(i) == Poco::Redis::RedisTypeTraits<Poco::Redis::BulkString>::TypeId) {
          const auto item = items.get<Poco::Redis::BulkString>(i);
          out += item.isNull() ? "" : item.value();
        } else {
          out += "(not a string)";
        }
      }
      return out;
    }
    default:
      return "(unknown reply)";
  }
}

std::string RedisServer::log() const {
  return last_lines(read_file(dir_.path() / ("redis-" + std::to_string(starts_) + ".log")), 20);
}

}  // namespace slack_proxy::testing

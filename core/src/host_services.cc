#include "host_services.h"

#include <Poco/DigestEngine.h>
#include <Poco/SHA2Engine.h>

#include "http/http_client.h"
#include "redact.h"

namespace slack_proxy {
namespace {

spdlog::level::level_enum to_spdlog(sdk::LogLevel level) {
  switch (level) {
    case sdk::LogLevel::Trace: return spdlog::level::trace;
    case sdk::LogLevel::Debug: return spdlog::level::debug;
    case sdk::LogLevel::Info: return spdlog::level::info;
    case sdk::LogLevel::Warn: return spdlog::level::warn;
    case sdk::LogLevel::Error: return spdlog::level::err;
  }
  return spdlog::level::info;
}

}  // namespace

StageLogger::StageLogger(std::shared_ptr<spdlog::logger> sink, std::string prefix)
    : sink_(std::move(sink)), prefix_(std::move(prefix)) {}

bool StageLogger::enabled(sdk::LogLevel level) const noexcept {
  return sink_->should_log(to_spdlog(level));
}

void StageLogger::log(sdk::LogLevel level, std::string_view message) noexcept {
  try {
    const auto lvl = to_spdlog(level);
    if (!sink_->should_log(lvl)) return;
    sink_->log(lvl, "[{}] {}", prefix_, redact_secrets(message));
  } catch (...) {
    // A failing log sink must not take a plugin (or the proxy) down.
  }
}

std::shared_ptr<sdk::HttpClient> StageHost::http_client(const sdk::HttpClientSettings& settings,
                                                       std::string& error) noexcept {
  try {
    const ProxyEnvironment proxies = ProxyEnvironment::from_process();
    auto client = make_http_client(settings, clock_, proxies, error);
    // Where requests go is worth a line; the proxy URL is not (it may hold a password).
    if (client && !proxies.empty()) {
      std::string line = "HTTP client honours the proxy environment:";
      if (!proxies.https_proxy.empty()) line += " https via HTTPS_PROXY;";
      if (!proxies.http_proxy.empty()) line += " http via HTTP_PROXY;";
      line += proxies.no_proxy.empty() ? " NO_PROXY unset" : " NO_PROXY = " + proxies.no_proxy;
      logger_.info(line);
    }
    return client;
  } catch (const std::exception& e) {
    error = e.what();
    return nullptr;
  }
}

std::string budget_id_of(std::string_view credential) noexcept {
  try {
    Poco::SHA2Engine sha(Poco::SHA2Engine::SHA_256);
    sha.update(std::string("slack-proxy budget v1\n"));
    sha.update(credential.data(), static_cast<unsigned>(credential.size()));
    return "b-" + Poco::DigestEngine::digestToHex(sha.digest()).substr(0, 32);
  } catch (...) {
    return {};
  }
}

std::string StageHost::budget_id(std::string_view credential) const noexcept {
  return budget_id_of(credential);
}

}  // namespace slack_proxy

#include "bearer_auth.h"

#include <sys/stat.h>

#include <cstdlib>
#include <exception>
#include <stdexcept>
#include <utility>

namespace slack_proxy::plugins::bearer_auth {

namespace {

char lower(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c; }

bool valid_variable_name(std::string_view name) {
  if (name.empty() || (name.front() >= '0' && name.front() <= '9')) return false;
  for (char c : name) {
    const bool ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                    c == '_';
    if (!ok) return false;
  }
  return true;
}

// Wipes the copy of a header that may hold a key, however the caller leaves.
struct WipeOnExit {
  std::optional<std::string>& value;
  ~WipeOnExit() {
    if (value) wipe(*value);
  }
};

}  // namespace

void check_settings(const Settings& s) {
  // The value is not echoed: a key pasted here by mistake must not reach a log.
  if (!s.keys_env.empty() && !valid_variable_name(s.keys_env)) {
    throw std::invalid_argument(
        "keys_env must name an environment variable (letters, digits and _, not starting "
        "with a digit); the keys themselves never go in the config file");
  }
  if (s.keys_file.empty() && s.keys_env.empty()) {
    throw std::invalid_argument(
        "keys_file and keys_env are both empty: set at least one of them to say where the "
        "callers' keys are");
  }
}

KeyStore load_keys(const Settings& settings, sdk::Logger& log) {
  KeyStore store;
  std::size_t from_file = 0;
  try {
    if (!settings.keys_file.empty()) {
      const SecretBuffer text = read_secret_file(settings.keys_file);
      store.add_file_text(text.view(), settings.keys_file);
      from_file = store.size();
      struct stat st {};
      if (::stat(settings.keys_file.c_str(), &st) == 0 && (st.st_mode & S_IROTH) != 0) {
        log.warn("keys_file " + settings.keys_file +
                 " is readable by every user: chmod 600 (or 640 with the proxy's group), "
                 "or keep only sha256: hashes in it");
      }
    }
    if (!settings.keys_env.empty()) {
      if (const char* value = std::getenv(settings.keys_env.c_str()); value != nullptr) {
        // The environment itself is left alone: changing it while other
        // threads may read it is not safe.
        const SecretBuffer text{std::string_view(value)};
        store.add_list_text(text.view(), settings.keys_env);
      }
    }
  } catch (const std::exception& e) {
    throw std::runtime_error("bearer_auth: " + std::string(e.what()));
  }
  if (store.empty()) {
    // Names both ways to configure keys, whichever one was tried.
    const std::string env =
        settings.keys_env.empty() ? std::string("keys_env") : "$" + settings.keys_env;
    throw std::runtime_error("bearer_auth: no keys configured (keys_file or " + env + ")");
  }
  std::string names;
  for (const auto& e : store.entries()) names += (names.empty() ? "" : ", ") + e.name;
  log.info("loaded " + std::to_string(store.size()) + " caller key(s) (" +
           std::to_string(from_file) + " from keys_file, " +
           std::to_string(store.size() - from_file) + " from the environment): " + names);
  return store;
}

std::string_view bearer_credential(std::string_view authorization) noexcept {
  constexpr std::string_view kScheme = "bearer";
  std::string_view s = trim(authorization);
  if (s.size() <= kScheme.size()) return {};
  for (std::size_t i = 0; i < kScheme.size(); ++i)
    if (lower(s[i]) != kScheme[i]) return {};
  const char after = s[kScheme.size()];
  if (after != ' ' && after != '\t') return {};  // "Bearerabc" is another scheme
  return trim(s.substr(kScheme.size()));
}

std::string_view last_path_segment(std::string_view target) noexcept {
  target = target.substr(0, target.find_first_of("?#"));
  const std::size_t slash = target.rfind('/');
  return slash == std::string_view::npos ? target : target.substr(slash + 1);
}

bool WarnThrottle::allow(sdk::SteadyTime now, std::uint64_t& suppressed) {
  std::lock_guard<std::mutex> lock(mutex_);
  if (now - window_start_ >= std::chrono::seconds(1)) {
    window_start_ = now;
    in_window_ = 0;
  }
  if (in_window_ >= per_second_) {
    ++suppressed_;
    return false;
  }
  ++in_window_;
  suppressed = std::exchange(suppressed_, 0);
  return true;
}

BearerAuth::BearerAuth(sdk::HostServices& host, const Settings& settings, KeyStore keys)
    : log_(host.logger()),
      clock_(host.clock()),
      path_keys_(settings.path_keys),
      keys_(std::move(keys)) {}

sdk::AuthResult BearerAuth::authenticate(const sdk::RequestView& request) noexcept {
  return sdk::guarded(
      [&] {
        std::optional<std::string> authorization = request.header("Authorization");
        const WipeOnExit wipe_header{authorization};
        std::string_view key;
        if (authorization) key = bearer_credential(*authorization);
        if (key.empty() && path_keys_) key = last_path_segment(request.path());
        if (key.empty()) {
          return refuse(request, "not_authed",
                        path_keys_ ? "no key in the Authorization header or the path"
                                   : "no key in the Authorization header");
        }
        const auto found = keys_.match(sha256(key));
        if (!found) return refuse(request, "invalid_auth", "the key matches no configured caller");
        const std::string& name = keys_.entries()[*found].name;
        if (log_.enabled(sdk::LogLevel::Debug)) log_.debug("authenticated caller '" + name + "'");
        return sdk::AuthResult::allow(name);
      },
      // Fail closed: an authenticator that cannot decide lets nobody in.
      [&](std::string_view what) {
        log_.error("authentication failed inside the plugin: " + std::string(what));
        return sdk::AuthResult::deny(500, "internal_error");
      });
}

sdk::AuthResult BearerAuth::refuse(const sdk::RequestView& request, std::string_view error,
                                   std::string_view why) {
  std::uint64_t suppressed = 0;
  if (warnings_.allow(clock_.now(), suppressed)) {
    std::string line = "refused a request from " + request.remote_address() + ": " +
                       std::string(error) + " (" + std::string(why) + ")";
    if (suppressed != 0)
      line += "; " + std::to_string(suppressed) + " similar line(s) suppressed";
    log_.warn(line);
  }
  return sdk::AuthResult::deny(401, std::string(error));
}

std::unique_ptr<BearerAuth> make_bearer_auth(const sdk::PluginContext& ctx,
                                             const Settings& settings) {
  check_settings(settings);
  // `slack-proxy validate` must not read secrets, which may not even exist
  // on the machine that validates.
  KeyStore keys = ctx.check_only ? KeyStore() : load_keys(settings, ctx.host.logger());
  return std::make_unique<BearerAuth>(ctx.host, settings, std::move(keys));
}

}  // namespace slack_proxy::plugins::bearer_auth

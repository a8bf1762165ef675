#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cctype>
#include <cstdlib>
#include <fstream>
#include <map>
#include <optional>
#include <span>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include <gtest/gtest.h>
#include <slack_proxy/sdk/testing/fakes.h>

#include "bearer_auth.h"
#include "key_store.h"

namespace slack_proxy::plugins::bearer_auth {
namespace {

using namespace std::chrono_literals;
using sdk::testing::FakeHost;
using sdk::testing::MapConfig;

// Keys as `openssl rand -hex 24` makes them.
const std::string kGrafanaKey = "3f1c0a9e8b7d6c5e4f3a2b1c0d9e8f7a6b5c4d3e2f1a0b9c";
const std::string kCiKey = "a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718";
const std::string kAlertKey = "0123456789abcdef0123456789abcdef0123456789abcdef";
// Set by no test; the factory reads it when a test asks for no environment keys.
constexpr const char* kUnsetVariable = "SP_BEARER_AUTH_TEST_UNSET";

class FakeRequest final : public sdk::RequestView {
 public:
  explicit FakeRequest(std::string path = "/") : path_(std::move(path)) {}
  FakeRequest& with(const std::string& name, const std::string& value) {
    headers_[lower(name)] = value;
    return *this;
  }
  std::string_view method() const noexcept override { return "POST"; }
  std::string_view path() const noexcept override { return path_; }
  std::optional<std::string> header(std::string_view name) const noexcept override {
    auto it = headers_.find(lower(std::string(name)));
    if (it == headers_.end()) return std::nullopt;
    return it->second;
  }
  std::string remote_address() const noexcept override { return "192.0.2.7:51234"; }

 private:
  static std::string lower(std::string s) {
    for (char& c : s)
      if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
    return s;
  }
  std::string path_;
  std::map<std::string, std::string> headers_;
};

FakeRequest bearer(const std::string& key, const std::string& scheme = "Bearer") {
  return FakeRequest("/").with("Authorization", scheme + " " + key);
}

// A keys file in the test's temporary directory, removed afterwards.
class KeysFile {
 public:
  explicit KeysFile(const std::string& text) {
    static int counter = 0;
    path_ = ::testing::TempDir() + "bearer_auth_keys_" + std::to_string(::getpid()) + "_" +
            std::to_string(counter++);
    std::ofstream(path_) << text;
    ::chmod(path_.c_str(), 0600);
  }
  ~KeysFile() { ::unlink(path_.c_str()); }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

// Sets an environment variable for one test.
class ScopedEnv {
 public:
  ScopedEnv(const char* name, const std::string& value) : name_(name) {
    ::setenv(name, value.c_str(), 1);
  }
  ~ScopedEnv() { ::unsetenv(name_); }

 private:
  const char* name_;
};

MapConfig config(const std::string& keys_file, const std::string& keys_env = kUnsetVariable,
                 bool path_keys = false) {
  return MapConfig()
      .set("keys_file", keys_file)
      .set("keys_env", keys_env)
      .set("path_keys", path_keys);
}

std::unique_ptr<BearerAuth> make(FakeHost& host, const MapConfig& settings,
                                 bool check_only = false) {
  return make_bearer_auth(sdk::PluginContext{host, settings, "auth", check_only},
                          kSchema.read(settings));
}

// The factory's refusal, or "" when it accepted.
std::string refusal(FakeHost& host, const MapConfig& settings, bool check_only = false) {
  try {
    make(host, settings, check_only);
    return "";
  } catch (const std::exception& e) {
    return e.what();
  }
}

// What KeyStore::add_file_text refuses with, or "" when it accepts.
std::string file_refusal(const std::string& text) {
  try {
    KeyStore().add_file_text(text, "clients.keys");
    return "";
  } catch (const std::invalid_argument& e) {
    return e.what();
  }
}

std::span<const std::uint8_t> bytes(const std::string& s) {
  return {reinterpret_cast<const std::uint8_t*>(s.data()), s.size()};
}

bool logged_any_part_of(const FakeHost& host, const std::string& key) {
  // The whole key, or any 8-character piece of it.
  for (std::size_t i = 0; i + 8 <= key.size(); ++i)
    if (host.log.contains(key.substr(i, 8))) return true;
  return false;
}

// ------------------------------------------------------ constant time --

TEST(ConstantTimeEqual, EqualInputsCompareEqual) {
  EXPECT_TRUE(constant_time_equal(bytes("same bytes"), bytes("same bytes")));
  EXPECT_TRUE(constant_time_equal(bytes(""), bytes("")));
  const Digest d = sha256("x");
  EXPECT_TRUE(constant_time_equal(d, sha256("x")));
}

TEST(ConstantTimeEqual, UnequalInputsCompareUnequalWhereverTheyDiffer) {
  EXPECT_FALSE(constant_time_equal(bytes("Xbcdefgh"), bytes("abcdefgh")));  // first byte
  EXPECT_FALSE(constant_time_equal(bytes("abcdXfgh"), bytes("abcdefgh")));  // middle
  EXPECT_FALSE(constant_time_equal(bytes("abcdefgX"), bytes("abcdefgh")));  // last byte
  Digest a = sha256("x");
  Digest b = a;
  b[kDigestSize - 1] ^= 0x01;  // a single bit
  EXPECT_FALSE(constant_time_equal(a, b));
}

TEST(ConstantTimeEqual, DifferentLengthsCompareUnequal) {
  EXPECT_FALSE(constant_time_equal(bytes("abc"), bytes("abcd")));  // a prefix
  EXPECT_FALSE(constant_time_equal(bytes("abcd"), bytes("abc")));
  EXPECT_FALSE(constant_time_equal(bytes(""), bytes("a")));
}

// ----------------------------------------------------------- key store --

TEST(KeyStore, HashesPlaintextKeysWithSha256) {
  KeyStore store;
  store.add_file_text("grafana " + kGrafanaKey + "\n", "clients.keys");
  ASSERT_EQ(store.size(), 1u);
  EXPECT_EQ(store.entries()[0].name, "grafana");
  EXPECT_EQ(store.entries()[0].digest, sha256(kGrafanaKey));
  // Known answer: SHA-256("abc").
  EXPECT_EQ(to_hex(sha256("abc")),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

TEST(KeyStore, KeepsAGivenSha256AsTheDigest) {
  KeyStore store;
  store.add_file_text("ci sha256:" + to_hex(sha256(kCiKey)), "clients.keys");
  ASSERT_EQ(store.size(), 1u);
  EXPECT_EQ(store.entries()[0].digest, sha256(kCiKey));
  // Upper-case hex, as some tools print it, is the same digest.
  std::string upper = to_hex(sha256(kAlertKey));
  for (char& c : upper) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  KeyStore other;
  other.add_file_text("am sha256:" + upper, "clients.keys");
  EXPECT_EQ(other.entries()[0].digest, sha256(kAlertKey));
}

TEST(KeyStore, SkipsCommentsBlankLinesAndTrailingComments) {
  KeyStore store;
  store.add_file_text("# callers of the staging proxy\n"
                      "\n"
                      "   \t\n"
                      "  # indented comment\n"
                      "grafana\t" + kGrafanaKey + "   # the ops Grafana\r\n"
                      "ci  " + kCiKey,
                      "clients.keys");
  ASSERT_EQ(store.size(), 2u);
  EXPECT_EQ(store.entries()[0].name, "grafana");
  EXPECT_EQ(store.entries()[0].origin, "clients.keys:5");
  EXPECT_EQ(store.entries()[1].name, "ci");
  EXPECT_EQ(store.entries()[1].origin, "clients.keys:6");
}

TEST(KeyStore, ReadsTheEnvironmentListForm) {
  KeyStore store;
  store.add_list_text("grafana=" + kGrafanaKey + ", ci=sha256:" + to_hex(sha256(kCiKey)) + ",",
                      "CLIENT_KEYS");
  ASSERT_EQ(store.size(), 2u);
  EXPECT_EQ(store.entries()[0].name, "grafana");
  EXPECT_EQ(store.entries()[0].digest, sha256(kGrafanaKey));
  EXPECT_EQ(store.entries()[1].name, "ci");
  EXPECT_EQ(store.entries()[1].digest, sha256(kCiKey));
  EXPECT_EQ(store.entries()[1].origin, "$CLIENT_KEYS entry 2");
}

TEST(KeyStore, DuplicateNameIsAnErrorNamingBothLinesAndNotTheKey) {
  const std::string error =
      file_refusal("grafana " + kGrafanaKey + "\nci " + kCiKey + "\ngrafana " + kAlertKey + "\n");
  EXPECT_EQ(error,
            "clients.keys:3: the name 'grafana' is already used at clients.keys:1; names must "
            "be unique");
  EXPECT_EQ(error.find(kAlertKey.substr(0, 8)), std::string::npos);
}

TEST(KeyStore, OneKeyForTwoNamesIsAnError) {
  const std::string error = file_refusal("grafana " + kGrafanaKey + "\nci " + kGrafanaKey);
  EXPECT_NE(error.find("clients.keys:2: 'ci' has the same key as 'grafana'"), std::string::npos)
      << error;
  EXPECT_EQ(error.find(kGrafanaKey.substr(0, 8)), std::string::npos);
}

TEST(KeyStore, ShortKeyErrorDoesNotContainTheKey) {
  const std::string short_key = "tooShort-123";
  const std::string error = file_refusal("grafana " + short_key);
  EXPECT_EQ(error,
            "clients.keys:1: the key of 'grafana' is shorter than 16 characters; make one with: "
            "openssl rand -hex 24");
  EXPECT_EQ(error.find(short_key), std::string::npos);
  EXPECT_EQ(error.find("tooShort"), std::string::npos);
}

TEST(KeyStore, ShortKeyInTheEnvironmentIsRefusedToo) {
  try {
    KeyStore().add_list_text("ci=abc123", "CLIENT_KEYS");
    FAIL() << "short key accepted";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("$CLIENT_KEYS entry 1"), std::string::npos);
    EXPECT_EQ(std::string(e.what()).find("abc123"), std::string::npos);
  }
}

TEST(KeyStore, MalformedLinesAreRefusedWithoutEchoingThem) {
  // A bare key (name forgotten) and a key with a space in it.
  for (const std::string& line : {kGrafanaKey, "grafana " + kGrafanaKey + " extra"}) {
    const std::string error = file_refusal(line);
    EXPECT_EQ(error, "clients.keys:1: expected '<name> <key>' or '<name> sha256:<64 hex>'");
  }
  const std::string bad_hash = "sha256:" + to_hex(sha256(kCiKey)).substr(0, 63) + "z";
  EXPECT_EQ(file_refusal("ci " + bad_hash),
            "clients.keys:1: the key of 'ci' must be sha256: followed by 64 hex digits");
  try {
    KeyStore().add_list_text(kCiKey, "CLIENT_KEYS");
    FAIL() << "entry without '=' accepted";
  } catch (const std::invalid_argument& e) {
    EXPECT_EQ(std::string(e.what()).find(kCiKey.substr(0, 8)), std::string::npos);
  }
}

TEST(KeyStore, RefusesNamesOutsideTheAllowedCharacters) {
  EXPECT_NE(file_refusal("team/a " + kCiKey), "");
  EXPECT_NE(file_refusal(std::string(65, 'a') + " " + kCiKey), "");
  EXPECT_EQ(file_refusal(std::string(64, 'a') + " " + kCiKey), "");
  EXPECT_EQ(file_refusal("Team_A.prod-1 " + kCiKey), "");
}

TEST(KeyStore, RefusesKeysWithControlOrNonAsciiCharacters) {
  EXPECT_NE(file_refusal("ci " + kCiKey + "\x01"), "");
  EXPECT_NE(file_refusal("ci " + kCiKey + "\xc3\xa9"), "");
}

TEST(KeyStore, MatchesEveryKeyAndNothingElse) {
  KeyStore store;
  store.add_file_text("grafana " + kGrafanaKey + "\nci " + kCiKey + "\nam " + kAlertKey,
                      "clients.keys");
  EXPECT_EQ(store.match(sha256(kGrafanaKey)), std::optional<std::size_t>(0));
  EXPECT_EQ(store.match(sha256(kCiKey)), std::optional<std::size_t>(1));
  EXPECT_EQ(store.match(sha256(kAlertKey)), std::optional<std::size_t>(2));
  EXPECT_EQ(store.match(sha256(kAlertKey + "x")), std::nullopt);
  EXPECT_EQ(store.match(sha256("")), std::nullopt);
  EXPECT_EQ(KeyStore().match(sha256(kCiKey)), std::nullopt);
}

TEST(KeyStore, StoredStateHoldsDigestsNeverPlaintext) {
  KeyStore store;
  store.add_file_text("grafana " + kGrafanaKey, "clients.keys");
  store.add_list_text("ci=" + kCiKey, "CLIENT_KEYS");
  const std::string dump = store.debug_dump();
  EXPECT_EQ(dump, "grafana sha256:" + to_hex(sha256(kGrafanaKey)) +
                      " (clients.keys:1)\nci sha256:" + to_hex(sha256(kCiKey)) +
                      " ($CLIENT_KEYS entry 1)\n");
  for (const auto& key : {kGrafanaKey, kCiKey}) {
    EXPECT_EQ(dump.find(key.substr(0, 8)), std::string::npos);
    for (const auto& e : store.entries()) {
      EXPECT_EQ(e.name.find(key.substr(0, 8)), std::string::npos);
      EXPECT_EQ(e.origin.find(key.substr(0, 8)), std::string::npos);
    }
  }
}

TEST(SecretBuffer, WipeOverwritesEveryByte) {
  SecretBuffer buffer{std::string_view(kCiKey)};
  ASSERT_EQ(buffer.view(), kCiKey);
  buffer.wipe();
  EXPECT_EQ(buffer.view(), std::string(kCiKey.size(), '\0'));
}

TEST(SecretBuffer, ReadsAFileWhole) {
  const KeysFile file("grafana " + kGrafanaKey + "\n");
  EXPECT_EQ(read_secret_file(file.path()).view(), "grafana " + kGrafanaKey + "\n");
}

// ------------------------------------------------------------ parsing --

TEST(BearerCredential, TakesTheKeyAfterTheScheme) {
  EXPECT_EQ(bearer_credential("Bearer abc"), "abc");
  EXPECT_EQ(bearer_credential("  Bearer \t abc  "), "abc");
  EXPECT_EQ(bearer_credential("Basic YWxhZGRpbjpvcGVuc2VzYW1l"), "");
  EXPECT_EQ(bearer_credential("Bearerabc"), "");
  EXPECT_EQ(bearer_credential("Bearer"), "");
  EXPECT_EQ(bearer_credential("Bearer   "), "");
  EXPECT_EQ(bearer_credential(""), "");
}

TEST(LastPathSegment, IgnoresQueryAndFragment) {
  EXPECT_EQ(last_path_segment("/services/abc"), "abc");
  EXPECT_EQ(last_path_segment("/services/T0/B0/abc?x=1&y=/z"), "abc");
  EXPECT_EQ(last_path_segment("/services/abc#frag"), "abc");
  EXPECT_EQ(last_path_segment("/services/"), "");
  EXPECT_EQ(last_path_segment("/"), "");
}

// ----------------------------------------------------------- settings --

TEST(BearerAuthSettings, SchemaKeepsTheDocumentedDefaults) {
  ASSERT_EQ(kSchema.size(), 3u);
  EXPECT_STREQ(kSchema.data()[0].key, "keys_file");
  EXPECT_STREQ(kSchema.data()[0].default_value, "");
  EXPECT_STREQ(kSchema.data()[1].key, "keys_env");
  EXPECT_STREQ(kSchema.data()[1].default_value, "SLACK_PROXY_CLIENT_KEYS");
  EXPECT_STREQ(kSchema.data()[2].key, "path_keys");
  EXPECT_EQ(kSchema.data()[2].type, SP_VALUE_BOOLEAN);
  EXPECT_STREQ(kSchema.data()[2].default_value, "false");
}

TEST(BearerAuthSettings, RefusesAnInvalidVariableNameWithoutEchoingIt) {
  FakeHost host;
  // Someone pasted the keys where the variable's name belongs.
  const std::string error = refusal(host, config("", "ci=" + kCiKey), /*check_only=*/true);
  EXPECT_NE(error.find("keys_env must name an environment variable"), std::string::npos) << error;
  EXPECT_EQ(error.find(kCiKey.substr(0, 8)), std::string::npos);
}

TEST(BearerAuthSettings, RefusesNoSourceAtAll) {
  FakeHost host;
  EXPECT_NE(refusal(host, config("", ""), /*check_only=*/true).find("both empty"),
            std::string::npos);
}

TEST(BearerAuthSettings, CheckOnlyReadsNeitherTheFileNorTheEnvironment) {
  FakeHost host;
  const std::string missing = ::testing::TempDir() + "bearer_auth_no_such_file";
  // Both sources are unreadable here, which a real start refuses...
  EXPECT_NE(refusal(host, config(missing)), "");
  // ...but validation does not look at them.
  EXPECT_EQ(refusal(host, config(missing), /*check_only=*/true), "");
  ::unsetenv("SLACK_PROXY_CLIENT_KEYS");
  EXPECT_EQ(refusal(host, config("", "SLACK_PROXY_CLIENT_KEYS"), /*check_only=*/true), "");
}

TEST(BearerAuthSettings, NoKeysConfiguredIsAFactoryError) {
  FakeHost host;
  ::unsetenv("SLACK_PROXY_CLIENT_KEYS");
  EXPECT_EQ(refusal(host, config("", "SLACK_PROXY_CLIENT_KEYS")),
            "bearer_auth: no keys configured (keys_file or $SLACK_PROXY_CLIENT_KEYS)");
  // A file with only comments configures no key either.
  const KeysFile empty("# nobody yet\n");
  EXPECT_EQ(refusal(host, config(empty.path(), "SLACK_PROXY_CLIENT_KEYS")),
            "bearer_auth: no keys configured (keys_file or $SLACK_PROXY_CLIENT_KEYS)");
}

TEST(BearerAuthSettings, UnreadableFileNamesThePath) {
  FakeHost host;
  const std::string missing = ::testing::TempDir() + "bearer_auth_no_such_file";
  EXPECT_EQ(refusal(host, config(missing)),
            "bearer_auth: cannot read keys_file " + missing + ": No such file or directory");
}

TEST(BearerAuthSettings, FileErrorsNameTheFileAndLine) {
  FakeHost host;
  const KeysFile file("grafana " + kGrafanaKey + "\ngrafana " + kCiKey + "\n");
  EXPECT_EQ(refusal(host, config(file.path())),
            "bearer_auth: " + file.path() + ":2: the name 'grafana' is already used at " +
                file.path() + ":1; names must be unique");
}

TEST(BearerAuthSettings, DuplicateNameAcrossFileAndEnvironmentIsAnError) {
  FakeHost host;
  const KeysFile file("grafana " + kGrafanaKey + "\n");
  const ScopedEnv env("SP_BEARER_AUTH_TEST_DUP", "grafana=" + kCiKey);
  const std::string error = refusal(host, config(file.path(), "SP_BEARER_AUTH_TEST_DUP"));
  EXPECT_EQ(error, "bearer_auth: $SP_BEARER_AUTH_TEST_DUP entry 1: the name 'grafana' is "
                   "already used at " + file.path() + ":1; names must be unique");
}

TEST(BearerAuthSettings, WarnsAboutAWorldReadableKeysFile) {
  FakeHost host;
  const KeysFile file("grafana " + kGrafanaKey + "\n");
  ::chmod(file.path().c_str(), 0644);
  make(host, config(file.path()));
  EXPECT_TRUE(host.log.contains("is readable by every user"));
  FakeHost quiet;
  ::chmod(file.path().c_str(), 0600);
  make(quiet, config(file.path()));
  EXPECT_FALSE(quiet.log.contains("is readable by every user"));
}

// ------------------------------------------------------ authenticating --

TEST(BearerAuth, AcceptsEachKeyFromTheFileAsItsName) {
  FakeHost host;
  const KeysFile file("grafana " + kGrafanaKey + "\nci " + kCiKey + "\n");
  auto auth = make(host, config(file.path()));
  for (const auto& [key, name] : {std::pair{kGrafanaKey, "grafana"}, std::pair{kCiKey, "ci"}}) {
    const auto r = auth->authenticate(bearer(key));
    EXPECT_TRUE(r.allowed) << name;
    EXPECT_EQ(r.identity, name);
  }
}

TEST(BearerAuth, AcceptsEachKeyFromTheEnvironmentAsItsName) {
  FakeHost host;
  const ScopedEnv env("SP_BEARER_AUTH_TEST_KEYS", "grafana=" + kGrafanaKey + ",ci=" + kCiKey);
  auto auth = make(host, config("", "SP_BEARER_AUTH_TEST_KEYS"));
  EXPECT_EQ(auth->authenticate(bearer(kGrafanaKey)).identity, "grafana");
  EXPECT_EQ(auth->authenticate(bearer(kCiKey)).identity, "ci");
  EXPECT_TRUE(auth->authenticate(bearer(kCiKey)).allowed);
}

TEST(BearerAuth, AcceptsKeysFromTheFileAndTheEnvironmentTogether) {
  FakeHost host;
  const KeysFile file("grafana " + kGrafanaKey + "\n");
  const ScopedEnv env("SP_BEARER_AUTH_TEST_BOTH", "ci=" + kCiKey);
  auto auth = make(host, config(file.path(), "SP_BEARER_AUTH_TEST_BOTH"));
  EXPECT_EQ(auth->authenticate(bearer(kGrafanaKey)).identity, "grafana");
  EXPECT_EQ(auth->authenticate(bearer(kCiKey)).identity, "ci");
}

TEST(BearerAuth, AcceptsAKeyConfiguredOnlyAsItsSha256) {
  FakeHost host;
  const KeysFile file("am sha256:" + to_hex(sha256(kAlertKey)) + "\n");
  const ScopedEnv env("SP_BEARER_AUTH_TEST_HASH", "ci=sha256:" + to_hex(sha256(kCiKey)));
  auto auth = make(host, config(file.path(), "SP_BEARER_AUTH_TEST_HASH"));
  EXPECT_EQ(auth->authenticate(bearer(kAlertKey)).identity, "am");
  EXPECT_EQ(auth->authenticate(bearer(kCiKey)).identity, "ci");
  // The hash itself is not a key.
  EXPECT_FALSE(auth->authenticate(bearer(to_hex(sha256(kAlertKey)))).allowed);
}

TEST(BearerAuth, WrongKeyIsInvalidAuth) {
  FakeHost host;
  const KeysFile file("grafana " + kGrafanaKey + "\n");
  auto auth = make(host, config(file.path()));
  for (const std::string& wrong :
       {kCiKey, kGrafanaKey.substr(0, kGrafanaKey.size() - 1), kGrafanaKey + "0", std::string("x")}) {
    const auto r = auth->authenticate(bearer(wrong));
    EXPECT_FALSE(r.allowed);
    EXPECT_EQ(r.status, 401);
    EXPECT_EQ(r.error, "invalid_auth");
    EXPECT_EQ(r.identity, "");
  }
}

TEST(BearerAuth, MissingKeyIsNotAuthed) {
  FakeHost host;
  const KeysFile file("grafana " + kGrafanaKey + "\n");
  auto auth = make(host, config(file.path()));
  for (const auto& request : {FakeRequest("/"), FakeRequest("/").with("Authorization", "Bearer "),
                              FakeRequest("/").with("Authorization", "Basic Z3JhZmFuYTp4"),
                              FakeRequest("/").with("X-Api-Key", kGrafanaKey)}) {
    const auto r = auth->authenticate(request);
    EXPECT_FALSE(r.allowed);
    EXPECT_EQ(r.status, 401);
    EXPECT_EQ(r.error, "not_authed");
  }
}

TEST(BearerAuth, SchemeIsCaseInsensitive) {
  FakeHost host;
  const KeysFile file("grafana " + kGrafanaKey + "\n");
  auto auth = make(host, config(file.path()));
  for (const char* scheme : {"Bearer", "bearer", "BEARER", "bEaReR", "Bearer  "}) {
    EXPECT_EQ(auth->authenticate(bearer(kGrafanaKey, scheme)).identity, "grafana") << scheme;
  }
}

TEST(BearerAuth, PathKeyIsRefusedWhenPathKeysIsOff) {
  FakeHost host;
  const KeysFile file("alertmanager " + kAlertKey + "\n");
  auto auth = make(host, config(file.path(), kUnsetVariable, /*path_keys=*/false));
  const auto r = auth->authenticate(FakeRequest("/services/" + kAlertKey));
  EXPECT_FALSE(r.allowed);
  EXPECT_EQ(r.error, "not_authed");
}

TEST(BearerAuth, PathKeyIsAcceptedWhenPathKeysIsOn) {
  FakeHost host;
  const KeysFile file("alertmanager " + kAlertKey + "\n");
  auto auth = make(host, config(file.path(), kUnsetVariable, /*path_keys=*/true));
  EXPECT_EQ(auth->authenticate(FakeRequest("/services/" + kAlertKey)).identity, "alertmanager");
  EXPECT_EQ(auth->authenticate(FakeRequest("/services/" + kAlertKey + "?via=am")).identity,
            "alertmanager");
  EXPECT_EQ(auth->authenticate(FakeRequest("/services/wrong-key-but-long-enough")).error,
            "invalid_auth");
  EXPECT_EQ(auth->authenticate(FakeRequest("/services/")).error, "not_authed");
  // The header still works on such a pipeline.
  EXPECT_EQ(auth->authenticate(bearer(kAlertKey)).identity, "alertmanager");
}

TEST(BearerAuth, AHeaderKeyIsJudgedBeforeThePath) {
  FakeHost host;
  const KeysFile file("alertmanager " + kAlertKey + "\nci " + kCiKey + "\n");
  auto auth = make(host, config(file.path(), kUnsetVariable, /*path_keys=*/true));
  auto request = FakeRequest("/services/" + kAlertKey).with("Authorization", "Bearer " + kCiKey);
  EXPECT_EQ(auth->authenticate(request).identity, "ci");
}

TEST(BearerAuth, NeverLogsTheKeyAndNamesTheCallerAtDebug) {
  FakeHost host;
  const KeysFile file("grafana " + kGrafanaKey + "\n");
  auto auth = make(host, config(file.path(), kUnsetVariable, /*path_keys=*/true));
  auth->authenticate(bearer(kGrafanaKey));
  auth->authenticate(bearer(kCiKey));                          // wrong key
  auth->authenticate(FakeRequest("/services/" + kAlertKey));  // wrong path key
  auth->authenticate(FakeRequest("/"));                        // none
  EXPECT_FALSE(logged_any_part_of(host, kGrafanaKey));
  EXPECT_FALSE(logged_any_part_of(host, kCiKey));
  EXPECT_FALSE(logged_any_part_of(host, kAlertKey));

  int debug = 0, warn = 0;
  for (const auto& line : host.log.lines()) {
    if (line.level == sdk::LogLevel::Debug) {
      ++debug;
      EXPECT_EQ(line.text, "authenticated caller 'grafana'");
    }
    if (line.level == sdk::LogLevel::Warn) {
      ++warn;
      EXPECT_NE(line.text.find("192.0.2.7:51234"), std::string::npos) << line.text;
    }
  }
  EXPECT_EQ(debug, 1);
  EXPECT_EQ(warn, 3);
  EXPECT_TRUE(host.log.contains("invalid_auth"));
  EXPECT_TRUE(host.log.contains("not_authed"));
}

TEST(BearerAuth, FailureWarningsAreThrottledAndCountWhatWasHeldBack) {
  FakeHost host;
  const KeysFile file("grafana " + kGrafanaKey + "\n");
  auto auth = make(host, config(file.path()));
  auto warnings = [&] {
    int n = 0;
    for (const auto& line : host.log.lines()) n += line.level == sdk::LogLevel::Warn;
    return n;
  };
  for (int i = 0; i < 100; ++i) auth->authenticate(bearer(kCiKey));
  EXPECT_EQ(warnings(), BearerAuth::kWarningsPerSecond);
  host.time.advance(1s);
  auth->authenticate(bearer(kCiKey));
  EXPECT_EQ(warnings(), BearerAuth::kWarningsPerSecond + 1);
  EXPECT_TRUE(host.log.contains("; " + std::to_string(100 - BearerAuth::kWarningsPerSecond) +
                                " similar line(s) suppressed"));
  // Refusals are answered whatever the log says.
  EXPECT_EQ(auth->authenticate(bearer(kCiKey)).error, "invalid_auth");
}

TEST(BearerAuth, KeepsOnlyDigestsOfTheKeysItLoaded) {
  FakeHost host;
  const KeysFile file("grafana " + kGrafanaKey + "\n");
  const ScopedEnv env("SP_BEARER_AUTH_TEST_STATE", "ci=" + kCiKey);
  auto auth = make(host, config(file.path(), "SP_BEARER_AUTH_TEST_STATE"));
  const auto& entries = auth->keys().entries();
  ASSERT_EQ(entries.size(), 2u);
  EXPECT_EQ(entries[0].digest, sha256(kGrafanaKey));
  EXPECT_EQ(entries[1].digest, sha256(kCiKey));
  const std::string dump = auth->keys().debug_dump();
  EXPECT_EQ(dump.find(kGrafanaKey.substr(0, 8)), std::string::npos);
  EXPECT_EQ(dump.find(kCiKey.substr(0, 8)), std::string::npos);
  // And the start-up line lists callers, not keys.
  EXPECT_TRUE(host.log.contains("loaded 2 caller key(s) (1 from keys_file, 1 from the "
                                "environment): grafana, ci"));
  EXPECT_FALSE(logged_any_part_of(host, kGrafanaKey));
  EXPECT_FALSE(logged_any_part_of(host, kCiKey));
}

}  // namespace
}  // namespace slack_proxy::plugins::bearer_auth

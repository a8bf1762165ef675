// The callers' keys, kept only as SHA-256 digests, and the constant-time
// lookup of a presented key among them.
//
// Plaintext keys pass through a SecretBuffer, which is wiped when it goes
// away; nothing in a KeyStore can give a key back.
#ifndef SLACK_PROXY_PLUGINS_BEARER_AUTH_KEY_STORE_H
#define SLACK_PROXY_PLUGINS_BEARER_AUTH_KEY_STORE_H

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace slack_proxy::plugins::bearer_auth {

inline constexpr std::size_t kDigestSize = 32;
using Digest = std::array<std::uint8_t, kDigestSize>;

// Plaintext keys shorter than this are refused at load.
inline constexpr std::size_t kMinKeyLength = 16;

Digest sha256(std::string_view data) noexcept;

// `s` without leading and trailing spaces, tabs, CR and LF.
std::string_view trim(std::string_view s) noexcept;
std::string to_hex(const Digest& digest);

// True when `a` and `b` hold the same bytes. Every byte of the shorter one
// is looked at whatever the contents, with no data-dependent branch, so the
// time taken says nothing about where two inputs differ. Lengths are not
// secret (digests are always 32 bytes); unequal lengths compare unequal.
bool constant_time_equal(std::span<const std::uint8_t> a,
                         std::span<const std::uint8_t> b) noexcept;

// Bytes holding a secret: wiped (OPENSSL_cleanse, which the compiler may not
// drop) when destroyed or when wipe() is called. Not copyable, so no
// unwiped copy is ever made by accident; a move hands over the same memory.
class SecretBuffer {
 public:
  SecretBuffer() = default;
  explicit SecretBuffer(std::size_t size) : bytes_(size) {}
  explicit SecretBuffer(std::string_view text) : bytes_(text.begin(), text.end()) {}
  ~SecretBuffer() { wipe(); }
  SecretBuffer(const SecretBuffer&) = delete;
  SecretBuffer& operator=(const SecretBuffer&) = delete;
  SecretBuffer(SecretBuffer&& other) noexcept = default;
  SecretBuffer& operator=(SecretBuffer&& other) noexcept {
    wipe();
    bytes_ = std::move(other.bytes_);
    return *this;
  }

  char* data() noexcept { return bytes_.data(); }
  std::size_t size() const noexcept { return bytes_.size(); }
  std::string_view view() const noexcept { return {bytes_.data(), bytes_.size()}; }
  // Shrinking never reallocates, so no copy is left behind.
  void truncate(std::size_t size) noexcept {
    if (size < bytes_.size()) bytes_.resize(size);
  }
  void wipe() noexcept;

 private:
  std::vector<char> bytes_;
};

// Overwrites a string's bytes (OPENSSL_cleanse), e.g. a copied header that
// held a key.
void wipe(std::string& s) noexcept;

// Reads a whole file of secrets (at most 1 MiB) straight into a SecretBuffer,
// with no stream buffer in between. Throws std::runtime_error naming the
// path and the reason.
SecretBuffer read_secret_file(const std::string& path);

struct KeyEntry {
  std::string name;    // the caller's identity
  Digest digest;       // SHA-256 of the key
  std::string origin;  // where it was configured ("clients.keys:3"), for errors
};

class KeyStore {
 public:
  // Adds every key of a keys file: `<name> <key>` or `<name> sha256:<hex>`
  // per line; blank lines and `#` comments are skipped. `source` names the
  // file in errors. Throws std::invalid_argument on the first bad line,
  // naming the line and never the key.
  void add_file_text(std::string_view text, std::string_view source);
  // Adds every key of `name=key,name2=sha256:<hex>`; `variable` names the
  // environment variable in errors. Throws like add_file_text.
  void add_list_text(std::string_view text, std::string_view variable);

  // The entry whose digest equals `presented`. Compares against every stored
  // digest, always all of them and with no early exit, so the time taken
  // depends only on how many keys there are, not on which one (if any)
  // matched or how much of it did.
  std::optional<std::size_t> match(const Digest& presented) const noexcept;

  const std::vector<KeyEntry>& entries() const noexcept { return entries_; }
  bool empty() const noexcept { return entries_.empty(); }
  std::size_t size() const noexcept { return entries_.size(); }

  // Everything the store holds, one `<name> sha256:<hex> (<origin>)` per
  // line: for tests and debugging, never shows a plaintext key because none
  // is kept.
  std::string debug_dump() const;

 private:
  // `key` is either plaintext or "sha256:<64 hex>".
  void add(std::string_view name, std::string_view key, std::string origin);

  std::vector<KeyEntry> entries_;
};

}  // namespace slack_proxy::plugins::bearer_auth

#endif  // SLACK_PROXY_PLUGINS_BEARER_AUTH_KEY_STORE_H

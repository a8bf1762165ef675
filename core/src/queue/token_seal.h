// Seals a caller's Slack token before a durable queue writes it to disk.
//
// AES-256-GCM (OpenSSL EVP): the stored form is nonce(12) | ciphertext |
// tag(16), so a copied database file, a backup or `sqlite3 .dump` shows no
// token. The key comes from the environment (hex, 64 digits) so it survives
// a restart; without one the proxy uses a random per-process key, and
// tokens queued before a restart cannot be opened again (the queue then
// dead-letters those messages with error "token_unavailable").
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

namespace slack_proxy {

class TokenSealer {
 public:
  static constexpr std::size_t kKeyBytes = 32;

  // A fresh random key (RAND_bytes); ephemeral() is true.
  static TokenSealer random();
  // 64 hex digits. Throws std::invalid_argument whose message never
  // contains the value.
  static TokenSealer from_hex(std::string_view hex);

  // Binary blob; a fresh random nonce each call, so sealing the same token
  // twice gives different blobs.
  std::string seal(std::string_view plaintext) const;
  // nullopt for a blob made with another key, truncated or tampered with.
  std::optional<std::string> open(std::string_view sealed) const;

  bool ephemeral() const { return ephemeral_; }

 private:
  TokenSealer(std::string key, bool ephemeral) : key_(std::move(key)), ephemeral_(ephemeral) {}
  std::string key_;
  bool ephemeral_;
};

}  // namespace slack_proxy

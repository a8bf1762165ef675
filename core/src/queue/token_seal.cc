#include "queue/token_seal.h"
#include "hex.h"

#include <climits>
#include <cstddef>
#include <memory>
#include <stdexcept>
#include <utility>

#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

namespace slack_proxy {
namespace {

constexpr std::size_t kNonceBytes = 12;
constexpr std::size_t kTagBytes = 16;

struct CipherCtxFree {
  void operator()(EVP_CIPHER_CTX* ctx) const { EVP_CIPHER_CTX_free(ctx); }
};
using CipherCtx = std::unique_ptr<EVP_CIPHER_CTX, CipherCtxFree>;

unsigned char* bytes(std::string& s) { return reinterpret_cast<unsigned char*>(s.data()); }
const unsigned char* bytes(std::string_view s) { return reinterpret_cast<const unsigned char*>(s.data()); }

// The message names the step that failed and nothing else: no key, no
// plaintext. The error queue is cleared so a later, unrelated
// ERR_get_error() on this thread does not report our failure.
[[noreturn]] void seal_failed(const char* step) {
  ERR_clear_error();
  throw std::runtime_error(std::string("token seal: ") + step + " failed");
}

}  // namespace

TokenSealer TokenSealer::random() {
  std::string key(kKeyBytes, '\0');
  if (RAND_bytes(bytes(key), static_cast<int>(key.size())) != 1) {
    OPENSSL_cleanse(key.data(), key.size());
    seal_failed("generating a random key");
  }
  // Moving a heap-allocated string hands over its buffer: no copy is left.
  return TokenSealer(std::move(key), true);
}

TokenSealer TokenSealer::from_hex(std::string_view hex) {
  // Neither message quotes the value (or any part of it): it is the key.
  if (hex.size() != 2 * kKeyBytes) {
    throw std::invalid_argument("token seal key: expected 64 hex digits (32 bytes), got " +
                                std::to_string(hex.size()) + " characters");
  }
  for (char c : hex) {
    if (hex_value(c) < 0) {
      throw std::invalid_argument(
          "token seal key: expected 64 hex digits (32 bytes), found a non-hex character");
    }
  }
  std::string key(kKeyBytes, '\0');
  for (std::size_t i = 0; i < kKeyBytes; ++i) {
    key[i] = static_cast<char>((hex_value(hex[2 * i]) << 4) | hex_value(hex[2 * i + 1]));
  }
  return TokenSealer(std::move(key), false);
}

std::string TokenSealer::seal(std::string_view plaintext) const {
  // EVP takes int lengths; tokens are tiny, but never truncate silently.
  if (plaintext.size() > static_cast<std::size_t>(INT_MAX) - kNonceBytes - kTagBytes) {
    throw std::runtime_error("token seal: plaintext too large");
  }
  std::string out(kNonceBytes + plaintext.size() + kTagBytes, '\0');
  unsigned char* nonce = bytes(out);
  unsigned char* ciphertext = nonce + kNonceBytes;
  unsigned char* tag = ciphertext + plaintext.size();

  if (RAND_bytes(nonce, static_cast<int>(kNonceBytes)) != 1) seal_failed("generating a nonce");

  CipherCtx ctx(EVP_CIPHER_CTX_new());
  if (!ctx) seal_failed("allocating a cipher context");
  if (EVP_EncryptInit_ex(ctx.get(), EVP_aes_256_gcm(), nullptr, nullptr, nullptr) != 1) {
    seal_failed("initialising AES-256-GCM");
  }
  if (EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_SET_IVLEN, static_cast<int>(kNonceBytes), nullptr) != 1) {
    seal_failed("setting the nonce length");
  }
  if (EVP_EncryptInit_ex(ctx.get(), nullptr, nullptr, bytes(key_), nonce) != 1) {
    seal_failed("setting the key");
  }
  int len = 0;
  if (!plaintext.empty() &&
      EVP_EncryptUpdate(ctx.get(), ciphertext, &len, bytes(plaintext),
                        static_cast<int>(plaintext.size())) != 1) {
    seal_failed("encrypting");
  }
  if (static_cast<std::size_t>(len) != plaintext.size()) seal_failed("encrypting");
  int final_len = 0;
  if (EVP_EncryptFinal_ex(ctx.get(), ciphertext + len, &final_len) != 1 || final_len != 0) {
    seal_failed("finishing encryption");
  }
  if (EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_GET_TAG, static_cast<int>(kTagBytes), tag) != 1) {
    seal_failed("reading the tag");
  }
  return out;
}

std::optional<std::string> TokenSealer::open(std::string_view sealed) const {
  if (sealed.size() < kNonceBytes + kTagBytes ||
      sealed.size() > static_cast<std::size_t>(INT_MAX)) {
    return std::nullopt;
  }
  const unsigned char* nonce = bytes(sealed);
  const std::size_t text_size = sealed.size() - kNonceBytes - kTagBytes;
  const unsigned char* ciphertext = nonce + kNonceBytes;
  const unsigned char* tag = ciphertext + text_size;

  std::string plain(text_size, '\0');
  bool ok = false;
  {
    CipherCtx ctx(EVP_CIPHER_CTX_new());
    int len = 0;
    int final_len = 0;
    // The tag is checked by DecryptFinal; until it passes, `plain` is
    // unauthenticated and is wiped rather than returned.
    ok = ctx &&
         EVP_DecryptInit_ex(ctx.get(), EVP_aes_256_gcm(), nullptr, nullptr, nullptr) == 1 &&
         EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_SET_IVLEN, static_cast<int>(kNonceBytes),
                             nullptr) == 1 &&
         EVP_DecryptInit_ex(ctx.get(), nullptr, nullptr, bytes(key_), nonce) == 1 &&
         (text_size == 0 || EVP_DecryptUpdate(ctx.get(), bytes(plain), &len, ciphertext,
                                              static_cast<int>(text_size)) == 1) &&
         static_cast<std::size_t>(len) == text_size &&
         // EVP's ctrl takes a non-const pointer, but SET_TAG only reads it.
         EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_SET_TAG, static_cast<int>(kTagBytes),
                             const_cast<unsigned char*>(tag)) == 1 &&
         EVP_DecryptFinal_ex(ctx.get(), bytes(plain) + len, &final_len) == 1 && final_len == 0;
  }
  if (!ok) {
    OPENSSL_cleanse(plain.data(), plain.size());
    ERR_clear_error();
    return std::nullopt;
  }
  return plain;
}

}  // namespace slack_proxy

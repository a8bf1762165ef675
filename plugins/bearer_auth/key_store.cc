#include "key_store.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <stdexcept>
#include <utility>

#include <openssl/crypto.h>
#include <openssl/sha.h>

namespace slack_proxy::plugins::bearer_auth {

namespace {

constexpr std::size_t kMaxKeysFileBytes = 1 << 20;
constexpr std::size_t kMaxNameLength = 64;
constexpr std::string_view kHashPrefix = "sha256:";

bool is_space(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; }

bool valid_name(std::string_view name) {
  if (name.empty() || name.size() > kMaxNameLength) return false;
  return std::all_of(name.begin(), name.end(), [](char c) {
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
           c == '_' || c == '.' || c == '-';
  });
}

// Visible ASCII: a key travels in a header or a URL path segment.
bool valid_key_characters(std::string_view key) {
  return std::all_of(key.begin(), key.end(), [](char c) { return c > ' ' && c < 0x7f; });
}

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

std::optional<Digest> parse_hex_digest(std::string_view hex) {
  if (hex.size() != 2 * kDigestSize) return std::nullopt;
  Digest d{};
  for (std::size_t i = 0; i < kDigestSize; ++i) {
    const int hi = hex_value(hex[2 * i]);
    const int lo = hex_value(hex[2 * i + 1]);
    if (hi < 0 || lo < 0) return std::nullopt;
    d[i] = static_cast<std::uint8_t>(hi * 16 + lo);
  }
  return d;
}

// Next whitespace-separated field of `line`, consumed from it.
std::string_view next_field(std::string_view& line) {
  line = trim(line);
  std::size_t end = 0;
  while (end < line.size() && !is_space(line[end])) ++end;
  std::string_view field = line.substr(0, end);
  line.remove_prefix(end);
  return field;
}

}  // namespace

std::string_view trim(std::string_view s) noexcept {
  while (!s.empty() && is_space(s.front())) s.remove_prefix(1);
  while (!s.empty() && is_space(s.back())) s.remove_suffix(1);
  return s;
}

Digest sha256(std::string_view data) noexcept {
  Digest d{};
  SHA256(reinterpret_cast<const unsigned char*>(data.data()), data.size(), d.data());
  return d;
}

std::string to_hex(const Digest& digest) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  out.reserve(2 * digest.size());
  for (std::uint8_t b : digest) {
    out.push_back(kHex[b >> 4]);
    out.push_back(kHex[b & 0xf]);
  }
  return out;
}

bool constant_time_equal(std::span<const std::uint8_t> a,
                         std::span<const std::uint8_t> b) noexcept {
  const std::size_t n = std::min(a.size(), b.size());
  // Non-zero when the lengths differ; computed, not branched on.
  unsigned diff = static_cast<unsigned>(a.size() != b.size());
  for (std::size_t i = 0; i < n; ++i) diff |= static_cast<unsigned>(a[i] ^ b[i]);
  return diff == 0;
}

void SecretBuffer::wipe() noexcept {
  if (!bytes_.empty()) OPENSSL_cleanse(bytes_.data(), bytes_.size());
}

void wipe(std::string& s) noexcept {
  if (!s.empty()) OPENSSL_cleanse(s.data(), s.size());
}

SecretBuffer read_secret_file(const std::string& path) {
  auto fail = [&](const std::string& why) {
    return std::runtime_error("cannot read keys_file " + path + ": " + why);
  };
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw fail(std::strerror(errno));
  struct Closer {
    int fd;
    ~Closer() { ::close(fd); }
  } closer{fd};

  struct stat st {};
  if (::fstat(fd, &st) != 0) throw fail(std::strerror(errno));
  if (!S_ISREG(st.st_mode)) throw fail("not a regular file");
  if (static_cast<std::size_t>(st.st_size) > kMaxKeysFileBytes)
    throw fail("larger than 1 MiB; is it the right file?");

  // One byte more than fstat said, so that a file that grew meanwhile is
  // noticed instead of silently cut.
  SecretBuffer buffer(static_cast<std::size_t>(st.st_size) + 1);
  std::size_t got = 0;
  while (got < buffer.size()) {
    const ssize_t n = ::read(fd, buffer.data() + got, buffer.size() - got);
    if (n < 0) {
      if (errno == EINTR) continue;
      throw fail(std::strerror(errno));
    }
    if (n == 0) break;
    got += static_cast<std::size_t>(n);
  }
  if (got == buffer.size()) throw fail("it changed while being read; try again");
  buffer.truncate(got);
  return buffer;
}

void KeyStore::add(std::string_view name, std::string_view key, std::string origin) {
  // Errors name the place and the caller, never the key: a misplaced key
  // would otherwise end up in a log.
  if (!valid_name(name)) {
    throw std::invalid_argument(origin +
                                ": the name must be 1-64 characters of A-Z a-z 0-9 _ . -");
  }
  const std::string who = "'" + std::string(name) + "'";
  Digest digest{};
  if (key.substr(0, kHashPrefix.size()) == kHashPrefix) {
    auto parsed = parse_hex_digest(key.substr(kHashPrefix.size()));
    if (!parsed) {
      throw std::invalid_argument(origin + ": the key of " + who +
                                  " must be sha256: followed by 64 hex digits");
    }
    digest = *parsed;
  } else {
    if (key.size() < kMinKeyLength) {
      throw std::invalid_argument(origin + ": the key of " + who + " is shorter than " +
                                  std::to_string(kMinKeyLength) +
                                  " characters; make one with: openssl rand -hex 24");
    }
    if (!valid_key_characters(key)) {
      throw std::invalid_argument(origin + ": the key of " + who +
                                  " must be printable ASCII without spaces");
    }
    digest = sha256(key);
  }
  for (const auto& e : entries_) {
    if (e.name == name) {
      throw std::invalid_argument(origin + ": the name " + who + " is already used at " +
                                  e.origin + "; names must be unique");
    }
    // Two callers with one key could not be told apart.
    if (e.digest == digest) {
      throw std::invalid_argument(origin + ": " + who + " has the same key as '" + e.name +
                                  "' (" + e.origin + "); give every caller its own key");
    }
  }
  entries_.push_back({std::string(name), digest, std::move(origin)});
}

void KeyStore::add_file_text(std::string_view text, std::string_view source) {
  std::size_t line_number = 0;
  std::size_t pos = 0;
  while (pos < text.size()) {
    ++line_number;
    std::size_t eol = text.find('\n', pos);
    if (eol == std::string_view::npos) eol = text.size();
    std::string_view line = trim(text.substr(pos, eol - pos));
    pos = eol + 1;
    if (line.empty() || line.front() == '#') continue;

    const std::string origin = std::string(source) + ":" + std::to_string(line_number);
    const std::string_view name = next_field(line);
    const std::string_view key = next_field(line);
    const std::string_view rest = trim(line);
    // Anything after the key must be a comment.
    if (key.empty() || (!rest.empty() && rest.front() != '#')) {
      throw std::invalid_argument(origin +
                                  ": expected '<name> <key>' or '<name> sha256:<64 hex>'");
    }
    add(name, key, origin);
  }
}

void KeyStore::add_list_text(std::string_view text, std::string_view variable) {
  std::size_t entry_number = 0;
  while (!text.empty()) {
    ++entry_number;
    const std::size_t comma = text.find(',');
    const std::string_view entry = trim(text.substr(0, comma));
    text.remove_prefix(comma == std::string_view::npos ? text.size() : comma + 1);
    if (entry.empty()) continue;  // "a=k1,,b=k2" or a trailing comma

    const std::string origin = "$" + std::string(variable) + " entry " + std::to_string(entry_number);
    const std::size_t eq = entry.find('=');
    if (eq == std::string_view::npos) {
      throw std::invalid_argument(origin + ": expected name=key or name=sha256:<64 hex>");
    }
    add(trim(entry.substr(0, eq)), trim(entry.substr(eq + 1)), origin);
  }
}

std::optional<std::size_t> KeyStore::match(const Digest& presented) const noexcept {
  // Index + 1 of the matching entry, 0 for none. Stored digests are unique,
  // so at most one entry contributes.
  std::size_t found = 0;
  for (std::size_t i = 0; i < entries_.size(); ++i) {
    const auto equal =
        static_cast<std::size_t>(constant_time_equal(presented, entries_[i].digest));
    // All ones when equal, zero otherwise: selects without a branch.
    found |= (std::size_t{0} - equal) & (i + 1);
  }
  if (found == 0) return std::nullopt;
  return found - 1;
}

std::string KeyStore::debug_dump() const {
  std::string out;
  for (const auto& e : entries_) {
    out += e.name + " sha256:" + to_hex(e.digest) + " (" + e.origin + ")\n";
  }
  return out;
}

}  // namespace slack_proxy::plugins::bearer_auth

#include "redact.h"

#include <array>
#include <cctype>

namespace slack_proxy {
namespace {

bool is_token_char(char c) noexcept {
  return std::isalnum(static_cast<unsigned char>(c)) != 0 || c == '-' || c == '_' || c == '.';
}

constexpr std::array<std::string_view, 7> kTokenPrefixes = {
    "xoxb-", "xoxp-", "xoxa-", "xoxr-", "xoxs-", "xoxe-", "xapp-"};
constexpr std::string_view kBearer = "Bearer ";
constexpr std::string_view kMarker = "[REDACTED]";

// Every prefix starts with 'x' and kBearer with 'B': most bytes stop here.
bool may_start_secret(char c) noexcept { return c == 'x' || c == 'B'; }

// End of the run of token characters from `from`; `from` itself when the
// run holds no letter or digit, which no credential lacks: a help text's
// "export your token (xoxb-...)" stays readable.
std::size_t credential_end(std::string_view text, std::size_t from) noexcept {
  std::size_t j = from;
  bool alnum = false;
  while (j < text.size() && is_token_char(text[j])) {
    alnum = alnum || std::isalnum(static_cast<unsigned char>(text[j])) != 0;
    ++j;
  }
  return alnum ? j : from;
}

// Length of a secret starting at text[i], or 0.
std::size_t secret_at(std::string_view text, std::size_t i, std::size_t& keep) noexcept {
  keep = 0;
  if (!may_start_secret(text[i])) return 0;
  for (auto prefix : kTokenPrefixes) {
    if (text.substr(i, prefix.size()) == prefix) {
      const std::size_t j = credential_end(text, i + prefix.size());
      if (j == i + prefix.size()) return 0;
      keep = 4;  // keep "xoxb" so a reader knows which kind was there
      return j - i;
    }
  }
  if (text.substr(i, kBearer.size()) == kBearer) {
    const std::size_t j = credential_end(text, i + kBearer.size());
    if (j > i + kBearer.size()) {
      keep = kBearer.size();
      return j - i;
    }
  }
  return 0;
}

}  // namespace

std::string redact_secrets(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (std::size_t i = 0; i < text.size();) {
    std::size_t keep = 0;
    const std::size_t n = secret_at(text, i, keep);
    if (n == 0) {
      out.push_back(text[i]);
      ++i;
      continue;
    }
    out.append(text.substr(i, keep));
    out.append(kMarker);
    i += n;
  }
  return out;
}

bool holds_secret(std::string_view text) noexcept {
  std::size_t keep = 0;
  for (std::size_t i = 0; i < text.size(); ++i)
    if (may_start_secret(text[i]) && secret_at(text, i, keep) != 0) return true;
  return false;
}

}  // namespace slack_proxy

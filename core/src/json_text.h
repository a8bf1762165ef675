// Edits on JSON text that keep every other byte as the caller sent it
// (member order, number spelling, whitespace): re-serializing through a
// parser would not.
#pragma once

#include <chrono>
#include <charconv>
#include <cmath>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>

namespace slack_proxy {

// `json` with every top-level member named `key` removed, or nullopt when
// `json` is not a well-formed object at the top level or no member is
// spelled exactly `key` (a key written with escapes is not matched; callers
// that must not miss one check the result with a real parser).
std::optional<std::string> remove_top_level_member(std::string_view json, std::string_view key);

// `json` with the value of every top-level member named `key` replaced by
// `value` (JSON text, used as is), every other byte kept; nullopt on the same
// terms as remove_top_level_member, and also when any top-level key is
// written with escapes (it may spell `key`, and would then keep its old
// value): callers rewrite through a parser instead.
std::optional<std::string> replace_top_level_member(std::string_view json, std::string_view key,
                                                    std::string_view value);

// True when a member name anywhere in `json` spells a NUL character
// ("a\u0000b"). Poco's parser ends a member name at its first NUL while any
// other receiver keeps the whole name, so such a body would mean one thing
// to the proxy's checks and another to Slack. Only the text is scanned; it
// need not be valid JSON.
bool json_member_name_holds_nul(std::string_view json);

// Appends `text` as a JSON string literal (quotes included). Valid UTF-8 is
// kept as is; a byte that does not start a valid sequence becomes U+FFFD, so
// the result is always valid JSON whatever `text` holds.
void append_json_string(std::string& out, std::string_view text);

// Writers of members for JSON built by appending, as the admin API and the
// status page do. Each member ends with a comma: the caller turns the last
// one into its closing brace.

// RFC 3339, UTC, milliseconds: "2026-11-27T21:00:00.123Z"; null for the
// epoch, which the stores use for "never" (e.g. no attempt yet).
void append_time(std::string& out, std::chrono::system_clock::time_point t);
// "key":"value",
void append_member(std::string& out, std::string_view key, std::string_view value);
// "key":<time>,
void append_time_member(std::string& out, std::string_view key,
                        std::chrono::system_clock::time_point value);
// "key":<number>,
template <typename Number>
void append_number(std::string& out, std::string_view key, Number value) {
  append_json_string(out, key);
  out.push_back(':');
  if constexpr (std::is_floating_point_v<Number>) {
    // Milliseconds are enough; JSON has no NaN or infinity.
    if (!std::isfinite(value)) {
      out += "null";
    } else {
      char buf[64];
      const auto end = std::to_chars(buf, buf + sizeof(buf), static_cast<double>(value),
                                     std::chars_format::fixed, 3);
      out.append(buf, end.ptr);
    }
  } else {
    out += std::to_string(value);
  }
  out.push_back(',');
}

}  // namespace slack_proxy

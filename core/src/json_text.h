// Edits on JSON text that keep every other byte as the caller sent it
// (member order, number spelling, whitespace): re-serializing through a
// parser would not.
#pragma once

#include <optional>
#include <string>
#include <string_view>

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

}  // namespace slack_proxy

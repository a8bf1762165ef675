#include "json_text.h"

#include <cstdio>

#include <vector>

namespace slack_proxy {
namespace {

bool is_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

std::size_t skip_space(std::string_view s, std::size_t i) {
  while (i < s.size() && is_space(s[i])) ++i;
  return i;
}

// s[i] == '"'; returns the index after the closing quote, or npos.
std::size_t skip_string(std::string_view s, std::size_t i) {
  for (++i; i < s.size(); ++i) {
    if (s[i] == '\\') {
      ++i;
    } else if (s[i] == '"') {
      return i + 1;
    }
  }
  return std::string_view::npos;
}

// Returns the index after the value starting at s[i], or npos.
std::size_t skip_value(std::string_view s, std::size_t i) {
  if (i >= s.size()) return std::string_view::npos;
  if (s[i] == '"') return skip_string(s, i);
  if (s[i] == '{' || s[i] == '[') {
    int depth = 0;
    while (i < s.size()) {
      const char c = s[i];
      if (c == '"') {
        i = skip_string(s, i);
        if (i == std::string_view::npos) return i;
        continue;
      }
      if (c == '{' || c == '[') ++depth;
      if (c == '}' || c == ']') {
        if (--depth == 0) return i + 1;
      }
      ++i;
    }
    return std::string_view::npos;
  }
  const std::size_t start = i;
  while (i < s.size() && s[i] != ',' && s[i] != '}' && s[i] != ']' && !is_space(s[i])) ++i;
  return i == start ? std::string_view::npos : i;
}

struct Member {
  std::size_t key_begin;    // the key's opening quote
  std::size_t value_begin;  // the value's first byte
  std::size_t value_end;    // just after the value
  bool matches;
  bool escaped;  // the key has an escape, so it may decode to any name
};

// The top-level members of a JSON object, or nullopt when `json` is not a
// well-formed object at the top level (or is {}).
std::optional<std::vector<Member>> top_level_members(std::string_view json, std::string_view key) {
  std::size_t i = skip_space(json, 0);
  if (i >= json.size() || json[i] != '{') return std::nullopt;
  std::vector<Member> members;
  i = skip_space(json, i + 1);
  if (i < json.size() && json[i] == '}') return std::nullopt;  // {}
  for (;;) {
    if (i >= json.size() || json[i] != '"') return std::nullopt;
    const std::size_t key_begin = i;
    const std::size_t key_end = skip_string(json, i);
    if (key_end == std::string_view::npos) return std::nullopt;
    const std::string_view name = json.substr(key_begin + 1, key_end - key_begin - 2);
    const bool matches = name == key;
    const bool escaped = name.find('\\') != std::string_view::npos;
    i = skip_space(json, key_end);
    if (i >= json.size() || json[i] != ':') return std::nullopt;
    const std::size_t value_begin = skip_space(json, i + 1);
    i = skip_value(json, value_begin);
    if (i == std::string_view::npos) return std::nullopt;
    members.push_back({key_begin, value_begin, i, matches, escaped});
    i = skip_space(json, i);
    if (i < json.size() && json[i] == ',') {
      i = skip_space(json, i + 1);
      continue;
    }
    if (i < json.size() && json[i] == '}') break;
    return std::nullopt;
  }
  return members;
}

}  // namespace

std::optional<std::string> replace_top_level_member(std::string_view json, std::string_view key,
                                                    std::string_view value) {
  const auto members = top_level_members(json, key);
  if (!members) return std::nullopt;
  // "ch\u0061nnel" left as it was would name another value for the key,
  // and a receiver that keeps the last member would use that one.
  for (const auto& m : *members)
    if (m.escaped) return std::nullopt;
  std::string out;
  std::size_t copied = 0;
  for (const auto& m : *members) {
    if (!m.matches) continue;
    out.append(json.substr(copied, m.value_begin - copied));
    out.append(value);
    copied = m.value_end;
  }
  if (copied == 0) return std::nullopt;  // no member of that name
  out.append(json.substr(copied));
  return out;
}

std::optional<std::string> remove_top_level_member(std::string_view json, std::string_view key) {
  const auto found = top_level_members(json, key);
  if (!found) return std::nullopt;
  const std::vector<Member>& members = *found;

  bool any = false;
  for (const auto& m : members) any = any || m.matches;
  if (!any) return std::nullopt;

  // Rebuild from the kept members' own text, joined by their original
  // separators where possible.
  std::string out(json.substr(0, members.front().key_begin));
  bool first = true;
  for (std::size_t k = 0; k < members.size(); ++k) {
    if (members[k].matches) continue;
    if (!first) out += ',';
    // Keep the whitespace that preceded this member after its comma.
    std::size_t begin = members[k].key_begin;
    if (!first && k > 0) {
      std::size_t ws = members[k].key_begin;
      while (ws > 0 && is_space(json[ws - 1])) --ws;
      begin = ws;
    }
    out.append(json.substr(begin, members[k].value_end - begin));
    first = false;
  }
  out.append(json.substr(members.back().value_end));
  return out;
}

bool json_member_name_holds_nul(std::string_view json) {
  std::size_t i = 0;
  while (i < json.size()) {
    if (json[i] != '"') {
      ++i;
      continue;
    }
    bool nul = false;
    for (++i; i < json.size() && json[i] != '"'; ++i) {
      if (json[i] != '\\') continue;
      nul = nul || json.substr(i + 1, 5) == "u0000";
      ++i;  // the escaped character, which may be a quote
    }
    i = skip_space(json, i + 1);  // past the closing quote
    if (nul && i < json.size() && json[i] == ':') return true;
  }
  return false;
}

// Appends `text` as a JSON string literal. Valid UTF-8 is kept as is; a byte
// that does not start a valid sequence becomes U+FFFD, so the reply is
// always valid JSON whatever a stored payload holds.
void append_json_string(std::string& out, std::string_view text) {
  out.push_back('"');
  const auto byte = [&](std::size_t i) { return static_cast<unsigned char>(text[i]); };
  const auto continuation = [&](std::size_t i, unsigned char lo, unsigned char hi) {
    return i < text.size() && byte(i) >= lo && byte(i) <= hi;
  };
  std::size_t i = 0;
  while (i < text.size()) {
    const unsigned char c = byte(i);
    if (c < 0x80) {
      switch (c) {
        case '"': out += "\\\""; break;
        case '\\': out += "\\\\"; break;
        case '\n': out += "\\n"; break;
        case '\r': out += "\\r"; break;
        case '\t': out += "\\t"; break;
        case '\b': out += "\\b"; break;
        case '\f': out += "\\f"; break;
        default:
          if (c < 0x20) {
            char buf[8];
            std::snprintf(buf, sizeof(buf), "\\u%04x", static_cast<unsigned>(c));
            out += buf;
          } else {
            out.push_back(static_cast<char>(c));
          }
      }
      ++i;
      continue;
    }
    // The well-formed sequences of RFC 3629 (no overlongs, no surrogates,
    // nothing above U+10FFFF): the first continuation byte's range depends
    // on the lead byte, the others are 80..BF.
    std::size_t length = 0;
    if (c >= 0xC2 && c <= 0xDF) {
      length = continuation(i + 1, 0x80, 0xBF) ? 2 : 0;
    } else if (c >= 0xE0 && c <= 0xEF) {
      const unsigned char lo = c == 0xE0 ? 0xA0 : 0x80;
      const unsigned char hi = c == 0xED ? 0x9F : 0xBF;
      length = continuation(i + 1, lo, hi) && continuation(i + 2, 0x80, 0xBF) ? 3 : 0;
    } else if (c >= 0xF0 && c <= 0xF4) {
      const unsigned char lo = c == 0xF0 ? 0x90 : 0x80;
      const unsigned char hi = c == 0xF4 ? 0x8F : 0xBF;
      length = continuation(i + 1, lo, hi) && continuation(i + 2, 0x80, 0xBF) &&
                       continuation(i + 3, 0x80, 0xBF)
                   ? 4
                   : 0;
    }
    if (length == 0) {
      out += "\\ufffd";
      ++i;
    } else {
      out.append(text.substr(i, length));
      i += length;
    }
  }
  out.push_back('"');
}

void append_time(std::string& out, std::chrono::system_clock::time_point t) {
  using namespace std::chrono;
  if (t.time_since_epoch().count() == 0) {
    out += "null";
    return;
  }
  const auto ms = floor<milliseconds>(t);
  const auto day = floor<days>(ms);
  const year_month_day date{day};
  const hh_mm_ss time{ms - day};
  char buf[48];
  std::snprintf(buf, sizeof(buf), "\"%04d-%02u-%02uT%02d:%02d:%02d.%03dZ\"",
                static_cast<int>(date.year()), static_cast<unsigned>(date.month()),
                static_cast<unsigned>(date.day()), static_cast<int>(time.hours().count()),
                static_cast<int>(time.minutes().count()),
                static_cast<int>(time.seconds().count()),
                static_cast<int>(time.subseconds().count()));
  out += buf;
}

void append_member(std::string& out, std::string_view key, std::string_view value) {
  append_json_string(out, key);
  out.push_back(':');
  append_json_string(out, value);
  out.push_back(',');
}

void append_time_member(std::string& out, std::string_view key,
                        std::chrono::system_clock::time_point value) {
  append_json_string(out, key);
  out.push_back(':');
  append_time(out, value);
  out.push_back(',');
}

}  // namespace slack_proxy

#include "chat_message.h"

#include <algorithm>
#include <array>
#include <optional>
#include <sstream>
#include <string_view>
#include <utility>
#include <vector>

#include <Poco/JSON/Object.h>
#include <Poco/JSON/ParseHandler.h>
#include <Poco/JSON/Parser.h>
#include <Poco/JSON/Stringifier.h>
#include <Poco/URI.h>

#include "json_text.h"

namespace slack_proxy {
namespace {

using Poco::JSON::Array;
using Poco::JSON::Object;

// Fields Slack documents as JSON-encoded strings in form bodies, and the
// error it gives when one does not parse.
struct JsonField {
  std::string_view name;
  std::string_view error;
};
constexpr std::array<JsonField, 3> kJsonFields = {{
    {"blocks", "invalid_blocks_format"},
    {"attachments", "invalid_attachments"},
    {"metadata", "invalid_metadata"},
}};

// chat.postMessage's boolean arguments, which a form body can only send as text.
constexpr std::array<std::string_view, 6> kBooleanFields = {
    "unfurl_links", "unfurl_media", "mrkdwn", "link_names", "as_user", "reply_broadcast"};

// Poco's parser ends a member name at a NUL; every other receiver does not,
// so the proxy would route and check one field and Slack read another.
constexpr const char* kNulMemberName = "a member name holds a NUL character (\\u0000)";

// Poco's parser has a depth limit of its own (128); ours, checked before
// parsing, must be the one that decides.
std::size_t parser_depth(std::size_t max_json_depth) { return max_json_depth + 1; }

// Keeps the caller's member order when the payload has to be rewritten.
// Only for text whose depth was checked.
Poco::Dynamic::Var parse_ordered(const std::string& text, std::size_t max_json_depth) {
  Poco::JSON::Parser parser(new Poco::JSON::ParseHandler(true));
  parser.setDepth(parser_depth(max_json_depth));
  return parser.parse(text);
}

// Parses as ParseHandler does and counts the top-level members named `key`
// as the parser decoded them, so "ch\u0061nnel" counts as "channel".
class TopLevelKeyCounter final : public Poco::JSON::ParseHandler {
 public:
  explicit TopLevelKeyCounter(std::string key) : key_(std::move(key)) {}
  void reset() override {
    ParseHandler::reset();
    depth_ = 0;
    count_ = 0;
  }
  void startObject() override {
    ++depth_;
    ParseHandler::startObject();
  }
  void endObject() override {
    --depth_;
    ParseHandler::endObject();
  }
  void key(const std::string& k) override {
    if (depth_ == 1 && k == key_) ++count_;
    ParseHandler::key(k);
  }
  std::size_t count() const { return count_; }

 private:
  const std::string key_;
  std::size_t depth_ = 0;
  std::size_t count_ = 0;
};

Object::Ptr as_object(const Poco::Dynamic::Var& v) {
  return v.type() == typeid(Object::Ptr) ? v.extract<Object::Ptr>() : Object::Ptr();
}

Array::Ptr as_array(const Poco::Dynamic::Var& v) {
  return v.type() == typeid(Array::Ptr) ? v.extract<Array::Ptr>() : Array::Ptr();
}

bool non_empty(const Poco::Dynamic::Var& v) {
  if (v.isEmpty()) return false;
  if (v.isString()) return !v.extract<std::string>().empty();
  if (auto a = as_array(v)) return a->size() > 0;
  return false;
}

std::vector<std::pair<std::string, std::string>> parse_form(const std::string& body) {
  std::vector<std::pair<std::string, std::string>> fields;
  std::size_t start = 0;
  while (start <= body.size()) {
    std::size_t end = body.find('&', start);
    if (end == std::string::npos) end = body.size();
    const std::string_view pair(body.data() + start, end - start);
    if (!pair.empty()) {
      const std::size_t eq = pair.find('=');
      // '+' is a space in a form body (a literal plus arrives as %2B). Poco
      // 1.11 ignores its plusAsSpace flag, so do it before decoding.
      auto decode = [](std::string_view encoded) {
        std::string text(encoded), decoded;
        std::replace(text.begin(), text.end(), '+', ' ');
        Poco::URI::decode(text, decoded);
        return decoded;
      };
      std::string key = decode(pair.substr(0, eq));
      std::string value = eq != std::string_view::npos ? decode(pair.substr(eq + 1)) : "";
      if (!key.empty()) fields.emplace_back(std::move(key), std::move(value));  // "=x" says nothing
    }
    start = end + 1;
  }
  return fields;
}

DecodeError bad(std::string error, std::string detail) {
  return {400, std::move(error), std::move(detail)};
}

std::string too_deep(std::string_view what, std::size_t max_json_depth) {
  return std::string(what) + " nests arrays and objects deeper than " +
         std::to_string(max_json_depth) + " levels";
}

// Decoded form fields must be UTF-8 too; a bad name is not repeated (the
// error body is JSON, which must stay UTF-8).
std::optional<DecodeError> check_form_utf8(
    const std::vector<std::pair<std::string, std::string>>& fields) {
  for (const auto& [key, value] : fields) {
    if (invalid_utf8_at(key) != std::string_view::npos)
      return bad("invalid_utf8", "a form field name is not valid UTF-8");
    // Sent on as JSON, "channel%00" would become the member "channel\u0000",
    // which Poco's parser reads as a second "channel" and Slack as another field.
    if (key.find('\0') != std::string::npos)
      return bad("invalid_form_data", "a form field name holds a NUL character");
    if (const auto at = invalid_utf8_at(value); at != std::string_view::npos) {
      return bad("invalid_utf8", "form field '" + key + "' is not valid UTF-8 (decoded byte " +
                                     std::to_string(at) + ")");
    }
  }
  return std::nullopt;
}

}  // namespace

std::size_t utf8_length(std::string_view text) {
  std::size_t n = 0;
  for (unsigned char c : text) n += (c & 0xC0) != 0x80;
  return n;
}

std::size_t invalid_utf8_at(std::string_view text) {
  const auto* bytes = reinterpret_cast<const unsigned char*>(text.data());
  const std::size_t size = text.size();
  auto continuation = [&](std::size_t i) { return i < size && (bytes[i] & 0xC0) == 0x80; };
  std::size_t i = 0;
  while (i < size) {
    const unsigned char c = bytes[i];
    if (c < 0x80) {
      ++i;
      continue;
    }
    // The second byte's range is what rules out overlong forms (E0, F0),
    // surrogates (ED) and code points above U+10FFFF (F4); RFC 3629 table.
    std::size_t length = 0;
    unsigned char low = 0x80, high = 0xBF;
    if (c >= 0xC2 && c <= 0xDF) {
      length = 2;
    } else if (c >= 0xE0 && c <= 0xEF) {
      length = 3;
      if (c == 0xE0) low = 0xA0;
      if (c == 0xED) high = 0x9F;
    } else if (c >= 0xF0 && c <= 0xF4) {
      length = 4;
      if (c == 0xF0) low = 0x90;
      if (c == 0xF4) high = 0x8F;
    } else {
      return i;  // a continuation byte without a lead, C0/C1 (overlong), F5..FF
    }
    if (i + 1 >= size || bytes[i + 1] < low || bytes[i + 1] > high) return i;
    for (std::size_t k = 2; k < length; ++k)
      if (!continuation(i + k)) return i;
    i += length;
  }
  return std::string_view::npos;
}

bool json_nests_deeper_than(std::string_view json, std::size_t max_depth) {
  std::size_t depth = 0;
  bool in_string = false;
  for (std::size_t i = 0; i < json.size(); ++i) {
    const char c = json[i];
    if (in_string) {
      if (c == '\\') {
        ++i;  // whatever is escaped, it neither ends the string nor nests
      } else if (c == '"') {
        in_string = false;
      }
    } else if (c == '"') {
      in_string = true;
    } else if (c == '[' || c == '{') {
      if (++depth > max_depth) return true;
    } else if ((c == ']' || c == '}') && depth > 0) {
      --depth;
    }
  }
  return false;
}

std::variant<ChatMessage, DecodeError> decode_chat_message(std::string body,
                                                           BodyFormat format,
                                                           const DecodeOptions& options) {
  Object::Ptr object;
  bool rewrite = false;  // the payload must be serialized from `object`
  const std::size_t max_depth = options.max_json_depth;

  if (format == BodyFormat::Json) {
    if (const auto at = invalid_utf8_at(body); at != std::string_view::npos)
      return bad("invalid_utf8", "the body is not valid UTF-8 (byte " + std::to_string(at) + ")");
    if (json_nests_deeper_than(body, max_depth))
      return bad("invalid_json", too_deep("the body", max_depth));
    if (json_member_name_holds_nul(body))
      return bad("invalid_json", kNulMemberName);
    // Most bodies go on untouched, so validate with the plain parser; the
    // order-keeping one is used only if the payload must be rewritten.
    Poco::SharedPtr<TopLevelKeyCounter> channels(new TopLevelKeyCounter("channel"));
    try {
      Poco::JSON::Parser parser(channels);
      parser.setDepth(parser_depth(max_depth));
      object = as_object(parser.parse(body));
    } catch (const std::exception&) {
    }
    if (!object) return bad("invalid_json", "the body must be a JSON object");
    // Receivers differ on which of two "channel" members wins (and Slack does
    // not say), so the channel routed and checked here could differ from the
    // one the payload is delivered to.
    if (channels->count() > 1)
      return bad("invalid_json", "the body names 'channel' " + std::to_string(channels->count()) +
                                     " times; send it once");
    bool must_rewrite = object->get("channel").isEmpty() && !options.default_channel.empty();
    for (const auto& field : kJsonFields)
      must_rewrite = must_rewrite || object->get(std::string(field.name)).isString();
    if (must_rewrite) object = as_object(parse_ordered(body, max_depth));
  } else {
    std::vector<std::pair<std::string, std::string>> fields;
    try {
      fields = parse_form(body);
    } catch (const std::exception&) {
      // A stray '%' ("100%"): a client error, not ours, and never a 5xx
      // (Alertmanager and the SDKs would resend it for half an hour).
      return bad("invalid_form_data", "the form body is not valid URL encoding");
    }
    if (auto error = check_form_utf8(fields)) return std::move(*error);
    if (options.webhook_style && fields.size() == 1 && fields[0].first == "payload") {
      if (json_nests_deeper_than(fields[0].second, max_depth))
        return bad("invalid_payload", too_deep("the payload field", max_depth));
      if (json_member_name_holds_nul(fields[0].second))
        return bad("invalid_payload", kNulMemberName);
      try {
        object = as_object(parse_ordered(fields[0].second, max_depth));
      } catch (const std::exception&) {
      }
      if (!object) return bad("invalid_payload", "the payload field must be a JSON object");
    } else {
      object = new Object(Poco::JSON_PRESERVE_KEY_ORDER);
      for (auto& [key, value] : fields) {
        const bool flag =
            std::find(kBooleanFields.begin(), kBooleanFields.end(), key) != kBooleanFields.end();
        if (flag && (value == "true" || value == "1")) {
          object->set(key, true);
        } else if (flag && (value == "false" || value == "0")) {
          object->set(key, false);
        } else {
          object->set(key, std::move(value));
        }
      }
    }
    rewrite = true;
  }

  // Structured fields sent as JSON text (always so in a form body, and some
  // JSON clients do it too) are forwarded as JSON.
  for (const auto& field : kJsonFields) {
    const std::string name(field.name);
    const auto& value = object->get(name);
    if (!value.isString()) continue;
    const std::string text = value.extract<std::string>();
    if (json_nests_deeper_than(text, max_depth))
      return bad(std::string(field.error), too_deep("'" + name + "'", max_depth));
    Poco::Dynamic::Var parsed;
    try {
      parsed = parse_ordered(text, max_depth);
    } catch (const std::exception&) {
      return bad(std::string(field.error), "'" + name + "' is not valid JSON");
    }
    object->set(name, parsed);
    rewrite = true;
  }

  ChatMessage out;
  if (object->has("token")) {
    const auto& token = object->get("token");
    if (token.isString()) out.caller_token = token.extract<std::string>();
  }

  if (const auto& channel = object->get("channel"); channel.isString())
    out.channel = channel.extract<std::string>();
  if (const auto& id = object->get("client_msg_id"); id.isString())
    out.client_msg_id = id.extract<std::string>();
  if (out.channel.empty() && !options.default_channel.empty()) {
    out.channel = options.default_channel;
    object->set("channel", out.channel);
    rewrite = true;
  }
  if (out.channel.empty()) return bad("channel_not_specified", "the 'channel' field is required");

  const auto& text = object->get("text");
  const auto& blocks = object->get("blocks");
  const auto& attachments = object->get("attachments");
  // Shape first, so that a malformed `blocks` is reported as such.
  if (!blocks.isEmpty() && !as_array(blocks))
    return bad("invalid_blocks_format", "'blocks' must be an array of blocks");
  if (!attachments.isEmpty() && !as_array(attachments))
    return bad("invalid_attachments", "'attachments' must be an array");
  if (!non_empty(text) && !non_empty(blocks) && !non_empty(attachments))
    return bad("no_text", "one of 'text', 'blocks' or 'attachments' is required");
  if (text.isString()) {
    const std::string& t = text.extract<std::string>();
    if (t.size() > kMaxTextCharacters && utf8_length(t) > kMaxTextCharacters) {
      return bad("msg_too_long", "text is " + std::to_string(utf8_length(t)) +
                                     " characters; Slack's limit is " +
                                     std::to_string(kMaxTextCharacters));
    }
  }
  if (auto list = as_array(blocks)) {
    if (list->size() > kMaxBlocks) {
      return bad("invalid_blocks", std::to_string(list->size()) +
                                       " blocks; Slack allows at most " + std::to_string(kMaxBlocks));
    }
  }
  if (auto list = as_array(attachments)) {
    if (list->size() > kMaxAttachments) {
      return bad("too_many_attachments", std::to_string(list->size()) +
                                             " attachments; Slack allows at most " +
                                             std::to_string(kMaxAttachments));
    }
  }

  if (!rewrite && object->has("token")) {
    // Cut it out of the text so every other byte goes on as sent.
    auto cut = remove_top_level_member(body, "token");
    Object::Ptr check;
    if (cut) {
      try {
        check = as_object(parse_ordered(*cut, max_depth));
      } catch (const std::exception&) {
      }
    }
    if (check && !check->has("token")) {
      out.payload = std::move(*cut);
      return out;
    }
    // An escaped key ("tok\u0065n") is not cut: re-serialize instead, in
    // the caller's member order.
    object = as_object(parse_ordered(body, max_depth));
    rewrite = true;
  }
  if (rewrite) {
    // A credential is not message content: it is neither stored nor sent on.
    object->remove("token");
    std::ostringstream serialized;
    Poco::JSON::Stringifier::condense(object, serialized);
    out.payload = serialized.str();
  } else {
    out.payload = std::move(body);
  }
  return out;
}

}  // namespace slack_proxy

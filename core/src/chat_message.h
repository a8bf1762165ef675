// What a caller sent, turned into the chat.postMessage JSON that will be
// queued and forwarded, with Slack's own rules applied up front so that
// nothing is queued that Slack would refuse for its shape or size.
//
// Pure functions of the body: no HTTP, no queue. The ingress calls them;
// tests (and fuzzers) can too.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <variant>

namespace slack_proxy {

enum class BodyFormat { Json, Form };

// Slack's documented limits (chat.postMessage).
inline constexpr std::size_t kMaxTextCharacters = 40'000;
inline constexpr std::size_t kMaxBlocks = 50;
inline constexpr std::size_t kMaxAttachments = 100;

struct ChatMessage {
  std::string payload;       // JSON object to forward; never contains `token`
  std::string channel;       // where it goes (the body's, or the default)
  std::string caller_token;  // SECRET: a `token` field the body carried, if any
  std::string client_msg_id;  // Slack's client_msg_id, if any: a dedup key
};

struct DecodeError {
  int status;          // HTTP status to answer
  std::string error;   // Slack's code: no_text, msg_too_long, invalid_blocks_format, ...
  std::string detail;  // one human sentence, no secrets
};

struct DecodeOptions {
  // A form body that is a single `payload` field holds the JSON (legacy
  // incoming webhooks).
  bool webhook_style = false;
  // Used, and written into the payload, when the body names no channel.
  std::string default_channel;
  // Deepest nesting of arrays and objects accepted in JSON (the body, a
  // webhook `payload` field, blocks/attachments/metadata sent as JSON text).
  // Checked by a scan before any parser sees the text: a recursive parser
  // (and the destructor of what it built) would overflow the stack first.
  std::size_t max_json_depth = 64;
};

// Every body must be UTF-8 (JSON requires it; Slack stores text as UTF-8):
// a JSON body, or any decoded form field, that is not is refused with
// 400 invalid_utf8 before it is parsed.
//
// A JSON body whose top level names "channel" more than once, however the
// keys are spelled ("ch\u0061nnel"), is 400 invalid_json: receivers differ
// on which one wins, so the channel checked here could differ from the one
// delivered to.
//
// JSON: every byte is kept unless something must change (a token field is
// cut out; blocks/attachments/metadata sent as JSON strings become JSON; a
// default channel is added). Form (the official SDKs' encoding): every
// field becomes a JSON string, except blocks/attachments/metadata (JSON
// inside the field) and Slack's boolean flags (unfurl_links, mrkdwn, ...).
std::variant<ChatMessage, DecodeError> decode_chat_message(std::string body,
                                                           BodyFormat format,
                                                           const DecodeOptions& options);

// Number of Unicode code points in UTF-8 text (invalid bytes count as one).
std::size_t utf8_length(std::string_view text);

// Offset of the first byte that is not part of well-formed UTF-8 (RFC 3629:
// no overlong forms, no surrogates, nothing above U+10FFFF, no truncated
// sequence), or npos when all of `text` is.
std::size_t invalid_utf8_at(std::string_view text);

// True when arrays and objects in JSON text nest deeper than `max_depth`
// ("[]" is depth 1). Brackets inside strings do not count. Linear, no
// allocation, and meaningful for malformed text too: it only bounds depth.
bool json_nests_deeper_than(std::string_view json, std::size_t max_depth);

}  // namespace slack_proxy

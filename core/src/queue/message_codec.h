// The stored form of a message, shared by the durable backends.
//
// A versioned, length-prefixed binary record of every Message field except
// `delivery_token` (a secret, stored sealed and separately, if at all) and
// `enqueued_at` (a steady-clock time that means nothing after a restart;
// recovery derives it from `received_at`).
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include <slack_proxy/sdk/message.h>

namespace slack_proxy {

std::string encode_message(const sdk::Message& message);
// nullopt for a record that is truncated, of an unknown version, or
// otherwise malformed. Never throws.
std::optional<sdk::Message> decode_message(std::string_view record);

std::int64_t to_unix_ms(sdk::WallTime t);
sdk::WallTime from_unix_ms(std::int64_t ms);

}  // namespace slack_proxy

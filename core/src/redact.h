// Keeping secrets out of logs, errors and stored records.
#pragma once

#include <string>
#include <string_view>

namespace slack_proxy {

// Replaces anything shaped like a Slack token (xoxb-, xoxp-, xoxa-, xoxr-,
// xoxs-, xapp-) and any "Bearer <credential>" with a marker. Defence in
// depth: code should not pass secrets to a logger in the first place.
std::string redact_secrets(std::string_view text);

// True when redact_secrets(text) would change it; allocates nothing, so a
// caller can keep the common case (no secret) free.
bool holds_secret(std::string_view text) noexcept;

}  // namespace slack_proxy

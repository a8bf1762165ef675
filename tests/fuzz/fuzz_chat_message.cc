// libFuzzer target: decode_chat_message on arbitrary request bodies.
//
// Input: one byte of options, then the body.
//   bit 0  form-encoded (application/x-www-form-urlencoded), else JSON
//   bit 1  webhook-style pipeline (a form body may be one `payload` field)
//   bit 2  the pipeline has a default channel
//
// Besides "no crash, no leak, no undefined behaviour" it checks what
// chat_message.h promises: an accepted message is a JSON object with a
// channel and without a top-level `token`; a refusal is a 4xx with a code.
#include <cstddef>
#include <cstdint>
#include <string>
#include <variant>

#include <Poco/JSON/Object.h>
#include <Poco/JSON/Parser.h>

#include "chat_message.h"
#include "fuzz_check.h"
#include "json_text.h"

namespace {

using slack_proxy::BodyFormat;
using slack_proxy::ChatMessage;
using slack_proxy::DecodeError;
using slack_proxy::DecodeOptions;

void check_accepted(const ChatMessage& message) {
  FUZZ_CHECK(!message.channel.empty(), "an accepted message names a channel");
  Poco::JSON::Object::Ptr object;
  try {
    Poco::JSON::Parser parser;
    const Poco::Dynamic::Var parsed = parser.parse(message.payload);
    if (parsed.type() == typeid(Poco::JSON::Object::Ptr))
      object = parsed.extract<Poco::JSON::Object::Ptr>();
  } catch (const std::exception&) {
  }
  FUZZ_CHECK(object, "the payload to forward is a JSON object");
  // Poco 1.11 cuts a member name at an escaped NUL (Slack does not), so
  // such a name would make this parser's view, and the proxy's, not Slack's.
  FUZZ_CHECK(!slack_proxy::json_member_name_holds_nul(message.payload),
             "no member name holds a NUL");
  FUZZ_CHECK(!object->has("token"), "the payload never carries a token field");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  const std::uint8_t flags = data[0];
  DecodeOptions options;
  options.webhook_style = (flags & 0x02) != 0;
  if ((flags & 0x04) != 0) options.default_channel = "#fuzz-default";
  const BodyFormat format = (flags & 0x01) != 0 ? BodyFormat::Form : BodyFormat::Json;

  std::string body(reinterpret_cast<const char*>(data) + 1, size - 1);
  const auto decoded = slack_proxy::decode_chat_message(std::move(body), format, options);
  if (const auto* error = std::get_if<DecodeError>(&decoded)) {
    FUZZ_CHECK(error->status >= 400 && error->status < 500, "a refused body is a 4xx");
    FUZZ_CHECK(!error->error.empty(), "a refusal has a Slack error code");
  } else {
    check_accepted(std::get<ChatMessage>(decoded));
  }
  return 0;
}

#include "slack_sink.h"

#include <cstdlib>
#include <sstream>
#include <stdexcept>
#include <string_view>
#include <utility>

#include <Poco/Exception.h>
#include <Poco/JSON/Object.h>
#include <Poco/JSON/ParseHandler.h>
#include <Poco/JSON/Parser.h>

namespace slack_proxy::plugins::slack_sink {

namespace {

Poco::JSON::Object::Ptr parse_object(const std::string& text) {
  // Keeps the caller's field order when a payload is re-serialized.
  Poco::JSON::Parser parser(new Poco::JSON::ParseHandler(true));
  return parser.parse(text).extract<Poco::JSON::Object::Ptr>();
}

}  // namespace

Settings parse_settings(const sdk::ConfigView& config) {
  Settings s;
  static_cast<HttpSettings&>(s) = parse_http_settings(config);
  s.endpoint = parse_endpoint(config.get_string("url"));
  s.token_env = config.get_string("token_env");
  check_variable_name("token_env", s.token_env);
  return s;
}

std::string read_token(const std::string& name) {
  const char* value = std::getenv(name.c_str());
  if (value == nullptr || *value == '\0') {
    throw std::runtime_error(
        "environment variable " + name +
        " is not set: export your Slack bot token (xoxb-...) or set token_env");
  }
  // A stray newline or space would corrupt the Authorization header.
  if (has_control_or_space(value)) {
    throw std::runtime_error(
        "environment variable " + name +
        " contains whitespace or control characters: it must hold only the token");
  }
  return value;
}

SlackSink::SlackSink(sdk::HostServices& host, Settings settings, std::string token)
    : poster_(host, std::move(settings)), token_(std::move(token)) {}

SlackSink::~SlackSink() = default;

sdk::SendResult SlackSink::send(const sdk::Message& message) noexcept {
  return sdk::guarded(
      [&] {
        std::string rewritten;
        const std::string* body = &message.payload;
        // Ingress took original_channel from this very payload: unless a
        // router changed the channel there is nothing to rewrite, or parse.
        const bool maybe_rerouted =
            message.original_channel.empty() || message.channel != message.original_channel;
        if (!maybe_rerouted && !looks_like_object(message.payload)) {
          return sdk::SendResult::failed(0, "invalid_payload",
                                         "message " + message.id + " is not a JSON object");
        }
        if (maybe_rerouted) {
          try {
            auto payload = parse_object(message.payload);
            const bool rerouted = !message.channel.empty() &&
                                  (!payload->has("channel") ||
                                   payload->getValue<std::string>("channel") != message.channel);
            if (rerouted) {
              payload->set("channel", message.channel);
              std::ostringstream out;
              payload->stringify(out);
              rewritten = out.str();
              body = &rewritten;
            }
          } catch (const Poco::Exception&) {
            return sdk::SendResult::failed(0, "invalid_payload",
                                           "message " + message.id + " is not a JSON object");
          }
        }
        // A pipeline with delivery_token = "caller" hands us the caller's own.
        return poster_.post(*body,
                            message.delivery_token.empty() ? token_ : message.delivery_token);
      },
      [&](std::string_view what) {
        return sdk::SendResult::failed(
            0, "internal_error_in_sink",
            poster_.redacted("slack_sink failed: " + std::string(what), token_));
      });
}

}  // namespace slack_proxy::plugins::slack_sink

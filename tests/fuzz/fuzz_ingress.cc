// libFuzzer target: one HTTP request (method, path, headers, body) through
// Ingress::admit, the whole admission chain over a body already read, into
// a MemoryQueue, without a socket: many inputs a second for the rules. What
// reads a request off a socket is fuzz_transport's.
//
// Input: one byte of options, then the request as text:
//
//   POST /api/chat.postMessage          method and path
//   Content-Type: application/json      up to 16 headers, "Name: value"
//   Content-Length: 41
//   Authorization: Bearer fuzz-key
//   Idempotency-Key: k1
//                                       an empty line, then the body
//   {"channel":"#a","text":"disk full"}
//
// Options: bit 0 webhook-style pipeline, 1 delivery with the caller's token,
// 2 a default channel, 3 an authenticator (key "fuzz-key"), 4 a queue that
// holds one message, 5 send the request twice (dedup, queue full), 6 draining,
// 7 a router that moves every message to another channel.
//
// Besides "no crash, no leak, no undefined behaviour" it checks that hostile
// input never earns a 500 (an exception escaped the request's own rules),
// that no reply repeats the caller's bearer key, and that every queued
// payload, admitted again, names the message's channel: the channel routers
// and guards saw is the one a receiver of the payload would use.
#include <cctype>
#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include <Poco/JSON/Object.h>
#include <Poco/JSON/Parser.h>
#include <Poco/String.h>
#include <prometheus/registry.h>
#include <spdlog/logger.h>
#include <spdlog/sinks/null_sink.h>

#include <slack_proxy/sdk/testing/fakes.h>

#include "chat_message.h"
#include "fuzz_check.h"
#include "fuzz_key_auth.h"
#include "ingress.h"
#include "metrics.h"
#include "pipeline.h"
#include "queue/memory_queue.h"

namespace {

using namespace slack_proxy;

constexpr std::size_t kMaxHeaders = 16;

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r')) s.remove_suffix(1);
  return s;
}

class FuzzRequest final : public sdk::RequestView {
 public:
  std::string verb = "POST";
  std::string uri = "/";
  std::map<std::string, std::string> headers;  // lower-cased names; first one wins

  std::string_view method() const noexcept override { return verb; }
  std::string_view path() const noexcept override { return uri; }
  std::optional<std::string> header(std::string_view name) const noexcept override {
    const auto it = headers.find(Poco::toLower(std::string(name)));
    if (it == headers.end()) return std::nullopt;
    return it->second;
  }
  std::string remote_address() const noexcept override { return "192.0.2.1:40000"; }
};

// The request head up to the first empty line; the rest is the body.
FuzzRequest parse_head(std::string_view text, std::string_view& body) {
  FuzzRequest request;
  body = {};
  bool first = true;
  while (!text.empty()) {
    const std::size_t end = text.find('\n');
    const std::string_view line = trim(text.substr(0, end));
    text = end == std::string_view::npos ? std::string_view() : text.substr(end + 1);
    if (line.empty() && !first) {
      body = text;
      break;
    }
    if (first) {
      first = false;
      const std::size_t space = line.find(' ');
      if (space != std::string_view::npos) {
        request.verb = std::string(line.substr(0, space));
        request.uri = std::string(trim(line.substr(space + 1)));
      }
      continue;
    }
    const std::size_t colon = line.find(':');
    if (colon == std::string_view::npos || request.headers.size() >= kMaxHeaders) continue;
    request.headers.emplace(Poco::toLower(std::string(trim(line.substr(0, colon)))),
                            std::string(trim(line.substr(colon + 1))));
  }
  return request;
}

// Moves every message to one channel, as a channel_override router does.
class MoveRouter final : public sdk::Router {
 public:
  sdk::RouteResult route(sdk::Message& message) override {
    message.channel = "#fuzz-routed";
    return sdk::RouteResult::ok();
  }
};

// Everything the ingress answered to `request` (once, or twice with option
// bit 5), and what it queued (into `queued` when given), from fresh state: a shared registry would grow a series per fuzzed
// channel name, and a shared queue would make inputs depend on each other.
std::vector<HttpReply> serve(std::uint8_t flags, const FuzzRequest& request,
                             std::string_view body, std::vector<sdk::Message>* queued = nullptr) {
  auto pipeline = std::make_shared<Pipeline>();
  pipeline->name = "fuzz";
  pipeline->paths = {"/", "/api/chat.postMessage", "/services/*"};
  pipeline->webhook_style = (flags & 0x01) != 0;
  pipeline->caller_token = (flags & 0x02) != 0;
  if ((flags & 0x04) != 0) pipeline->default_channel = "#fuzz-default";
  if ((flags & 0x08) != 0) pipeline->authenticator = std::make_shared<fuzz::KeyAuthenticator>();
  if ((flags & 0x80) != 0) pipeline->routers.push_back(std::make_shared<MoveRouter>());

  sdk::testing::FakeClock clock;
  QueueLimits limits;
  limits.max_messages = (flags & 0x10) != 0 ? 1 : 100;
  MemoryQueue queue(limits, clock);
  prometheus::Registry registry;
  CoreMetrics metrics(registry);
  auto log = std::make_shared<spdlog::logger>("fuzz", std::make_shared<spdlog::sinks::null_sink_mt>());
  log->set_level(spdlog::level::trace);  // format every line, as a verbose proxy would
  IngressOptions options;
  options.max_body_bytes = 8192;  // below -max_len, so 413 is reachable
  Ingress ingress(queue, {pipeline}, metrics, clock, log, options);
  ingress.set_draining((flags & 0x40) != 0);

  std::vector<HttpReply> replies;
  const int sends = (flags & 0x20) != 0 ? 2 : 1;
  for (int i = 0; i < sends; ++i) replies.push_back(ingress.admit(request, std::string(body)));
  if (queued != nullptr) {
    queued->clear();
    for (auto& q : queue.take(sends)) queued->push_back(std::move(q.message));
  }
  return replies;
}

bool any_contains(const std::vector<HttpReply>& replies, const std::string& text) {
  for (const auto& reply : replies)
    if (reply.body.find(text) != std::string::npos) return true;
  return false;
}

// The caller's bearer key is a secret: no reply may repeat it. A key can
// also be a piece of a fixed message ("on/json"), so a key found in a reply
// is replaced by filler of the same length that occurs nowhere in the
// input: only a reply that repeats the filler repeats the key.
void check_no_key_in_replies(std::uint8_t flags, const FuzzRequest& request, std::string_view body,
                             const std::vector<HttpReply>& replies) {
  const auto auth = request.header("Authorization");
  if (!auth || auth->size() < 7) return;
  const std::string key(trim(std::string_view(*auth).substr(7)));
  if (key.size() < 6 || !any_contains(replies, key)) return;

  char unused = 0;
  for (char c = 'A'; c <= 'Z' && unused == 0; ++c) {
    const auto seen = [&](std::string_view s) { return s.find(c) != std::string_view::npos; };
    bool in_request = seen(body) || seen(request.verb) || seen(request.uri);
    for (const auto& [name, value] : request.headers) in_request = in_request || seen(name) || seen(value);
    if (!in_request) unused = c;
  }
  if (unused == 0) return;
  const std::string filler(key.size(), unused);
  FuzzRequest other = request;
  std::string& value = other.headers["authorization"];
  value.replace(value.find(key, 7), key.size(), filler);
  FUZZ_CHECK(!any_contains(serve(flags, other, body), filler),
             "a reply never repeats the bearer key");
}

// A queued payload goes to whatever channel its receiver reads from it, so
// the channel it names must be the message's: decoded again as JSON (the way
// the sink sends it), its top-level "channel", spelled however and given
// however often (the parser keeps the last), is the message's channel. A
// payload that is not JSON at all is another fault than this check's (and
// would need its own); so is one whose other fields a second admission would
// judge differently (a form's blocks string, say).
void check_payload_names_the_channel(const std::vector<sdk::Message>& queued) {
  for (const auto& message : queued) {
    FUZZ_CHECK(message.content_type == "application/json", "a queued payload is JSON");
    Poco::JSON::Object::Ptr object;
    try {
      object = Poco::JSON::Parser().parse(message.payload).extract<Poco::JSON::Object::Ptr>();
    } catch (const std::exception&) {
      continue;
    }
    if (object.isNull() || !object->has("channel")) continue;
    const Poco::Dynamic::Var channel = object->get("channel");
    FUZZ_CHECK(channel.isString() && channel.toString() == message.channel,
               "the payload names the message's channel");
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  const std::uint8_t flags = data[0];
  std::string_view body;
  const FuzzRequest request =
      parse_head(std::string_view(reinterpret_cast<const char*>(data) + 1, size - 1), body);

  std::vector<sdk::Message> queued;
  const std::vector<HttpReply> replies = serve(flags, request, body, &queued);
  for (const auto& reply : replies) {
    FUZZ_CHECK(reply.status >= 200 && reply.status < 600, "the status is an HTTP status");
    FUZZ_CHECK(reply.status != 500, "client input never earns a 500 internal_error");
    FUZZ_CHECK(!reply.body.empty(), "every reply has a body");
  }
  check_no_key_in_replies(flags, request, body, replies);
  check_payload_names_the_channel(queued);
  return 0;
}

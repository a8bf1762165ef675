#include "ingress.h"

#include <algorithm>
#include <cctype>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>
#include <future>

#include <Poco/JSON/Object.h>
#include <Poco/JSON/Parser.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <slack_proxy/sdk/testing/fakes.h>
#include <slack_proxy/sdk/testing/mocks.h>

#include <spdlog/sinks/ostream_sink.h>

#include "metric_values.h"
#include "queue/memory_queue.h"
#include "queue_test_support.h"

namespace slack_proxy {
namespace {

using ::testing::_;
using ::testing::Invoke;
using ::testing::NiceMock;
using ::testing::Return;
using test_support::metric_value;

std::string lower(std::string_view s) {
  std::string out(s);
  std::transform(out.begin(), out.end(), out.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return out;
}

class FakeRequest final : public sdk::RequestView {
 public:
  FakeRequest(std::string method, std::string path) : method_(std::move(method)), path_(std::move(path)) {}
  FakeRequest& with_header(const std::string& name, std::string value) {
    headers_[lower(name)] = std::move(value);
    return *this;
  }
  std::string_view method() const noexcept override { return method_; }
  std::string_view path() const noexcept override { return path_; }
  std::optional<std::string> header(std::string_view name) const noexcept override {
    auto it = headers_.find(lower(name));
    if (it == headers_.end()) return std::nullopt;
    return it->second;
  }
  std::string remote_address() const noexcept override { return "127.0.0.1:40000"; }

 private:
  std::string method_;
  std::string path_;
  std::map<std::string, std::string> headers_;
};

Poco::JSON::Object::Ptr parse_object(const std::string& text) {
  Poco::JSON::Parser parser;
  return parser.parse(text).extract<Poco::JSON::Object::Ptr>();
}

std::optional<std::string> header_of(const HttpReply& reply, const std::string& name) {
  for (const auto& [k, v] : reply.headers)
    if (lower(k) == lower(name)) return v;
  return std::nullopt;
}

constexpr const char* kJson = "application/json";

class IngressTest : public ::testing::Test {
 protected:
  IngressTest() {
    pipeline->name = "default";
    pipeline->paths = {"/", "/api/chat.postMessage"};
    pipeline->sink = std::make_shared<NiceMock<sdk::testing::MockSink>>();
  }

  // Builds the ingress over these pipelines instead of the default one.
  void ingress_with(std::vector<std::shared_ptr<Pipeline>> pipelines) {
    ingress_ = std::make_unique<Ingress>(*queue, std::move(pipelines), metrics, clock, log, options);
  }

  Ingress& ingress() {
    if (!ingress_)
      ingress_ = std::make_unique<Ingress>(*queue, std::vector<std::shared_ptr<Pipeline>>{pipeline},
                                           metrics, clock, log, options);
    return *ingress_;
  }

  // `content_length` becomes the Content-Length header; without it the
  // body comes as a chunked one would (the transport has read it whole).
  HttpReply send(FakeRequest request, const std::string& body,
                 std::optional<std::uint64_t> content_length) {
    if (content_length) request.with_header("Content-Length", std::to_string(*content_length));
    return ingress().admit(request, body);
  }

  // A POST with Content-Length, as most clients send it.
  HttpReply post(const std::string& body, std::optional<std::string> content_type = kJson,
                 const std::string& path = "/") {
    FakeRequest request("POST", path);
    if (content_type) request.with_header("Content-Type", *content_type);
    return send(request, body, body.size());
  }

  // Checks the Slack-style error body and returns its error code.
  static std::string error_of(const HttpReply& reply) {
    Poco::JSON::Object::Ptr object;
    try {
      object = parse_object(reply.body);
    } catch (const std::exception&) {
      ADD_FAILURE() << "error body is not a JSON object: " << reply.body;
      return {};
    }
    EXPECT_TRUE(object->has("ok"));
    EXPECT_FALSE(object->optValue("ok", true)) << reply.body;
    return object->optValue<std::string>("error", "");
  }

  double rejected(const std::string& error) {
    return metric_value(registry, "slackproxy_requests_rejected_total", {{"error", error}});
  }

  // The messages take() announces: what the ingress stored, in order.
  std::vector<sdk::Message> queued() {
    std::vector<sdk::Message> out;
    for (auto& q : queue->take(100)) out.push_back(std::move(q.message));
    return out;
  }

  sdk::testing::FakeClock clock;
  std::unique_ptr<MemoryQueue> queue = std::make_unique<MemoryQueue>(10);
  prometheus::Registry registry;
  CoreMetrics metrics{registry};
  IngressOptions options;
  std::shared_ptr<spdlog::logger> log = test_support::null_logger();
  std::shared_ptr<Pipeline> pipeline = std::make_shared<Pipeline>();

  std::unique_ptr<Ingress> ingress_;
};

TEST_F(IngressTest, AcceptedMessageIsQueuedWithAllFields) {
  const std::string body = R"({"channel":"#general","text":"deploy done"})";

  const HttpReply reply = post(body);

  EXPECT_EQ(reply.status, 200);
  EXPECT_TRUE(parse_object(reply.body)->getValue<bool>("ok"));
  const auto messages = queued();
  ASSERT_EQ(messages.size(), 1u);
  const sdk::Message& m = messages[0];
  EXPECT_FALSE(m.id.empty());
  EXPECT_EQ(m.pipeline, "default");
  EXPECT_EQ(m.channel, "#general");
  EXPECT_EQ(m.original_channel, "#general");
  EXPECT_EQ(m.payload, body);
  EXPECT_EQ(m.content_type, "application/json");
  EXPECT_EQ(m.received_at, clock.wall_now());
  EXPECT_EQ(m.enqueued_at, clock.now());
  EXPECT_EQ(m.attempts, 0u);
  EXPECT_EQ(metric_value(registry, "slackproxy_requests_received_total", {{"channel", "#general"}}),
            1);
}

// A reload's new pipelines serve the next request: a path they add is
// served, a path they drop is 404, and messages name the new pipeline.
TEST_F(IngressTest, AfterSetPipelinesRequestsAreServedByTheNewPipelines) {
  ASSERT_EQ(post(R"({"channel":"#a","text":"before"})").status, 200);
  auto next = std::make_shared<Pipeline>();
  next->name = "next";
  next->paths = {"/next"};
  next->sink = pipeline->sink;
  ingress().set_pipelines({next});
  EXPECT_EQ(post(R"({"channel":"#a","text":"gone"})").status, 404);
  ASSERT_EQ(post(R"({"channel":"#a","text":"after"})", kJson, "/next").status, 200);
  const auto messages = queued();
  ASSERT_EQ(messages.size(), 2u);
  EXPECT_EQ(messages[0].pipeline, "default");
  EXPECT_EQ(messages[1].pipeline, "next");
}

TEST_F(IngressTest, EachAcceptedMessageGetsItsOwnId) {
  post(R"({"channel":"#a","text":"1"})");
  post(R"({"channel":"#a","text":"2"})");

  const auto messages = queued();
  ASSERT_EQ(messages.size(), 2u);
  EXPECT_NE(messages[0].id, messages[1].id);
}

TEST_F(IngressTest, UnknownFieldsAreKept) {
  const std::string body =
      R"({"channel":"#a","text":"hi","unfurl_links":false,"thread_ts":"1700000000.000100",)"
      R"("blocks":[{"type":"section","text":{"type":"mrkdwn","text":"*hi*"}}]})";

  ASSERT_EQ(post(body).status, 200);

  const auto messages = queued();
  ASSERT_EQ(messages.size(), 1u);
  EXPECT_EQ(messages[0].payload, body);
  auto payload = parse_object(messages[0].payload);
  EXPECT_FALSE(payload->getValue<bool>("unfurl_links"));
  EXPECT_EQ(payload->getValue<std::string>("thread_ts"), "1700000000.000100");
  EXPECT_EQ(payload->getArray("blocks")->size(), 1u);
}

TEST_F(IngressTest, TokenFieldIsRemovedFromThePayload) {
  ASSERT_EQ(post(R"({"channel":"#a","text":"hi","token":"xoxb-1-2-secret","unfurl_links":false})")
                .status,
            200);

  const auto messages = queued();
  ASSERT_EQ(messages.size(), 1u);
  EXPECT_THAT(messages[0].payload, ::testing::Not(::testing::HasSubstr("xoxb")));
  auto payload = parse_object(messages[0].payload);
  EXPECT_FALSE(payload->has("token"));
  EXPECT_EQ(payload->getValue<std::string>("channel"), "#a");
  EXPECT_EQ(payload->getValue<std::string>("text"), "hi");
  EXPECT_FALSE(payload->getValue<bool>("unfurl_links"));
}

TEST_F(IngressTest, BodyThatIsNotAJsonObjectIsInvalidJson) {
  for (const char* body : {"this is not json", R"([{"channel":"#a","text":"hi"}])", ""}) {
    SCOPED_TRACE(body);
    const HttpReply reply = post(body);
    EXPECT_EQ(reply.status, 400);
    EXPECT_EQ(error_of(reply), "invalid_json");
  }
  EXPECT_TRUE(queued().empty());
}

TEST_F(IngressTest, MissingEmptyOrNonStringChannelIsChannelNotSpecified) {
  for (const char* body : {R"({"text":"hi"})", R"({"channel":"","text":"hi"})",
                           R"({"channel":42,"text":"hi"})"}) {
    SCOPED_TRACE(body);
    const HttpReply reply = post(body);
    EXPECT_EQ(reply.status, 400);
    EXPECT_EQ(error_of(reply), "channel_not_specified");
  }
  EXPECT_TRUE(queued().empty());
}

TEST_F(IngressTest, NoTextBlocksOrAttachmentsIsNoText) {
  for (const char* body : {R"({"channel":"#a"})", R"({"channel":"#a","text":""})",
                           R"({"channel":"#a","text":"","blocks":[]})"}) {
    SCOPED_TRACE(body);
    const HttpReply reply = post(body);
    EXPECT_EQ(reply.status, 400);
    EXPECT_EQ(error_of(reply), "no_text");
  }
  EXPECT_TRUE(queued().empty());
}

TEST_F(IngressTest, BlocksOrAttachmentsAloneAreEnough) {
  EXPECT_EQ(post(R"({"channel":"#a","blocks":[{"type":"divider"}]})").status, 200);
  EXPECT_EQ(post(R"({"channel":"#a","attachments":[{"text":"x"}]})").status, 200);
  EXPECT_EQ(queued().size(), 2u);
}

TEST_F(IngressTest, NonPostIsMethodNotAllowedWithAllowHeader) {
  const HttpReply reply = send(FakeRequest("GET", "/"), "", std::nullopt);

  EXPECT_EQ(reply.status, 405);
  EXPECT_EQ(header_of(reply, "Allow"), "POST");
  EXPECT_EQ(error_of(reply), "method_not_allowed");
}

TEST_F(IngressTest, UnknownPathIsNotFound) {
  const HttpReply reply = post(R"({"channel":"#a","text":"hi"})", kJson, "/nowhere");

  EXPECT_EQ(reply.status, 404);
  EXPECT_EQ(error_of(reply), "not_found");
  EXPECT_TRUE(queued().empty());
}

TEST_F(IngressTest, EveryPathOfThePipelineIsServed) {
  EXPECT_EQ(post(R"({"channel":"#a","text":"hi"})", kJson, "/api/chat.postMessage").status, 200);
  EXPECT_EQ(queued().size(), 1u);
}

TEST_F(IngressTest, MultipartAndOtherMediaTypesAreUnsupported) {
  for (const char* type : {"multipart/form-data; boundary=x", "text/plain"}) {
    SCOPED_TRACE(type);
    const HttpReply reply = post("channel=%23a&text=hi", type);
    EXPECT_EQ(reply.status, 415);
    EXPECT_EQ(error_of(reply), "unsupported_media_type");
  }
  EXPECT_TRUE(queued().empty());
}

TEST_F(IngressTest, JsonWithCharsetParameterIsAccepted) {
  EXPECT_EQ(post(R"({"channel":"#a","text":"hi"})", "Application/JSON; charset=utf-8").status, 200);
  EXPECT_EQ(queued().size(), 1u);
}

TEST_F(IngressTest, MissingContentTypeIsTreatedAsJson) {
  EXPECT_EQ(post(R"({"channel":"#a","text":"hi"})", std::nullopt).status, 200);
  EXPECT_EQ(queued().size(), 1u);
}

TEST_F(IngressTest, DeclaredContentLengthOverTheLimitIsTooLarge) {
  options.max_body_bytes = 64;
  const std::string body = R"({"channel":"#a","text":")" + std::string(100, 'x') + R"("})";

  const HttpReply reply = post(body);

  EXPECT_EQ(reply.status, 413);
  EXPECT_EQ(error_of(reply), "request_too_large");
  EXPECT_TRUE(queued().empty());
}

TEST_F(IngressTest, OversizeBodyWithoutContentLengthIsTooLarge) {
  options.max_body_bytes = 64;
  const std::string body = R"({"channel":"#a","text":")" + std::string(100, 'x') + R"("})";

  const HttpReply reply = send(FakeRequest("POST", "/").with_header("Content-Type", kJson), body,
                               std::nullopt);

  EXPECT_EQ(reply.status, 413);
  EXPECT_EQ(error_of(reply), "request_too_large");
  EXPECT_TRUE(queued().empty());
}

TEST_F(IngressTest, BodyOfExactlyTheLimitWithoutContentLengthIsAccepted) {
  const std::string body = R"({"channel":"#a","text":"hello"})";
  options.max_body_bytes = body.size();

  const HttpReply reply = send(FakeRequest("POST", "/").with_header("Content-Type", kJson), body,
                               std::nullopt);

  EXPECT_EQ(reply.status, 200);
  const auto messages = queued();
  ASSERT_EQ(messages.size(), 1u);
  EXPECT_EQ(messages[0].payload, body);
}

TEST_F(IngressTest, FullQueueIsServiceUnavailableWithRetryAfterAndStoresNothing) {
  queue = std::make_unique<MemoryQueue>(1);
  ASSERT_EQ(post(R"({"channel":"#a","text":"1"})").status, 200);

  const HttpReply reply = post(R"({"channel":"#a","text":"2"})");

  EXPECT_EQ(reply.status, 503);
  EXPECT_EQ(error_of(reply), "queue_full");
  EXPECT_EQ(header_of(reply, "Retry-After"), std::to_string(options.retry_after.count()));
  EXPECT_EQ(queue->size(), 1u);
  EXPECT_EQ(metric_value(registry, "slackproxy_requests_received_total", {{"channel", "#a"}}), 1);
}

TEST_F(IngressTest, DrainingAnswersShuttingDownAndUnhealthy) {
  ingress().set_draining(true);

  const HttpReply reply = post(R"({"channel":"#a","text":"hi"})");
  const HttpReply health = send(FakeRequest("GET", "/health"), "", std::nullopt);

  EXPECT_EQ(reply.status, 503);
  EXPECT_EQ(error_of(reply), "shutting_down");
  EXPECT_EQ(health.status, 503);
  EXPECT_TRUE(queued().empty());
}

TEST_F(IngressTest, HealthIsOk) {
  const HttpReply reply = send(FakeRequest("GET", "/health"), "", std::nullopt);

  EXPECT_EQ(reply.status, 200);
  EXPECT_TRUE(parse_object(reply.body)->getValue<bool>("ok"));
}

TEST_F(IngressTest, QueryStringIsIgnoredForPathMatching) {
  EXPECT_EQ(post(R"({"channel":"#a","text":"hi"})", kJson, "/?source=alertmanager").status, 200);
  EXPECT_EQ(send(FakeRequest("GET", "/health?probe=1"), "", std::nullopt).status, 200);
  EXPECT_EQ(queued().size(), 1u);
}

TEST_F(IngressTest, RouterRewriteIsAppliedBeforeQueueing) {
  auto router = std::make_shared<NiceMock<sdk::testing::MockRouter>>();
  ON_CALL(*router, route(_)).WillByDefault(Invoke([](sdk::Message& m) {
    m.channel = "#override";
    return sdk::RouteResult::ok();
  }));
  pipeline->routers.push_back(router);

  ASSERT_EQ(post(R"({"channel":"#asked","text":"hi"})").status, 200);

  const auto messages = queued();
  ASSERT_EQ(messages.size(), 1u);
  EXPECT_EQ(messages[0].channel, "#override");
  EXPECT_EQ(messages[0].original_channel, "#asked");
  EXPECT_EQ(metric_value(registry, "slackproxy_requests_received_total", {{"channel", "#asked"}}),
            1);
}

TEST_F(IngressTest, RouterRejectionIsAnsweredWithItsStatusAndError) {
  auto router = std::make_shared<NiceMock<sdk::testing::MockRouter>>();
  ON_CALL(*router, route(_))
      .WillByDefault(Return(sdk::RouteResult::reject(403, "restricted_action", "not here")));
  pipeline->routers.push_back(router);

  const HttpReply reply = post(R"({"channel":"#a","text":"hi"})");

  EXPECT_EQ(reply.status, 403);
  EXPECT_EQ(error_of(reply), "restricted_action");
  EXPECT_TRUE(queued().empty());
}

TEST_F(IngressTest, AuthenticatorDenialIsAnsweredWithItsStatusAndError) {
  auto auth = std::make_shared<NiceMock<sdk::testing::MockAuthenticator>>();
  ON_CALL(*auth, authenticate(_)).WillByDefault(Return(sdk::AuthResult::deny(401, "invalid_auth")));
  pipeline->authenticator = auth;

  const HttpReply reply = post(R"({"channel":"#a","text":"hi"})");

  EXPECT_EQ(reply.status, 401);
  EXPECT_EQ(error_of(reply), "invalid_auth");
  EXPECT_EQ(header_of(reply, "WWW-Authenticate").value_or(""), R"(Bearer realm="slack-proxy")");
  EXPECT_TRUE(queued().empty());
}

TEST_F(IngressTest, EveryOutcomeOfAnAuthenticatedCallerIsCountedUnderItsName) {
  auto auth = std::make_shared<NiceMock<sdk::testing::MockAuthenticator>>();
  ON_CALL(*auth, authenticate(_)).WillByDefault(Return(sdk::AuthResult::allow("team-a")));
  pipeline->authenticator = auth;

  ASSERT_EQ(post(R"({"channel":"#a","text":"hi"})").status, 200);
  ASSERT_EQ(post(R"({"channel":"#a"})").status, 400);

  auto client = [&](const std::string& outcome) {
    return metric_value(registry, "slackproxy_client_requests_total",
                        {{"client", "team-a"}, {"outcome", outcome}});
  };
  EXPECT_EQ(client("accepted"), 1);
  EXPECT_EQ(client("no_text"), 1);
}

TEST_F(IngressTest, WithAnAuthenticatorTheProxyKeyIsNeverUsedAsTheCallersSlackToken) {
  auto auth = std::make_shared<NiceMock<sdk::testing::MockAuthenticator>>();
  ON_CALL(*auth, authenticate(_)).WillByDefault(Return(sdk::AuthResult::allow("team-a")));
  pipeline->authenticator = auth;
  pipeline->caller_token = true;

  FakeRequest with_key_only("POST", "/");
  with_key_only.with_header("Content-Type", kJson)
      .with_header("Authorization", "Bearer proxy-key-not-for-slack-1234");
  const std::string no_token = R"({"channel":"#a","text":"hi"})";
  const HttpReply refused = send(with_key_only, no_token, no_token.size());
  EXPECT_EQ(refused.status, 401);
  EXPECT_EQ(error_of(refused), "not_authed");

  const std::string body_token = R"({"channel":"#a","text":"hi","token":"xoxb-callers-own"})";
  ASSERT_EQ(send(with_key_only, body_token, body_token.size()).status, 200);
  const auto messages = queued();
  ASSERT_EQ(messages.size(), 1u);
  EXPECT_EQ(messages[0].delivery_token, "xoxb-callers-own");
}

TEST_F(IngressTest, AuthenticatedCallerIsRecordedOnTheMessage) {
  auto auth = std::make_shared<NiceMock<sdk::testing::MockAuthenticator>>();
  ON_CALL(*auth, authenticate(_)).WillByDefault(Return(sdk::AuthResult::allow("team-alerts")));
  pipeline->authenticator = auth;

  ASSERT_EQ(post(R"({"channel":"#a","text":"hi"})").status, 200);

  const auto messages = queued();
  ASSERT_EQ(messages.size(), 1u);
  EXPECT_EQ(messages[0].caller, "team-alerts");
}

TEST_F(IngressTest, ErrorBodyIsValidJsonEvenWhenTheDetailNeedsEscaping) {
  auto router = std::make_shared<NiceMock<sdk::testing::MockRouter>>();
  ON_CALL(*router, route(_))
      .WillByDefault(Return(sdk::RouteResult::reject(
          400, "invalid_channel", "channel \"#a\" has a \\ and a\nnewline and a \x01")));
  pipeline->routers.push_back(router);

  const HttpReply reply = post(R"({"channel":"#a","text":"hi"})");

  EXPECT_EQ(error_of(reply), "invalid_channel");
}

TEST_F(IngressTest, EveryRejectionIsCountedByItsErrorCode) {
  options.max_body_bytes = 64;
  post("[]");
  post(R"({"text":"hi"})");
  post(R"({"channel":"#a"})");
  post("a=b", "multipart/form-data; boundary=x");
  post(R"({"channel":"#a","text":")" + std::string(100, 'x') + R"("})");
  post(R"({"channel":"#a","text":"hi"})", kJson, "/nowhere");
  send(FakeRequest("PUT", "/"), "", std::nullopt);

  EXPECT_EQ(rejected("invalid_json"), 1);
  EXPECT_EQ(rejected("channel_not_specified"), 1);
  EXPECT_EQ(rejected("no_text"), 1);
  EXPECT_EQ(rejected("unsupported_media_type"), 1);
  EXPECT_EQ(rejected("request_too_large"), 1);
  EXPECT_EQ(rejected("not_found"), 1);
  EXPECT_EQ(rejected("method_not_allowed"), 1);
}

TEST_F(IngressTest, QueueFullAndShuttingDownAreCountedAsRejections) {
  queue = std::make_unique<MemoryQueue>(1);
  post(R"({"channel":"#a","text":"1"})");
  post(R"({"channel":"#a","text":"2"})");
  ingress().set_draining(true);
  post(R"({"channel":"#a","text":"3"})");

  EXPECT_EQ(rejected("queue_full"), 1);
  EXPECT_EQ(rejected("shutting_down"), 1);
}

TEST_F(IngressTest, AuthenticatorAndRouterRejectionsAreCounted) {
  auto auth = std::make_shared<NiceMock<sdk::testing::MockAuthenticator>>();
  EXPECT_CALL(*auth, authenticate(_))
      .WillOnce(Return(sdk::AuthResult::deny(401, "invalid_auth")))
      .WillOnce(Return(sdk::AuthResult::allow("team")));
  auto router = std::make_shared<NiceMock<sdk::testing::MockRouter>>();
  ON_CALL(*router, route(_))
      .WillByDefault(Return(sdk::RouteResult::reject(403, "restricted_action", "not here")));
  pipeline->authenticator = auth;
  pipeline->routers.push_back(router);

  post(R"({"channel":"#a","text":"1"})");
  post(R"({"channel":"#a","text":"2"})");

  EXPECT_EQ(rejected("invalid_auth"), 1);
  EXPECT_EQ(rejected("restricted_action"), 1);
}

}  // namespace
}  // namespace slack_proxy

namespace slack_proxy {
namespace {

// Framing, byte-exactness and log hygiene.
class IngressHardeningTest : public IngressTest {
 protected:
  IngressHardeningTest() {
    log = std::make_shared<spdlog::logger>(
        "hardening", std::make_shared<spdlog::sinks::ostream_sink_mt>(log_text));
    log->set_level(spdlog::level::trace);
  }
  std::ostringstream log_text;
};

TEST_F(IngressHardeningTest, TokenFieldIsCutWithoutTouchingAnyOtherByte) {
  const std::string body =
      R"({"channel":"#a",  "text":"t", "n": 1.0, "big": 123456789.123456789, "token":"xoxb-9-9-x", "z":1, "a":2})";
  ASSERT_EQ(post(body).status, 200);
  const auto messages = queued();
  ASSERT_EQ(messages.size(), 1u);
  EXPECT_EQ(messages[0].payload,
            R"({"channel":"#a",  "text":"t", "n": 1.0, "big": 123456789.123456789, "z":1, "a":2})");
}

TEST_F(IngressHardeningTest, TokenWrittenWithEscapesIsStillRemoved) {
  ASSERT_EQ(post(R"({"channel":"#a","text":"t","tok\u0065n":"xoxb-9-9-x"})").status, 200);
  const auto messages = queued();
  ASSERT_EQ(messages.size(), 1u);
  EXPECT_THAT(messages[0].payload, ::testing::Not(::testing::HasSubstr("xoxb")));
  EXPECT_FALSE(parse_object(messages[0].payload)->has("token"));
}

TEST_F(IngressHardeningTest, RejectionLogNeverContainsQueryStringOrDeepPath) {
  FakeRequest unknown("POST", "/hooks/T000/B000/SECRETWEBHOOKPATH?token=xoxb-query-secret-999");
  unknown.with_header("Content-Type", "application/json");
  EXPECT_EQ(send(unknown, "{}", 2).status, 404);
  FakeRequest known("GET", "/?token=xoxb-query-secret-999");
  EXPECT_EQ(send(known, "", std::nullopt).status, 405);

  const std::string text = log_text.str();
  EXPECT_THAT(text, ::testing::HasSubstr("/hooks/..."));
  EXPECT_THAT(text, ::testing::HasSubstr("pipeline 'default'"));
  EXPECT_THAT(text, ::testing::Not(::testing::HasSubstr("SECRETWEBHOOKPATH")));
  EXPECT_THAT(text, ::testing::Not(::testing::HasSubstr("query-secret")));
}

TEST_F(IngressHardeningTest, RejectionsAreLoggedAtMostTwentyTimesPerSecondButAllCounted) {
  for (int i = 0; i < 100; ++i) EXPECT_EQ(post("not json").status, 400);
  const std::string first_second = log_text.str();
  EXPECT_EQ(std::count(first_second.begin(), first_second.end(), '\n'), 20);
  EXPECT_EQ(rejected("invalid_json"), 100);

  clock.advance(std::chrono::seconds(1));
  EXPECT_EQ(post("not json").status, 400);
  EXPECT_THAT(log_text.str(), ::testing::HasSubstr("80 similar line(s) suppressed"));
}

}  // namespace
}  // namespace slack_proxy

namespace slack_proxy {
namespace {

// What issue #3 added: the official SDKs' form bodies, webhook-style
// pipelines, default channels and the caller's own token.
class IngressCompatibilityTest : public IngressTest {};

TEST_F(IngressCompatibilityTest, FormBodyBecomesJsonWithStructuredFieldsAndBooleans) {
  const std::string form =
      "channel=%23a&text=hello+world&unfurl_links=false&thread_ts=1700000000.000100&"
      "blocks=%5B%7B%22type%22%3A%22divider%22%7D%5D&token=xoxb-form-secret";
  const HttpReply reply = post(form, "application/x-www-form-urlencoded", "/api/chat.postMessage");
  ASSERT_EQ(reply.status, 200) << reply.body;
  EXPECT_EQ(reply.body, R"({"ok":true})");
  const auto messages = queued();
  ASSERT_EQ(messages.size(), 1u);
  EXPECT_EQ(messages[0].channel, "#a");
  EXPECT_EQ(messages[0].payload,
            R"({"channel":"#a","text":"hello world","unfurl_links":false,)"
            R"("thread_ts":"1700000000.000100","blocks":[{"type":"divider"}]})");
  EXPECT_TRUE(messages[0].delivery_token.empty());  // the pipeline delivers with its own
}

TEST_F(IngressCompatibilityTest, FormBodyWithBlocksThatDoNotParseIsInvalidBlocksFormat) {
  const HttpReply reply = post("channel=%23a&blocks=%5Bnot-json", "application/x-www-form-urlencoded");
  EXPECT_EQ(reply.status, 400);
  EXPECT_EQ(error_of(reply), "invalid_blocks_format");
  EXPECT_TRUE(queued().empty());
}

TEST_F(IngressCompatibilityTest, PrefixPathServesEverythingBelowIt) {
  pipeline->paths = {"/services/*"};
  EXPECT_EQ(post(R"({"channel":"#a","text":"x"})", kJson, "/services/T0/B0/secret").status, 200);
  EXPECT_EQ(post(R"({"channel":"#a","text":"x"})", kJson, "/services/").status, 404);
  EXPECT_EQ(post(R"({"channel":"#a","text":"x"})", kJson, "/servicesX/a").status, 404);
}

TEST_F(IngressCompatibilityTest, WebhookStyleAnswersPlainOkAndPlainErrorCodes) {
  pipeline->webhook_style = true;
  pipeline->default_channel = "#hooked";
  const HttpReply ok = post(R"({"text":"from a webhook"})");
  EXPECT_EQ(ok.status, 200);
  EXPECT_EQ(ok.body, "ok");
  EXPECT_THAT(ok.content_type, ::testing::HasSubstr("text/plain"));
  const auto messages = queued();
  ASSERT_EQ(messages.size(), 1u);
  EXPECT_EQ(messages[0].channel, "#hooked");
  EXPECT_EQ(parse_object(messages[0].payload)->getValue<std::string>("channel"), "#hooked");

  const HttpReply bad = post(R"({"channel":"#x"})");
  EXPECT_EQ(bad.status, 400);
  EXPECT_EQ(bad.body, "no_text");
}

TEST_F(IngressCompatibilityTest, WebhookStyleTakesALegacyPayloadFormField) {
  pipeline->webhook_style = true;
  const HttpReply reply =
      post("payload=%7B%22channel%22%3A%22%23a%22%2C%22text%22%3A%22hi%22%7D",
           "application/x-www-form-urlencoded");
  EXPECT_EQ(reply.status, 200) << reply.body;
  const auto messages = queued();
  ASSERT_EQ(messages.size(), 1u);
  EXPECT_EQ(messages[0].payload, R"({"channel":"#a","text":"hi"})");
}

TEST_F(IngressCompatibilityTest, CallerTokenPipelineCarriesTheBearerTokenAndNeverThePayload) {
  pipeline->caller_token = true;
  FakeRequest request("POST", "/");
  request.with_header("Content-Type", "application/json")
      .with_header("Authorization", "Bearer xoxb-caller-1");
  const std::string body = R"({"channel":"#a","text":"x","token":"xoxb-field-2"})";
  ASSERT_EQ(send(request, body, body.size()).status, 200);
  const auto messages = queued();
  ASSERT_EQ(messages.size(), 1u);
  EXPECT_EQ(messages[0].delivery_token, "xoxb-caller-1");  // the header wins, as at Slack
  EXPECT_THAT(messages[0].payload, ::testing::Not(::testing::HasSubstr("xoxb")));
}

TEST_F(IngressCompatibilityTest, WebApiPathAnswersMessageErrorsWith200OkFalseLikeSlack) {
  options.max_body_bytes = 64;
  const HttpReply api = post(R"({"channel":"#a"})", kJson, "/api/chat.postMessage");
  EXPECT_EQ(api.status, 200);
  EXPECT_EQ(error_of(api), "no_text");
  const HttpReply root = post(R"({"channel":"#a"})", kJson, "/");
  EXPECT_EQ(root.status, 400);
  EXPECT_EQ(error_of(root), "no_text");
  // Transport-level refusals keep their status on every path.
  const std::string big = R"({"channel":"#a","text":")" + std::string(100, 'x') + R"("})";
  EXPECT_EQ(post(big, kJson, "/api/chat.postMessage").status, 413);
}

TEST_F(IngressCompatibilityTest, EachCallerTokenIsItsOwnWorkspaceNamedWithoutTheToken) {
  pipeline->caller_token = true;
  auto post_as = [&](const std::string& authorization) {
    FakeRequest request("POST", "/");
    request.with_header("Content-Type", "application/json")
        .with_header("Authorization", authorization);
    const std::string body = R"({"channel":"#a","text":"x"})";
    EXPECT_EQ(send(request, body, body.size()).status, 200);
  };
  post_as("Bearer xoxb-tenant-one");
  post_as("bearer xoxb-tenant-one");  // the scheme is case-insensitive
  post_as("Bearer xoxb-tenant-two");
  const auto messages = queued();
  ASSERT_EQ(messages.size(), 3u);
  EXPECT_EQ(messages[0].workspace, messages[1].workspace);
  EXPECT_NE(messages[0].workspace, messages[2].workspace);
  for (const auto& m : messages) {
    EXPECT_FALSE(m.workspace.empty());
    EXPECT_THAT(m.workspace, ::testing::Not(::testing::HasSubstr("xoxb")));
    EXPECT_THAT(m.workspace, ::testing::Not(::testing::HasSubstr("tenant")));
  }
}

TEST_F(IngressCompatibilityTest, AnEmptyBearerHeaderFallsBackToTheBodysToken) {
  pipeline->caller_token = true;
  FakeRequest request("POST", "/");
  request.with_header("Content-Type", "application/json").with_header("Authorization", "Bearer ");
  const std::string body = R"({"channel":"#a","text":"x","token":"xoxb-from-body"})";
  ASSERT_EQ(send(request, body, body.size()).status, 200);
  const auto messages = queued();
  ASSERT_EQ(messages.size(), 1u);
  EXPECT_EQ(messages[0].delivery_token, "xoxb-from-body");
}

TEST_F(IngressCompatibilityTest, ABrokenFormBodyOnTheWebApiPathIs200OkFalseNot500) {
  const HttpReply reply =
      post("channel=%23a&text=100%", "application/x-www-form-urlencoded", "/api/chat.postMessage");
  EXPECT_EQ(reply.status, 200);
  EXPECT_EQ(error_of(reply), "invalid_form_data");
  EXPECT_EQ(rejected("invalid_form_data"), 1);
}

TEST_F(IngressCompatibilityTest, CallerTokenPipelineWithoutAnyTokenIsNotAuthed) {
  pipeline->caller_token = true;
  const HttpReply reply = post(R"({"channel":"#a","text":"x"})");
  EXPECT_EQ(reply.status, 401);
  EXPECT_EQ(error_of(reply), "not_authed");
  EXPECT_TRUE(queued().empty());
}


// ---- deduplication and storage failures (issue 4) ------------------------

class DedupIngressTest : public IngressTest {
 protected:
  DedupIngressTest() {
    QueueLimits limits;
    limits.max_messages = 10;
    limits.dedup_window = std::chrono::minutes(10);
    queue = std::make_unique<MemoryQueue>(limits, clock);
  }
  HttpReply post_with_key(const std::string& body, const std::string& key) {
    FakeRequest request("POST", "/");
    request.with_header("Content-Type", kJson);
    request.with_header("Idempotency-Key", key);
    return send(request, body, body.size());
  }
  double duplicates(const std::string& channel) {
    return metric_value(registry, "slackproxy_requests_duplicate_total", {{"channel", channel}});
  }
};

TEST_F(DedupIngressTest, ARepeatedIdempotencyKeyIsAnsweredOkAndNotQueuedAgain) {
  const std::string body = R"({"channel":"#a","text":"disk full"})";

  const HttpReply first = post_with_key(body, "alert-42");
  const HttpReply second = post_with_key(body, "alert-42");

  EXPECT_EQ(first.status, 200);
  EXPECT_EQ(second.status, 200);
  EXPECT_EQ(second.body, first.body);
  EXPECT_EQ(queued().size(), 1u);
  EXPECT_EQ(duplicates("#a"), 1);
}

TEST_F(DedupIngressTest, SlacksClientMsgIdDeduplicatesToo) {
  const std::string body = R"({"channel":"#a","text":"x","client_msg_id":"c-1"})";

  EXPECT_EQ(post(body).status, 200);
  EXPECT_EQ(post(body).status, 200);
  EXPECT_EQ(post(R"({"channel":"#a","text":"x","client_msg_id":"c-2"})").status, 200);

  EXPECT_EQ(queued().size(), 2u);
}

TEST_F(DedupIngressTest, TheHeaderWinsOverTheBodysClientMsgId) {
  EXPECT_EQ(post_with_key(R"({"channel":"#a","text":"x","client_msg_id":"c-1"})", "k").status, 200);
  // Same client_msg_id, another header key: a different request.
  EXPECT_EQ(post_with_key(R"({"channel":"#a","text":"x","client_msg_id":"c-1"})", "k2").status, 200);

  EXPECT_EQ(queued().size(), 2u);
}

TEST_F(DedupIngressTest, TheSameKeyAfterTheWindowIsANewMessage) {
  const std::string body = R"({"channel":"#a","text":"x"})";
  ASSERT_EQ(post_with_key(body, "k").status, 200);

  clock.advance(std::chrono::minutes(10) + std::chrono::milliseconds(1));
  ASSERT_EQ(post_with_key(body, "k").status, 200);

  EXPECT_EQ(queued().size(), 2u);
}

TEST_F(DedupIngressTest, KeysAreScopedPerPipeline) {
  auto other = std::make_shared<Pipeline>();
  other->name = "other";
  other->paths = {"/other"};
  other->sink = pipeline->sink;
  ingress_with({pipeline, other});
  const std::string body = R"({"channel":"#a","text":"x"})";

  FakeRequest to_other("POST", "/other");
  to_other.with_header("Content-Type", kJson).with_header("Idempotency-Key", "k");
  ASSERT_EQ(post_with_key(body, "k").status, 200);
  ASSERT_EQ(send(to_other, body, body.size()).status, 200);

  EXPECT_EQ(queued().size(), 2u);
}

// A queue whose storage is broken (disk full, I/O error).
class BrokenQueue final : public test_support::EmptyQueue {
 public:
  using Queue::push;
  PushResult push(sdk::Message, const PushOptions&) override {
    return {PushStatus::Unavailable, "disk I/O error writing /var/lib/secret-path/queue.db"};
  }
  DeadLetterStore& dead_letters() override { return inner_.dead_letters(); }

 private:
  MemoryQueue inner_{1};
};

TEST_F(IngressTest, AStorageFailureIs503WithRetryAfterAndNoInternalDetail) {
  BrokenQueue broken;
  ingress_ = std::make_unique<Ingress>(broken, std::vector<std::shared_ptr<Pipeline>>{pipeline},
                                       metrics, clock, log, options);

  const HttpReply reply = post(R"({"channel":"#a","text":"x"})");

  EXPECT_EQ(reply.status, 503);
  EXPECT_EQ(error_of(reply), "queue_unavailable");
  EXPECT_TRUE(header_of(reply, "Retry-After").has_value());
  EXPECT_EQ(reply.body.find("secret-path"), std::string::npos) << reply.body;
  EXPECT_EQ(rejected("queue_unavailable"), 1);
}

// ------------------------------------------------------- hostile input --

class IngressLimitsTest : public IngressTest {
 protected:
  IngressLimitsTest() {
    log = std::make_shared<spdlog::logger>(
        "limits", std::make_shared<spdlog::sinks::ostream_sink_mt>(log_text));
  }
  FakeRequest json_post(const std::string& path = "/") {
    FakeRequest request("POST", path);
    request.with_header("Content-Type", kJson);
    return request;
  }
  std::ostringstream log_text;
};

TEST_F(IngressLimitsTest, TheExchangeSaysTheBodyLimitAndItsRefusalIsCountedAndCloses) {
  options.max_body_bytes = 1024;
  FakeRequest request = json_post();
  request.with_header("Content-Length", std::to_string(1 << 20));
  HttpHandler::Opened opened = ingress().open(request);
  ASSERT_FALSE(opened.reply.has_value());
  ASSERT_NE(opened.exchange, nullptr);
  EXPECT_EQ(opened.exchange->max_body_bytes(), 1024u);
  const HttpReply reply =
      opened.exchange->refuse_body(413, "request_too_large", "body is 1048576 bytes");
  EXPECT_EQ(reply.status, 413);
  EXPECT_EQ(error_of(reply), "request_too_large");
  EXPECT_TRUE(reply.close);
  EXPECT_EQ(rejected("request_too_large"), 1);
  EXPECT_TRUE(queued().empty());
}

TEST_F(IngressLimitsTest, ARefusalBeforeTheBodyLeavesTheConnectionToTheTransport) {
  // The transport knows whether it can read past the unread body; the
  // refusal itself does not ask to close.
  FakeRequest with_body("POST", "/nowhere");
  with_body.with_header("Content-Length", "10");
  HttpHandler::Opened refused = ingress().open(with_body);
  ASSERT_TRUE(refused.reply.has_value());
  EXPECT_EQ(refused.reply->status, 404);
  EXPECT_FALSE(refused.reply->close);
  EXPECT_EQ(refused.exchange, nullptr);
}

TEST_F(IngressLimitsTest, TheReplyComesThroughTheSinkExactlyOnce) {
  const std::string body = R"({"channel":"#a","text":"x"})";
  FakeRequest request = json_post();
  request.with_header("Content-Length", std::to_string(body.size()));
  HttpHandler::Opened opened = ingress().open(request);
  ASSERT_NE(opened.exchange, nullptr);
  int calls = 0;
  HttpReply got;
  opened.exchange->finish(body, [&](HttpReply r) {
    ++calls;
    got = std::move(r);
  });
  // The memory queue stores at once, so the reply has come already.
  EXPECT_EQ(calls, 1);
  EXPECT_EQ(got.status, 200) << got.body;
  EXPECT_EQ(queued().size(), 1u);
}

// A queue that reports from a thread of its own, as SQLite's writer does
// after a group commit.
class WriterThreadQueue final : public Queue {
 public:
  using Queue::push;
  ~WriterThreadQueue() override {
    for (auto& t : writers_) t.join();
  }
  void push_async(sdk::Message message, const PushOptions& options, PushDone done) override {
    PushResult result = inner_.push(std::move(message), options);
    writers_.emplace_back([done = std::move(done), result = std::move(result)]() mutable {
      done(std::move(result));
    });
  }
  PushResult push(sdk::Message message, const PushOptions& options) override {
    return inner_.push(std::move(message), options);
  }
  std::vector<Queued> take(std::size_t max) override { return inner_.take(max); }
  std::vector<LaneBacklog> backlog() override { return inner_.backlog(); }
  std::vector<Queued> read_lane(const std::string& lane, std::uint64_t after, std::uint64_t upto,
                                std::size_t max) override {
    return inner_.read_lane(lane, after, upto, max);
  }
  std::size_t lane_size(const std::string& lane) override { return inner_.lane_size(lane); }
  std::uint64_t backlog_upto() const override { return inner_.backlog_upto(); }
  void ack(const Queued& done) override { inner_.ack(done); }
  void dead_letter(std::uint64_t seq, DeadLetter d) override {
    inner_.dead_letter(seq, std::move(d));
  }
  std::size_t size() const override { return inner_.size(); }
  std::size_t bytes() const override { return inner_.bytes(); }
  QueueLimits limits() const override { return inner_.limits(); }
  DeadLetterStore& dead_letters() override { return inner_.dead_letters(); }
  void on_push(std::function<void()>) override {}

 private:
  MemoryQueue inner_{10};
  std::vector<std::thread> writers_;
};

TEST_F(IngressLimitsTest, TheQueuesThreadOnlyHandsTheOutcomeOverTheReplyIsBuiltWhereTheSinkRunsIt) {
  WriterThreadQueue writer;
  ingress_ = std::make_unique<Ingress>(writer, std::vector<std::shared_ptr<Pipeline>>{pipeline},
                                       metrics, clock, log, options);
  const std::string body = R"({"channel":"#a","text":"x"})";
  FakeRequest request = json_post();
  request.with_header("Content-Length", std::to_string(body.size()));
  HttpHandler::Opened opened = ingress().open(request);
  ASSERT_NE(opened.exchange, nullptr);

  std::promise<ReplySink::Builder> handed_over;
  std::future<ReplySink::Builder> builder = handed_over.get_future();
  opened.exchange->finish(body, ReplySink::deferred([&](ReplySink::Builder build) {
                            handed_over.set_value(std::move(build));
                          }));
  ASSERT_EQ(builder.wait_for(std::chrono::seconds(30)), std::future_status::ready);
  const auto received = [&] {
    return metric_value(registry, "slackproxy_requests_received_total", {{"channel", "#a"}});
  };
  // Handed over, not yet built: the writer thread counted nothing.
  EXPECT_EQ(received(), 0);

  const HttpReply reply = builder.get()();  // here, as the connection's thread does

  EXPECT_EQ(reply.status, 200) << reply.body;
  EXPECT_EQ(received(), 1);
  EXPECT_EQ(writer.size(), 1u);
}

TEST_F(IngressLimitsTest, InvalidUtf8Is400InvalidUtf8AndOnTheWebApiPath200OkFalse) {
  const std::string body = "{\"channel\":\"#a\",\"text\":\"\xED\xA0\x80\"}";  // a surrogate
  const HttpReply reply = post(body);
  EXPECT_EQ(reply.status, 400);
  EXPECT_EQ(error_of(reply), "invalid_utf8");
  const HttpReply api = post(body, kJson, "/api/chat.postMessage");
  EXPECT_EQ(api.status, 200);
  EXPECT_EQ(error_of(api), "invalid_utf8");
  const HttpReply form = post("channel=%23a&text=%C0%AF", "application/x-www-form-urlencoded");
  EXPECT_EQ(form.status, 400);
  EXPECT_EQ(error_of(form), "invalid_utf8");
  EXPECT_TRUE(queued().empty());
  EXPECT_EQ(rejected("invalid_utf8"), 3);
}

TEST_F(IngressLimitsTest, JsonDeeperThanMaxJsonDepthIs400InvalidJsonSayingSo) {
  options.max_json_depth = 8;
  const auto nested = [](int depth) {
    return R"({"channel":"#a","text":"x","d":)" + std::string(depth - 1, '[') +
           std::string(depth - 1, ']') + "}";
  };
  EXPECT_EQ(post(nested(8)).status, 200);
  const HttpReply reply = post(nested(9));
  EXPECT_EQ(reply.status, 400);
  EXPECT_EQ(error_of(reply), "invalid_json");
  EXPECT_THAT(reply.body, ::testing::HasSubstr("deeper than 8 levels"));
  EXPECT_EQ(queued().size(), 1u);
}

TEST_F(IngressLimitsTest, HealthWithABodyClosesTheConnectionSoTheBodyIsNeverARequest) {
  FakeRequest plain("GET", "/health");
  HttpHandler::Opened none = ingress().open(plain);
  ASSERT_TRUE(none.reply.has_value());
  EXPECT_FALSE(none.reply->close);
  FakeRequest with_body("POST", "/health");
  with_body.with_header("Content-Length", "40");
  HttpHandler::Opened smuggled = ingress().open(with_body);
  ASSERT_TRUE(smuggled.reply.has_value());
  EXPECT_EQ(smuggled.reply->status, 200);
  EXPECT_TRUE(smuggled.reply->close);
  FakeRequest chunked("POST", "/health");
  chunked.with_header("Transfer-Encoding", "chunked");
  HttpHandler::Opened chunked_reply = ingress().open(chunked);
  ASSERT_TRUE(chunked_reply.reply.has_value());
  EXPECT_TRUE(chunked_reply.reply->close);
}

TEST_F(IngressLimitsTest, ARefusedHeadIsCountedLoggedWithTheAddressAndClosed) {
  const HttpReply reply =
      ingress().refuse_head("192.0.2.7:4242", 431, "headers_too_large", "more than 100 header fields");
  EXPECT_EQ(reply.status, 431);
  EXPECT_EQ(error_of(reply), "headers_too_large");
  EXPECT_EQ(parse_object(reply.body)->getValue<std::string>("detail"), "more than 100 header fields");
  EXPECT_TRUE(reply.close);
  EXPECT_EQ(rejected("headers_too_large"), 1);
  EXPECT_THAT(log_text.str(), ::testing::HasSubstr(
                                  "request from 192.0.2.7:4242: 431 headers_too_large (more than "
                                  "100 header fields)"));
}

}  // namespace
}  // namespace slack_proxy

namespace slack_proxy {
namespace {

// admit() runs the chain the transport runs through open() and the
// exchange: the same request gets the same answer, the same counts and the
// same queued message either way.
class AdmitTest : public IngressTest {
 protected:
  FakeRequest json_post(const std::string& body, const std::string& path = "/") {
    FakeRequest request("POST", path);
    request.with_header("Content-Type", kJson)
        .with_header("Content-Length", std::to_string(body.size()));
    return request;
  }

  struct Replies {
    HttpReply handled;   // as the transport gets it: open(), then the exchange
    HttpReply admitted;  // admit()
  };
  Replies both(const FakeRequest& request, const std::string& body) {
    Replies replies;
    HttpHandler::Opened opened = ingress().open(request);
    if (opened.reply) {
      replies.handled = std::move(*opened.reply);
    } else {
      opened.exchange->finish(body, [&](HttpReply r) { replies.handled = std::move(r); });
    }
    replies.admitted = ingress().admit(request, body);
    return replies;
  }

  static void expect_same_answer(const Replies& r) {
    EXPECT_EQ(r.admitted.status, r.handled.status);
    EXPECT_EQ(r.admitted.body, r.handled.body);
    EXPECT_EQ(r.admitted.content_type, r.handled.content_type);
    EXPECT_EQ(r.admitted.headers, r.handled.headers);
  }
};

TEST_F(AdmitTest, AnAcceptedMessageIsAnsweredAndQueuedAsTheTransportGetsIt) {
  const std::string body = R"({"channel":"#a","text":"hi","token":"xoxb-cut-out"})";

  const Replies r = both(json_post(body), body);

  EXPECT_EQ(r.handled.status, 200);
  expect_same_answer(r);
  EXPECT_FALSE(r.admitted.close);
  const auto messages = queued();
  ASSERT_EQ(messages.size(), 2u);
  EXPECT_EQ(messages[1].channel, messages[0].channel);
  EXPECT_EQ(messages[1].payload, messages[0].payload);
  EXPECT_NE(messages[1].id, messages[0].id);
}

TEST_F(AdmitTest, InvalidJsonIs400OrOnTheWebApiPath200OkFalseAsTheTransportGetsIt) {
  const std::string body = "this is not json";

  const Replies root = both(json_post(body), body);
  const Replies api = both(json_post(body, "/api/chat.postMessage"), body);

  EXPECT_EQ(root.handled.status, 400);
  EXPECT_EQ(error_of(root.handled), "invalid_json");
  expect_same_answer(root);
  EXPECT_EQ(api.handled.status, 200);
  EXPECT_EQ(error_of(api.handled), "invalid_json");
  expect_same_answer(api);
  EXPECT_EQ(rejected("invalid_json"), 4);
  EXPECT_TRUE(queued().empty());
}

TEST_F(AdmitTest, AnAuthenticatorsRefusalIs401AsTheTransportGetsIt) {
  auto auth = std::make_shared<NiceMock<sdk::testing::MockAuthenticator>>();
  ON_CALL(*auth, authenticate(_)).WillByDefault(Return(sdk::AuthResult::deny(401, "invalid_auth")));
  pipeline->authenticator = auth;
  const std::string body = R"({"channel":"#a","text":"hi"})";

  const Replies r = both(json_post(body), body);

  EXPECT_EQ(r.handled.status, 401);
  EXPECT_EQ(error_of(r.handled), "invalid_auth");
  EXPECT_EQ(header_of(r.handled, "WWW-Authenticate"), R"(Bearer realm="slack-proxy")");
  expect_same_answer(r);
  // Refused before the body was read: the transport decides whether to
  // read past it.
  EXPECT_FALSE(r.handled.close);
  EXPECT_FALSE(r.admitted.close);
  EXPECT_EQ(rejected("invalid_auth"), 2);
}

TEST_F(AdmitTest, ARoutersRefusalIs403AsTheTransportGetsIt) {
  auto router = std::make_shared<NiceMock<sdk::testing::MockRouter>>();
  ON_CALL(*router, route(_))
      .WillByDefault(Return(sdk::RouteResult::reject(403, "restricted_action", "not here")));
  pipeline->routers.push_back(router);
  const std::string body = R"({"channel":"#a","text":"hi"})";

  const Replies r = both(json_post(body), body);

  EXPECT_EQ(r.handled.status, 403);
  EXPECT_EQ(error_of(r.handled), "restricted_action");
  expect_same_answer(r);
  EXPECT_EQ(rejected("restricted_action"), 2);
  EXPECT_TRUE(queued().empty());
}

TEST_F(AdmitTest, AFullQueueIs503QueueFullWithRetryAfterAsTheTransportGetsIt) {
  queue = std::make_unique<MemoryQueue>(1);
  ASSERT_EQ(post(R"({"channel":"#a","text":"fills it"})").status, 200);
  const std::string body = R"({"channel":"#a","text":"no room"})";

  const Replies r = both(json_post(body), body);

  EXPECT_EQ(r.handled.status, 503);
  EXPECT_EQ(error_of(r.handled), "queue_full");
  EXPECT_EQ(header_of(r.handled, "Retry-After"), std::to_string(options.retry_after.count()));
  expect_same_answer(r);
  EXPECT_EQ(rejected("queue_full"), 2);
  EXPECT_EQ(queue->size(), 1u);
}

TEST_F(AdmitTest, AWholeBodyOverTheLimitIsStill413) {
  options.max_body_bytes = 16;
  const std::string body = R"({"channel":"#a","text":"longer than sixteen bytes"})";

  const Replies r = both(json_post(body), body);

  EXPECT_EQ(r.handled.status, 413);
  EXPECT_EQ(error_of(r.handled), "request_too_large");
  expect_same_answer(r);
  EXPECT_TRUE(queued().empty());
}

// ---- a stage that throws fails that one request --------------------------

class IngressFaultTest : public IngressTest {
 protected:
  IngressFaultTest() {
    log = std::make_shared<spdlog::logger>("test",
                                           std::make_shared<spdlog::sinks::ostream_sink_mt>(logged));
  }
  double exceptions(const std::string& stage, const std::string& method) {
    return metric_value(registry, "slackproxy_plugin_exceptions_total",
                        {{"pipeline", "default"}, {"stage", stage}, {"method", method}});
  }
  std::ostringstream logged;
};

TEST_F(IngressFaultTest, ARouterThatThrowsFailsThatRequestWith500AndTheNextIsServed) {
  auto router = std::make_shared<NiceMock<sdk::testing::MockRouter>>();
  ON_CALL(*router, route(_)).WillByDefault(Invoke([](sdk::Message& m) {
    if (m.channel == "#boom") throw std::runtime_error("router exploded");
    return sdk::RouteResult::ok();
  }));
  pipeline->routers.push_back(router);
  pipeline->labels[router.get()] = StageLabel{"picker", "faulty_router"};

  const HttpReply failed = post(R"({"channel":"#boom","text":"hi"})");
  EXPECT_EQ(failed.status, 500);
  EXPECT_EQ(failed.body, R"({"ok":false,"error":"internal_error"})");
  EXPECT_TRUE(queued().empty());

  EXPECT_EQ(post(R"({"channel":"#a","text":"hi"})").status, 200);
  EXPECT_EQ(queued().size(), 1u);
  EXPECT_EQ(exceptions("picker", "route"), 1);
  EXPECT_EQ(rejected("internal_error"), 1);
  EXPECT_THAT(logged.str(), ::testing::AllOf(::testing::HasSubstr("[error]"),
                                             ::testing::HasSubstr("pipeline 'default'"),
                                             ::testing::HasSubstr("stage 'picker'"),
                                             ::testing::HasSubstr("plugin faulty_router"),
                                             ::testing::HasSubstr("router exploded")));
}

TEST_F(IngressFaultTest, AnAuthenticatorThatThrowsFailsThatRequestWith500) {
  auto auth = std::make_shared<NiceMock<sdk::testing::MockAuthenticator>>();
  int calls = 0;
  ON_CALL(*auth, authenticate(_)).WillByDefault(Invoke([&](const sdk::RequestView&) {
    if (++calls == 1) throw std::logic_error("auth exploded");
    return sdk::AuthResult::allow("team-a");
  }));
  pipeline->authenticator = auth;
  pipeline->labels[auth.get()] = StageLabel{"keys", "faulty_auth"};

  const HttpReply failed = post(R"({"channel":"#a","text":"hi"})");
  EXPECT_EQ(failed.status, 500);
  EXPECT_EQ(failed.body, R"({"ok":false,"error":"internal_error"})");
  EXPECT_EQ(post(R"({"channel":"#a","text":"hi"})").status, 200);
  EXPECT_EQ(exceptions("keys", "authenticate"), 1);
  EXPECT_THAT(logged.str(), ::testing::HasSubstr("auth exploded"));
}

// ---- the payload's channel follows the routers ----------------------------

TEST_F(IngressTest, ARoutedChannelIsWrittenIntoThePayloadKeepingEveryOtherByte) {
  auto router = std::make_shared<NiceMock<sdk::testing::MockRouter>>();
  ON_CALL(*router, route(_)).WillByDefault(Invoke([](sdk::Message& m) {
    m.channel = "#ops \"night\"";
    return sdk::RouteResult::ok();
  }));
  pipeline->routers.push_back(router);

  ASSERT_EQ(post(R"({ "text" : "hi",  "channel":"#asked", "n": 1.50 ,"x":{"channel":"#in"}})")
                .status,
            200);
  const auto messages = queued();
  ASSERT_EQ(messages.size(), 1u);
  EXPECT_EQ(messages[0].payload,
            R"({ "text" : "hi",  "channel":"#ops \"night\"", "n": 1.50 ,"x":{"channel":"#in"}})");
  EXPECT_EQ(parse_object(messages[0].payload)->getValue<std::string>("channel"),
            messages[0].channel);
}

TEST_F(IngressTest, AnEscapedChannelKeyIsRewrittenToo) {
  auto router = std::make_shared<NiceMock<sdk::testing::MockRouter>>();
  ON_CALL(*router, route(_)).WillByDefault(Invoke([](sdk::Message& m) {
    m.channel = "#routed";
    return sdk::RouteResult::ok();
  }));
  pipeline->routers.push_back(router);

  ASSERT_EQ(post(R"({"ch\u0061nnel":"#asked","text":"hi"})").status, 200);
  const auto messages = queued();
  ASSERT_EQ(messages.size(), 1u);
  const auto object = parse_object(messages[0].payload);
  EXPECT_EQ(object->getValue<std::string>("channel"), "#routed");
  EXPECT_EQ(object->getValue<std::string>("text"), "hi");
}

TEST_F(IngressTest, WithoutARoutingChangeThePayloadIsByteForByteAsSent) {
  auto router = std::make_shared<NiceMock<sdk::testing::MockRouter>>();
  ON_CALL(*router, route(_)).WillByDefault(Invoke([](sdk::Message& m) {
    m.attributes["seen"] = "yes";
    return sdk::RouteResult::ok();
  }));
  pipeline->routers.push_back(router);
  const std::string body = R"({ "channel" : "#a",	"text":"hi \u00e9", "n":1e3 })";

  ASSERT_EQ(post(body).status, 200);
  const auto messages = queued();
  ASSERT_EQ(messages.size(), 1u);
  EXPECT_EQ(messages[0].payload, body);
}

TEST_F(IngressTest, AFormBodyRoutedElsewhereCarriesTheNewChannelInItsJson) {
  auto router = std::make_shared<NiceMock<sdk::testing::MockRouter>>();
  ON_CALL(*router, route(_)).WillByDefault(Invoke([](sdk::Message& m) {
    m.channel = "#routed";
    return sdk::RouteResult::ok();
  }));
  pipeline->routers.push_back(router);

  ASSERT_EQ(post("channel=%23asked&text=hi", "application/x-www-form-urlencoded").status, 200);
  const auto messages = queued();
  ASSERT_EQ(messages.size(), 1u);
  EXPECT_EQ(messages[0].content_type, "application/json");
  EXPECT_EQ(parse_object(messages[0].payload)->getValue<std::string>("channel"), "#routed");
}

// Which of two "channel" members a receiver keeps is its own choice (Slack
// does not document one), so the channel the routers and guards saw could
// differ from the one the payload is delivered to: refused, however spelled.
TEST_F(IngressTest, AChannelKeyGivenTwiceIsInvalidJsonHoweverItIsSpelled) {
  auto router = std::make_shared<NiceMock<sdk::testing::MockRouter>>();
  ON_CALL(*router, route(_)).WillByDefault(Invoke([](sdk::Message& m) {
    m.channel = "#forced";
    return sdk::RouteResult::ok();
  }));
  pipeline->routers.push_back(router);

  for (const char* body : {R"({"channel":"#x","channel":"#asked","text":"hi"})",
                           R"({"channel":"#x","ch\u0061nnel":"#asked","text":"hi"})",
                           R"({"ch\u0061nnel":"#x","text":"hi","\u0063hannel":"#asked"})"}) {
    SCOPED_TRACE(body);
    const HttpReply reply = post(body);
    EXPECT_EQ(reply.status, 400);
    EXPECT_EQ(error_of(reply), "invalid_json");
    EXPECT_THAT(reply.body, ::testing::HasSubstr("'channel' 2 times"));
  }
  EXPECT_TRUE(queued().empty());
  // Only the top level counts: a nested object may repeat its own keys.
  ASSERT_EQ(post(R"({"channel":"#a","text":"hi","x":{"channel":"#1","channel":"#2"}})").status,
            200);
  EXPECT_EQ(queued().size(), 1u);
}

// The payload that leaves names exactly one channel, the routed one, also
// when an escaped key (any key) keeps the text edit from being trusted.
TEST_F(IngressTest, ARoutedPayloadNamesOnlyTheRoutedChannelWhateverTheKeysLookLike) {
  auto router = std::make_shared<NiceMock<sdk::testing::MockRouter>>();
  ON_CALL(*router, route(_)).WillByDefault(Invoke([](sdk::Message& m) {
    m.channel = "#forced";
    return sdk::RouteResult::ok();
  }));
  pipeline->routers.push_back(router);

  for (const char* body : {R"({"ch\u0061nnel":"#asked","text":"hi"})",
                           R"({"channel":"#asked","te\u0078t":"hi"})"}) {
    SCOPED_TRACE(body);
    ASSERT_EQ(post(body).status, 200);
    const auto messages = queued();
    ASSERT_EQ(messages.size(), 1u);
    EXPECT_EQ(messages[0].channel, "#forced");
    const std::string& payload = messages[0].payload;
    EXPECT_EQ(payload.find("\\u"), std::string::npos) << payload;
    EXPECT_EQ(payload.find("\"channel\""), payload.rfind("\"channel\"")) << payload;
    const auto object = parse_object(payload);
    EXPECT_EQ(object->getValue<std::string>("channel"), "#forced");
    EXPECT_EQ(object->getValue<std::string>("text"), "hi");
  }
  // A form body that repeats the field becomes JSON with one member.
  ASSERT_EQ(post("channel=%23x&channel=%23asked&text=hi", "application/x-www-form-urlencoded")
                .status,
            200);
  const auto messages = queued();
  ASSERT_EQ(messages.size(), 1u);
  const std::string& payload = messages[0].payload;
  EXPECT_EQ(payload.find("\"channel\""), payload.rfind("\"channel\"")) << payload;
  EXPECT_EQ(parse_object(payload)->getValue<std::string>("channel"), "#forced");
}

// Replicas sharing the Redis queue are given one tenant salt: a caller's
// token names the same tenant (so the same lane) on each. Without one, each
// process salts its own.
TEST_F(IngressTest, ACallersTenantIsTheSameOnEveryIngressGivenOneSalt) {
  pipeline->caller_token = true;
  const auto tenant_on = [&](const std::string& salt) {
    IngressOptions o = options;
    o.tenant_salt = salt;
    Ingress other(*queue, {pipeline}, metrics, clock, log, o);
    FakeRequest request("POST", "/");
    request.with_header("Content-Type", kJson).with_header("Authorization", "Bearer xoxb-caller-1");
    EXPECT_EQ(other.admit(request, R"({"channel":"#a","text":"hi"})").status, 200);
    const auto messages = queued();
    EXPECT_EQ(messages.size(), 1u);
    return messages.empty() ? std::string() : messages[0].workspace;
  };
  const std::string fleet = "fleet-wide salt";
  EXPECT_EQ(tenant_on(fleet), tenant_on(fleet));
  EXPECT_NE(tenant_on(fleet), tenant_on("another fleet"));
  EXPECT_NE(tenant_on(""), tenant_on(""));  // each process its own
}

TEST_F(IngressTest, CallerTokenTenantsAreNamedByTheSdk) {
  pipeline->caller_token = true;
  FakeRequest request("POST", "/");
  request.with_header("Content-Type", kJson).with_header("Authorization", "Bearer xoxb-caller-1");
  ASSERT_EQ(send(request, R"({"channel":"#a","text":"hi"})", std::nullopt).status, 200);
  const auto messages = queued();
  ASSERT_EQ(messages.size(), 1u);
  EXPECT_TRUE(sdk::is_caller_tenant(messages[0].workspace)) << messages[0].workspace;
  EXPECT_EQ(messages[0].workspace.find("xoxb"), std::string::npos);
}

}  // namespace
}  // namespace slack_proxy

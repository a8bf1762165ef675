// The ingress's three reply styles (core/src/admission/reply_style.h): how
// each words the success reply and a refusal, and which one a pipeline and
// path get.
#include "admission/reply_style.h"

#include <string>

#include <Poco/JSON/Object.h>
#include <Poco/JSON/Parser.h>
#include <gtest/gtest.h>

namespace slack_proxy {
namespace {

constexpr const char* kJsonType = "application/json; charset=utf-8";
constexpr const char* kTextType = "text/plain; charset=utf-8";

Poco::JSON::Object::Ptr parse_object(const std::string& text) {
  Poco::JSON::Parser parser;
  return parser.parse(text).extract<Poco::JSON::Object::Ptr>();
}

void expect_json_error(const HttpReply& reply, const std::string& error,
                       const std::string& detail) {
  EXPECT_EQ(reply.content_type, kJsonType);
  const auto object = parse_object(reply.body);
  EXPECT_FALSE(object->getValue<bool>("ok"));
  EXPECT_EQ(object->getValue<std::string>("error"), error);
  EXPECT_EQ(object->getValue<std::string>("detail"), detail);
}

TEST(ReplyStyleTest, RootAnswersJsonAndKeepsEveryStatus) {
  const ReplyStyle root = ReplyStyle::root();
  const HttpReply ok = root.accepted();
  EXPECT_EQ(ok.status, 200);
  EXPECT_EQ(ok.body, R"({"ok":true})");
  EXPECT_EQ(ok.content_type, kJsonType);
  for (const int status : {400, 401, 403, 413, 503}) {
    SCOPED_TRACE(status);
    const HttpReply refused = root.error(status, "no_text", "say something");
    EXPECT_EQ(refused.status, status);
    expect_json_error(refused, "no_text", "say something");
  }
}

TEST(ReplyStyleTest, WebApiAnswersMessageAndAuthErrorsAs200OkFalseAndKeepsTheRest) {
  const ReplyStyle api = ReplyStyle::web_api();
  EXPECT_EQ(api.accepted().status, 200);
  EXPECT_EQ(api.accepted().body, R"({"ok":true})");
  for (const int status : {400, 401}) {
    SCOPED_TRACE(status);
    const HttpReply refused = api.error(status, "not_authed", "send a token");
    EXPECT_EQ(refused.status, 200);
    expect_json_error(refused, "not_authed", "send a token");
  }
  for (const int status : {403, 405, 413, 415, 503}) {
    SCOPED_TRACE(status);
    const HttpReply refused = api.error(status, "queue_full", "retry later");
    EXPECT_EQ(refused.status, status);
    expect_json_error(refused, "queue_full", "retry later");
  }
}

TEST(ReplyStyleTest, WebhookAnswersPlainTextOkOrTheBareErrorCode) {
  const ReplyStyle webhook = ReplyStyle::webhook();
  const HttpReply ok = webhook.accepted();
  EXPECT_EQ(ok.status, 200);
  EXPECT_EQ(ok.body, "ok");
  EXPECT_EQ(ok.content_type, kTextType);
  for (const int status : {400, 401, 503}) {
    SCOPED_TRACE(status);
    const HttpReply refused = webhook.error(status, "no_text", "the detail is not sent");
    EXPECT_EQ(refused.status, status);
    EXPECT_EQ(refused.body, "no_text");
    EXPECT_EQ(refused.content_type, kTextType);
  }
}

TEST(ReplyStyleTest, APipelineGetsWebhookIfItIsOneElseWebApiUnderApiElseRoot) {
  Pipeline plain;
  Pipeline webhook;
  webhook.webhook_style = true;
  EXPECT_EQ(ReplyStyle::of(plain, "/"), ReplyStyle::root());
  EXPECT_EQ(ReplyStyle::of(plain, "/services/T0/B0/x"), ReplyStyle::root());
  EXPECT_EQ(ReplyStyle::of(plain, "/apis"), ReplyStyle::root());
  EXPECT_EQ(ReplyStyle::of(plain, "/api/chat.postMessage"), ReplyStyle::web_api());
  EXPECT_EQ(ReplyStyle::of(webhook, "/services/T0/B0/x"), ReplyStyle::webhook());
  EXPECT_EQ(ReplyStyle::of(webhook, "/api/chat.postMessage"), ReplyStyle::webhook());
}

}  // namespace
}  // namespace slack_proxy

// The three reply styles of the ingress (see reply_style.h).
#include "admission/reply_style.h"

#include <string>

#include "json_text.h"

namespace slack_proxy {
namespace {

constexpr std::string_view kPlainText = "text/plain; charset=utf-8";

// {"ok":false,"error":...,"detail":...}: Slack's shape, always valid JSON.
std::string error_body(std::string_view error, std::string_view detail) {
  std::string body = "{\"ok\":false,\"error\":";
  append_json_string(body, error);
  body += ",\"detail\":";
  append_json_string(body, detail);
  body += "}";
  return body;
}

}  // namespace

ReplyStyle ReplyStyle::of(const Pipeline& pipeline, std::string_view path) {
  if (pipeline.webhook_style) return webhook();
  return path.rfind("/api/", 0) == 0 ? web_api() : root();
}

HttpReply ReplyStyle::accepted() const {
  HttpReply r;
  if (kind_ == Kind::Webhook) {
    r.content_type = std::string(kPlainText);
    r.body = "ok";  // exactly what Slack's incoming webhooks answer
  } else {
    r.body = R"({"ok":true})";
  }
  return r;
}

HttpReply ReplyStyle::error(int status, std::string_view error, std::string_view detail) const {
  HttpReply r;
  r.status = status;
  switch (kind_) {
    case Kind::Webhook:
      r.content_type = std::string(kPlainText);
      r.body = std::string(error);
      return r;
    case Kind::WebApi:
      if (status == 400 || status == 401) r.status = 200;
      break;
    case Kind::Root:
      break;
  }
  r.body = error_body(error, detail);
  return r;
}

}  // namespace slack_proxy

// How the ingress words its answers: the success reply and every refusal,
// in one of three styles. Admission picks the style once per request, from
// the pipeline and the path (ReplyStyle::of), and every reply it gives goes
// through it; nothing else decides how an answer looks.
#pragma once

#include <string_view>

#include "pipeline.h"
#include "transport/http_handler.h"

namespace slack_proxy {

class ReplyStyle {
 public:
  // JSON with the status as is: {"ok":true}, or
  // {"ok":false,"error":...,"detail":...}. The root path's style, that of
  // any path neither of the others serves, and of every refusal made before
  // a pipeline is known (the request head, an unknown path).
  static ReplyStyle root() { return ReplyStyle(Kind::Root); }
  // Slack's Web API (a path under /api/): as root(), but a message or auth
  // error (400, 401) is HTTP 200 with ok:false, as Slack gives it. The
  // official SDKs treat any other status as a transport failure and retry
  // it for half an hour. Other refusals (413, 415, 503, ...) keep their
  // status, so an SDK retries those.
  static ReplyStyle web_api() { return ReplyStyle(Kind::WebApi); }
  // An incoming webhook's: plain text, "ok" or the bare error code, with
  // the status as is.
  static ReplyStyle webhook() { return ReplyStyle(Kind::Webhook); }

  // The style of `pipeline` answering on `path` (no query string).
  static ReplyStyle of(const Pipeline& pipeline, std::string_view path);

  HttpReply accepted() const;
  HttpReply error(int status, std::string_view error, std::string_view detail) const;

  bool operator==(const ReplyStyle&) const = default;

 private:
  enum class Kind { Root, WebApi, Webhook };
  explicit ReplyStyle(Kind kind) : kind_(kind) {}

  Kind kind_;
};

}  // namespace slack_proxy

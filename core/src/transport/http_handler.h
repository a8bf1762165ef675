// What the ingress's HTTP transport and the application behind it exchange:
// the reply the application gives for a request. Nothing here knows about
// Slack.
#pragma once

#include <string>
#include <utility>
#include <vector>

namespace slack_proxy {

struct HttpReply {
  int status = 200;
  std::string body;
  std::string content_type = "application/json; charset=utf-8";
  std::vector<std::pair<std::string, std::string>> headers;
  bool close = false;  // the request body was not consumed: drop the connection
};

}  // namespace slack_proxy

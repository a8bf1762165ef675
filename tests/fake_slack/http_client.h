// A tiny blocking HTTP client for tests: talks to the fake Slack's control API
// and to the proxy under test.
#ifndef SLACK_PROXY_TESTS_HTTP_CLIENT_H
#define SLACK_PROXY_TESTS_HTTP_CLIENT_H

#include <chrono>
#include <map>
#include <optional>
#include <string>

namespace slack_proxy::testing {

struct HttpResponse {
  int status = 0;
  std::map<std::string, std::string> headers;  // lower-cased names
  std::string body;

  std::optional<std::string> header(const std::string& lower_case_name) const {
    auto it = headers.find(lower_case_name);
    if (it == headers.end()) return std::nullopt;
    return it->second;
  }
};

struct HttpRequest {
  std::string method = "GET";
  std::string url;  // "http://host:port/path" or "https://..."
  // For https: the CA certificates (PEM file) to trust; none are trusted
  // otherwise. Chains are checked, host names are not (Poco skips the check
  // for loopback names, which is all a test talks to).
  std::string ca_file;
  std::string body;
  std::string content_type;  // sent only when non-empty
  std::map<std::string, std::string> headers;
  std::chrono::milliseconds timeout{5000};
};

// Throws Poco::Exception when there is no reply (refused, reset, timeout).
HttpResponse http_send(const HttpRequest& request);
HttpResponse http_get(const std::string& url);
HttpResponse http_post(const std::string& url, const std::string& body,
                       const std::string& content_type = "application/json");

}  // namespace slack_proxy::testing

#endif  // SLACK_PROXY_TESTS_HTTP_CLIENT_H

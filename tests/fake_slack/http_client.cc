#include "http_client.h"

#include <Poco/Net/Context.h>
#include <Poco/Net/HTTPClientSession.h>
#include <Poco/Net/HTTPRequest.h>
#include <Poco/Net/HTTPResponse.h>
#include <Poco/Net/HTTPSClientSession.h>
#include <Poco/Net/NetSSL.h>
#include <Poco/Net/RejectCertificateHandler.h>
#include <Poco/StreamCopier.h>
#include <Poco/Timespan.h>
#include <Poco/URI.h>

#include <algorithm>
#include <cctype>
#include <memory>
#include <mutex>

namespace slack_proxy::testing {

namespace {

std::unique_ptr<Poco::Net::HTTPClientSession> session_for(const Poco::URI& uri,
                                                          const std::string& ca_file) {
  if (uri.getScheme() != "https") {
    return std::make_unique<Poco::Net::HTTPClientSession>(uri.getHost(), uri.getPort());
  }
  static std::once_flag ssl;
  std::call_once(ssl, [] { Poco::Net::initializeSSL(); });
  Poco::Net::Context::Ptr context =
      new Poco::Net::Context(Poco::Net::Context::TLS_CLIENT_USE, "", "", ca_file,
                             Poco::Net::Context::VERIFY_RELAXED, 9, /*loadDefaultCAs=*/false);
  // Not whatever handler the process may have installed in SSLManager.
  context->setInvalidCertificateHandler(new Poco::Net::RejectCertificateHandler(false));
  return std::make_unique<Poco::Net::HTTPSClientSession>(uri.getHost(), uri.getPort(), context);
}

}  // namespace

HttpResponse http_send(const HttpRequest& request) {
  const Poco::URI uri(request.url);
  auto session = session_for(uri, request.ca_file);
  session->setTimeout(Poco::Timespan(
      std::chrono::duration_cast<std::chrono::microseconds>(request.timeout).count()));
  Poco::Net::HTTPRequest out(request.method, uri.getPathEtc(), Poco::Net::HTTPMessage::HTTP_1_1);
  if (!request.content_type.empty()) out.setContentType(request.content_type);
  for (const auto& [name, value] : request.headers) out.set(name, value);
  if (!request.body.empty() || request.method == "POST" || request.method == "PUT") {
    out.setContentLength(static_cast<std::streamsize>(request.body.size()));
  }
  session->sendRequest(out) << request.body;

  Poco::Net::HTTPResponse in;
  std::istream& stream = session->receiveResponse(in);
  HttpResponse result;
  result.status = static_cast<int>(in.getStatus());
  for (const auto& [name, value] : in) {
    std::string key = name;
    std::transform(key.begin(), key.end(), key.begin(),
                   [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    result.headers[key] = value;
  }
  Poco::StreamCopier::copyToString(stream, result.body);
  return result;
}

HttpResponse http_get(const std::string& url) {
  HttpRequest request;
  request.url = url;
  return http_send(request);
}

HttpResponse http_post(const std::string& url, const std::string& body,
                       const std::string& content_type) {
  HttpRequest request;
  request.method = "POST";
  request.url = url;
  request.body = body;
  request.content_type = content_type;
  return http_send(request);
}

}  // namespace slack_proxy::testing

// Loads the ingress listener's TLS context (see tls.h).
#include "transport/tls.h"

#include <cerrno>
#include <cstring>
#include <fstream>
#include <mutex>
#include <sstream>
#include <stdexcept>

#include <Poco/Exception.h>
#include <Poco/Net/NetSSL.h>
#include <openssl/ssl.h>

namespace slack_proxy {
namespace {

// Reads a whole (small) file; the error names the path and the reason.
std::string read_pem(const std::string& key, const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    throw std::runtime_error("[server] " + key + " \"" + path + "\": cannot read it: " +
                             std::strerror(errno));
  }
  std::ostringstream text;
  text << in.rdbuf();
  if (in.bad()) {
    throw std::runtime_error("[server] " + key + " \"" + path + "\": cannot read it: " +
                             std::strerror(errno));
  }
  return text.str();
}

}  // namespace

Poco::Net::Context::Ptr make_tls_server_context(const std::string& cert, const std::string& key,
                                                const std::string& min_version) {
  // Read first, so that a missing or unreadable file is reported as such
  // (OpenSSL's own error names neither the file nor the reason).
  const std::string cert_text = read_pem("tls_cert", cert);
  const std::string key_text = read_pem("tls_key", key);
  if (cert_text.find("-----BEGIN CERTIFICATE-----") == std::string::npos)
    throw std::runtime_error("[server] tls_cert \"" + cert + "\": no PEM certificate in it");
  if (key_text.find("PRIVATE KEY-----") == std::string::npos)
    throw std::runtime_error("[server] tls_key \"" + key + "\": no PEM private key in it");

  static std::once_flag ssl;
  std::call_once(ssl, [] { Poco::Net::initializeSSL(); });
  Poco::Net::Context::Params params;
  params.privateKeyFile = key;
  params.certificateFile = cert;
  params.verificationMode = Poco::Net::Context::VERIFY_NONE;  // no client certificates
  params.loadDefaultCAs = false;
  // TLS 1.2 suites with forward secrecy and AEAD only (1.3's are all fine).
  params.cipherList = "ECDHE+AESGCM:ECDHE+CHACHA20:DHE+AESGCM:DHE+CHACHA20:!aNULL:!MD5:!DSS";
  Poco::Net::Context::Ptr context;
  try {
    context = new Poco::Net::Context(Poco::Net::Context::TLS_SERVER_USE, params);
  } catch (const Poco::Exception& e) {
    throw std::runtime_error("[server] tls_cert \"" + cert + "\" / tls_key \"" + key +
                             "\": cannot be used: " + e.displayText());
  }
  if (SSL_CTX_check_private_key(context->sslContext()) != 1) {
    throw std::runtime_error("[server] tls_key \"" + key +
                             "\" is not the private key of the certificate in tls_cert \"" + cert +
                             "\"");
  }
  context->requireMinimumProtocol(min_version == "1.3" ? Poco::Net::Context::PROTO_TLSV1_3
                                                       : Poco::Net::Context::PROTO_TLSV1_2);
  context->enableSessionCache(false);
  return context;
}

}  // namespace slack_proxy

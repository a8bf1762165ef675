// TLS for the ingress listener: the server context built from the
// configured certificate and key files.
#pragma once

#include <string>

#include <Poco/Net/Context.h>

namespace slack_proxy {

// The TLS context of the ingress listener: `cert` and `key` are PEM files
// (the chain may follow the certificate), `min_version` "1.2" or "1.3".
// Throws std::runtime_error naming the file that cannot be read or used,
// never its contents.
Poco::Net::Context::Ptr make_tls_server_context(const std::string& cert, const std::string& key,
                                                const std::string& min_version);

}  // namespace slack_proxy

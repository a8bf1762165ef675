// Throwaway certificates for TLS tests, made when the test runs.
//
// Nothing is committed: committed test keys expire at the worst moment and get
// copied into places they should not be. The `openssl` command line (Debian
// package `openssl`) writes everything into a fresh private temporary
// directory, removed with the object. EC P-256 keys keep this to a few
// milliseconds.
#ifndef SLACK_PROXY_TESTS_TEST_CERTS_H
#define SLACK_PROXY_TESTS_TEST_CERTS_H

#include <filesystem>
#include <string>
#include <vector>

namespace slack_proxy::testing {

// A certificate and its private key, as PEM files (the key unencrypted).
struct TlsFiles {
  std::string certificate;
  std::string private_key;
};

class TestCertificates {
 public:
  // Throws std::runtime_error naming the step that failed, with openssl's own
  // words; when openssl is not installed, says so and names the package.
  TestCertificates();
  ~TestCertificates();  // removes the directory
  TestCertificates(const TestCertificates&) = delete;
  TestCertificates& operator=(const TestCertificates&) = delete;

  const std::filesystem::path& dir() const { return dir_; }

  // The test CA's certificate (PEM): what a client is told to trust.
  std::string ca_certificate() const;
  // Signed by the test CA for DNS:localhost and IP:127.0.0.1.
  TlsFiles localhost() const;
  // Signed by the test CA, but for DNS:wrong.example only.
  TlsFiles wrong_name() const;
  // For DNS:localhost and IP:127.0.0.1 too, but self-signed: it chains to no
  // CA a client trusts.
  TlsFiles self_signed_localhost() const;

 private:
  std::string file(const char* name) const;
  // Runs openssl with `args`; throws on a failed start or a non-zero exit.
  void openssl(const std::string& step, const std::vector<std::string>& args) const;

  std::filesystem::path dir_;
};

}  // namespace slack_proxy::testing

#endif  // SLACK_PROXY_TESTS_TEST_CERTS_H

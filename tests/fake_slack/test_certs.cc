#include "test_certs.h"

#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cctype>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <system_error>
#include <vector>

extern char** environ;

namespace slack_proxy::testing {

namespace {

// Our own config, so that what gets made does not depend on the machine's
// /etc/ssl/openssl.cnf. Each section is the extension set of one certificate.
constexpr const char* kConfig = R"([req]
distinguished_name = dn
prompt = no
[dn]
CN = replaced by -subj
[ca]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
[localhost]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = serverAuth
subjectAltName = DNS:localhost, IP:127.0.0.1
[wrong_name]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = serverAuth
subjectAltName = DNS:wrong.example
)";

constexpr const char* kLog = "openssl.log";

// Long enough to outlast any test run, short enough to be useless if leaked.
const std::string kDays = "2";

std::vector<std::string> operator+(std::vector<std::string> a, const std::vector<std::string>& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

const std::vector<std::string> kNewKey = {"-newkey", "ec", "-pkeyopt",
                                          "ec_paramgen_curve:prime256v1", "-nodes"};

std::string last_words(const std::filesystem::path& file) {
  std::ifstream in(file);
  std::stringstream text;
  text << in.rdbuf();
  std::string s = text.str();
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.pop_back();
  constexpr std::size_t kMax = 600;
  return s.size() > kMax ? "..." + s.substr(s.size() - kMax) : s;
}

}  // namespace

TestCertificates::TestCertificates() {
  std::string pattern =
      (std::filesystem::temp_directory_path() / "slack-proxy-certs-XXXXXX").string();
  if (::mkdtemp(pattern.data()) == nullptr) {
    throw std::system_error(errno, std::generic_category(),
                            "cannot create a temporary directory for test certificates");
  }
  dir_ = pattern;
  try {
    std::ofstream(dir_ / "openssl.cnf") << kConfig;
    const std::vector<std::string> req = {"req", "-config", "openssl.cnf"};
    openssl("make the test CA", req + std::vector<std::string>{"-x509"} + kNewKey +
                                    std::vector<std::string>{"-keyout", "ca.key", "-out", "ca.pem",
                                                             "-days", kDays, "-subj",
                                                             "/CN=slack-proxy test CA",
                                                             "-extensions", "ca"});
    struct Leaf {
      const char* name;
      const char* common_name;
      const char* serial;
    };
    for (const Leaf& leaf : {Leaf{"localhost", "localhost", "2"},
                             Leaf{"wrong_name", "wrong.example", "3"}}) {
      const std::string name = leaf.name;
      openssl("make the " + name + " key and request",
              req + std::vector<std::string>{"-new"} + kNewKey +
                  std::vector<std::string>{"-keyout", name + ".key", "-out", name + ".csr",
                                           "-subj", std::string("/CN=") + leaf.common_name});
      openssl("sign the " + name + " certificate with the test CA",
              {"x509", "-req", "-in", name + ".csr", "-CA", "ca.pem", "-CAkey", "ca.key",
               "-set_serial", leaf.serial, "-days", kDays, "-extfile", "openssl.cnf",
               "-extensions", name, "-out", name + ".pem"});
    }
    openssl("make the self-signed localhost certificate",
            req + std::vector<std::string>{"-x509"} + kNewKey +
                std::vector<std::string>{"-keyout", "self_signed.key", "-out", "self_signed.pem",
                                         "-days", kDays, "-subj", "/CN=localhost",
                                         "-extensions", "localhost"});
  } catch (...) {
    std::error_code ignored;
    std::filesystem::remove_all(dir_, ignored);
    throw;
  }
}

TestCertificates::~TestCertificates() {
  std::error_code ignored;
  std::filesystem::remove_all(dir_, ignored);
}

std::string TestCertificates::ca_certificate() const { return file("ca.pem"); }

TlsFiles TestCertificates::localhost() const {
  return {file("localhost.pem"), file("localhost.key")};
}

TlsFiles TestCertificates::wrong_name() const {
  return {file("wrong_name.pem"), file("wrong_name.key")};
}

TlsFiles TestCertificates::self_signed_localhost() const {
  return {file("self_signed.pem"), file("self_signed.key")};
}

std::string TestCertificates::file(const char* name) const { return (dir_ / name).string(); }

void TestCertificates::openssl(const std::string& step,
                               const std::vector<std::string>& args) const {
  std::vector<std::string> words = std::vector<std::string>{"openssl"} + args;
  std::vector<char*> argv;
  for (auto& word : words) argv.push_back(word.data());
  argv.push_back(nullptr);

  // openssl runs inside the directory, so every path above is a bare name;
  // its chatter goes to a log that is quoted when it fails.
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addchdir_np(&actions, dir_.c_str());
  posix_spawn_file_actions_addopen(&actions, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_addopen(&actions, STDOUT_FILENO, kLog, O_WRONLY | O_CREAT | O_TRUNC,
                                   0600);
  posix_spawn_file_actions_adddup2(&actions, STDOUT_FILENO, STDERR_FILENO);
  pid_t pid = 0;
  const int spawned = ::posix_spawnp(&pid, "openssl", &actions, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  if (spawned == ENOENT) {
    throw std::runtime_error(
        "the openssl command is not installed (Debian package `openssl`); TLS tests need it to "
        "make their certificates");
  }
  if (spawned != 0) {
    throw std::runtime_error("cannot run openssl to " + step + ": " + std::strerror(spawned));
  }
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0) {
    if (errno != EINTR) {
      throw std::system_error(errno, std::generic_category(), "waiting for openssl to " + step);
    }
  }
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    const std::string how = WIFEXITED(status)
                                ? "exit status " + std::to_string(WEXITSTATUS(status))
                                : "killed by signal " + std::to_string(WTERMSIG(status));
    throw std::runtime_error("openssl failed to " + step + " (" + how +
                             "): " + last_words(dir_ / kLog));
  }
}

}  // namespace slack_proxy::testing

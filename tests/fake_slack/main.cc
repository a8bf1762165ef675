// fake-slack: the fake Slack Web API as a process, for the demo, benchmarks
// and out-of-process tests (scripted through the control API, see
// fake_slack.h).
//
//   fake-slack [--port N] [--tls-cert FILE --tls-key FILE] [--quiet]
#include <Poco/Exception.h>
#include <Poco/JSON/Object.h>
#include <Poco/JSON/Parser.h>

#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <string>
#include <string_view>
#include <utility>

#include "fake_slack.h"

namespace {

void usage(std::ostream& out) {
  out << "usage: fake-slack [--port N] [--tls-cert FILE --tls-key FILE] [--quiet]\n"
         "  Answers chat.postMessage like Slack and records every request.\n"
         "  --port N          listen on 127.0.0.1:N (default 0 = any free port)\n"
         "  --tls-cert FILE   speak HTTPS only, presenting this PEM certificate (chain)\n"
         "  --tls-key FILE    its unencrypted PEM private key; needs --tls-cert\n"
         "  --quiet           do not print received messages\n"
         "  Control API: POST /_fake/enqueue, POST /_fake/default, GET /_fake/requests,\n"
         "  POST /_fake/reset (see tests/fake_slack/fake_slack.h).\n";
}

std::string text_of(const std::string& body) {
  try {
    Poco::JSON::Parser parser;
    auto object = parser.parse(body).extract<Poco::JSON::Object::Ptr>();
    if (object && object->has("text")) return object->getValue<std::string>("text");
  } catch (const std::exception&) {
    return "(not a JSON object)";
  }
  return {};
}

}  // namespace

int main(int argc, char** argv) {
  int port = 0;
  bool quiet = false;
  slack_proxy::testing::TlsFiles tls;
  for (int i = 1; i < argc; ++i) {
    const std::string_view arg = argv[i];
    if (arg == "--port" && i + 1 < argc) {
      port = std::atoi(argv[++i]);
    } else if (arg == "--tls-cert" && i + 1 < argc) {
      tls.certificate = argv[++i];
    } else if (arg == "--tls-key" && i + 1 < argc) {
      tls.private_key = argv[++i];
    } else if (arg == "--quiet") {
      quiet = true;
    } else if (arg == "--help" || arg == "-h") {
      usage(std::cout);
      return 0;
    } else {
      std::cerr << "fake-slack: unknown argument '" << arg << "'\n";
      usage(std::cerr);
      return 2;
    }
  }
  if (port < 0 || port > 65535) {
    std::cerr << "fake-slack: port must be 0..65535, got " << port << "\n";
    return 2;
  }
  if (tls.certificate.empty() != tls.private_key.empty()) {
    std::cerr << "fake-slack: --tls-cert and --tls-key go together\n";
    return 2;
  }
  const bool https = !tls.certificate.empty();

  // Blocked before any server thread exists so that only sigwait() below
  // receives them, and shutdown runs on the main thread.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  slack_proxy::testing::FakeSlack slack =
      https ? slack_proxy::testing::FakeSlack(static_cast<std::uint16_t>(port), std::move(tls))
            : slack_proxy::testing::FakeSlack(static_cast<std::uint16_t>(port));
  if (!quiet) {
    slack.on_request([](const slack_proxy::testing::RecordedRequest& r) {
      const std::string text = text_of(r.body);
      std::printf("%s %s %s\n", r.path.c_str(), r.channel.empty() ? "(no channel)" : r.channel.c_str(),
                  text.c_str());
      std::fflush(stdout);
    });
  }
  try {
    slack.start();
  } catch (const Poco::Exception& e) {
    // displayText(): what() alone says only "SSL context exception".
    std::cerr << "fake-slack: cannot start on 127.0.0.1:" << port << ": " << e.displayText()
              << "\n";
    return 1;
  } catch (const std::exception& e) {
    std::cerr << "fake-slack: cannot start on 127.0.0.1:" << port << ": " << e.what() << "\n";
    return 1;
  }
  std::printf("fake-slack listening on %s\n", slack.url().c_str());
  std::fflush(stdout);

  int received = 0;
  sigwait(&signals, &received);
  slack.stop();
  return 0;
}

// fake-slack: the fake Slack Web API as a process, for the demo, benchmarks
// and out-of-process tests (scripted through the control API, see
// fake_slack.h).
//
//   fake-slack [--port N] [--tls-cert FILE --tls-key FILE] [--quiet]
//              [--channel-rate R --channel-burst B --workspace-per-minute W
//               --workspace-burst B --retry-after S --jitter-tolerance-ms MS]
#include <Poco/Exception.h>
#include <Poco/JSON/Object.h>
#include <Poco/JSON/Parser.h>

#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <iostream>
#include <map>
#include <optional>
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
         "  Rate limits like Slack's (any of these turns them on; the others take the\n"
         "  defaults shown; a rate of 0 lifts that limit). Over a limit: 429 with\n"
         "  Retry-After, not recorded.\n"
         "  --channel-rate R           messages per second per channel (1)\n"
         "  --channel-burst B          per-channel burst (3)\n"
         "  --workspace-per-minute W   messages per minute for the workspace (600)\n"
         "  --workspace-burst B        workspace burst (10)\n"
         "  --retry-after S            fixed Retry-After (default: time to the next token)\n"
         "  --jitter-tolerance-ms MS   admit requests this early (0)\n"
         "  Control API: POST /_fake/enqueue, POST /_fake/default, GET /_fake/requests,\n"
         "  POST /_fake/reset, POST /_fake/limits, GET /_fake/stats\n"
         "  (see tests/fake_slack/fake_slack.h).\n";
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

// A whole-string number, or nullopt; atoi's silent 0 would lift a limit.
std::optional<double> number(const char* text) {
  char* end = nullptr;
  errno = 0;
  const double value = std::strtod(text, &end);
  if (errno != 0 || end == text || *end != '\0') return std::nullopt;
  return value;
}

}  // namespace

int main(int argc, char** argv) {
  int port = 0;
  bool quiet = false;
  slack_proxy::testing::TlsFiles tls;
  std::optional<slack_proxy::testing::Limits> limits;
  // Each limit flag: where its value goes once parsed.
  const std::map<std::string_view, std::function<void(slack_proxy::testing::Limits&, double)>>
      limit_flags = {
          {"--channel-rate", [](auto& l, double v) { l.channel_rate = v; }},
          {"--channel-burst", [](auto& l, double v) { l.channel_burst = static_cast<int>(v); }},
          {"--workspace-per-minute", [](auto& l, double v) { l.workspace_per_minute = v; }},
          {"--workspace-burst",
           [](auto& l, double v) { l.workspace_burst = static_cast<int>(v); }},
          {"--retry-after", [](auto& l, double v) { l.retry_after_seconds = static_cast<int>(v); }},
          {"--jitter-tolerance-ms",
           [](auto& l, double v) {
             l.jitter_tolerance = std::chrono::milliseconds(static_cast<int>(v));
           }},
      };
  for (int i = 1; i < argc; ++i) {
    const std::string_view arg = argv[i];
    if (auto flag = limit_flags.find(arg); flag != limit_flags.end() && i + 1 < argc) {
      const auto value = number(argv[++i]);
      if (!value) {
        std::cerr << "fake-slack: " << arg << " needs a number, got '" << argv[i] << "'\n";
        return 2;
      }
      if (!limits) limits.emplace();
      flag->second(*limits, *value);
    } else if (arg == "--port" && i + 1 < argc) {
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
  if (limits) {
    try {
      slack.enforce_limits(*limits);
    } catch (const std::invalid_argument& e) {
      std::cerr << "fake-slack: " << e.what() << "\n";
      return 2;
    }
  }
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

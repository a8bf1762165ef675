// The docs tell the truth: every curl example in README.md, taken from the
// README at test time so the two cannot drift, runs against a live proxy and
// gets the answer the README shows; `scripts/run.sh --demo` delivers every
// demo message and stops what it started; every relative link in README.md,
// docs/*.md and plugins/*/README.md resolves inside the repository, and no
// Markdown file points at a path outside it.
#include <Poco/Exception.h>
#include <Poco/JSON/Array.h>
#include <Poco/JSON/Stringifier.h>
#include <gtest/gtest.h>
#include <signal.h>

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <map>
#include <optional>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "proxy_test.h"

namespace slack_proxy::testing {
namespace {

using namespace std::chrono_literals;
namespace fs = std::filesystem;

const fs::path kSourceDir = SP_SOURCE_DIR;

std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> lines;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  return lines;
}

std::string trim_left(const std::string& s) {
  const auto at = s.find_first_not_of(" \t");
  return at == std::string::npos ? std::string() : s.substr(at);
}

// Polls `done` until it holds or `timeout` passes.
bool wait_until(const std::function<bool()>& done, std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    if (done()) return true;
    if (std::chrono::steady_clock::now() >= deadline) return false;
    std::this_thread::sleep_for(20ms);
  }
}

// ------------------------------------------------------ curl examples --

// One `curl ...` command in a ```sh block of README.md, with the variable
// assignments that come before it in the same block (`A=http://...`) and
// the reply the README shows for it, if any: a trailing `# {...}` or
// `# 401 {...}` comment, or `# {...}` comment lines right below it.
struct CurlExample {
  int line = 0;  // 1-based, in README.md
  std::string command;
  std::vector<std::string> assignments;
  std::optional<std::string> reply;
};

// Where a shell comment starts in `line` (a `#` at a word start, outside
// quotes), or npos.
std::size_t comment_start(const std::string& line) {
  char quote = 0;
  for (std::size_t i = 0; i < line.size(); ++i) {
    const char c = line[i];
    if (quote == '\'') {
      if (c == '\'') quote = 0;
    } else if (quote == '"') {
      if (c == '\\') ++i;
      else if (c == '"') quote = 0;
    } else if (c == '\'' || c == '"') {
      quote = c;
    } else if (c == '#' && (i == 0 || std::isspace(static_cast<unsigned char>(line[i - 1])))) {
      return i;
    }
  }
  return std::string::npos;
}

std::string comment_text(const std::string& line) {
  const std::string t = trim_left(line);
  return trim_left(t.substr(t.find('#') + 1));
}

// A JSON object, optionally after an HTTP status: "{...", "401 {...".
bool looks_like_reply(const std::string& text) {
  static const std::regex reply(R"(^(\d{3}\s+)?\{.*)");
  return std::regex_match(text, reply);
}

std::vector<CurlExample> curl_examples(const std::string& markdown) {
  static const std::regex assignment(R"(^[A-Za-z_][A-Za-z0-9_]*=\S.*)");
  const auto lines = lines_of(markdown);
  std::vector<CurlExample> examples;
  bool in_shell = false;
  std::vector<std::string> assignments;
  for (std::size_t i = 0; i < lines.size(); ++i) {
    const std::string t = trim_left(lines[i]);
    if (t.rfind("```", 0) == 0) {
      in_shell = !in_shell && (t == "```sh" || t == "```bash" || t == "```shell");
      assignments.clear();
      continue;
    }
    if (!in_shell) continue;
    if (std::regex_match(t, assignment)) {
      assignments.push_back(t);
      continue;
    }
    if (t.rfind("curl ", 0) != 0) continue;
    CurlExample e;
    e.line = static_cast<int>(i) + 1;
    e.assignments = assignments;
    e.command = t;
    while (!lines[i].empty() && lines[i].back() == '\\' && i + 1 < lines.size())
      e.command += "\n" + lines[++i];
    const std::string& last = lines[i];
    if (const auto at = comment_start(last); at != std::string::npos) {
      const std::string trailing = trim_left(last.substr(at + 1));
      if (looks_like_reply(trailing)) e.reply = trailing;
    }
    if (!e.reply && i + 1 < lines.size() && trim_left(lines[i + 1]).rfind("#", 0) == 0 &&
        looks_like_reply(comment_text(lines[i + 1]))) {
      std::string reply;
      while (i + 1 < lines.size() && trim_left(lines[i + 1]).rfind("#", 0) == 0)
        reply += comment_text(lines[++i]);
      e.reply = reply;
    }
    examples.push_back(e);
  }
  return examples;
}

std::optional<int> status_of_reply(const std::string& reply) {
  if (reply.size() >= 3 && std::isdigit(static_cast<unsigned char>(reply[0])))
    return std::stoi(reply.substr(0, 3));
  return std::nullopt;
}

// The entries of the reply's outermost object: each key, with its value's
// JSON text when that is a literal (a string, number, true, false, null),
// nullopt for an object or array. The README abbreviates replies ("...",
// values cut short), so this scans instead of parsing JSON.
std::map<std::string, std::optional<std::string>> top_level_entries(const std::string& reply) {
  std::map<std::string, std::optional<std::string>> entries;
  int depth = 0;
  for (std::size_t i = reply.find('{'); i < reply.size(); ++i) {
    const char c = reply[i];
    if (c == '"') {
      const std::size_t start = ++i;
      while (i < reply.size() && reply[i] != '"') i += reply[i] == '\\' ? 2 : 1;
      const std::string text = reply.substr(start, i - start);
      const std::size_t colon = reply.find_first_not_of(" \t", i + 1);
      if (depth != 1 || colon >= reply.size() || reply[colon] != ':') continue;
      const std::size_t value = reply.find_first_not_of(" \t", colon + 1);
      std::optional<std::string> literal;
      if (value < reply.size() && reply[value] == '"') {
        std::size_t end = value + 1;
        while (end < reply.size() && reply[end] != '"') end += reply[end] == '\\' ? 2 : 1;
        literal = reply.substr(value, end + 1 - value);
      } else if (value < reply.size() && reply[value] != '{' && reply[value] != '[') {
        const std::size_t end = reply.find_first_of(",} \t", value);
        literal = reply.substr(value, end - value);
      }
      entries[text] = literal;
    } else if (c == '{' || c == '[') {
      ++depth;
    } else if (c == '}' || c == ']') {
      --depth;
    }
  }
  return entries;
}

// The README's admin examples name this made-up dead-letter id.
constexpr const char* kPlaceholderId = "0a1b2c3d4e5f6a7b-12";

// The reply values the README shows that the test holds the proxy to, not
// only their keys. `ok` and `error` always: they are the answer itself. A
// count only where this test's setup makes the README's number certain: an
// example that names one record by its id (replay or delete of the made-up
// id, which the test swaps for a real one) touches exactly that record, so
// "replayed":1 and "deleted":1 must be 1. Everything else is illustration of
// some other store: ids, timestamps, payloads, sizes and totals such as
// "replayed":3, "deleted":7, "size":12 or "dead_letters":1234 depend on what
// that store held, so for those only the key is checked.
std::set<std::string> compared_values(const CurlExample& e) {
  std::set<std::string> keys{"ok", "error"};
  if (e.command.find(std::string("/dead-letters/") + kPlaceholderId) != std::string::npos)
    keys.insert({"replayed", "deleted"});
  return keys;
}

// A value of a parsed reply as JSON text, to compare with the README's.
std::string json_text(const Poco::Dynamic::Var& value) {
  std::ostringstream out;
  Poco::JSON::Stringifier::stringify(value, out);
  return out.str();
}

// More than one page (50 by default), so a listing has a next_after.
constexpr int kDeadLetterCount = 60;

struct CurlRun {
  std::optional<int> exit_code;
  int status = 0;
  std::string body;
  std::string output;
};

// A proxy with the SQLite queue whose Slack answers channel_not_found, so
// whatever is sent becomes a dead letter the admin examples can list,
// replay and delete.
class ReadmeCurlTest : public ProxyTest {
 protected:
  void SetUp() override {
    ProxyTest::SetUp();
    slack.set_default(Behaviour::error("channel_not_found"));
    ProxyConfig c = config();
    c.queue_backend = "sqlite";
    c.queue_settings = "path = \"@CONFIG_DIR@/queue.db\"\nsync = \"normal\"\n";
    start(c);
  }

  std::string metrics_address() const {
    std::string url = proxy->metrics_url("");
    return url.substr(url.find("://") + 3);
  }
  std::string ingress_address() const { return "127.0.0.1:" + std::to_string(proxy->listen_port()); }

  Poco::JSON::Object::Ptr admin_get(const std::string& path) const {
    HttpRequest request;
    request.url = proxy->metrics_url("/admin" + path);
    request.headers["Authorization"] = std::string("Bearer ") + kAdminKey;
    const HttpResponse r = http_send(request);
    if (r.status != 200) throw std::runtime_error("GET /admin" + path + ": " + r.body);
    return parse_object(r.body);
  }

  // Waits until nothing is queued (a replayed record is back in the store),
  // then tops the store up to kDeadLetterCount records. Every example starts
  // from there, whatever the one before it replayed or deleted.
  void make_dead_letters() {
    Poco::JSON::Object::Ptr queue;
    ASSERT_TRUE(wait_until([&] { return (queue = admin_get("/queue"))->getValue<int>("size") == 0; },
                           kDeadline))
        << "the queue did not empty";
    const int have = queue->getValue<int>("dead_letters");
    for (int i = have; i < kDeadLetterCount; ++i) {
      const HttpResponse r = proxy->post(message("#alerts", "docs-example-" + std::to_string(i)));
      ASSERT_EQ(r.status, 200) << r.body;
    }
    ASSERT_TRUE(wait_until(
        [&] {
          queue = admin_get("/queue");
          return queue->getValue<int>("size") == 0 &&
                 queue->getValue<int>("dead_letters") >= kDeadLetterCount;
        },
        kDeadline))
        << "the store did not reach " << kDeadLetterCount << " dead letters";
  }

  std::string some_dead_letter_id() const {
    return admin_get("/dead-letters?limit=1")
        ->getArray("dead_letters")
        ->getObject(0)
        ->getValue<std::string>("id");
  }

  // The example as it will run: README's addresses become the test proxy's
  // (127.0.0.1:8080 the ingress, 127.0.0.1:9090 the metrics listener), the
  // made-up id a real one.
  std::string localize(std::string text, const std::string& id) const {
    text = replace_all(std::move(text), "127.0.0.1:8080", ingress_address());
    text = replace_all(std::move(text), "127.0.0.1:9090", metrics_address());
    return replace_all(std::move(text), kPlaceholderId, id);
  }

  // Runs it in bash with $SLACK_PROXY_ADMIN_KEY set. `curl` is wrapped to
  // keep the reply's status and body; the example's own text runs verbatim.
  CurlRun run(const CurlExample& e, const std::string& id) const {
    TempDir dir;
    const fs::path body = dir.path() / "body";
    const fs::path status = dir.path() / "status";
    std::string script =
        "set -euo pipefail\n"
        "curl() { command curl -sS --max-time 10 -o \"$SP_BODY\" -w '%{http_code}' \"$@\" "
        ">\"$SP_STATUS\"; }\n";
    for (const auto& a : e.assignments) script += localize(a, id) + "\n";
    script += localize(e.command, id) + "\n";
    ChildProcess bash({"/bin/bash", "-c", script},
                      {path_variable(), std::string("SLACK_PROXY_ADMIN_KEY=") + kAdminKey,
                       "SP_BODY=" + body.string(), "SP_STATUS=" + status.string()},
                      dir.path() / "bash.log");
    CurlRun run;
    run.exit_code = bash.wait_exit(kDeadline);
    run.output = bash.output();
    const std::string code = read_file(status);
    run.status = code.empty() ? 0 : std::atoi(code.c_str());
    run.body = read_file(body);
    return run;
  }
};

// Every http:// address in the localized example is the test proxy's.
::testing::AssertionResult targets_only(const std::string& text,
                                        const std::vector<std::string>& ours) {
  if (text.find("https://") != std::string::npos)
    return ::testing::AssertionFailure() << "an https:// address the test cannot serve";
  for (std::size_t at = text.find("http://"); at != std::string::npos;
       at = text.find("http://", at + 1)) {
    const std::string rest = text.substr(at + 7);
    if (std::none_of(ours.begin(), ours.end(),
                     [&](const std::string& a) { return rest.rfind(a, 0) == 0; }))
      return ::testing::AssertionFailure() << "an address that is not the test proxy's: "
                                           << text.substr(at, 40);
  }
  return ::testing::AssertionSuccess();
}

TEST_F(ReadmeCurlTest, EveryCurlExampleInTheReadmeGetsTheAnswerItShows) {
  const auto examples = curl_examples(read_file(kSourceDir / "README.md"));
  // The quick start's send and the admin API's examples, at the least.
  ASSERT_GE(examples.size(), 10u);
  EXPECT_TRUE(std::any_of(examples.begin(), examples.end(),
                          [](const CurlExample& e) { return e.command.find(":8080/") != std::string::npos; }))
      << "the quick start's curl to port 8080 was not found";

  std::set<std::string> values_compared;  // keys whose value some example was held to
  for (const CurlExample& e : examples) {
    SCOPED_TRACE("README.md:" + std::to_string(e.line) + ": " + e.command);
    ASSERT_NO_FATAL_FAILURE(make_dead_letters());
    // Examples that name the made-up id get a record that exists.
    const std::string id = some_dead_letter_id();
    std::string script;
    for (const auto& a : e.assignments) script += localize(a, id) + "\n";
    script += localize(e.command, id);
    EXPECT_TRUE(targets_only(script, {ingress_address(), metrics_address()}));

    const CurlRun r = run(e, id);
    ASSERT_EQ(r.exit_code, 0) << r.output;
    const auto expected_status = e.reply ? status_of_reply(*e.reply) : std::nullopt;
    if (expected_status) {
      EXPECT_EQ(r.status, *expected_status) << r.body;
    } else {
      EXPECT_TRUE(r.status >= 200 && r.status < 300) << r.status << " " << r.body;
    }
    if (!e.reply) continue;
    Poco::JSON::Object::Ptr reply;
    try {
      reply = parse_object(r.body);
    } catch (const Poco::Exception& error) {
      ADD_FAILURE() << "not a JSON object: " << r.body;
      continue;
    }
    const auto compared = compared_values(e);
    for (const auto& [key, shown] : top_level_entries(*e.reply)) {
      if (!reply->has(key)) {
        ADD_FAILURE() << "the README shows \"" << key << "\"; got " << r.body;
      } else if (shown && compared.contains(key)) {
        values_compared.insert(key);
        EXPECT_EQ(json_text(reply->get(key)), *shown)
            << "the README shows \"" << key << "\":" << *shown << "; got " << r.body;
      }
    }
  }
  // The quick start's and the admin API's "ok", the 401's "error", and the
  // single-record replay's and delete's counts: a scan that found no values
  // would compare nothing.
  EXPECT_EQ(values_compared, (std::set<std::string>{"ok", "error", "replayed", "deleted"}));
}

// --------------------------------------------------------------- demo --

bool answers(const std::string& url) {
  try {
    http_get(url);
    return true;
  } catch (const Poco::Exception&) {
    return false;
  }
}

std::size_t occurrences(const std::string& text, const std::string& needle) {
  std::size_t n = 0;
  for (std::size_t at = text.find(needle); at != std::string::npos; at = text.find(needle, at + 1)) ++n;
  return n;
}

// `scripts/run.sh --demo` on the binaries of this build (never building or
// configuring anything: SLACK_PROXY_NO_BUILD) and on free ports, in a fresh
// working directory for its queue file. The script leads a process group of
// its own, so that however the test ends, the fake Slack and the proxy it
// started end with it.
struct Demo {
  std::uint16_t port = free_port(), metrics_port = free_port(), fake_port = free_port();
  TempDir work;
  std::unique_ptr<ChildProcess> script;

  Demo() {
    const fs::path bin = fs::path(SP_PROXY_BINARY).parent_path();
    script = std::make_unique<ChildProcess>(
        std::vector<std::string>{"/bin/bash", "-c", "cd \"$0\" && exec bash \"$1\" --demo",
                                 work.path().string(),
                                 (kSourceDir / "scripts" / "run.sh").string()},
        Environment{path_variable(), "BUILD_DIR=" + bin.parent_path().string(),
                    "SLACK_PROXY_NO_BUILD=1", "DEMO_PORT=" + std::to_string(port),
                    "DEMO_METRICS_PORT=" + std::to_string(metrics_port),
                    "DEMO_FAKE_PORT=" + std::to_string(fake_port)},
        work.path() / "demo.log", ProcessGroup::own);
  }
};

// Well under ctest's 60 s per test, whatever happens: every attempt shares
// one deadline to deliver the demo's messages, and the stop has its own;
// past either, the script's whole group is killed.
constexpr auto kDemoDelivers = 25s;
constexpr auto kDemoStops = 10s;

TEST(RunDemoTest, FakeSlackPrintsEveryDemoMessageAndTheScriptStopsWhatItStarted) {
  const fs::path bin = fs::path(SP_PROXY_BINARY).parent_path();
  ASSERT_TRUE(fs::exists(bin / "fake-slack")) << bin / "fake-slack" << " is not built";
  std::vector<std::string> printed;  // what fake-slack prints for each message
  for (int i = 1; i <= 3; ++i)
    for (const char* channel : {"#alerts", "#deploys"})
      printed.push_back(std::string("/api/chat.postMessage ") + channel + " demo message " +
                        std::to_string(i) + "\n");

  // A free port can be taken by another test before the demo binds it: the
  // script then ends at once, saying so, and runs again on fresh ports.
  const auto give_up_at = std::chrono::steady_clock::now() + kDemoDelivers;
  std::unique_ptr<Demo> run;
  bool all_arrived = false;
  for (int attempt = 0; attempt < 3 && !all_arrived; ++attempt) {
    run = std::make_unique<Demo>();
    ChildProcess& script = *run->script;
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        give_up_at - std::chrono::steady_clock::now());
    // The demo has sent everything once it says how to stop it.
    all_arrived = wait_until(
        [&] {
          const std::string out = script.output();
          return !script.running() ||
                 (out.find("Press Ctrl-C to stop") != std::string::npos &&
                  std::all_of(printed.begin(), printed.end(), [&](const std::string& p) {
                    return out.find(p) != std::string::npos;
                  }));
        },
        std::max(left, 0ms)) &&
        script.running();
    if (all_arrived) break;
    if (script.running()) {
      script.kill_hard();
      FAIL() << "run.sh --demo did not deliver every message within " << kDemoDelivers.count()
             << " s:\n" << script.output();
    }
    ASSERT_NE(script.output().find("already in use"), std::string::npos)
        << "run.sh --demo ended before it delivered every message:\n" << script.output();
  }
  ASSERT_TRUE(all_arrived) << "a port was taken on each of 3 attempts";
  ChildProcess& demo = *run->script;
  const std::uint16_t port = run->port, fake_port = run->fake_port;

  // As Ctrl-C would: the script stops the proxy (which drains) and the fake,
  // and exits with the proxy's status.
  demo.signal(SIGTERM);
  const auto exit_code = demo.wait_exit(kDemoStops);
  if (!exit_code) {
    demo.kill_hard();
    FAIL() << "run.sh --demo did not stop within " << kDemoStops.count() << " s of SIGTERM:\n"
           << demo.output();
  }
  EXPECT_EQ(*exit_code, 0) << demo.output();
  EXPECT_FALSE(demo.group_running()) << "run.sh --demo exited but left processes of its group";
  const std::string out = demo.output();
  for (const auto& p : printed) EXPECT_EQ(occurrences(out, p), 1u) << p << out;
  EXPECT_EQ(occurrences(out, "proxy answered {\"ok\":true}"), 6u) << out;
  EXPECT_FALSE(answers("http://127.0.0.1:" + std::to_string(port) + "/health"))
      << "the demo's proxy still runs";
  EXPECT_FALSE(answers("http://127.0.0.1:" + std::to_string(fake_port) + "/_fake/stats"))
      << "the demo's fake Slack still runs";
}

// -------------------------------------------------------------- links --

// A tree that is not documentation: build directories and npm's modules.
bool skipped_directory(const fs::path& dir) {
  const std::string name = dir.filename().string();
  return name == ".git" || name == "node_modules" || fs::exists(dir / "CMakeCache.txt");
}

std::vector<fs::path> markdown_files_in_repository() {
  std::vector<fs::path> files;
  for (auto it = fs::recursive_directory_iterator(kSourceDir); it != fs::recursive_directory_iterator();
       ++it) {
    if (it->is_directory() && skipped_directory(it->path())) {
      it.disable_recursion_pending();
    } else if (it->is_regular_file() && it->path().extension() == ".md") {
      files.push_back(it->path());
    }
  }
  return files;
}

// README.md, docs/*.md and plugins/*/README.md: the docs the links test reads.
std::vector<fs::path> documentation_files() {
  std::vector<fs::path> files{kSourceDir / "README.md"};
  for (const auto& entry : fs::directory_iterator(kSourceDir / "docs"))
    if (entry.path().extension() == ".md") files.push_back(entry.path());
  for (const auto& entry : fs::directory_iterator(kSourceDir / "plugins"))
    if (fs::exists(entry.path() / "README.md")) files.push_back(entry.path() / "README.md");
  return files;
}

// Markdown with fenced code blocks and inline code spans blanked out: a
// link-like text there is not a link.
std::string without_code(const std::string& markdown) {
  std::string out;
  bool fenced = false;
  for (const auto& line : lines_of(markdown)) {
    if (trim_left(line).rfind("```", 0) == 0) {
      fenced = !fenced;
      out += "\n";
      continue;
    }
    if (fenced) {
      out += "\n";
      continue;
    }
    bool in_code = false;
    for (const char c : line) {
      if (c == '`') in_code = !in_code;
      out += in_code || c == '`' ? ' ' : c;
    }
    out += "\n";
  }
  return out;
}

// The anchor GitHub gives a heading: its text as rendered (code marks,
// emphasis and link targets gone), lower-cased, punctuation other than '-'
// and '_' dropped, spaces turned into '-'; repeats get -1, -2, ...
std::set<std::string> heading_anchors(const std::string& markdown) {
  static const std::regex link(R"(\[([^\]]*)\]\([^)]*\))");
  std::set<std::string> anchors;
  std::map<std::string, int> seen;
  bool fenced = false;
  for (const auto& line : lines_of(markdown)) {
    if (trim_left(line).rfind("```", 0) == 0) fenced = !fenced;
    if (fenced || line.empty() || line[0] != '#') continue;
    const auto text_at = line.find_first_not_of('#');
    if (text_at == std::string::npos || line[text_at] != ' ') continue;
    std::string text = std::regex_replace(line.substr(text_at + 1), link, "$1");
    text.erase(text.find_last_not_of(" \t#") + 1);  // a closing "###" is not text
    std::string slug;
    for (const char c : text) {
      const auto u = static_cast<unsigned char>(c);
      if (c == '`' || c == '*') continue;
      if (u >= 0x80 || std::isalnum(u) || c == '-' || c == '_') {
        slug += static_cast<char>(std::tolower(u));
      } else if (c == ' ') {
        slug += '-';
      }
    }
    const int n = seen[slug]++;
    anchors.insert(n == 0 ? slug : slug + "-" + std::to_string(n));
  }
  return anchors;
}

bool inside_repository(const fs::path& path) {
  const fs::path root = fs::weakly_canonical(kSourceDir);
  const fs::path p = fs::weakly_canonical(path);
  const auto [root_end, ignored] = std::mismatch(root.begin(), root.end(), p.begin(), p.end());
  return root_end == root.end();
}

TEST(DocsLinksTest, EveryRelativeLinkResolvesInsideTheRepository) {
  static const std::regex link_target(R"(\]\(([^)\s]+)(?:\s+"[^"]*")?\))");
  int checked = 0;
  for (const fs::path& file : documentation_files()) {
    const std::string text = without_code(read_file(file));
    for (auto it = std::sregex_iterator(text.begin(), text.end(), link_target);
         it != std::sregex_iterator(); ++it) {
      const std::string target = (*it)[1];
      if (target.find("://") != std::string::npos || target.rfind("mailto:", 0) == 0) continue;
      SCOPED_TRACE(fs::relative(file, kSourceDir).string() + ": (" + target + ")");
      ++checked;
      const auto hash = target.find('#');
      const std::string path_part = target.substr(0, hash);
      const fs::path resolved = path_part.empty() ? file : file.parent_path() / path_part;
      EXPECT_TRUE(inside_repository(resolved)) << "points outside the repository";
      if (!fs::exists(resolved)) {
        ADD_FAILURE() << "no such file: " << resolved;
        continue;
      }
      if (hash == std::string::npos) continue;
      const std::string anchor = target.substr(hash + 1);
      const auto anchors = heading_anchors(read_file(resolved));
      EXPECT_TRUE(anchors.contains(anchor)) << "no heading with the anchor #" << anchor;
    }
  }
  // README links its docs and every plugin's README.
  EXPECT_GE(checked, 15);
}

TEST(DocsLinksTest, HeadingAnchorsAreGitHubs) {
  const auto anchors = heading_anchors(
      "# Title\n## Dead letters (admin API)\n```sh\n# not a heading\n```\n"
      "### `slack_retry` (retry policy)\n## Title\n## [Linked](x.md) *text*\n");
  EXPECT_EQ(anchors, (std::set<std::string>{"title", "dead-letters-admin-api",
                                            "slack_retry-retry-policy", "title-1", "linked-text"}));
}

// No Markdown file in the repository names a relative path that leaves it
// (as a link or in code: `../elsewhere/FILE.md` is a dead end for a reader
// of the repository alone).
TEST(DocsLinksTest, NoMarkdownFilePointsOutsideTheRepository) {
  // A path starts a word, a link target or a quoted or code span ("GET
  // .../replay" is no path).
  static const std::regex up_path(R"((?:^|[\s(`'"\[])((?:\.\./)+[A-Za-z0-9_.-][A-Za-z0-9_./-]*))");
  const auto files = markdown_files_in_repository();
  ASSERT_FALSE(files.empty());
  for (const fs::path& file : files) {
    const std::string text = read_file(file);
    for (auto it = std::sregex_iterator(text.begin(), text.end(), up_path);
         it != std::sregex_iterator(); ++it) {
      const std::string target = (*it)[1];
      EXPECT_TRUE(inside_repository(file.parent_path() / target))
          << fs::relative(file, kSourceDir).string() << " names " << target
          << ", which is outside the repository";
    }
  }
}

}  // namespace
}  // namespace slack_proxy::testing

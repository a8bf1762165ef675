// Hot reload (core/src/reload.h) on the real binary: SIGHUP and POST
// /admin/reload under load, refused reloads, rotated keys, a rebuilt plugin
// file, and a pipeline removed while it holds messages.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <csignal>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <set>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "proxy_test.h"

namespace slack_proxy::testing {
namespace {

using namespace std::chrono_literals;

constexpr const char* kReloadOk = "slackproxy_config_last_reload_successful";
constexpr const char* kReloadTime = "slackproxy_config_last_reload_success_timestamp_seconds";

std::vector<std::string> strings_of(const std::string& body, const std::string& key) {
  std::vector<std::string> out;
  const auto array = parse_object(body)->getArray(key);
  if (!array) return out;
  for (std::size_t i = 0; i < array->size(); ++i) out.push_back(array->getElement<std::string>(i));
  return out;
}

::testing::AssertionResult has_line_with(const std::vector<std::string>& lines,
                                         const std::string& needle) {
  for (const auto& line : lines)
    if (line.find(needle) != std::string::npos) return ::testing::AssertionSuccess();
  auto failure = ::testing::AssertionFailure() << "no line has \"" << needle << "\"; lines:";
  for (const auto& line : lines) failure << "\n  " << line;
  return failure;
}

std::size_t count_of(const std::string& text, const std::string& needle) {
  std::size_t n = 0;
  for (auto at = text.find(needle); at != std::string::npos; at = text.find(needle, at + 1)) ++n;
  return n;
}

// Copies `from` to `to` the way an install does: a new file renamed over
// the old one, never written in place.
void install(const std::filesystem::path& from, const std::filesystem::path& to) {
  const auto next = to.string() + ".new";
  std::filesystem::copy_file(from, next, std::filesystem::copy_options::overwrite_existing);
  std::filesystem::rename(next, to);
}

class ReloadTest : public ProxyTest {
 protected:
  HttpResponse reload() { return admin_request(*proxy, "POST", "/admin/reload"); }

  // SIGHUP, then waits until the reload succeeded: its timestamp moved.
  ::testing::AssertionResult reload_by_signal() {
    const double before = metric(proxy->metrics(), kReloadTime);
    proxy->signal(SIGHUP);
    const auto deadline = std::chrono::steady_clock::now() + kDeadline;
    while (metric(proxy->metrics(), kReloadTime) == before) {
      if (std::chrono::steady_clock::now() > deadline)
        return ::testing::AssertionFailure() << "no reload succeeded after SIGHUP:\n"
                                             << proxy->log();
      std::this_thread::sleep_for(10ms);  // polling the scrape, bounded by the deadline
    }
    return ::testing::AssertionSuccess();
  }

  std::string delivered_channel(const std::string& text) {
    EXPECT_TRUE(wait_for_texts(slack, {text}));
    for (const auto& r : slack.requests())
      if (text_of(r) == text) return r.channel;
    return {};
  }
};

// The issue's load test: clients post without pause while the config is
// reloaded twenty times, by signal and by the admin API in turn, each
// reload making new limiter and sink stages. No request is refused, every
// message is delivered exactly once, and each channel's order is kept.
TEST_F(ReloadTest, UnderContinuousLoadNothingIsRefusedLostDuplicatedOrReordered) {
  TempDir state;
  ProxyConfig a = config();
  a.queue_backend = "sqlite";
  a.queue_settings = sqlite_settings(state.path() / "queue.db");
  a.queue_capacity = 100'000;
  a.stages = stage("token_bucket", "key = \"channel\"\nrate = 10000\nburst = 10000\n") +
             ProxyConfig::fast_retry_stages();
  ProxyConfig b = a;
  b.stages = stage("token_bucket", "key = \"channel\"\nrate = 9999\nburst = 9999\n") +
             ProxyConfig::fast_retry_stages();
  start(a);

  constexpr int kClients = 4;
  std::atomic<bool> stop{false};
  std::atomic<int> sent{0};
  std::vector<std::vector<int>> statuses(kClients);
  std::vector<std::thread> clients;
  // Stops and joins the clients however the test leaves (an ASSERT too).
  struct Joiner {
    std::atomic<bool>& stop;
    std::vector<std::thread>& threads;
    ~Joiner() {
      stop.store(true);
      for (auto& t : threads)
        if (t.joinable()) t.join();
    }
  } joiner{stop, clients};
  for (int k = 0; k < kClients; ++k) {
    clients.emplace_back([&, k] {
      for (int i = 0; !stop.load(); ++i) {
        statuses[k].push_back(
            proxy->post(message("#load" + std::to_string(k), std::to_string(k) + "-" +
                                                                  std::to_string(i)))
                .status);
        sent.fetch_add(1);
      }
    });
  }
  const auto started = std::chrono::steady_clock::now();
  constexpr int kReloads = 20;
  for (int r = 0; r < kReloads; ++r) {
    // Fifty requests or more between two reloads, so that each lands among them.
    const int mark = sent.load();
    const auto deadline = std::chrono::steady_clock::now() + kDeadline;
    while (sent.load() < mark + 50) {
      ASSERT_LT(std::chrono::steady_clock::now(), deadline) << "the clients stalled";
      std::this_thread::sleep_for(1ms);
    }
    proxy->rewrite_config((r % 2 == 0 ? b : a).toml());
    if (r % 2 == 0) {
      const HttpResponse reply = reload();
      EXPECT_EQ(reply.status, 200) << reply.body;
    } else {
      ASSERT_TRUE(reload_by_signal());
    }
  }
  stop.store(true);
  for (auto& t : clients) t.join();
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  EXPECT_EQ(count_of(proxy->log(), "configuration reloaded from"),
            static_cast<std::size_t>(kReloads));

  std::set<std::string> texts;
  int refused = 0;
  for (int k = 0; k < kClients; ++k) {
    for (std::size_t i = 0; i < statuses[k].size(); ++i) {
      if (statuses[k][i] != 200) ++refused;
      texts.insert(std::to_string(k) + "-" + std::to_string(i));
    }
  }
  EXPECT_EQ(refused, 0);
  ASSERT_TRUE(wait_for_texts(slack, texts, 60s));

  std::map<std::string, int> seen_times;
  std::map<std::string, int> last_in_channel;
  int out_of_order = 0;
  for (const auto& r : slack.requests()) {
    const std::string text = text_of(r);
    ++seen_times[text];
    const int i = std::stoi(text.substr(text.find('-') + 1));
    auto [it, fresh] = last_in_channel.try_emplace(r.channel, i);
    if (!fresh) {
      if (i < it->second) ++out_of_order;
      it->second = i;
    }
  }
  int duplicated = 0;
  for (const auto& [text, times] : seen_times) duplicated += times > 1;
  EXPECT_EQ(duplicated, 0);
  EXPECT_EQ(out_of_order, 0);
  EXPECT_EQ(seen_times.size(), texts.size()) << "lost: none may be";
  const std::string figures = std::to_string(texts.size()) + " requests during " +
                              std::to_string(kReloads) + " reloads in " +
                              std::to_string(seconds) + " s: refused " + std::to_string(refused) +
                              ", lost " + std::to_string(texts.size() - seen_times.size()) +
                              ", duplicated " + std::to_string(duplicated) + ", out of order " +
                              std::to_string(out_of_order);
  RecordProperty("figures", figures);
  std::cout << "[ figures  ] " << figures << "\n";
}

// A file that does not parse, settings only a restart applies, and a stage
// its plugin refuses: each reload is refused with the reasons (as
// `validate` words them), the metric says so, and the running pipeline
// keeps delivering as before. A good reload then applies.
TEST_F(ReloadTest, ARefusedReloadLeavesTheRunningConfigurationAsItWas) {
  ProxyConfig old_config = config();
  old_config.stages = stage("channel_override", "channel = \"#old\"\n");
  start(old_config);
  const double started_at = metric(proxy->metrics(), kReloadTime);

  proxy->rewrite_config(old_config.toml() + "\n[[pipeline]\nname = \n");
  HttpResponse reply = reload();
  EXPECT_EQ(reply.status, 409) << reply.body;
  EXPECT_EQ(error_of(reply), "reload_refused");
  EXPECT_TRUE(has_line_with(strings_of(reply.body, "errors"), proxy->config_path().string() + ":"));
  EXPECT_TRUE(proxy->wait_for_metric(kReloadOk, 0));

  ProxyConfig restart_only = old_config;
  restart_only.queue_capacity = 7;
  restart_only.workers = 3;
  std::string text = restart_only.toml();
  text.replace(text.find("@LISTEN@"), 8, "127.0.0.1:1");
  proxy->rewrite_config(text);
  reply = reload();
  EXPECT_EQ(reply.status, 409) << reply.body;
  const auto errors = strings_of(reply.body, "errors");
  EXPECT_TRUE(has_line_with(errors, "[server] listen cannot change without a restart"));
  EXPECT_TRUE(has_line_with(errors, "[queue] capacity cannot change without a restart"));
  EXPECT_TRUE(has_line_with(errors, "[dispatcher] workers cannot change without a restart"));
  EXPECT_EQ(errors.size(), 3u) << reply.body;

  ProxyConfig refused_stage = old_config;
  refused_stage.stages += stage("token_bucket", "rate = -1\n");
  proxy->rewrite_config(refused_stage.toml());
  reply = reload();
  EXPECT_EQ(reply.status, 409) << reply.body;
  EXPECT_TRUE(has_line_with(strings_of(reply.body, "errors"), "rate"));

  EXPECT_TRUE(proxy->wait_for_log("configuration reload refused, the running one stays"));
  EXPECT_EQ(metric(proxy->metrics(), kReloadTime), started_at) << "no reload succeeded";
  ASSERT_EQ(proxy->post(message("#asked", "after-refusals")).status, 200);
  EXPECT_EQ(delivered_channel("after-refusals"), "#old") << "the old pipeline still runs";

  ProxyConfig new_config = config();
  new_config.stages = stage("channel_override", "channel = \"#new\"\n");
  proxy->rewrite_config(new_config.toml());
  reply = reload();
  ASSERT_EQ(reply.status, 200) << reply.body;
  EXPECT_TRUE(has_line_with(strings_of(reply.body, "changes"),
                            "pipeline 'slack': stage 'channel_override' settings changed"));
  EXPECT_TRUE(proxy->wait_for_metric(kReloadOk, 1));
  EXPECT_GT(metric(proxy->metrics(), kReloadTime), started_at);
  ASSERT_EQ(proxy->post(message("#asked", "after-reload")).status, 200);
  EXPECT_EQ(delivered_channel("after-reload"), "#new");
}

// A client key and the admin key, each in its file, replaced in place: the
// reload reads them again, the new ones work at once and the old ones are
// refused. Neither key appears in the log.
TEST_F(ReloadTest, RotatedClientAndAdminKeysWorkAtOnceAndTheOldOnesStop) {
  TempDir keys;
  const std::string old_key = "client-key-old-5f1e2d3c4b5a69788796";
  const std::string new_key = "client-key-new-0a1b2c3d4e5f60718293";
  const std::string new_admin_key = "admin-key-new-77e6d5c4b3a29180";
  const auto client_keys = keys.write("client.keys", "ci " + old_key + "\n");
  const auto admin_key = keys.write("admin.key", std::string(kAdminKey) + "\n");
  ProxyConfig c = config();
  c.stages = stage("bearer_auth", "keys_file = \"" + client_keys.string() + "\"\nkeys_env = \"\"\n");
  const std::string text =
      c.toml() + "\n[admin]\nkey_file = \"" + admin_key.string() + "\"\n";
  start(text);
  const auto post_with = [&](const std::string& key, const std::string& body) {
    HttpRequest request;
    request.method = "POST";
    request.url = proxy->url();
    request.body = body;
    request.content_type = "application/json";
    request.headers = {{"Authorization", "Bearer " + key}};
    return http_send(request);
  };
  ASSERT_EQ(post_with(old_key, message("#a", "old-key")).status, 200);

  keys.write("client.keys", "ci " + new_key + "\n");
  keys.write("admin.key", new_admin_key + "\n");
  const HttpResponse reply = reload();  // still judged by the key of its moment
  ASSERT_EQ(reply.status, 200) << reply.body;
  EXPECT_TRUE(has_line_with(strings_of(reply.body, "changes"), "admin key replaced"));

  EXPECT_EQ(post_with(new_key, message("#a", "new-key")).status, 200);
  const HttpResponse old_refused = post_with(old_key, message("#a", "old-key-again"));
  EXPECT_EQ(old_refused.status, 401) << old_refused.body;
  EXPECT_EQ(admin_request(*proxy, "GET", "/admin/queue").status, 401) << "the old admin key";
  HttpRequest admin;
  admin.method = "GET";
  admin.url = proxy->metrics_url("/admin/queue");
  admin.headers = {{"Authorization", "Bearer " + new_admin_key}};
  EXPECT_EQ(http_send(admin).status, 200) << "the new admin key";
  EXPECT_TRUE(wait_for_texts(slack, {"old-key", "new-key"}));

  const std::string log = proxy->log();
  for (const std::string& secret : {old_key, new_key, new_admin_key, std::string(kAdminKey)})
    EXPECT_EQ(log.find(secret), std::string::npos) << "a key is in the log";
}

// A plugin file rebuilt and installed over the old one is loaded on reload
// (the dynamic loader would hand back the old library for the same path;
// the host loads the new file from a private copy), and routes from then on.
TEST_F(ReloadTest, ARebuiltPluginFileIsUsedAfterReload) {
  TempDir plugins;
  const auto installed = plugins.path() / "version_router.so";
  install(std::filesystem::path(SP_TEST_PLUGIN_DIR) / "version_router_v1.so", installed);
  ProxyConfig c = config();
  c.plugin_paths = {plugins.path().string()};
  c.stages = stage("version_router");
  start(c);
  ASSERT_EQ(proxy->post(message("#asked", "with-v1")).status, 200);
  EXPECT_EQ(delivered_channel("with-v1"), "#v1");

  install(std::filesystem::path(SP_TEST_PLUGIN_DIR) / "version_router_v2.so", installed);
  HttpResponse reply = reload();
  ASSERT_EQ(reply.status, 200) << reply.body;
  EXPECT_TRUE(has_line_with(strings_of(reply.body, "changes"),
                            "plugin version_router loaded from its rebuilt file " +
                                installed.string()));
  ASSERT_EQ(proxy->post(message("#asked", "with-v2")).status, 200);
  EXPECT_EQ(delivered_channel("with-v2"), "#v2");

  // Unchanged since: the same library again, no new copy.
  reply = reload();
  ASSERT_EQ(reply.status, 200) << reply.body;
  EXPECT_EQ(strings_of(reply.body, "changes"), std::vector<std::string>{"no setting changed"});
  ASSERT_EQ(proxy->post(message("#asked", "still-v2")).status, 200);
  EXPECT_EQ(delivered_channel("still-v2"), "#v2");
}

// The same after the plugin was in use, then in no pipeline at all. Built
// by GCC, version_router has an STB_GNU_UNIQUE symbol, as most C++ plugins
// do, and glibc keeps such a library loaded past its last dlclose(), so
// loading the path again would still give the old build (clang emits no
// such symbol: there the library is gone and the path loads the new one).
TEST_F(ReloadTest, APluginRebuiltWhileNoPipelineUsedItIsTheNewBuildWhenOneDoesAgain) {
  TempDir plugins;
  const auto installed = plugins.path() / "version_router.so";
  install(std::filesystem::path(SP_TEST_PLUGIN_DIR) / "version_router_v1.so", installed);
  ProxyConfig without = config();
  without.plugin_paths = {plugins.path().string()};
  ProxyConfig with = without;
  with.stages = stage("version_router");
  start(without);

  proxy->rewrite_config(with.toml());
  ASSERT_EQ(reload().status, 200);
  ASSERT_EQ(proxy->post(message("#asked", "with-v1")).status, 200);
  EXPECT_EQ(delivered_channel("with-v1"), "#v1");
  proxy->rewrite_config(without.toml());
  ASSERT_EQ(reload().status, 200);  // nothing uses version_router now
  ASSERT_EQ(proxy->post(message("#asked", "without")).status, 200);
  EXPECT_EQ(delivered_channel("without"), "#asked");

  install(std::filesystem::path(SP_TEST_PLUGIN_DIR) / "version_router_v2.so", installed);
  proxy->rewrite_config(with.toml());
  const HttpResponse reply = reload();
  ASSERT_EQ(reply.status, 200) << reply.body;
  EXPECT_TRUE(has_line_with(strings_of(reply.body, "changes"),
                            "plugin version_router loaded from its rebuilt file"));
  ASSERT_EQ(proxy->post(message("#asked", "with-v2")).status, 200);
  EXPECT_EQ(delivered_channel("with-v2"), "#v2");
}

// Messages queued for a pipeline that a reload removes are not lost: they
// become dead letters (unknown_pipeline) at once, though their lane waited
// 1000 s for its bucket (a reload asks limiter waits again), and once a
// pipeline of that name is back, a replay delivers them.
TEST_F(ReloadTest, MessagesOfARemovedPipelineBecomeDeadLettersAndAReplayDeliversThem) {
  const std::string other =
      "\n[[pipeline]]\nname = \"other\"\npaths = [\"/other\"]\n" +
      stage("token_bucket", "key = \"channel\"\nrate = 0.001\nburst = 1\nshared = false\n") +
      stage("slack_sink", "url = \"" + slack.url() + "\"\n");
  const ProxyConfig c = config();
  start(c.toml() + other);
  ASSERT_EQ(proxy->post(message("#o", "first"), "/other").status, 200);
  ASSERT_EQ(proxy->post(message("#o", "second"), "/other").status, 200);
  ASSERT_TRUE(wait_for_texts(slack, {"first"}));  // "second" waits 1000 s for its token

  proxy->rewrite_config(c.toml());
  HttpResponse reply = reload();
  ASSERT_EQ(reply.status, 200) << reply.body;
  EXPECT_TRUE(has_line_with(strings_of(reply.body, "changes"), "pipeline 'other' removed"));
  EXPECT_TRUE(proxy->wait_for_metric(
      "slackproxy_dead_lettered_total{channel=\"#o\",kind=\"failed\"}", 1));
  const HttpResponse listed = admin_request(*proxy, "GET", "/admin/dead-letters?error=unknown_pipeline");
  ASSERT_EQ(listed.status, 200) << listed.body;
  EXPECT_EQ(parse_object(listed.body)->getArray("dead_letters")->size(), 1u) << listed.body;

  proxy->rewrite_config(c.toml() + other);
  ASSERT_EQ(reload().status, 200);
  reply = admin_request(*proxy, "POST", "/admin/dead-letters/replay?error=unknown_pipeline");
  ASSERT_EQ(reply.status, 200) << reply.body;
  EXPECT_EQ(parse_object(reply.body)->getValue<int>("replayed"), 1) << reply.body;
  EXPECT_TRUE(wait_for_texts(slack, {"first", "second"}));
  EXPECT_EQ(slack.requests().size(), 2u) << "each once";
}

}  // namespace
}  // namespace slack_proxy::testing

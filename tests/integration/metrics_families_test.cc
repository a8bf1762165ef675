// Every metric family that README.md's "## Metrics" table documents, on the
// real binary after real traffic: by name, TYPE and label names, with a
// series that the traffic moved; and the whole scrape through Prometheus'
// own linter, `promtool check metrics`. The family list is read from the
// README at run time, so the table and this test cannot drift apart. And
// the alert rules (config/prometheus/) query only what such a proxy
// exports, in PromQL that promtool takes.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <map>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "proxy_test.h"

namespace slack_proxy::testing {
namespace {

using namespace std::chrono_literals;

// The table says "(histogram)" for histograms; the other types it leaves
// unsaid. A family added to the table needs its type here, or the test fails.
const std::map<std::string, std::string> kCounterOrGauge = {
    {"slackproxy_requests_received_total", "counter"},
    {"slackproxy_requests_succeeded_total", "counter"},
    {"slackproxy_requests_retried_total", "counter"},
    {"slackproxy_requests_failed_total", "counter"},
    {"slackproxy_requests_not_processed_total", "counter"},
    {"slackproxy_queue_size", "gauge"},
    {"slackproxy_queue_bytes", "gauge"},
    {"slackproxy_dead_letters", "gauge"},
    {"slackproxy_dead_lettered_total", "counter"},
    {"slackproxy_requests_duplicate_total", "counter"},
    {"slackproxy_requests_rejected_total", "counter"},
    {"slackproxy_rate_limited_total", "counter"},
    {"slackproxy_channel_queue_depth", "gauge"},
    {"slackproxy_denylist_size", "gauge"},
    {"slackproxy_plugin_exceptions_total", "counter"},
    // #limited's 429 below makes the proxy learn a pace for the workspace.
    {"slackproxy_effective_rate", "gauge"},
    {"slackproxy_learned_pacing_channels", "gauge"},
};

// A reply this slow keeps one message in flight while the scrape is taken,
// so the gauges of what is queued have something to show; the scrape comes
// within milliseconds of the request reaching the fake.
constexpr auto kSlowReply = 2s;

// `# TYPE name type` and `# HELP name text` lines of a scrape, by name.
std::map<std::string, std::string> comment_lines(const std::string& text,
                                                 const std::string& keyword) {
  std::map<std::string, std::string> found;
  std::istringstream lines(text);
  const std::string prefix = "# " + keyword + " ";
  for (std::string line; std::getline(lines, line);) {
    if (line.rfind(prefix, 0) != 0) continue;
    const std::string rest = line.substr(prefix.size());
    const std::size_t space = rest.find(' ');
    found[rest.substr(0, space)] = space == std::string::npos ? "" : rest.substr(space + 1);
  }
  return found;
}

std::set<std::string> label_names(const Sample& s) {
  std::set<std::string> names;
  for (const auto& [name, value] : s.labels) names.insert(name);
  return names;
}

std::string text_of(const std::set<std::string>& names) {
  std::string out = "{";
  for (const auto& n : names) out += (out.size() > 1 ? "," : "") + n;
  return out + "}";
}

// The family a series belongs to: a histogram's _bucket, _sum and _count
// series are its family's.
std::string family_of(std::string series_name) {
  for (const char* suffix : {"_bucket", "_sum", "_count"})
    if (series_name.size() > std::strlen(suffix) &&
        series_name.compare(series_name.size() - std::strlen(suffix), std::string::npos, suffix) ==
            0)
      series_name.resize(series_name.size() - std::strlen(suffix));
  return series_name;
}

// The slackproxy_* metric families a text (a rules file, a query) queries.
std::set<std::string> families_queried_by(const std::string& text) {
  static const std::regex name("slackproxy_[a-z_]+");
  std::set<std::string> queried;
  for (auto it = std::sregex_iterator(text.begin(), text.end(), name);
       it != std::sregex_iterator(); ++it)
    queried.insert(family_of(it->str()));
  return queried;
}

// Fails the test for each of `families` that `scrape` does not export (no
// `# TYPE` line): a rule or a panel on it would never see a value.
void expect_exported(const std::string& scrape, const std::set<std::string>& families,
                     const std::string& queried_by) {
  for (const auto& family : families)
    EXPECT_TRUE(family_exposed(scrape, family))
        << family << " is queried by " << queried_by << " but not exported";
}

// promtool with `args`, run to completion in `dir`: its exit code (-1 when
// it did not finish within kDeadline) and what it printed.
CommandResult run_promtool(const std::filesystem::path& promtool, std::vector<std::string> args,
                           const TempDir& dir) {
  args.insert(args.begin(), promtool.string());
  ChildProcess run(args, {}, dir.path() / "promtool.log");
  const auto code = run.wait_exit(kDeadline);
  return {code.value_or(-1), run.output()};
}

class MetricsFamiliesTest : public ProxyTest {
 protected:
  // Sends traffic that moves every documented family, and returns the
  // scrape taken while the last message is still in flight. Each step
  // waits for the outcome it causes, so the scrape shows all of them.
  std::string scrape_after_every_kind_of_traffic() {
    slack.enqueue(Behaviour::http_status(503), 1, "#flaky");       // retried
    slack.enqueue(Behaviour::rate_limited(0), 1, "#limited");      // rate-limited, retried
    // Two delivered, then a 429: a channel that sent twice in a second is
    // learned as the cause (slackproxy_learned_pacing_channels).
    slack.enqueue(Behaviour::ok(), 2, "#busy");
    slack.enqueue(Behaviour::rate_limited(0), 1, "#busy");
    slack.enqueue(Behaviour::error("invalid_auth"), 1, "#perm");   // failed
    slack.enqueue(Behaviour::error("channel_not_found"), 1, "#gone");  // failed, parked
    slack.enqueue(Behaviour::slow(kSlowReply), 1, "#slow");
    // A router that throws for #boom (tests/abi_plugins/faulty_router.cc)
    // and passes everything else.
    ProxyConfig c = config();
    c.plugin_paths = {SP_TEST_PLUGIN_DIR};
    c.stages = stage("faulty_router") + ProxyConfig::fast_retry_stages();
    auto& p = start(c);

    // #busy first and alone, so that no other 429 has slowed the workspace.
    for (int i = 0; i < 3; ++i) EXPECT_EQ(p.post(message("#busy", "traffic")).status, 200);
    EXPECT_TRUE(p.wait_for_metric(series(kSucceeded, "#busy"), 3));
    for (const char* channel : {"#ok", "#flaky", "#limited", "#perm", "#gone"}) {
      EXPECT_EQ(p.post(message(channel, "traffic")).status, 200) << channel;
    }
    EXPECT_EQ(post_with_key(p, message("#dup", "once"), "families-1").status, 200);
    EXPECT_EQ(post_with_key(p, message("#dup", "once"), "families-1").status, 200);  // duplicate
    EXPECT_EQ(p.post("{not json").status, 400);                                    // rejected
    EXPECT_EQ(p.post(message("#boom", "throws")).status, 500);  // a plugin's exception
    EXPECT_TRUE(p.wait_for_metric(series(kFailed, "#gone"), 1));
    EXPECT_EQ(p.post(message("#gone", "parked")).status, 200);  // not processed
    EXPECT_TRUE(p.wait_for_metric(series(kNotProcessed, "#gone"), 1));
    for (const char* channel : {"#ok", "#flaky", "#limited", "#dup"}) {
      EXPECT_TRUE(p.wait_for_metric(series(kSucceeded, channel), 1)) << channel;
    }
    EXPECT_TRUE(p.wait_for_metric(series(kFailed, "#perm"), 1));

    const std::size_t before = slack.count();
    EXPECT_EQ(p.post(message("#slow", "in flight")).status, 200);
    EXPECT_TRUE(slack.wait_for(before + 1, kDeadline));
    const std::string scrape = p.metrics();
    // Delivered in the end, so that the proxy has nothing in flight when
    // it is stopped.
    EXPECT_TRUE(p.wait_for_metric(series(kSucceeded, "#slow"), 1, kDeadline + kSlowReply));
    return scrape;
  }
};

TEST_F(MetricsFamiliesTest, ExposesEveryDocumentedFamilyWithItsTypeAndLabelsAfterRealTraffic) {
  const std::string m = scrape_after_every_kind_of_traffic();
  const auto types = comment_lines(m, "TYPE");
  const auto helps = comment_lines(m, "HELP");
  const std::vector<Sample> all = samples(m);
  const auto& documented = documented_metric_families();
  ASSERT_GE(documented.size(), kCounterOrGauge.size()) << "README.md's table lost rows";

  for (const DocumentedFamily& family : documented) {
    SCOPED_TRACE(family.name);
    std::string expected_type = "histogram";
    if (!family.histogram) {
      const auto known = kCounterOrGauge.find(family.name);
      if (known == kCounterOrGauge.end()) {
        ADD_FAILURE() << "README.md documents " << family.name
                      << " but this test knows no type for it";
        continue;
      }
      expected_type = known->second;
    }
    if (types.count(family.name) == 0) {
      ADD_FAILURE() << family.name << " is not exposed; scrape:\n" << m;
      continue;
    }
    EXPECT_EQ(types.at(family.name), expected_type);
    EXPECT_FALSE(helps.count(family.name) == 0 || helps.at(family.name).empty())
        << "no help text";

    const std::set<std::string> labels(family.labels.begin(), family.labels.end());
    // A histogram's series are name_bucket (with `le`), name_sum and name_count.
    std::map<std::string, std::set<std::string>> expected_series;
    if (family.histogram) {
      std::set<std::string> with_le = labels;
      with_le.insert("le");
      expected_series = {{family.name + "_bucket", with_le},
                         {family.name + "_sum", labels},
                         {family.name + "_count", labels}};
    } else {
      expected_series = {{family.name, labels}};
    }
    for (const auto& [name, names] : expected_series) {
      int found = 0;
      bool moved = false;
      for (const Sample& s : all) {
        if (s.name != name) continue;
        ++found;
        moved = moved || s.value > 0;
        EXPECT_EQ(label_names(s), names) << name << " has labels " << text_of(label_names(s))
                                         << ", README.md documents " << text_of(names);
      }
      EXPECT_GT(found, 0) << name << " has no series; scrape:\n" << m;
      // The traffic above reached every family: some series of each is above 0.
      EXPECT_TRUE(moved) << name << " never moved; scrape:\n" << m;
    }
    if (family.histogram) {
      const std::string inf = family.name + "_bucket{le=\"+Inf\"}";
      EXPECT_EQ(metric(m, inf), metric(m, family.name + "_count")) << "the +Inf bucket is the count";
    }
  }

  // And nothing the proxy exposes here is missing from the table.
  for (const auto& exposed : types) {
    // Named, not a structured binding: clang 14 cannot capture one in a lambda.
    const auto& name = exposed.first;
    const auto& type = exposed.second;
    if (name.rfind("slackproxy_", 0) != 0) continue;
    EXPECT_TRUE(std::any_of(documented.begin(), documented.end(),
                            [&](const DocumentedFamily& f) { return f.name == name; }))
        << name << " (" << type << ") is exposed but not in README.md's metrics table";
  }

  // What each kind of traffic counted, where it counted it.
  EXPECT_EQ(metric(m, series(kReceived, "#ok")), 1);
  EXPECT_EQ(metric(m, series(kRetried, "#flaky")), 1);
  EXPECT_EQ(metric(m, series("slackproxy_rate_limited_total", "#limited")), 1);
  EXPECT_EQ(metric(m, series("slackproxy_requests_duplicate_total", "#dup")), 1);
  EXPECT_EQ(metric(m, "slackproxy_requests_rejected_total{error=\"invalid_json\"}"), 1);
  EXPECT_EQ(metric(m, "slackproxy_plugin_exceptions_total"
                     "{pipeline=\"slack\",stage=\"faulty_router\",method=\"route\"}"),
            1);
  EXPECT_EQ(metric(m, "slackproxy_dead_lettered_total{channel=\"#perm\",kind=\"failed\"}"), 1);
  EXPECT_EQ(metric(m, "slackproxy_dead_lettered_total{channel=\"#gone\",kind=\"not_processed\"}"),
            1);
  EXPECT_EQ(metric(m, "slackproxy_dead_letters"), 3);  // #perm, #gone twice
  EXPECT_EQ(metric(m, "slackproxy_denylist_size"), 1);
  EXPECT_EQ(metric(m, series("slackproxy_channel_queue_depth", "#slow")), 1);
  EXPECT_EQ(metric(m, "slackproxy_queue_size"), 1);
  EXPECT_GT(metric(m, "slackproxy_queue_bytes"), 0);
}

TEST_F(MetricsFamiliesTest, PromtoolFindsNothingWrongWithTheScrapeAfterRealTraffic) {
  SP_REQUIRE_TOOL(promtool, "prometheus", "promtool");
  const std::string m = scrape_after_every_kind_of_traffic();
  TempDir dir;
  const auto scrape = dir.write("metrics.txt", m);
  // promtool reads the metrics on stdin; the harness gives a child /dev/null.
  ChildProcess check({"/bin/sh", "-c", "exec \"$0\" check metrics < \"$1\"", promtool.string(),
                      scrape.string()},
                     {}, dir.path() / "promtool.log");
  const auto code = check.wait_exit(kDeadline);
  ASSERT_TRUE(code.has_value()) << "promtool did not finish";
  // Exit 1 is a parse error, 3 a lint problem; either prints what it found.
  EXPECT_EQ(*code, 0) << check.output() << "\nscrape:\n" << m;
  EXPECT_EQ(check.output(), "") << "scrape:\n" << m;
}

// config/prometheus/slack-proxy-alerts.yml: Prometheus' own checker finds
// nothing wrong with it, its unit tests (slack-proxy-alerts.test.yml: each
// alert fires on a bad series and stays quiet on a healthy one) pass, and
// every metric it queries is exported by a live proxy after real traffic:
// a rule on a metric that is not exported would never fire.
TEST_F(MetricsFamiliesTest, TheAlertRulesPassPromtoolAndQueryOnlyExportedMetrics) {
  SP_REQUIRE_TOOL(promtool, "prometheus", "promtool");
  const std::filesystem::path rules =
      std::filesystem::path(SP_SOURCE_DIR) / "config/prometheus/slack-proxy-alerts.yml";
  const std::filesystem::path tests =
      std::filesystem::path(SP_SOURCE_DIR) / "config/prometheus/slack-proxy-alerts.test.yml";
  TempDir dir;
  for (const auto& args : std::vector<std::vector<std::string>>{
           {"check", "rules", rules.string()}, {"test", "rules", tests.string()}}) {
    const CommandResult run = run_promtool(promtool, args, dir);
    EXPECT_EQ(run.exit_code, 0) << args[0] << " rules:\n" << run.output;
  }

  const std::string rules_text = read_file(rules);
  const std::set<std::string> queried = families_queried_by(rules_text);
  ASSERT_GE(queried.size(), 4u) << rules_text;
  expect_exported(scrape_after_every_kind_of_traffic(), queried, "an alert rule");
}

}  // namespace
}  // namespace slack_proxy::testing

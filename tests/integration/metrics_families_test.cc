// Every metric family that README.md's "## Metrics" table documents, on the
// real binary after real traffic: by name, TYPE and label names, with a
// series that the traffic moved; and the whole scrape through Prometheus'
// own linter, `promtool check metrics`. The family list is read from the
// README at run time, so the table and this test cannot drift apart. And
// the alert rules (config/prometheus/) and the Grafana dashboard
// (config/grafana/) query only what such a proxy exports, in PromQL that
// promtool takes.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <map>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <Poco/JSON/Array.h>
#include <Poco/JSON/Object.h>

#include "proxy_test.h"
#include "redis_server.h"

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
    {"slackproxy_channel_oldest_age_seconds", "gauge"},
    {"slackproxy_queue_oldest_age_seconds", "gauge"},
    {"slackproxy_config_last_reload_successful", "gauge"},
    {"slackproxy_config_last_reload_success_timestamp_seconds", "gauge"},
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
  // #slow's message is in flight behind the fake's slow reply, accepted a
  // moment before the scrape: it has waited, but less than the reply takes.
  const double slow_age = metric(m, series("slackproxy_channel_oldest_age_seconds", "#slow"));
  EXPECT_GT(slow_age, 0);
  EXPECT_LT(slow_age, std::chrono::duration<double>(kSlowReply).count());
  EXPECT_EQ(metric(m, "slackproxy_queue_oldest_age_seconds"), slow_age);
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

// --- The Grafana dashboard, config/grafana/slack-proxy.json ------------------

// Families a proxy exports only with [redis] configured (RedisMetrics in
// core/src/redis/redis_connection.cc, one series per connection role), for
// the dashboard's Redis row. A query on them is checked against a proxy with
// [redis]; the plain proxy must not export them, or this list is stale.
const std::set<std::string> kOnlyWithRedis = {
    "slackproxy_redis_commands_total",     "slackproxy_redis_errors_total",
    "slackproxy_redis_reply_errors_total", "slackproxy_redis_round_trip_seconds",
    "slackproxy_redis_connects_total",
};

// What the issue asks the dashboard to show: ingest, deliveries, failures
// and dead letters by channel, the queue's depth and its oldest message's
// age, 429s and the effective rate, delivery latency.
const std::set<std::string> kAskedFor = {
    "slackproxy_requests_received_total",   "slackproxy_requests_succeeded_total",
    "slackproxy_requests_failed_total",     "slackproxy_dead_lettered_total",
    "slackproxy_dead_letters",              "slackproxy_queue_size",
    "slackproxy_channel_queue_depth",       "slackproxy_queue_oldest_age_seconds",
    "slackproxy_channel_oldest_age_seconds", "slackproxy_rate_limited_total",
    "slackproxy_effective_rate",            "slackproxy_delivery_latency_seconds",
};

// Grafana's own variables, as a duration it could put in; promtool only
// parses them.
const std::map<std::string, std::string> kGrafanaBuiltins = {
    {"__rate_interval", "2m"}, {"__interval", "30s"}, {"__range", "6h"}};

// Where its panels point: the dashboard's datasource variable.
constexpr const char* kDatasourceUid = "${datasource}";

struct DashboardQuery {
  std::string where;   // "panel 12 \"Delivery latency\", query B": for messages
  std::string record;  // its recording rule's name in the file promtool checks
  // PromQL with Grafana's variables in it; a variable's
  // label_values(selector, label) is written count by (label) (selector),
  // which asks Prometheus for the same series.
  std::string expr;
};

struct Dashboard {
  Poco::JSON::Object::Ptr model;
  std::vector<Poco::JSON::Object::Ptr> panels;  // every one, those inside rows too
  std::vector<Poco::JSON::Object::Ptr> variables;
  std::vector<DashboardQuery> queries;  // every panel target's and query variable's
};

void collect_panels(const Poco::JSON::Array::Ptr& list,
                    std::vector<Poco::JSON::Object::Ptr>& panels) {
  for (std::size_t i = 0; !list.isNull() && i < list->size(); ++i) {
    const Poco::JSON::Object::Ptr panel = list->getObject(i);
    if (panel.isNull()) throw std::runtime_error("a panel that is not a JSON object");
    panels.push_back(panel);
    collect_panels(panel->getArray("panels"), panels);  // a collapsed row's
  }
}

std::string panel_name(const Poco::JSON::Object::Ptr& panel) {
  return "panel " + std::to_string(panel->optValue<int>("id", -1)) + " \"" +
         panel->optValue<std::string>("title", "") + "\"";
}

// A query variable's query: a string, or {"query": ..., "refId": ...}.
std::string variable_query(const Poco::JSON::Object::Ptr& variable) {
  const Poco::JSON::Object::Ptr object = variable->getObject("query");
  return object.isNull() ? variable->optValue<std::string>("query", "")
                         : object->optValue<std::string>("query", "");
}

Dashboard read_dashboard() {
  Dashboard d;
  d.model = parse_object(
      read_file(std::filesystem::path(SP_SOURCE_DIR) / "config/grafana/slack-proxy.json"));
  collect_panels(d.model->getArray("panels"), d.panels);
  for (const auto& panel : d.panels) {
    const Poco::JSON::Array::Ptr targets = panel->getArray("targets");
    for (std::size_t i = 0; !targets.isNull() && i < targets->size(); ++i) {
      const auto target = targets->getObject(i);
      const std::string ref = target->optValue<std::string>("refId", "");
      d.queries.push_back(
          {panel_name(panel) + ", query " + ref,
           "dashboard:panel_" + std::to_string(panel->optValue<int>("id", -1)) + "_" + ref,
           target->optValue<std::string>("expr", "")});
    }
  }
  const Poco::JSON::Object::Ptr templating = d.model->getObject("templating");
  const Poco::JSON::Array::Ptr list =
      templating.isNull() ? Poco::JSON::Array::Ptr() : templating->getArray("list");
  static const std::regex label_values(R"(^\s*label_values\((.*),\s*(\w+)\s*\)\s*$)");
  for (std::size_t i = 0; !list.isNull() && i < list->size(); ++i) {
    const auto variable = list->getObject(i);
    d.variables.push_back(variable);
    if (variable->optValue<std::string>("type", "") != "query") continue;
    const std::string name = variable->optValue<std::string>("name", "");
    std::string expr = variable_query(variable);
    std::smatch m;
    // Anything else is left as it is, for promtool to refuse.
    if (std::regex_match(expr, m, label_values))
      expr = "count by (" + m[2].str() + ") (" + m[1].str() + ")";
    d.queries.push_back({"variable $" + name, "dashboard:variable_" + name, expr});
  }
  return d;
}

// Whether `object`'s datasource is the dashboard's datasource variable.
bool uses_datasource_variable(const Poco::JSON::Object::Ptr& object) {
  const Poco::JSON::Object::Ptr ds = object->getObject("datasource");
  return !ds.isNull() && ds->optValue<std::string>("uid", "") == kDatasourceUid &&
         ds->optValue<std::string>("type", "") == "prometheus";
}

// What Grafana needs to import the dashboard anywhere and show every panel.
void expect_well_formed(const Dashboard& d) {
  EXPECT_FALSE(d.model->optValue<std::string>("uid", "").empty());
  EXPECT_FALSE(d.model->optValue<std::string>("title", "").empty());
  EXPECT_GE(d.model->optValue<int>("schemaVersion", 0), 36) << "older than Grafana 9.4's model";

  std::map<std::string, Poco::JSON::Object::Ptr> variables;
  for (const auto& v : d.variables) variables[v->optValue<std::string>("name", "")] = v;
  // A datasource variable: the dashboard binds to whichever Prometheus the
  // importer picks, not to one data source's uid on our Grafana.
  ASSERT_EQ(variables.count("datasource"), 1u);
  EXPECT_EQ(variables["datasource"]->optValue<std::string>("type", ""), "datasource");
  EXPECT_EQ(variables["datasource"]->optValue<std::string>("query", ""), "prometheus");
  for (const char* name : {"job", "instance", "channel"}) {
    ASSERT_EQ(variables.count(name), 1u) << name;
    EXPECT_EQ(variables[name]->optValue<std::string>("type", ""), "query") << name;
  }
  for (const auto& v : d.variables) {
    if (v->optValue<std::string>("type", "") != "query") continue;
    const std::string name = v->optValue<std::string>("name", "");
    EXPECT_TRUE(uses_datasource_variable(v)) << "$" << name;
    // Grafana lists `definition` and runs `query`: the one checked here.
    EXPECT_EQ(v->optValue<std::string>("definition", ""), variable_query(v)) << "$" << name;
  }

  std::set<int> ids;
  for (const auto& panel : d.panels) {
    const std::string where = panel_name(panel);
    EXPECT_TRUE(panel->has("id") && ids.insert(panel->getValue<int>("id")).second)
        << where << ": no id, or one another panel has";
    EXPECT_TRUE(panel->has("gridPos")) << where << ": no gridPos";
    const Poco::JSON::Array::Ptr nested = panel->getArray("panels");
    if (panel->optValue<std::string>("type", "") == "row") {
      // An expanded row's panels follow it in the top-level list; ones
      // nested in it as well would never be shown.
      EXPECT_TRUE(panel->optValue<bool>("collapsed", false) || nested.isNull() ||
                  nested->size() == 0)
          << where << ": an expanded row with panels inside it";
      continue;
    }
    EXPECT_TRUE(nested.isNull()) << where << ": panels inside a panel that is not a row";
    EXPECT_TRUE(uses_datasource_variable(panel))
        << where << ": datasource is not " << kDatasourceUid;
    const Poco::JSON::Object::Ptr field_config = panel->getObject("fieldConfig");
    const Poco::JSON::Object::Ptr defaults =
        field_config.isNull() ? Poco::JSON::Object::Ptr() : field_config->getObject("defaults");
    EXPECT_FALSE(defaults.isNull() || defaults->optValue<std::string>("unit", "").empty())
        << where << ": no unit";
    const Poco::JSON::Array::Ptr targets = panel->getArray("targets");
    ASSERT_FALSE(targets.isNull() || targets->size() == 0) << where << ": no query";
    std::set<std::string> refs;
    static const std::regex ref_id("[A-Za-z0-9_]+");  // part of a recording rule's name below
    for (std::size_t i = 0; i < targets->size(); ++i) {
      const auto target = targets->getObject(i);
      const std::string ref = target->optValue<std::string>("refId", "");
      EXPECT_TRUE(std::regex_match(ref, ref_id) && refs.insert(ref).second)
          << where << ": refId \"" << ref << "\" missing, odd, or repeated";
      EXPECT_TRUE(uses_datasource_variable(target))
          << where << ", query " << ref << ": datasource is not " << kDatasourceUid;
      EXPECT_FALSE(target->optValue<std::string>("expr", "").empty())
          << where << ", query " << ref << ": no expr";
    }
  }
}

// A value for each of the dashboard's query variables, as Grafana writes a
// multi-value one into a query: a regex, "(a|b)".
std::map<std::string, std::string> variable_values(const Dashboard& d) {
  std::map<std::string, std::string> values;
  for (const auto& v : d.variables) {
    if (v->optValue<std::string>("type", "") != "query") continue;
    const std::string name = v->optValue<std::string>("name", "");
    values[name] = "(" + name + "-a|" + name + "-b)";
  }
  return values;
}

// `expr` with every Grafana variable ($name, ${name}, ${name:format},
// [[name]]) replaced: Grafana's own by a duration, the dashboard's by
// `values`. Adds to `problems` a variable that is neither, and one of the
// dashboard's used anywhere but right after =~" (where "(a|b)" is a regex,
// and not a channel of that name).
std::string substitute_variables(const std::string& expr,
                                 const std::map<std::string, std::string>& values,
                                 std::vector<std::string>& problems) {
  static const std::regex variable(R"(\$\{(\w+)(?::\w+)?\}|\$(\w+)|\[\[(\w+)\]\])");
  std::string out;
  std::size_t copied = 0;
  for (auto it = std::sregex_iterator(expr.begin(), expr.end(), variable);
       it != std::sregex_iterator(); ++it) {
    const std::smatch& m = *it;
    const std::string name = m[1].matched ? m[1].str() : m[2].matched ? m[2].str() : m[3].str();
    const auto at = static_cast<std::size_t>(m.position(0));
    out += expr.substr(copied, at - copied);
    copied = at + static_cast<std::size_t>(m.length(0));
    if (const auto builtin = kGrafanaBuiltins.find(name); builtin != kGrafanaBuiltins.end()) {
      out += builtin->second;
    } else if (const auto value = values.find(name); value != values.end()) {
      if (at < 3 || expr.compare(at - 3, 3, "=~\"") != 0)
        problems.push_back(m.str() + " is used outside a =~\"...\" matcher");
      out += value->second;
    } else {
      problems.push_back(m.str() + " is not a query variable of the dashboard");
      out += m.str();
    }
  }
  return out + expr.substr(copied);
}

using LabelsByFamily = std::map<std::string, std::set<std::string>>;

// Label names of every family a scrape exports, over all its series (a
// histogram's `le` too), and the target labels Prometheus adds to each.
LabelsByFamily labels_by_family(const std::string& scrape) {
  LabelsByFamily labels;
  for (const auto& [name, type] : comment_lines(scrape, "TYPE")) labels[name] = {"job", "instance"};
  for (const Sample& s : samples(scrape)) {
    const auto family = labels.find(labels.count(s.name) != 0 ? s.name : family_of(s.name));
    if (family == labels.end()) continue;
    for (const auto& [label, value] : s.labels) family->second.insert(label);
  }
  return labels;
}

// Labels `expr` (variables substituted) matches on or aggregates by that
// its families do not have: such a panel shows nothing, or one line where
// several were meant. A family the scrape does not export is left to
// expect_exported, and with it the by (...) clauses, which it might answer.
std::vector<std::string> unknown_labels(const std::string& expr, const LabelsByFamily& exported) {
  std::vector<std::string> problems;
  std::set<std::string> any_family;  // what a by (...) may name
  bool all_exported = true;
  for (const auto& family : families_queried_by(expr)) {
    const auto f = exported.find(family);
    if (f == exported.end()) {
      all_exported = false;
    } else {
      any_family.insert(f->second.begin(), f->second.end());
    }
  }

  static const std::regex selector(R"((slackproxy_[a-z_]+)\{([^}]*)\})");
  static const std::regex matcher(R"((\w+)\s*(?:=~|!~|!=|=)\s*")");
  for (auto it = std::sregex_iterator(expr.begin(), expr.end(), selector);
       it != std::sregex_iterator(); ++it) {
    const auto family = exported.find(family_of((*it)[1].str()));
    if (family == exported.end()) continue;
    const std::string body = (*it)[2].str();
    for (auto m = std::sregex_iterator(body.begin(), body.end(), matcher);
         m != std::sregex_iterator(); ++m)
      if (family->second.count((*m)[1].str()) == 0)
        problems.push_back(family->first + " has no label " + (*m)[1].str());
  }
  if (!all_exported) return problems;
  static const std::regex grouping(R"(\b(?:by|without)\s*\(([^)]*)\))");
  static const std::regex label("\\w+");
  for (auto it = std::sregex_iterator(expr.begin(), expr.end(), grouping);
       it != std::sregex_iterator(); ++it) {
    const std::string names = (*it)[1].str();
    for (auto m = std::sregex_iterator(names.begin(), names.end(), label);
         m != std::sregex_iterator(); ++m)
      if (any_family.count(m->str()) == 0)
        problems.push_back("no family queried here has the label " + m->str());
  }
  return problems;
}

std::string joined(const std::vector<std::string>& lines) {
  std::string out;
  for (const auto& line : lines) out += "\n  " + line;
  return out;
}

bool queries_redis_only_family(const DashboardQuery& q) {
  const auto families = families_queried_by(q.expr);
  return std::any_of(families.begin(), families.end(),
                     [](const std::string& f) { return kOnlyWithRedis.count(f) != 0; });
}

// config/grafana/slack-proxy.json: Grafana can import it anywhere and show
// every panel (ids, datasource variable, units, a query in each), every
// query is PromQL that Prometheus' own parser takes once Grafana's variables
// are put in, and every metric and label it queries is exported by a live
// proxy after real traffic. The Redis row's are checked in the next test.
TEST_F(MetricsFamiliesTest, TheGrafanaDashboardQueriesOnlyExportedMetricsAndValidPromQL) {
  SP_REQUIRE_TOOL(promtool, "prometheus", "promtool");
  const Dashboard d = read_dashboard();
  expect_well_formed(d);
  ASSERT_GE(d.queries.size(), 20u) << "the dashboard lost its panels";

  // Each query as a recording rule: `promtool check rules` parses them all.
  const auto values = variable_values(d);
  std::vector<std::string> exprs;
  std::string rules = "groups:\n  - name: dashboard\n    rules:\n";
  for (const DashboardQuery& q : d.queries) {
    std::vector<std::string> problems;
    exprs.push_back(substitute_variables(q.expr, values, problems));
    EXPECT_TRUE(problems.empty()) << q.where << ": " << q.expr << joined(problems);
    // YAML's single quotes take any text but ' (written twice).
    rules += "      - record: " + q.record + "\n        expr: '" +
             replace_all(exprs.back(), "'", "''") + "'\n";
  }
  TempDir dir;
  const auto file = dir.write("dashboard-rules.yml", rules);
  const CommandResult check = run_promtool(promtool, {"check", "rules", file.string()}, dir);
  EXPECT_EQ(check.exit_code, 0) << check.output << "\n" << rules;
  EXPECT_NE(check.output.find("SUCCESS: " + std::to_string(d.queries.size()) + " rules found"),
            std::string::npos)
      << check.output;

  std::set<std::string> queried;
  for (const DashboardQuery& q : d.queries) {
    const auto families = families_queried_by(q.expr);
    queried.insert(families.begin(), families.end());
  }
  for (const auto& family : kAskedFor)
    EXPECT_EQ(queried.count(family), 1u) << "the dashboard does not show " << family;

  const std::string m = scrape_after_every_kind_of_traffic();
  const auto exported = labels_by_family(m);
  for (std::size_t i = 0; i < d.queries.size(); ++i) {
    const DashboardQuery& q = d.queries[i];
    const auto families = families_queried_by(q.expr);
    if (queries_redis_only_family(q)) {
      for (const auto& family : families)
        EXPECT_TRUE(kOnlyWithRedis.count(family) == 0 || !family_exposed(m, family))
            << family << " is exported without [redis]: take it out of kOnlyWithRedis";
      continue;  // against a proxy with [redis], below
    }
    expect_exported(m, families, q.where);
    const auto problems = unknown_labels(exprs[i], exported);
    EXPECT_TRUE(problems.empty()) << q.where << ": " << q.expr << joined(problems);
  }
}

// The dashboard's Redis row against a proxy with [redis] configured, the
// only one that exports those families: every metric and label its queries
// name is there, and the proxy really talked to Redis.
TEST_F(MetricsFamiliesTest, TheGrafanaDashboardsRedisPanelsQueryMetricsAProxyWithRedisExports) {
  SP_REQUIRE_TOOL(redis_program, "redis-server", "redis-server");
  const Dashboard d = read_dashboard();
  RedisServer redis(redis_program);
  auto& p = start(config().toml() + "\n[redis]\nurl = \"" + redis.url() + "\"\n");
  ASSERT_EQ(p.post(message("#redis", "through a proxy with Redis")).status, 200);
  ASSERT_TRUE(p.wait_for_metric(series(kSucceeded, "#redis"), 1));
  std::string m = p.metrics();
  ASSERT_TRUE(family_exposed(m, "slackproxy_redis_commands_total")) << m;
  const auto deadline = std::chrono::steady_clock::now() + kDeadline;
  while (metric_sum(m, "slackproxy_redis_commands_total") == 0 &&
         std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(20ms);
    m = p.metrics();
  }
  EXPECT_GT(metric_sum(m, "slackproxy_redis_commands_total"), 0) << m;

  expect_exported(m, kOnlyWithRedis, "kOnlyWithRedis");
  const auto values = variable_values(d);
  const auto exported = labels_by_family(m);
  int checked = 0;
  for (const DashboardQuery& q : d.queries) {
    if (!queries_redis_only_family(q)) continue;
    ++checked;
    std::vector<std::string> problems;
    const std::string expr = substitute_variables(q.expr, values, problems);
    expect_exported(m, families_queried_by(q.expr), q.where);
    const auto unknown = unknown_labels(expr, exported);
    problems.insert(problems.end(), unknown.begin(), unknown.end());
    EXPECT_TRUE(problems.empty()) << q.where << ": " << q.expr << joined(problems);
  }
  EXPECT_GE(checked, 4) << "the dashboard's Redis row lost its panels";
}

}  // namespace
}  // namespace slack_proxy::testing

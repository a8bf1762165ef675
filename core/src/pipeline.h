// A pipeline: the stages a message passes through, built from a
// [[pipeline]] table by loading each stage's plugin.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <vector>

#include <spdlog/logger.h>

#include <slack_proxy/sdk/host.h>
#include <slack_proxy/sdk/stages.h>

#include "config/config.h"
#include "plugin_host.h"
#include "shared_marks.h"

namespace slack_proxy {

// Who a stage is, for the log line and the metric when it fails.
struct StageLabel {
  std::string stage;   // its name in the config ("[[pipeline.stage]] name")
  std::string plugin;  // the plugin that made it
};

// How a stage was made, so that a reload can tell whether it would be made
// the same again (carry_over in build_pipelines).
struct BuiltStage {
  std::string name;                              // "[[pipeline.stage]] name"
  std::string plugin;
  const sp_plugin_descriptor* descriptor = nullptr;  // identifies the loaded library
  toml::table settings;                          // as written in the file
  std::shared_ptr<sdk::Stage> object;            // null for a check-only build
};

struct Pipeline {
  std::string name;
  std::vector<std::string> paths;
  bool webhook_style = false;          // replies like an incoming webhook
  std::string default_channel;         // when a request names none
  bool caller_token = false;           // deliver with the caller's token
  std::shared_ptr<sdk::Authenticator> authenticator;  // optional
  std::vector<std::shared_ptr<sdk::Router>> routers;  // in file order
  std::vector<std::shared_ptr<sdk::RateLimiter>> limiters;
  std::vector<std::shared_ptr<sdk::Guard>> guards;
  std::shared_ptr<sdk::Sink> sink;                    // exactly one
  // The sink was built against ABI 1.2 or later, so Sink::budget_of() may be
  // called. A test's mock sink has it.
  bool sink_names_budget = true;
  std::shared_ptr<sdk::RetryPolicy> retry;            // optional: none = no retries
  // Every stage above, by address. Kept beside the stages rather than in
  // them so that a stage is still just the plugin's object.
  std::map<const sdk::Stage*, StageLabel> labels;
  std::string delivery_token;        // the spec's, as built
  std::vector<BuiltStage> built;     // in file order

  // The label of `stage`; a stage built outside build_pipelines() (a test's
  // mock) is "(unnamed)" of plugin "(none)".
  StageLabel label_of(const sdk::Stage* stage) const {
    auto it = labels.find(stage);
    return it != labels.end() ? it->second : StageLabel{"(unnamed)", "(none)"};
  }
};

// Checks every pipeline as far as can be done without starting anything:
// each plugin loads and passes the ABI checks, each stage's settings fit its
// plugin's schema, each pipeline has exactly one sink and at most one
// authenticator and one retry policy, and every factory accepts its settings
// (created with SP_CREATE_CHECK_ONLY: no secrets read, nothing opened, then
// destroyed; a factory may build nothing there, "valid, nothing to build").
// Throws config::ConfigError listing every problem.
void validate_pipelines(const config::ProxyConfig& config, PluginHost& plugins);

// A reload's earlier build: stages that it made and that would be made
// the same again are taken over instead (see build_pipelines).
struct CarryOver {
  std::vector<std::shared_ptr<Pipeline>> pipelines;
};

// Validates, then creates every stage. Throws config::ConfigError, naming
// the stage and its position in the file when a factory refuses. Every
// stage shares `buckets` (HostServices::shared_buckets()); null: one
// in-process set for this build. Each stage's marks
// (HostServices::shared_marks()) come from `marks`, by its scope
// "pipeline/stage"; null, or a delivery_token = "caller" pipeline: each
// stage has a set of its own in this process.
//
// With `previous` (a reload), a rate limiter or guard whose pipeline and
// stage names, plugin library (the very same one loaded, not a rebuilt
// file), settings and pipeline delivery_token are all unchanged, and whose
// plugin reads no secret, is not made again: the stage object itself is
// taken over, with its state (token buckets, parked channels), so that a
// reload neither grants a fresh burst nor forgets a dead channel. Every
// other stage is made anew, re-reading its secrets. `carried`, if given,
// gets "pipeline/stage" for each stage taken over.
std::vector<std::shared_ptr<Pipeline>> build_pipelines(
    const config::ProxyConfig& config, PluginHost& plugins, std::shared_ptr<spdlog::logger> log,
    sdk::Metrics& metrics, const sdk::Clock& clock,
    std::shared_ptr<sdk::SharedBuckets> buckets = nullptr,
    std::shared_ptr<MarkScopes> marks = nullptr, const CarryOver* previous = nullptr,
    std::vector<std::string>* carried = nullptr);

}  // namespace slack_proxy

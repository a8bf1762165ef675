// The message: one chat.postMessage request on its way to Slack.
//
// A plain value type rather than an interface: queues copy, store and reload
// it, and every stage reads the same fields. The host fills it at ingress;
// routers may change `channel`, `workspace` and `attributes`; the dispatcher
// owns `attempts` and the timestamps.
#ifndef SLACK_PROXY_SDK_MESSAGE_H
#define SLACK_PROXY_SDK_MESSAGE_H

#include <chrono>
#include <cstdint>
#include <map>
#include <string>
#include <string_view>

namespace slack_proxy::sdk {

using SteadyTime = std::chrono::steady_clock::time_point;
using WallTime = std::chrono::system_clock::time_point;

struct Message {
  // Unique within this proxy, assigned at ingress. Safe to log.
  std::string id;

  // Name of the pipeline that accepted the message; decides which stages the
  // dispatcher runs for it.
  std::string pipeline;

  // Where the message will be delivered. Routers may rewrite it. After the
  // last router the host writes it into `payload` (its "channel" field), so
  // the two never disagree by the time a sink sees the message: a sink sends
  // `payload` as it is and needs no JSON library for that.
  std::string channel;

  // The channel the caller asked for, never rewritten. Metrics are labelled
  // with it so that an override does not hide who sent what.
  std::string original_channel;

  // Which Slack workspace (and so which token and which rate budget) the
  // message belongs to. Empty means the pipeline's default. A message sent
  // with the caller's own token belongs to a tenant named by
  // caller_tenant() below; no configured workspace may look like one.
  std::string workspace;

  // The request body exactly as the caller sent it, minus any `token` field
  // (credentials are not message content and are never stored). Every field
  // the caller sent, known to us or not, is kept and forwarded.
  std::string payload;

  // Media type of `payload`, e.g. "application/json".
  std::string content_type;

  // Who sent it, as established by an authenticator. Empty when the
  // pipeline has none. Safe to log and to use as a metrics label.
  std::string caller;

  // Free-form notes that stages leave for later stages, e.g. a router
  // telling the sink which token alias to use. Never holds secrets.
  std::map<std::string, std::string> attributes;

  // SECRET. The caller's own Slack token, set only when the pipeline says
  // `delivery_token = "caller"`; a sink then delivers with it instead of
  // its own. Never log it, never put it in an error, a metric or a record
  // meant for humans.
  std::string delivery_token;

  // Delivery attempts made so far (0 until the first send).
  std::uint32_t attempts = 0;

  // When ingress accepted it (wall clock, for humans and dead letters).
  WallTime received_at{};
  // When the last delivery attempt started (wall clock); epoch if none.
  WallTime last_attempt_at{};
  // When ingress accepted it (steady clock, for measuring time in queue).
  SteadyTime enqueued_at{};
};

// Set (to "true") in `attributes` on a message an operator replayed from the
// dead-letter store. Guards that park a channel (a deny-list) let such a
// message through as a probe: the operator says the channel exists now.
inline constexpr const char* kReplayedAttribute = "slack_proxy.replayed";

// Set by the host, before rate limiters and guards see a message, to the
// rate budget its sink says it draws from (Sink::budget_of): a secret-free
// name that is the same in every pipeline delivering with the same token.
// Absent when the sink names none. A limiter that keys on it shares its
// bucket with those pipelines (HostServices::shared_buckets()).
inline constexpr const char* kBudgetAttribute = "slack_proxy.budget";

// Workspace names beginning with this are reserved for the tenants of
// callers' own tokens (pipelines with `delivery_token = "caller"`). The host
// names them; a plugin that names workspaces refuses this prefix.
inline constexpr std::string_view kCallerTenantPrefix = "caller-";

// The tenant of a caller's own token, from a digest of that token (never the
// token itself): "caller-" + digest.
inline std::string caller_tenant(std::string_view token_digest) {
  std::string name(kCallerTenantPrefix);
  name.append(token_digest);
  return name;
}

inline bool is_caller_tenant(std::string_view workspace) noexcept {
  return workspace.substr(0, kCallerTenantPrefix.size()) == kCallerTenantPrefix;
}

// One key per Slack channel across workspaces, for stages that keep state per
// channel (buckets, deny-lists). Uses the routed `channel`: the target that
// is actually paced or missing. A newline cannot occur in a workspace name,
// so two keys never collide.
inline std::string channel_key(const Message& message) {
  std::string key;
  key.reserve(message.workspace.size() + 1 + message.channel.size());
  key.append(message.workspace).push_back('\n');
  key.append(message.channel);
  return key;
}

}  // namespace slack_proxy::sdk

#endif  // SLACK_PROXY_SDK_MESSAGE_H

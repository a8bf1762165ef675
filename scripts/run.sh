#!/usr/bin/env bash
# Builds slack-proxy and runs the default Slack pipeline.
#
#   SLACK_TOKEN=xoxb-... scripts/run.sh          config/slack-proxy.toml, real Slack
#   scripts/run.sh --demo                        bundled fake Slack, no account needed
#   scripts/run.sh -- --log-level debug          extra arguments go to slack-proxy
set -euo pipefail
source "$(dirname "$0")/common.sh"

demo=0
if [[ "${1:-}" == "--demo" ]]; then demo=1; shift; fi
[[ "${1:-}" == "--" ]] && shift

configure_and_build
BIN="$BUILD_DIR/bin"

if [[ $demo -eq 0 ]]; then
  exec "$BIN/slack-proxy" --config "$ROOT/config/slack-proxy.toml" "$@"
fi

# Demo: the fake Slack prints every message it receives.
"$BIN/fake-slack" --port 8099 &
fake=$!
export SLACK_TOKEN="xoxb-demo-not-a-real-token"
"$BIN/slack-proxy" --config "$ROOT/config/demo.toml" "$@" &
proxy=$!
trap 'kill $proxy 2>/dev/null; wait $proxy 2>/dev/null; kill $fake 2>/dev/null' EXIT INT TERM

for _ in $(seq 100); do
  curl -fsS http://127.0.0.1:8080/health >/dev/null 2>&1 && break
  sleep 0.1
done
cat <<'MSG'

slack-proxy demo: the proxy listens on :8080, the fake Slack on :8099 prints
what it receives, metrics are on http://127.0.0.1:9090/metrics.
Sending 6 messages to two channels (paced at 1/s per channel, burst 3)...
MSG
for i in 1 2 3; do
  for ch in '#alerts' '#deploys'; do
    reply=$(curl -sS -X POST http://127.0.0.1:8080/ -H 'Content-Type: application/json' \
      -d "{\"channel\":\"$ch\",\"text\":\"demo message $i\",\"unfurl_links\":false}")
    printf 'sent to %-9s -> proxy answered %s\n' "$ch" "$reply"
  done
done
cat <<'MSG'

Try your own:
  curl -X POST http://127.0.0.1:8080/ -H 'Content-Type: application/json' \
       -d '{"channel":"#alerts","text":"hello"}'
Press Ctrl-C to stop (the proxy drains its queue first).
MSG
wait $proxy

#!/usr/bin/env bash
# Builds slack-proxy and runs the default Slack pipeline.
#
#   SLACK_TOKEN=xoxb-... scripts/run.sh          config/slack-proxy.toml, real Slack
#   scripts/run.sh --demo                        bundled fake Slack, no account needed
#   scripts/run.sh -- --log-level debug          extra arguments go to slack-proxy
#
# Environment:
#   BUILD_DIR=DIR             build (or find the binaries) in DIR (default: build)
#   SLACK_PROXY_NO_BUILD=1    do not install, configure or build anything: run the
#                             binaries already in $BUILD_DIR/bin (tests use this, so
#                             that a run never reconfigures the build under test)
# The demo's ports (all on this machine; the defaults match config/demo.toml):
#   DEMO_PORT=8080            the proxy's ingress
#   DEMO_METRICS_PORT=9090    its metrics and admin listener
#   DEMO_FAKE_PORT=8099       the fake Slack
# The demo runs until Ctrl-C or SIGTERM; then, and whenever it fails, it stops
# the proxy (which drains its queue first) and the fake Slack, and exits with
# the proxy's exit status. Its queue is ./state/demo-queue.db (relative to the
# working directory).
set -euo pipefail
source "$(dirname "$0")/common.sh"

demo=0
if [[ "${1:-}" == "--demo" ]]; then demo=1; shift; fi
[[ "${1:-}" == "--" ]] && shift

if [[ "${SLACK_PROXY_NO_BUILD:-0}" != 1 ]]; then configure_and_build; fi
BIN="$BUILD_DIR/bin"
for binary in slack-proxy fake-slack; do
  if [[ ! -x "$BIN/$binary" ]]; then
    echo "run.sh: $BIN/$binary is missing (build it, or unset SLACK_PROXY_NO_BUILD)" >&2
    exit 1
  fi
done

if [[ $demo -eq 0 ]]; then
  exec "$BIN/slack-proxy" --config "$ROOT/config/slack-proxy.toml" "$@"
fi

# ------------------------------------------------------------------ demo --
port="${DEMO_PORT:-8080}"
metrics_port="${DEMO_METRICS_PORT:-9090}"
fake_port="${DEMO_FAKE_PORT:-8099}"
proxy_url="http://127.0.0.1:$port"

fake=""
proxy=""
work="$(mktemp -d)"
# Stops whatever was started, proxy first (it drains into the fake), and
# exits with the proxy's status: on Ctrl-C, SIGTERM, an error or a normal end.
stop_demo() {
  local status=$?
  trap - EXIT INT TERM
  if [[ -n "$proxy" ]] && kill -0 "$proxy" 2>/dev/null; then
    kill -TERM "$proxy" 2>/dev/null || true
    status=0
    wait "$proxy" || status=$?
  fi
  if [[ -n "$fake" ]] && kill -0 "$fake" 2>/dev/null; then
    kill -TERM "$fake" 2>/dev/null || true
    wait "$fake" || true
  fi
  rm -rf "$work"
  exit "$status"
}
trap stop_demo EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# config/demo.toml with the demo's ports; each address must be there, so a
# change to that file cannot leave the demo on a port nobody checks.
config="$work/demo.toml"
sed -e "s/\"0\.0\.0\.0:8080\"/\"0.0.0.0:$port\"/" \
    -e "s/\"127\.0\.0\.1:9090\"/\"127.0.0.1:$metrics_port\"/" \
    -e "s#http://127\.0\.0\.1:8099/#http://127.0.0.1:$fake_port/#" \
    "$ROOT/config/demo.toml" >"$config"
for address in "0.0.0.0:$port" "127.0.0.1:$metrics_port" "127.0.0.1:$fake_port/"; do
  if ! grep -q "$address" "$config"; then
    echo "run.sh: config/demo.toml no longer has the demo's addresses (8080, 9090, 8099)" >&2
    exit 1
  fi
done

# Whether process $1 is the only one listening on TCP port $2: prints
# "alone", "shared" (it and another process) or "not yet" (it is not
# listening there, though another process may be). Read from /proc, since a
# port can be shared: fake-slack, like any Poco ServerSocket, binds with
# SO_REUSEPORT, so another fake (a test's, on a reused port) could answer in
# its place, or take half of its connections.
listening_on() {  # pid, port
  local inode mine=0 others=0
  for inode in $(awk -v port="$(printf ':%04X' "$2")" \
      '$4 == "0A" && substr($2, length($2) - 4) == port { print $10 }' \
      /proc/net/tcp /proc/net/tcp6 2>/dev/null); do
    if [[ -n "$(find "/proc/$1/fd" -lname "socket:\[$inode\]" -print -quit 2>/dev/null)" ]]; then
      mine=1
    else
      others=1
    fi
  done
  if [[ $mine == 0 ]]; then echo "not yet"; elif [[ $others == 1 ]]; then echo shared; else echo alone; fi
}

# Waits until process `pid` alone listens on each of `ports` and `url`
# answers 2xx, so what answers is the process this script started; fails
# when it exits, when another process also listens on one of its ports, or
# after 10 s.
wait_ready() {  # name, pid, url, port...
  local name=$1 pid=$2 url=$3 port state ready
  shift 3
  local deadline=$((SECONDS + 10))
  while ((SECONDS < deadline)); do
    if ! kill -0 "$pid" 2>/dev/null; then
      echo "run.sh: $name exited before it was ready" >&2
      return 1
    fi
    ready=1
    for port in "$@"; do
      state=$(listening_on "$pid" "$port")
      if [[ $state == shared ]]; then
        echo "run.sh: port $port is already in use by another process besides $name" >&2
        return 1
      fi
      [[ $state == alone ]] || ready=0
    done
    if [[ $ready == 1 ]] && curl -fsS --max-time 1 "$url" >/dev/null 2>&1; then return 0; fi
    sleep 0.1
  done
  echo "run.sh: $name did not answer $url within 10 s" >&2
  return 1
}

# The fake Slack prints every message it receives.
"$BIN/fake-slack" --port "$fake_port" &
fake=$!
wait_ready "fake-slack" "$fake" "http://127.0.0.1:$fake_port/_fake/stats" "$fake_port"
SLACK_TOKEN="xoxb-demo-not-a-real-token" "$BIN/slack-proxy" --config "$config" "$@" &
proxy=$!
wait_ready "slack-proxy" "$proxy" "$proxy_url/health" "$port" "$metrics_port"

cat <<MSG

slack-proxy demo: the proxy listens on :$port, the fake Slack on :$fake_port prints
what it receives, metrics are on http://127.0.0.1:$metrics_port/metrics.
Sending 6 messages to two channels (paced at 1/s per channel, burst 3)...
MSG
for i in 1 2 3; do
  for ch in '#alerts' '#deploys'; do
    reply=$(curl -sS --max-time 10 -X POST "$proxy_url/" -H 'Content-Type: application/json' \
      -d "{\"channel\":\"$ch\",\"text\":\"demo message $i\",\"unfurl_links\":false}")
    printf 'sent to %-9s -> proxy answered %s\n' "$ch" "$reply"
  done
done
cat <<MSG

Try your own:
  curl -X POST $proxy_url/ -H 'Content-Type: application/json' \\
       -d '{"channel":"#alerts","text":"hello"}'
Press Ctrl-C to stop (the proxy drains its queue first).
MSG
wait "$proxy"

#!/usr/bin/env bash
# Runs docs/plugin-guide.md's quick start as written: installs the slack-proxy
# built in $BUILD_DIR into a fresh prefix, copies the example plugins from
# that prefix, builds and tests them against the prefix only, then runs the
# installed proxy with them on a loopback port and checks that a message is
# routed and delivered.
#
# The commands come from the guide itself: every ```sh block that follows a
# line "<!-- ci: quick-start -->", in order. So the guide cannot drift from
# what CI proves. Runs from scripts/test.sh after the plain build's tests.
#   BUILD_DIR: the built slack-proxy (default: build)
set -euo pipefail
source "$(dirname "$0")/common.sh"

guide="$ROOT/docs/plugin-guide.md"
steps="$(awk '
  /^<!-- ci: quick-start -->$/ { armed = 1; next }
  armed && /^```sh$/ { inside = 1; armed = 0; next }
  inside && /^```$/ { inside = 0; print ""; next }
  inside { print }
' "$guide")"
if [[ -z "$steps" ]]; then
  echo "sdk-example: no quick-start steps found in $guide" >&2
  exit 1
fi

# What the guide asks the reader to choose. The checkout's build stands in for
# "your slack-proxy build"; nothing else of the source tree is used.
WORK="$(mktemp -d "${TMPDIR:-/tmp}/sdk-example.XXXXXX")"
export SLACK_PROXY_BUILD="$BUILD_DIR"
export PREFIX="$WORK/prefix"
export PLUGINS="$WORK/my-plugins"
PORT="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
export PORT
cleanup() {
  local status=$?
  # The guide starts the proxy in the background and stops it itself; this
  # only matters when a step failed before that.
  if [[ -f "$PLUGINS/proxy.pid" ]]; then kill "$(cat "$PLUGINS/proxy.pid")" 2>/dev/null || true; fi
  if [[ $status -ne 0 && -f "$PLUGINS/proxy.log" ]]; then
    echo "--- the proxy's log ---" >&2
    cat "$PLUGINS/proxy.log" >&2
  fi
  rm -rf "$WORK"
  exit "$status"
}
trap cleanup EXIT

echo "sdk-example: running the quick start of docs/plugin-guide.md in $WORK"
cd "$WORK"
bash -euxo pipefail -c "$steps"
echo "sdk-example: the example plugins built, passed their tests and delivered through the installed proxy"

#!/usr/bin/env bash
# Storm benchmark (issue #3): 20 channels x 10 messages POSTed at once to
# slack-proxy, delivered to a fake Slack that enforces Slack's limits (1/s per
# channel with burst 3, 600/min per workspace with burst 10) and answers 429
# with Retry-After beyond them. Two cases:
#   matched  the proxy paces with the same limits: must get no 429 and drain
#            within 10% of the theoretical minimum;
#   faster   the proxy paces 5/s per channel with no workspace bucket: must
#            honour Retry-After (nothing sent inside a 429's pause) and still
#            drain within 10% of the minimum (measured 1.004-1.005; a 429
#            near the end can cost a whole 1 s Retry-After, 1.053, and 1.10
#            leaves room for that and scheduling delay, not for a second one).
# Both must lose nothing, deliver nothing twice, leave the proxy's queue empty
# and count (slackproxy_rate_limited_total) exactly the 429s the fake sent.
#
#   scripts/storm.sh [RUNS]       each case RUNS times (default 1)
#   BUILD_DIR=build-x scripts/storm.sh   build and run somewhere else
set -euo pipefail
source "$(dirname "$0")/common.sh"
RUNS="${1:-1}"

"$ROOT/scripts/install-deps.sh"
cmake -S "$ROOT" -B "$BUILD_DIR" -G Ninja \
  -DCMAKE_BUILD_TYPE=RelWithDebInfo -DSLACK_PROXY_WERROR=ON >/dev/null
cmake --build "$BUILD_DIR" --target storm-bench
BENCH="$BUILD_DIR/bin/storm-bench"

LIMITS=(--channels 20 --messages 10 --channel-rate 1 --channel-burst 3
        --workspace-per-minute 600 --workspace-burst 10)
results=()
status=0
run_case() {  # name, extra args...
  local name="$1" out
  shift
  echo "== $name"
  if out="$("$BENCH" "${LIMITS[@]}" "$@")"; then :; else status=1; fi
  echo "$out"
  results+=("$name $(grep '^RESULT' <<<"$out" || echo 'RESULT none')")
}
for run in $(seq "$RUNS"); do
  run_case "matched" --max-429 0 --max-ratio 1.10
  run_case "faster" --faster --max-ratio 1.10
done

echo
echo "| case | accepted | delivered | lost | duplicates | 429s | early after 429 | drain (s) | minimum (s) | ratio |"
echo "|---|---|---|---|---|---|---|---|---|---|"
for r in "${results[@]}"; do
  name="${r%% *}"
  field() { grep -o "$1=[^ ]*" <<<"$r" | cut -d= -f2; }
  echo "| $name | $(field accepted) | $(field delivered) | $(field lost) | $(field duplicates)" \
       "| $(field rate_limited) | $(field early_after_429) | $(field drain_s) | $(field min_s) | $(field ratio) |"
done
exit $status

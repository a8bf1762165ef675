#!/usr/bin/env bash
# Storm benchmark (issues #3 and #13): 20 channels x 10 messages POSTed at
# once to slack-proxy, delivered to a fake Slack that enforces Slack's limits
# (1/s per channel with burst 3, 600/min per workspace with burst 10) and
# answers 429 with Retry-After beyond them. Each case runs against a fake that
# tolerates requests up to 25 ms early (as a real limiter absorbs network
# jitter) and against a strict one (--jitter-tolerance-ms 0):
#   matched  the proxy paces with the same limits: must get no 429 and drain
#            within 10% of the theoretical minimum;
#   faster   the proxy paces 5/s per channel with no workspace bucket: must
#            honour Retry-After (nothing sent inside a 429's pause), learn
#            the workspace's pace from the first 429s (at most 10 429s in
#            all) and still drain within 10% of the minimum.
#   replicas three proxies, matched, posted to in turn, sharing their buckets
#            through Redis (issue #13), against the strict fake: no 429 and
#            within 10% of the minimum, as one proxy;
#   replicas-queue  the same three sharing one queue in Redis too ([queue]
#            backend = "redis"): the same bounds;
#   unshared the same three without Redis, for comparison (no budget: each
#            spends the whole of it, and their 429s are the point).
# All must lose nothing, deliver nothing twice, leave the proxy's queue empty
# and count (slackproxy_rate_limited_total) exactly the 429s the fake sent.
#
#   scripts/storm.sh [RUNS]       each case RUNS times (default 1)
#   BUILD_DIR=build-x scripts/storm.sh   build and run somewhere else
set -euo pipefail
source "$(dirname "$0")/common.sh"
RUNS="${1:-1}"

"$ROOT/scripts/install-deps.sh"
configure
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
  if out="$("$BENCH" "${LIMITS[@]}" "$@" 2>&1)"; then :; else status=1; fi
  echo "$out"
  results+=("$name $(grep '^RESULT' <<<"$out" || echo 'RESULT none')")
}
for run in $(seq "$RUNS"); do
  for fake in tolerant strict; do
    tolerance=25
    [[ $fake == strict ]] && tolerance=0
    run_case "matched/$fake" --jitter-tolerance-ms "$tolerance" --max-429 0 --max-ratio 1.10
    run_case "faster/$fake" --jitter-tolerance-ms "$tolerance" --faster --max-429 10 \
      --max-ratio 1.10
  done
  run_case "replicas/strict" --jitter-tolerance-ms 0 --replicas 3 --max-429 0 --max-ratio 1.10
  run_case "replicas-queue/strict" --jitter-tolerance-ms 0 --replicas 3 --redis-queue --max-429 0 \
    --max-ratio 1.10
  run_case "unshared/strict" --jitter-tolerance-ms 0 --replicas 3 --unshared
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

#!/usr/bin/env bash
# Ingest and capacity benchmark, every figure beside a static nginx
# `return 200` (access log off) measured in the same run:
#   - wrk -t2 --latency, 200-byte JSON chat.postMessage bodies, at 32 and at
#     1,000 keep-alive connections, against nginx and slack-proxy with the
#     memory queue, SQLite sync = "full" and SQLite sync = "normal": req/s,
#     p99, the ratio to nginx, and each target's -c1000 / -c32 throughput;
#   - capacity (tests/bench/capacity.cc): a caller's POST latency while the
#     server holds 10,000 idle keep-alive connections and 1,000 clients that
#     trickle a request head, and the RSS each idle connection costs; against
#     slack-proxy (SQLite, sync = "full") and a fresh nginx;
#   - the proxy's RSS with everything it accepted still queued (memory queue,
#     and 100,000 messages in SQLite, before and after a restart).
# Ends with markdown tables for docs/benchmarks.md.
#
#   scripts/bench.sh [DURATION_SECONDS]            default 10 (each wrk run; the
#                                                  capacity probes last as long)
#   scripts/bench.sh --profile [DURATION_SECONDS]  only a CPU profile of the
#                                                  SQLite sync = "full" proxy under
#                                                  wrk -c32: perf, else callgrind
#   scripts/bench.sh --queues [DURATION_SECONDS]   only ingest by queue backend:
#                                                  memory, SQLite (sync full) and
#                                                  Redis (AOF, appendfsync always),
#                                                  beside nginx (issue #13)
#   scripts/bench.sh --backlog [DURATION_SECONDS]  only issue #12's figures: memory,
#                                                  start-up, drain and ingest with a
#                                                  million messages queued on disk,
#                                                  and a 100,000-channel backlog
#                                                  (see the section for its knobs)
# BENCH_ROUNDS: rounds of the wrk runs, default 3; the tables give medians
#   and each ratio's range over them.
# BENCH_PROXY_SERVER: extra lines for the proxy's [server] table, e.g.
#   "threads = 64" to measure a build from before the event-driven ingress.
# BUILD_DIR (scripts/common.sh): the build to use, default build/.
set -euo pipefail
source "$(dirname "$0")/common.sh"
MODE=all
case "${1:-}" in
  --profile) MODE=profile; shift ;;
  --backlog) MODE=backlog; shift ;;
  --queues) MODE=queues; shift ;;
esac
DURATION="${1:-10}"
ROUNDS="${BENCH_ROUNDS:-3}"
[[ $ROUNDS =~ ^[1-9][0-9]*$ ]] || { echo "BENCH_ROUNDS must be a positive number" >&2; exit 2; }
[[ $DURATION =~ ^[0-9]+$ && $DURATION -ge 2 ]] || { echo "usage: $0 [--profile | --backlog | --queues] [SECONDS >= 2]" >&2; exit 2; }

IDLE=10000 TRICKLE=1000 PROBES=2000
configure_and_build --bench
BIN="$BUILD_DIR/bin"
WORK="$(mktemp -d)"
PROXY_PORT=18480 METRICS_PORT=18490 FAKE_PORT=18499
NGINX_PORT=18481 NGINX_LOG_PORT=18482 NGINX_CAPACITY_PORT=18483 REDIS_PORT=18484
pids=()
nginx_pidfiles=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for f in "${nginx_pidfiles[@]}"; do if [[ -f $f ]]; then kill "$(cat "$f")" 2>/dev/null || true; fi; done
  rm -rf "$WORK"
}
trap cleanup EXIT

# wrk at -c1000 and the capacity run's 11,000 connections need file
# descriptors, in wrk and capacity-bench and in the servers (which inherit
# this limit). Root may raise the hard limit; a container may forbid it.
raise_open_files() {
  local want=$((IDLE + TRICKLE + 4096)) hard
  hard=$(ulimit -Hn)
  if [[ $hard != unlimited ]] && ((hard < want)); then ulimit -Hn "$want" 2>/dev/null || true; fi
  ulimit -Sn "$(ulimit -Hn)" 2>/dev/null || true
  echo "open files limit (ulimit -n): $(ulimit -n)"
}
raise_open_files

# 200 bytes exactly.
body='{"channel":"#bench","text":"'
pad=$((200 - ${#body} - 2))
body+="$(head -c "$pad" /dev/zero | tr '\0' 'x')\"}"
[[ ${#body} -eq 200 ]] || { echo "body is ${#body} bytes" >&2; exit 1; }
cat >"$WORK/post.lua" <<LUA
wrk.method = "POST"
wrk.body = '$body'
wrk.headers["Content-Type"] = "application/json"
LUA

# The fake Slack is slow on purpose (pacing 1/s): everything stays queued, so
# the runs measure ingest and the RSS figures measure queued messages.
"$BIN/fake-slack" --port "$FAKE_PORT" --quiet &
pids+=("$!")

# One proxy at a time, on the same port: "memory", "sqlite" (sync full) or
# "sqlite-normal", with optional extra [server] lines and, instead of the
# token bucket at 1/s, other [[pipeline.stage]] tables before the sink. Sets
# $proxy to its pid. $PROXY_WRAPPER (the profiler) runs it, when set.
PROXY_WRAPPER=()
PACED_STAGES='[[pipeline.stage]]
plugin = "token_bucket"
rate = 1.0
burst = 3
[[pipeline.stage]]
plugin = "slack_retry"'
start_proxy() {
  write_proxy_config "$@"
  launch_proxy
  wait_healthy "$1"
}
write_proxy_config() {  # backend [server-extra [stages]]
  local backend=$1 sync=full server_extra=${2:-} stages=${3:-$PACED_STAGES} redis=""
  [[ $backend == sqlite-normal ]] && { backend=sqlite; sync=normal; }
  [[ $backend == redis ]] && redis="[redis]
url = \"redis://127.0.0.1:$REDIS_PORT\""
  cat >"$WORK/bench.toml" <<TOML
[server]
listen = "127.0.0.1:$PROXY_PORT"
$server_extra
${BENCH_PROXY_SERVER:-}
[metrics]
listen = "127.0.0.1:$METRICS_PORT"
[queue]
backend = "$backend"
path = "$WORK/queue.db"
sync = "$sync"
capacity = 10000000
max_bytes = 10000000000
$redis
[dispatcher]
shutdown_timeout = "1s"    # stopping must not wait for the queue to drain at 1/s
[log]
level = "warn"
[[pipeline]]
name = "slack"
paths = ["/"]
$stages
[[pipeline.stage]]
plugin = "slack_sink"
url = "http://127.0.0.1:$FAKE_PORT/api/chat.postMessage"
TOML
}
launch_proxy() {
  SLACK_TOKEN=xoxb-bench-not-a-real-token "${PROXY_WRAPPER[@]}" "$BIN/slack-proxy" \
    --config "$WORK/bench.toml" >/dev/null 2>>"$WORK/proxy.log" &
  proxy=$!
  pids+=("$proxy")
}
wait_healthy() {  # what was started, for the error
  for _ in $(seq 600); do  # 60 s: under valgrind it starts slowly
    curl -fsS -m 1 "http://127.0.0.1:$METRICS_PORT/health" >/dev/null 2>&1 && return 0
    kill -0 "$proxy" 2>/dev/null || break
    sleep 0.1
  done
  echo "slack-proxy ($1) did not start:" >&2
  cat "$WORK/proxy.log" >&2
  exit 1
}
# Bounded: a proxy that does not drain in 30 s is killed, not waited for.
stop_proxy() {
  kill "$1" 2>/dev/null || true
  for _ in $(seq 300); do kill -0 "$1" 2>/dev/null || break; sleep 0.1; done
  kill -9 "$1" 2>/dev/null || true
  wait "$1" 2>/dev/null || true
}
fresh_queue() {
  rm -f "$WORK"/queue.db*
  if [[ -n ${redis_pid:-} ]]; then redis-cli -p "$REDIS_PORT" FLUSHALL >/dev/null; fi
}

# $1: name, $2: the server blocks. worker_connections covers the capacity
# run's 11,000 connections even if one worker takes them all.
start_nginx() {
  cat >"$WORK/nginx-$1.conf" <<NGINX
worker_processes auto;
worker_rlimit_nofile $(ulimit -n | sed 's/unlimited/65536/');
pid $WORK/nginx-$1.pid;
error_log $WORK/nginx-$1-error.log;
events { worker_connections $((IDLE + TRICKLE + 2048)); }
http {
  access_log off;
  client_body_temp_path $WORK;
$2
}
NGINX
  nginx_pidfiles+=("$WORK/nginx-$1.pid")
  nginx -c "$WORK/nginx-$1.conf"
}
# Its workers' pids, once the master has forked one per core (10 s at most).
nginx_workers() {
  local master
  master=$(cat "$WORK/nginx-$1.pid")
  for _ in $(seq 100); do
    (($(pgrep -c -P "$master") >= $(nproc))) && break
    sleep 0.1
  done
  pgrep -P "$master"
}

rss_kib() { awk '/VmRSS/ {print $2}' "/proc/$1/status"; }
queued() { curl -fsS -m 5 "http://127.0.0.1:$METRICS_PORT/metrics" | awk '/^slackproxy_queue_size/ {print $2}'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {if (a == "" || b == "" || a == "-" || b == "-" || b == 0) print "-"; else printf "%.2f", a / b}'; }

# url connections -> "req/s p99_ms errors": errors are non-2xx replies plus
# wrk's socket errors (connect, read, write, timeout: wrk's timeout is 2 s).
# "-" for a figure wrk did not produce (it failed, or nothing was answered).
run_wrk() {
  local out="$WORK/wrk.out"
  timeout -k 5 $((DURATION + 30)) wrk -t2 -c"$2" -d"${DURATION}s" --latency \
    -s "$WORK/post.lua" "$1" >"$out" 2>&1 || true
  awk '
    /Requests\/sec/ {rps = $2}
    $1 == "99%" {v = $2
      if (v ~ /us$/) {sub(/us/, "", v); v /= 1000} else if (v ~ /ms$/) {sub(/ms/, "", v)}
      else if (v ~ /m$/) {sub(/m/, "", v); v *= 60000} else if (v ~ /s$/) {sub(/s/, "", v); v *= 1000}
      p99 = v}
    /Non-2xx/ {errors += $NF}
    /Socket errors/ {gsub(/,/, ""); errors += $4 + $6 + $8 + $10}
    END {if (rps == "" || rps == 0) {rps = "-"; p99 = "-"}
         printf "%s %s %d\n", rps, (p99 == "" ? "-" : p99), errors}' "$out"
}

# Each round measures nginx and then every proxy target, one after the
# other, so that each ratio compares runs minutes apart at most; the tables
# give the median over the rounds (this machine's nginx alone varies by
# +-15% from run to run) and each ratio's range.
# shellcheck disable=SC2034  # run_p99 and run_errs are read through per_round's nameref
declare -A run_rps run_p99 run_errs
measure() {  # name url connections round
  echo "[${SECONDS}s] round $4, wrk -c$3: $1" >&2
  read -r "run_rps[$1,$3,$4]" "run_p99[$1,$3,$4]" "run_errs[$1,$3,$4]" < <(run_wrk "$2" "$3")
}

# The numbers given, "-" (no figure) left out, smallest first.
measured_sorted() { printf '%s\n' "$@" | awk '$1 != "-"' | sort -g; }
# The median of the numbers given ("-" if none).
median() {
  measured_sorted "$@" |
    awk '{v[NR] = $1} END {if (NR == 0) print "-"; else if (NR % 2) print v[(NR + 1) / 2];
                           else printf "%.2f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2}'
}
# name connections field -> the field's values over the rounds
per_round() {
  local -n table=$3
  local r
  for r in $(seq "$ROUNDS"); do echo "${table[$1,$2,$r]:--}"; done
}
# name connections [base-name base-connections] -> each round's ratio
ratios() {
  local r
  # shellcheck disable=SC2005  # ratio prints no newline; echo ends each line
  for r in $(seq "$ROUNDS"); do echo "$(ratio "${run_rps[$1,$2,$r]:--}" "${run_rps[$3,$4,$r]:--}")"; done
}
# "median (min-max)" of a ratio over the rounds
ratio_cell() {
  local values
  mapfile -t values < <(ratios "$@")
  local m lo hi
  m=$(median "${values[@]}")
  lo=$(measured_sorted "${values[@]}" | head -1)
  hi=$(measured_sorted "${values[@]}" | tail -1)
  if ((ROUNDS > 1)) && [[ -n $lo ]]; then echo "$m ($lo-$hi)"; else echo "$m"; fi
}
# rps, p99 and errs (summed) of each key given, over the rounds, at -c32
# and -c1000.
declare -A rps p99 errs
medians() {
  local key c values
  for key in "$@"; do
    for c in 32 1000; do
      mapfile -t values < <(per_round "$key" "$c" run_rps)
      rps[$key,$c]=$(median "${values[@]}")
      mapfile -t values < <(per_round "$key" "$c" run_p99)
      p99[$key,$c]=$(median "${values[@]}")
      errs[$key,$c]=$(per_round "$key" "$c" run_errs | awk '$1 != "-" {s += $1} END {print s + 0}')
    done
  done
}
# A table row: label, then the key's medians (rps, p99, errs) and ratios.
row() {  # label key
  local r32=${rps[$2,32]} r1k=${rps[$2,1000]:--}
  echo "| $1 | $r32 | ${p99[$2,32]} | $(ratio_cell "$2" 32 nginx 32) | $r1k | ${p99[$2,1000]:--}" \
       "| $(ratio_cell "$2" 1000 nginx 1000) | $(ratio_cell "$2" 1000 "$2" 32) | ${errs[$2,32]} / ${errs[$2,1000]:--} |"
}

# --- CPU profile (--profile) --------------------------------------------------

ensure_command() {  # command debian-package
  command -v "$1" >/dev/null && return 0
  echo "installing $2" >&2
  local sudo=""; [[ $(id -u) -ne 0 ]] && sudo=sudo
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "$2" >/dev/null
}

# Prints the perf event to sample with, or nothing when perf cannot sample
# here (or BENCH_PROFILER=callgrind). Hardware counters are often missing in
# VMs and containers; the kernel's cpu-clock timer then still samples, which
# is all a CPU profile needs.
perf_event() {
  [[ ${BENCH_PROFILER:-perf} == callgrind ]] && return 0
  ensure_command perf linux-perf || return 0
  local stat
  stat=$(perf stat -e instructions true 2>&1) || true
  if [[ $stat == *instructions* && $stat != *"not supported"* && $stat != *"not counted"* ]]; then
    echo cycles
  elif perf record -q -e cpu-clock -o "$WORK/perf-check.data" true >/dev/null 2>&1; then
    echo cpu-clock
  fi
}

# perf report's rows, without its comments and its padding to the widest
# symbol seen (C++ templates make that thousands of columns).
perf_top() {
  perf report -i "$WORK/perf.data" --stdio --no-inline -g none "$@" 2>/dev/null |
    grep -v -e '^#' -e '^$' | sed -E 's/[[:space:]]+(-[[:space:]]+-)?[[:space:]]*$//' | cut -c1-180
}

profile() {
  local event out="$BUILD_DIR/bench-profile.txt" seconds=$((DURATION > 3 ? DURATION - 2 : 1))
  event=$(perf_event)
  fresh_queue
  if [[ -n $event ]]; then
    start_proxy sqlite
    timeout -k 5 $((DURATION + 30)) wrk -t2 -c32 -d"${DURATION}s" -s "$WORK/post.lua" \
      "http://127.0.0.1:$PROXY_PORT/" >"$WORK/wrk.out" 2>&1 &
    local wrk_pid=$!
    sleep 1  # past wrk's connection set-up
    # DWARF unwinding: a RelWithDebInfo build keeps no frame pointers, so -g
    # alone would cut most stacks at the first libc or Poco frame.
    perf record -q -e "$event" -F 499 --call-graph dwarf,16384 -p "$proxy" \
      -o "$WORK/perf.data" -- sleep "$seconds" >/dev/null 2>&1
    wait "$wrk_pid" || true
    stop_proxy "$proxy"
    # head ends the pipelines early: under pipefail that is not a failure.
    {
      echo "perf record -e $event -F 499 --call-graph dwarf -p <slack-proxy> under wrk -t2 -c32" \
           "(SQLite, sync = \"full\"), $seconds s, $(awk '/Requests\/sec/ {print $2}' "$WORK/wrk.out") req/s"
      echo; echo "top 15 by inclusive cost (children; thread entry frames left out):"
      perf_top --children --sort symbol | grep -v -E '\] (clone3|start_thread|0x[0-9a-f]+)$' | head -15 || true
      echo; echo "top 15 by self cost:"
      perf_top --no-children --sort dso,symbol | head -15 || true
    } | tee "$out"
  else
    [[ ${BENCH_PROFILER:-perf} == callgrind ]] ||
      echo "perf cannot sample in this kernel/container: falling back to callgrind" >&2
    ensure_command valgrind valgrind
    PROXY_WRAPPER=(valgrind --tool=callgrind --callgrind-out-file="$WORK/callgrind.out")
    start_proxy sqlite
    PROXY_WRAPPER=()
    # Under valgrind the proxy runs ~50x slower: a fixed count of requests
    # (2 wrk threads x 400), not a duration, makes the profile comparable.
    cat >"$WORK/fixed.lua" <<LUA
wrk.method = "POST"
wrk.body = '$body'
wrk.headers["Content-Type"] = "application/json"
local n = 0
function response() n = n + 1; if n >= 400 then wrk.thread:stop() end end
LUA
    timeout -k 5 200 wrk -t2 -c32 -d180s --timeout 30s -s "$WORK/fixed.lua" \
      "http://127.0.0.1:$PROXY_PORT/" >"$WORK/wrk.out" 2>&1 || true
    stop_proxy "$proxy"
    {
      echo "valgrind --tool=callgrind, slack-proxy (SQLite, sync = \"full\"), 800 POSTs by wrk -t2 -c32"
      echo; echo "top 15 by inclusive cost (instructions):"
      callgrind_annotate --inclusive=yes "$WORK/callgrind.out" 2>/dev/null |
        grep -E '^ *[0-9,]+ \(' | grep -v 'PROGRAM TOTALS' | cut -c1-180 | head -15 || true
    } | tee "$out"
  fi
  echo "(kept in $out)"
}

if [[ $MODE == profile ]]; then
  profile
  exit 0
fi

# --- bounded memory: a million queued messages (--backlog, issue #12) ---------
# Every figure from one run, with the real binary and the fake Slack:
#   - idle RSS: an empty SQLite queue, BACKLOG_SETTLE seconds after start;
#   - with BACKLOG_MESSAGES (1,000,000) over BACKLOG_CHANNELS (50) channels on
#     disk, written by queue-fill: exec to the ingress port accepting (a
#     connect() in a tight loop), and the RSS BACKLOG_SETTLE seconds after
#     start (and its maximum until then) while nothing can be delivered;
#   - the same backlog drained with no limiter: the maximum RSS sampled every
#     0.5 s, and the drain rate (messages over exec to the last delivery);
#   - LANES_MESSAGES (200,000) over LANES_CHANNELS (100,000) channels: the
#     CPU of the sp-dispatcher thread over CPU_WINDOW (10) seconds while every
#     lane waits on its own per-channel bucket (1 per hour, each lane's first
#     message sent), then, restarted on what is left, the delivered rate over
#     LANES_WINDOW (20) seconds under 1/s per channel and RATE_LIMIT (200)/s
#     for the workspace, beside that limit;
#   - durable ingest (wrk -c32, sync = "full", BENCH_ROUNDS rounds, nginx
#     first in each) into an empty queue and into the backlog; a 429 keeps
#     both queues as they are, so the only difference is the backlog.
# BACKLOG_DRAIN_DEADLINE (1800 s) and LANES_DEADLINE (600 s) bound the waits
# for deliveries: a figure not reached by then is printed as what was done.
#
# Why Slack answers 429 with Retry-After: 3600 while the backlog must stay:
# the proxy then pauses the whole workspace for an hour after its first few
# sends (a 429 spends no retry budget and keeps each message in its place),
# so nothing is delivered, dropped or dead-lettered and every message stays
# on disk, as in an outage during an alert storm. Tiny limiter rates would
# let each channel's burst through and measure the buckets' timers instead.
BACKLOG_MESSAGES=${BACKLOG_MESSAGES:-1000000}
BACKLOG_CHANNELS=${BACKLOG_CHANNELS:-50}
LANES_CHANNELS=${LANES_CHANNELS:-100000}
LANES_MESSAGES=${LANES_MESSAGES:-$((2 * LANES_CHANNELS))}
BACKLOG_SETTLE=${BACKLOG_SETTLE:-5}
CPU_WINDOW=${CPU_WINDOW:-10}
LANES_WINDOW=${LANES_WINDOW:-20}
RATE_LIMIT=${RATE_LIMIT:-200}
BACKLOG_DRAIN_DEADLINE=${BACKLOG_DRAIN_DEADLINE:-1800}
LANES_DEADLINE=${LANES_DEADLINE:-600}

RELAXED_STAGES='[[pipeline.stage]]
plugin = "slack_retry"'
HOURLY_STAGES='[[pipeline.stage]]
plugin = "token_bucket"
name = "per_channel"
key = "channel"
rate = 0.000277778    # 1 per hour
burst = 1
[[pipeline.stage]]
plugin = "slack_retry"'
LIMITED_STAGES="[[pipeline.stage]]
plugin = \"token_bucket\"
name = \"per_channel\"
key = \"channel\"
rate = 1.0
burst = 1
[[pipeline.stage]]
plugin = \"token_bucket\"
name = \"per_workspace\"
key = \"workspace\"
rate = $RATE_LIMIT
burst = 10
[[pipeline.stage]]
plugin = \"slack_retry\""

fake() {  # GET path, or POST path [json]
  local data=()
  [[ $1 == POST ]] && data=(-d "${3:-}")  # with a Content-Length, even when empty
  curl -fsS -m 10 -X "$1" "${data[@]}" "http://127.0.0.1:$FAKE_PORT/_fake/$2"
}
# Requests the fake recorded since its last reset (every one answered as
# its default says: ok, or the 429 while blocked).
fake_count() { fake GET stats | grep -o '"delivered":[0-9]*' | cut -d: -f2; }
slack_ok() { fake POST reset >/dev/null; }
slack_429() { fake POST reset >/dev/null; fake POST default '{"status":429,"retry_after":3600}' >/dev/null; }

now_ms() { local t=$EPOCHREALTIME; echo $((${t//[.,]/} / 1000)); }  # the decimal point is the locale's
mib() { awk -v k="$1" 'BEGIN {if (k == "" || k == "-") print "-"; else printf "%.1f", k / 1024}'; }
max_of() { awk -v a="$1" -v b="$2" 'BEGIN {print (b == "" || a + 0 >= b + 0) ? a : b}'; }
per_second() { awk -v n="$1" -v ms="$2" 'BEGIN {if (ms > 0) printf "%.0f", n * 1000 / ms; else print "-"}'; }

# Starts the proxy on $WORK/queue.db with the stages given and sets
# listen_ms: from just before the fork to the first accepted connect() on
# the ingress port, polled in a tight loop (each try is a subshell's
# /dev/tcp connect, about a millisecond). Then waits for /health.
start_timed() {  # stages
  write_proxy_config sqlite "" "$1"
  local t0=$EPOCHREALTIME t1
  started_ms=$((${t0//[.,]/} / 1000))
  launch_proxy
  listen_ms=-
  while :; do
    if (exec 3<>"/dev/tcp/127.0.0.1/$PROXY_PORT") 2>/dev/null; then
      t1=$EPOCHREALTIME
      listen_ms=$(((${t1//[.,]/} - ${t0//[.,]/}) / 1000))
      break
    fi
    kill -0 "$proxy" 2>/dev/null || break
    (($(now_ms) < started_ms + 60000)) || break
  done
  wait_healthy "backlog"
}
# The highest VmRSS (KiB), sampled every 0.5 s until `seconds` after start;
# rss_now is the last sample.
rss_until() {  # seconds-after-start
  local end=$((started_ms + $1 * 1000))
  rss_max="" rss_now=""
  while :; do
    still_running
    rss_now=$(rss_kib "$proxy")
    rss_max=$(max_of "$rss_now" "$rss_max")
    (($(now_ms) < end)) || break
    sleep 0.5
  done
}
# A copy of the filled backlog as the proxy's queue; the template itself is
# never opened by a proxy.
use_backlog() {
  local f
  fresh_queue
  for f in "$WORK"/backlog.db*; do cp "$f" "$WORK/queue.db${f#"$WORK"/backlog.db}"; done
}
fill() {  # file messages channels
  echo "[${SECONDS}s] queue-fill: $2 messages over $3 channels" >&2
  "$BIN/queue-fill" --db "$1" --messages "$2" --channels "$3" >&2
}
# Waits until the fake has recorded `n` requests or `deadline` (ms) passes,
# sampling the proxy's RSS every 0.5 s; sets got, done_ms and rss_max.
wait_delivered() {  # n deadline-ms
  rss_max=""
  while :; do
    still_running
    rss_max=$(max_of "$(rss_kib "$proxy")" "$rss_max")
    got=$(fake_count)
    done_ms=$(now_ms)
    ((got < $1 && done_ms < $2)) || return 0
    sleep 0.5
  done
}
# A proxy that died mid-run ends the run, with its log.
still_running() {
  kill -0 "$proxy" 2>/dev/null && return 0
  echo "slack-proxy exited during the run:" >&2
  tail -20 "$WORK/proxy.log" >&2
  exit 1
}
# utime + stime of a thread, in clock ticks.
thread_ticks() {  # pid tid
  local stat
  stat=$(cat "/proc/$1/task/$2/stat")
  stat=${stat##*) }  # after "tid (comm) ": field 3 (state) on, so utime is the 12th
  awk '{print $12 + $13}' <<<"$stat"
}
process_ticks() {  # pid
  local stat
  stat=$(cat "/proc/$1/stat")
  stat=${stat##*) }
  awk '{print $12 + $13}' <<<"$stat"
}
thread_named() {  # pid name
  local t
  for t in /proc/"$1"/task/*; do
    [[ $(cat "$t/comm" 2>/dev/null) == "$2" ]] && { echo "${t##*/}"; return 0; }
  done
  return 1
}
percent_of_core() {  # ticks milliseconds
  awk -v t="$1" -v ms="$2" -v hz="$(getconf CLK_TCK)" 'BEGIN {printf "%.1f", t * 100 * 1000 / hz / ms}'
}

backlog() {
  local n=$BACKLOG_MESSAGES
  start_nginx bench "
  server {
    listen 127.0.0.1:$NGINX_PORT;
    location / { default_type application/json; return 200 '{\"ok\":true}'; }
  }"
  fill "$WORK/backlog.db" "$n" "$BACKLOG_CHANNELS"
  db_mib=$(du -sk "$WORK"/backlog.db* | awk '{s += $1} END {printf "%.0f", s / 1024}')

  echo "[${SECONDS}s] idle" >&2
  slack_ok
  fresh_queue
  start_timed "$RELAXED_STAGES"
  rss_until "$BACKLOG_SETTLE"
  idle_kib=$rss_now
  stop_proxy "$proxy"

  # Ingest rounds; the first backlog start also gives the start-up figures.
  local round
  declare -ga backlog_listen=()
  for round in $(seq "$ROUNDS"); do
    measure nginx "http://127.0.0.1:$NGINX_PORT/" 32 "$round"
    slack_429
    fresh_queue
    start_timed "$PACED_STAGES"
    measure empty "http://127.0.0.1:$PROXY_PORT/" 32 "$round"
    stop_proxy "$proxy"
    slack_429
    use_backlog
    start_timed "$PACED_STAGES"
    backlog_listen+=("$listen_ms")
    if ((round == 1)); then
      rss_until "$BACKLOG_SETTLE"
      blocked_kib=$rss_now blocked_max_kib=$rss_max
      blocked_queued=$(queued) blocked_sent=$(fake_count)
    fi
    measure backlog "http://127.0.0.1:$PROXY_PORT/" 32 "$round"
    stop_proxy "$proxy"
  done

  echo "[${SECONDS}s] draining $n messages, no limiter" >&2
  slack_ok
  use_backlog
  start_timed "$RELAXED_STAGES"
  drain_listen=$listen_ms
  wait_delivered "$n" $((started_ms + BACKLOG_DRAIN_DEADLINE * 1000))
  drain_kib=$rss_max drain_got=$got drain_ms=$((done_ms - started_ms))
  drain_left=$(queued)
  stop_proxy "$proxy"
  slack_ok  # the fake forgets the million it recorded

  echo "[${SECONDS}s] $LANES_CHANNELS lanes: each lane's first message, then 1 per hour" >&2
  fresh_queue
  fill "$WORK/queue.db" "$LANES_MESSAGES" "$LANES_CHANNELS"
  start_timed "$HOURLY_STAGES"
  lanes_listen=$listen_ms
  wait_delivered "$LANES_CHANNELS" $((started_ms + LANES_DEADLINE * 1000))
  heads_got=$got heads_ms=$((done_ms - started_ms))
  lanes_kib=$rss_max
  cpu_dispatcher=- cpu_process=- cpu_sent=-
  local tid=""
  if ((heads_got < LANES_CHANNELS)); then
    cpu_note="not measured: lanes were still due (their first messages not all sent)"
  elif ! tid=$(thread_named "$proxy" sp-dispatcher); then
    cpu_note="not measured: no thread named sp-dispatcher"
  else
    sleep 1  # the last replies' outcomes recorded
    local t0 p0 c0 ms from
    t0=$(thread_ticks "$proxy" "$tid") p0=$(process_ticks "$proxy") c0=$(fake_count)
    from=$(now_ms)
    sleep "$CPU_WINDOW"
    ms=$(($(now_ms) - from))
    cpu_dispatcher=$(percent_of_core $(($(thread_ticks "$proxy" "$tid") - t0)) "$ms")
    cpu_process=$(percent_of_core $(($(process_ticks "$proxy") - p0)) "$ms")
    cpu_sent=$(($(fake_count) - c0))
    cpu_note="$cpu_dispatcher% of a core (whole process $cpu_process%; sent meanwhile: $cpu_sent)"
  fi
  stop_proxy "$proxy"

  echo "[${SECONDS}s] $LANES_CHANNELS lanes at 1/s per channel, $RATE_LIMIT/s per workspace" >&2
  slack_ok
  start_timed "$LIMITED_STAGES"
  limited_listen=$listen_ms
  local c0 from
  sleep 5  # past the start and the workspace bucket's burst
  c0=$(fake_count) from=$(now_ms)
  sleep "$LANES_WINDOW"
  limited_rate=$(per_second $(($(fake_count) - c0)) $(($(now_ms) - from)))
  stop_proxy "$proxy"

  backlog_summary
}

median_of() {  # name: its -c32 req/s over the rounds
  local values
  mapfile -t values < <(per_round "$1" 32 run_rps)
  median "${values[@]}"
}
backlog_summary() {
  local listen_cell rounds_cell heads_cell
  listen_cell=$(median "${backlog_listen[@]}")
  printf -v rounds_cell '%s / ' "${backlog_listen[@]}"
  rounds_cell=${rounds_cell% / }
  heads_cell="$heads_got of $LANES_CHANNELS in ${heads_ms} ms ($(per_second "$heads_got" "$heads_ms")/s)"
  cat <<OUT

| issue #12: $n messages over $BACKLOG_CHANNELS channels on disk (database ${db_mib} MiB) | measured | target |
|---|---|---|
| idle RSS, empty SQLite queue, ${BACKLOG_SETTLE} s after start | $(mib "$idle_kib") MiB | <= 15 MiB |
| exec to ingress accepting, $n queued (median of $ROUNDS starts; each) | $listen_cell ms ($rounds_cell) | <= 2000 ms |
| RSS ${BACKLOG_SETTLE} s after start, $n queued, Slack answering 429 (max until then) | $(mib "$blocked_kib") MiB ($(mib "$blocked_max_kib")) | <= 64 MiB |
| max RSS while draining them, no limiter (sampled every 0.5 s until all were delivered) | $(mib "$drain_kib") MiB | <= 64 MiB |
| drain rate: delivered / exec to the last delivery | $(per_second "$drain_got" "$drain_ms") msg/s ($drain_got of $n in ${drain_ms} ms) | |
| nginx return 200 -c32, the same rounds (median req/s) | $(median_of nginx) | |
| durable ingest -c32, empty queue (median req/s, and of nginx) | $(median_of empty) req/s, $(ratio_cell empty 32 nginx 32) of nginx | |
| durable ingest -c32, $n queued (median req/s, and of nginx) | $(median_of backlog) req/s, $(ratio_cell backlog 32 nginx 32) of nginx | |
| ingest with the backlog / into the empty queue (each round's own) | $(ratio_cell backlog 32 empty 32) | >= 0.90 |
| $LANES_CHANNELS lanes ($LANES_MESSAGES messages), all waiting (1/h per channel): sp-dispatcher CPU over ${CPU_WINDOW} s | $cpu_note | < 10% |
| $LANES_CHANNELS lanes, 1/s per channel + $RATE_LIMIT/s per workspace: delivered/s over ${LANES_WINDOW} s | $limited_rate/s | $RATE_LIMIT/s |

checks: with $n queued and Slack answering 429, slackproxy_queue_size ${blocked_queued:-?} and ${blocked_sent:-?} requests reached Slack ${BACKLOG_SETTLE} s after start;
after the drain slackproxy_queue_size ${drain_left:-?}; exec to accepting ${drain_listen} ms (drain start), ${lanes_listen} ms ($LANES_MESSAGES over $LANES_CHANNELS lanes), ${limited_listen} ms (restart on what was left);
first message of each of the $LANES_CHANNELS lanes, no workspace limit: $heads_cell, max RSS $(mib "$lanes_kib") MiB
(wrk -t2 -c32 -d${DURATION}s, $ROUNDS rounds, 200-byte JSON body, sync = "full"; nginx $(nproc) workers; $(nproc) cores; $(date -u +%F))
OUT
}

if [[ $MODE == backlog ]]; then
  backlog
  exit 0
fi

# --- ingest by queue backend (--queues, issue #13) -----------------------------
# One proxy at a time, as above, with the memory queue, SQLite (sync full)
# and Redis; Redis with every write in its AOF before it answers
# (appendfsync always), the setting docs/scale-out.md gives for the queue.
queues() {
  command -v redis-server >/dev/null || { echo "--queues needs redis-server" >&2; exit 1; }
  mkdir -p "$WORK/redis"
  redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --dir "$WORK/redis" --save "" \
    --appendonly yes --appendfsync always --logfile "$WORK/redis.log" &
  redis_pid=$!
  pids+=("$redis_pid")
  for _ in $(seq 100); do redis-cli -p "$REDIS_PORT" PING >/dev/null 2>&1 && break; sleep 0.1; done
  start_nginx queues "
  server {
    listen 127.0.0.1:$NGINX_PORT;
    location / { default_type application/json; return 200 '{\"ok\":true}'; }
  }"
  local round c backend
  for round in $(seq "$ROUNDS"); do
    for c in 32 1000; do
      measure nginx "http://127.0.0.1:$NGINX_PORT/" $c "$round"
      for backend in memory sqlite redis; do
        fresh_queue
        start_proxy "$backend"
        measure "$backend" "http://127.0.0.1:$PROXY_PORT/" $c "$round"
        stop_proxy "$proxy"
      done
    done
  done
  medians nginx memory sqlite redis
  cat <<OUT

Median of $ROUNDS rounds; a ratio is each round's own, median (min-max).

| target | -c32 req/s | -c32 p99 (ms) | / nginx | -c1000 req/s | -c1000 p99 (ms) | / nginx | -c1000 / -c32 | errors -c32 / -c1000 |
|---|---|---|---|---|---|---|---|---|
$(row "nginx static return 200, access log off" nginx)
$(row "slack-proxy, memory queue" memory)
$(row "slack-proxy, SQLite queue, sync = \"full\"" sqlite)
$(row "slack-proxy, Redis queue, AOF appendfsync always" redis)
(wrk -t2 -d${DURATION}s, 200-byte JSON body; Redis $(redis-server --version | awk '{print $3}') on the same machine; nginx $(nproc) workers; $(nproc) cores; $(date -u +%F))
OUT
}

if [[ $MODE == queues ]]; then
  queues
  exit 0
fi

# --- throughput and latency ---------------------------------------------------

start_nginx bench "
  # Strict baseline: nothing but the reply.
  server {
    listen 127.0.0.1:$NGINX_PORT;
    location / { default_type application/json; return 200 '{\"ok\":true}'; }
  }
  # Debian's stock behaviour: the same, with the default access log on.
  server {
    listen 127.0.0.1:$NGINX_LOG_PORT;
    access_log $WORK/access.log;
    location / { default_type application/json; return 200 '{\"ok\":true}'; }
  }"

# A fresh proxy and queue for each run, so that the -c1000 run does not start
# with the -c32 run's messages queued.
rss_idle="" rss_full="" mem_queued=""
for round in $(seq "$ROUNDS"); do
  for c in 32 1000; do measure nginx "http://127.0.0.1:$NGINX_PORT/" $c "$round"; done
  measure nginx_log "http://127.0.0.1:$NGINX_LOG_PORT/" 32 "$round"
  for backend in memory sqlite sqlite-normal; do
    for c in 32 1000; do
      fresh_queue
      start_proxy "$backend"
      [[ $round == 1 && $backend == memory && $c == 32 ]] && rss_idle=$(rss_kib "$proxy")
      measure "$backend" "http://127.0.0.1:$PROXY_PORT/" $c "$round"
      if [[ $round == 1 && $backend == memory && $c == 32 ]]; then
        rss_full=$(rss_kib "$proxy")
        mem_queued=$(queued)
      fi
      [[ $round == 1 && $backend == sqlite && $c == 32 ]] && sql_queued=$(queued)
      stop_proxy "$proxy"
    done
  done
done

medians nginx nginx_log memory sqlite sqlite-normal

# --- RSS with 100,000 messages queued in SQLite -------------------------------
# 2 wrk threads stop after 50,000 replies each (a few more may be in flight;
# the figure printed is the queue size measured). Then the same after a
# restart that recovers them.
cat >"$WORK/count.lua" <<LUA
wrk.method = "POST"
wrk.body = '$body'
wrk.headers["Content-Type"] = "application/json"
local n = 0
function response(status, headers, body)
  n = n + 1
  if n >= 50000 then wrk.thread:stop() end
end
LUA
echo "[${SECONDS}s] 100,000 messages queued in SQLite" >&2
fresh_queue
start_proxy sqlite
rss_sql_idle=$(rss_kib "$proxy")
timeout -k 5 150 wrk -t2 -c32 -d120s -s "$WORK/count.lua" "http://127.0.0.1:$PROXY_PORT/" >/dev/null || true
rss_sql_100k=$(rss_kib "$proxy")
q100k=$(queued)
stop_proxy "$proxy"
db_kib=$(du -sk "$WORK"/queue.db* | awk '{s += $1} END {print s}')
start_proxy sqlite
rss_sql_recovered=$(rss_kib "$proxy")
q_recovered=$(queued)
stop_proxy "$proxy"

# --- capacity -----------------------------------------------------------------
# The crowd's connections must outlive the run: nothing may be closed for
# idling or for a head that takes long. The caller's POSTs are paced over
# DURATION seconds, so the trickle goes on all through them.
run_capacity() {  # port output-file rss-pid...
  local port=$1 out=$2; shift 2
  local rss_args=()
  for p in "$@"; do rss_args+=(--rss-pid "$p"); done
  timeout -k 5 $((6 * DURATION + 200)) "$BIN/capacity-bench" --port "$port" \
    --idle "$IDLE" --trickle "$TRICKLE" --body "$body" \
    --probes "$PROBES" --probe-interval-ms "$(awk -v d="$DURATION" -v n="$PROBES" 'BEGIN {print d * 1000 / n}')" \
    --probe-seconds $((3 * DURATION)) --open-seconds 60 --deadline-seconds $((6 * DURATION + 180)) \
    "${rss_args[@]}" >"$out" 2>&1 || echo "capacity-bench exited $?" >>"$out"
  sed 's/^/  /' "$out" >&2
}
long_timeouts="read_timeout = \"900s\"
keep_alive_timeout = \"900s\"
max_connections = $((IDLE + TRICKLE + 1000))"
fresh_queue
start_proxy sqlite "$long_timeouts"
echo "[${SECONDS}s] capacity, slack-proxy:" >&2
run_capacity "$PROXY_PORT" "$WORK/capacity-proxy.out" "$proxy"
stop_proxy "$proxy"
# A fresh nginx: an nginx worker keeps the memory it once grew to, so the one
# the wrk runs used would show no growth per connection.
start_nginx capacity "
  server {
    listen 127.0.0.1:$NGINX_CAPACITY_PORT;
    keepalive_timeout 900s;
    keepalive_requests 1000000;
    client_header_timeout 900s;
    location / { default_type application/json; return 200 '{\"ok\":true}'; }
  }"
echo "[${SECONDS}s] capacity, nginx:" >&2
# shellcheck disable=SC2046  # one pid per word
run_capacity "$NGINX_CAPACITY_PORT" "$WORK/capacity-nginx.out" $(nginx_workers capacity)

# capacity-bench's "<record> key=value ..." lines: file record phase key.
cap() {
  awk -v r="$2" -v ph="$3" -v k="$4" '
    $1 == r {delete m; for (i = 2; i <= NF; i++) {split($i, a, "="); m[a[1]] = a[2]}
             if (ph == "" || m["phase"] == ph) v = m[k]}
    END {print (v == "" ? "-" : v)}' "$1"
}
ms() { case $1 in timed_out) echo "timed out" ;; failed|none|-) echo "$1" ;; *) printf '%.1f' "$1" ;; esac; }
capacity_row() {  # label file
  local f=$2 per
  per=$(cap "$f" rss idle per_idle_bytes)
  [[ $per =~ ^-?[0-9]+$ ]] && per=$(awk -v b="$per" 'BEGIN {printf "%.1f", b / 1024}')
  echo "| $1 | $(cap "$f" end "" idle_open) / $IDLE | $(cap "$f" end "" trickle_open) / $TRICKLE" \
       "| $(cap "$f" probe loaded ok) / $(cap "$f" probe loaded sent)" \
       "| $(ms "$(cap "$f" probe loaded p50_ms)") | $(ms "$(cap "$f" probe loaded p99_ms)")" \
       "| $(ms "$(cap "$f" probe loaded max_ms)") | $(ms "$(cap "$f" probe baseline p99_ms)")" \
       "| $(cap "$f" rss before kib) → $(cap "$f" rss idle kib) | $per |"
}

# --- summary ------------------------------------------------------------------

# Each round's -c32 figures, as measured.
round_rows() {
  local r
  for r in $(seq "$ROUNDS"); do
    echo "| $r | ${run_rps[nginx,32,$r]} | ${run_rps[memory,32,$r]} ($(ratio "${run_rps[memory,32,$r]}" "${run_rps[nginx,32,$r]}"))" \
         "| ${run_rps[sqlite,32,$r]} ($(ratio "${run_rps[sqlite,32,$r]}" "${run_rps[nginx,32,$r]}"))" \
         "| ${run_rps[sqlite-normal,32,$r]} ($(ratio "${run_rps[sqlite-normal,32,$r]}" "${run_rps[nginx,32,$r]}")) |"
  done
}
per_msg=$(awk -v f="$rss_full" -v i="$rss_idle" -v q="$mem_queued" 'BEGIN {if (q > 0) printf "%.0f", (f - i) * 1024 / q; else print "-"}')
cat <<OUT

Median of $ROUNDS rounds; a ratio is each round's own, median (min-max).

| target | -c32 req/s | -c32 p99 (ms) | / nginx | -c1000 req/s | -c1000 p99 (ms) | / nginx | -c1000 / -c32 | errors -c32 / -c1000 |
|---|---|---|---|---|---|---|---|---|
$(row "nginx static return 200, access log off" nginx)
| nginx static return 200, access log on (Debian default) | ${rps[nginx_log,32]} | ${p99[nginx_log,32]} | $(ratio_cell nginx_log 32 nginx 32) | | | | | ${errs[nginx_log,32]} |
$(row "slack-proxy, memory queue" memory)
$(row "slack-proxy, SQLite queue, sync = \"full\" (fsync per group commit)" sqlite)
$(row "slack-proxy, SQLite queue, sync = \"normal\"" sqlite-normal)

| round (-c32 req/s) | nginx | memory (/ nginx) | SQLite full (/ nginx) | SQLite normal (/ nginx) |
|---|---|---|---|---|
$(round_rows)

| capacity: $IDLE idle keep-alive + $TRICKLE trickling heads | idle open at the end | trickling open at the end | caller's POSTs 200 | p50 (ms) | p99 (ms) | max (ms) | p99 alone (ms) | RSS KiB before → with idle | KiB per idle connection |
|---|---|---|---|---|---|---|---|---|---|
$(capacity_row "slack-proxy, SQLite queue, sync = \"full\"" "$WORK/capacity-proxy.out")
$(capacity_row "nginx static return 200 (fresh)" "$WORK/capacity-nginx.out")

targets (issue #10): SQLite full >= 0.41 and memory >= 0.55 of nginx at -c32; p99 <= 5 ms at -c32;
-c1000 / -c32 >= 0.90; under the crowd the caller's p99 < 50 ms; <= 8 KiB per idle connection.
memory queue RSS: ${rss_idle} KiB idle, ${rss_full} KiB with $mem_queued messages queued (~${per_msg} bytes per queued message)
SQLite queue (${sql_queued:-?} messages accepted in the timed -c32 run)
SQLite RSS: ${rss_sql_idle} KiB idle, ${rss_sql_100k} KiB with $q100k messages queued on disk; ${rss_sql_recovered} KiB after a restart recovered $q_recovered; database ${db_kib} KiB
(wrk -t2 -d${DURATION}s --latency, $ROUNDS rounds, 200-byte JSON body; capacity: $PROBES POSTs over ${DURATION}s; $(nproc) cores, nginx $(nproc) workers, open files $(ulimit -n), $(date -u +%F))
OUT

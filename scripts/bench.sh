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
# BENCH_ROUNDS: rounds of the wrk runs, default 3; the tables give medians
#   and each ratio's range over them.
# BENCH_PROXY_SERVER: extra lines for the proxy's [server] table, e.g.
#   "threads = 64" to measure a build from before the event-driven ingress.
# BUILD_DIR (scripts/common.sh): the build to use, default build/.
set -euo pipefail
source "$(dirname "$0")/common.sh"
PROFILE=0
if [[ "${1:-}" == "--profile" ]]; then PROFILE=1; shift; fi
DURATION="${1:-10}"
ROUNDS="${BENCH_ROUNDS:-3}"
[[ $ROUNDS =~ ^[1-9][0-9]*$ ]] || { echo "BENCH_ROUNDS must be a positive number" >&2; exit 2; }
[[ $DURATION =~ ^[0-9]+$ && $DURATION -ge 2 ]] || { echo "usage: $0 [--profile] [SECONDS >= 2]" >&2; exit 2; }

IDLE=10000 TRICKLE=1000 PROBES=2000
configure_and_build --bench
BIN="$BUILD_DIR/bin"
WORK="$(mktemp -d)"
PROXY_PORT=18480 METRICS_PORT=18490 FAKE_PORT=18499
NGINX_PORT=18481 NGINX_LOG_PORT=18482 NGINX_CAPACITY_PORT=18483
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
# "sqlite-normal", with optional extra [server] lines. Sets $proxy to its pid.
# $PROXY_WRAPPER (the profiler) runs it, when set.
PROXY_WRAPPER=()
start_proxy() {
  local backend=$1 sync=full server_extra=${2:-}
  [[ $backend == sqlite-normal ]] && { backend=sqlite; sync=normal; }
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
[dispatcher]
shutdown_timeout = "1s"    # stopping must not wait for the queue to drain at 1/s
[log]
level = "warn"
[[pipeline]]
name = "slack"
paths = ["/"]
[[pipeline.stage]]
plugin = "token_bucket"
rate = 1.0
burst = 3
[[pipeline.stage]]
plugin = "slack_retry"
[[pipeline.stage]]
plugin = "slack_sink"
url = "http://127.0.0.1:$FAKE_PORT/api/chat.postMessage"
TOML
  SLACK_TOKEN=xoxb-bench-not-a-real-token "${PROXY_WRAPPER[@]}" "$BIN/slack-proxy" \
    --config "$WORK/bench.toml" >/dev/null 2>>"$WORK/proxy.log" &
  proxy=$!
  pids+=("$proxy")
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
fresh_queue() { rm -f "$WORK"/queue.db*; }

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

if ((PROFILE)); then
  profile
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
declare -A rps p99 errs
for key in nginx nginx_log memory sqlite sqlite-normal; do
  for c in 32 1000; do
    mapfile -t values < <(per_round "$key" "$c" run_rps)
    rps[$key,$c]=$(median "${values[@]}")
    mapfile -t values < <(per_round "$key" "$c" run_p99)
    p99[$key,$c]=$(median "${values[@]}")
    errs[$key,$c]=$(per_round "$key" "$c" run_errs | awk '$1 != "-" {s += $1} END {print s + 0}')
  done
done

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

row() {  # label key
  local r32=${rps[$2,32]} r1k=${rps[$2,1000]:--}
  echo "| $1 | $r32 | ${p99[$2,32]} | $(ratio_cell "$2" 32 nginx 32) | $r1k | ${p99[$2,1000]:--}" \
       "| $(ratio_cell "$2" 1000 nginx 1000) | $(ratio_cell "$2" 1000 "$2" 32) | ${errs[$2,32]} / ${errs[$2,1000]:--} |"
}
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

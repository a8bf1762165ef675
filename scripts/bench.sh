#!/usr/bin/env bash
# Ingest benchmark: wrk (2 threads, 32 keep-alive connections, 200-byte JSON
# chat.postMessage bodies) against slack-proxy and, in the same run, against
# a static nginx `return 200` as the denominator. Reports req/s, p99 and the
# proxy's RSS with everything it accepted still queued.
#
#   scripts/bench.sh [DURATION_SECONDS]     default 10
set -euo pipefail
source "$(dirname "$0")/common.sh"
DURATION="${1:-10}"

configure_and_build --bench
BIN="$BUILD_DIR/bin"
WORK="$(mktemp -d)"
PROXY_PORT=18480 METRICS_PORT=18490 FAKE_PORT=18499 NGINX_PORT=18481 NGINX_LOG_PORT=18482
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  [[ -f "$WORK/nginx.pid" ]] && kill "$(cat "$WORK/nginx.pid")" 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

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
# the run measures ingest and the RSS figure measures queued messages.
"$BIN/fake-slack" --port "$FAKE_PORT" --quiet &
pids+=($!)
# One proxy at a time, on the same port: "memory", "sqlite" (sync full) or
# "sqlite-normal". Sets $proxy to its pid.
start_proxy() {
  local backend=$1 sync=full
  [[ $backend == sqlite-normal ]] && { backend=sqlite; sync=normal; }
  cat >"$WORK/bench.toml" <<TOML
[server]
listen = "127.0.0.1:$PROXY_PORT"
threads = 64
[metrics]
listen = "127.0.0.1:$METRICS_PORT"
[queue]
backend = "$backend"
path = "$WORK/queue.db"
sync = "$sync"
capacity = 10000000
max_bytes = 10000000000
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
  SLACK_TOKEN=xoxb-bench-not-a-real-token "$BIN/slack-proxy" --config "$WORK/bench.toml" \
    >/dev/null 2>>"$WORK/proxy.log" &
  proxy=$!
  pids+=($proxy)
  for _ in $(seq 100); do
    curl -fsS "http://127.0.0.1:$METRICS_PORT/health" >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  echo "slack-proxy ($1) did not start:" >&2
  cat "$WORK/proxy.log" >&2
  exit 1
}
stop_proxy() { kill "$1"; wait "$1" 2>/dev/null || true; }

cat >"$WORK/nginx.conf" <<NGINX
worker_processes auto;
pid $WORK/nginx.pid;
error_log $WORK/nginx-error.log;
events { worker_connections 1024; }
http {
  access_log off;
  client_body_temp_path $WORK;
  # Strict baseline: nothing but the reply.
  server {
    listen 127.0.0.1:$NGINX_PORT;
    location / { default_type application/json; return 200 '{"ok":true}'; }
  }
  # Debian's stock behaviour: the same, with the default access log on.
  server {
    listen 127.0.0.1:$NGINX_LOG_PORT;
    access_log $WORK/access.log;
    location / { default_type application/json; return 200 '{"ok":true}'; }
  }
}
NGINX
nginx -c "$WORK/nginx.conf"

rss_kib() { awk '/VmRSS/ {print $2}' "/proc/$1/status"; }
queued() { curl -fsS "http://127.0.0.1:$METRICS_PORT/metrics" | awk '/^slackproxy_queue_size/ {print $2}'; }

run_wrk() {  # url -> "req/s p99_ms"
  wrk -t2 -c32 -d"${DURATION}s" --latency -s "$WORK/post.lua" "$1" >"$WORK/wrk.out"
  local rps p99
  rps=$(awk '/Requests\/sec/ {print $2}' "$WORK/wrk.out")
  p99=$(awk '$1 == "99%" {v=$2; if (v ~ /us$/) {sub(/us/,"",v); v/=1000} else if (v ~ /ms$/) {sub(/ms/,"",v)} else if (v ~ /s$/) {sub(/s/,"",v); v*=1000}; print v}' "$WORK/wrk.out")
  if grep -q "Non-2xx" "$WORK/wrk.out"; then grep "Non-2xx" "$WORK/wrk.out" >&2; fi
  echo "$rps $p99"
}

read -r nginx_rps nginx_p99 < <(run_wrk "http://127.0.0.1:$NGINX_PORT/")
read -r nginx_log_rps nginx_log_p99 < <(run_wrk "http://127.0.0.1:$NGINX_LOG_PORT/")

start_proxy memory
rss_idle=$(rss_kib "$proxy")
read -r mem_rps mem_p99 < <(run_wrk "http://127.0.0.1:$PROXY_PORT/")
rss_full=$(rss_kib "$proxy")
mem_queued=$(queued)
stop_proxy "$proxy"

rm -f "$WORK"/queue.db*
start_proxy sqlite
read -r sql_rps sql_p99 < <(run_wrk "http://127.0.0.1:$PROXY_PORT/")
sql_queued=$(queued)
stop_proxy "$proxy"

rm -f "$WORK"/queue.db*
start_proxy sqlite-normal
read -r sqln_rps sqln_p99 < <(run_wrk "http://127.0.0.1:$PROXY_PORT/")
stop_proxy "$proxy"

# RSS with 100,000 messages queued on disk: 2 wrk threads stop after 50,000
# replies each (a few more may be in flight; the figure printed is the queue
# size measured). Then the same after a restart that recovers them.
rm -f "$WORK"/queue.db*
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
start_proxy sqlite
rss_sql_idle=$(rss_kib "$proxy")
wrk -t2 -c32 -d120s -s "$WORK/count.lua" "http://127.0.0.1:$PROXY_PORT/" >/dev/null
rss_sql_100k=$(rss_kib "$proxy")
q100k=$(queued)
stop_proxy "$proxy"
db_kib=$(du -sk "$WORK"/queue.db* | awk '{s += $1} END {print s}')
start_proxy sqlite
rss_sql_recovered=$(rss_kib "$proxy")
q_recovered=$(queued)
stop_proxy "$proxy"

ratio() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.2f", a / b}'; }
per_msg=$(awk -v f="$rss_full" -v i="$rss_idle" -v q="$mem_queued" 'BEGIN {printf "%.0f", (f - i) * 1024 / q}')
cat <<OUT
| target | req/s | p99 (ms) | / nginx (log off) | / nginx (log on) |
|---|---|---|---|---|
| nginx static return 200, access log off | $nginx_rps | $nginx_p99 | 1.00 | |
| nginx static return 200, access log on (Debian default) | $nginx_log_rps | $nginx_log_p99 | | 1.00 |
| slack-proxy, memory queue | $mem_rps | $mem_p99 | $(ratio "$mem_rps" "$nginx_rps") | $(ratio "$mem_rps" "$nginx_log_rps") |
| slack-proxy, SQLite queue, sync = "full" (fsync per group commit) | $sql_rps | $sql_p99 | $(ratio "$sql_rps" "$nginx_rps") | $(ratio "$sql_rps" "$nginx_log_rps") |
| slack-proxy, SQLite queue, sync = "normal" | $sqln_rps | $sqln_p99 | $(ratio "$sqln_rps" "$nginx_rps") | $(ratio "$sqln_rps" "$nginx_log_rps") |

memory queue RSS: ${rss_idle} KiB idle, ${rss_full} KiB with $mem_queued messages queued (~${per_msg} bytes per queued message)
SQLite queue ($sql_queued messages accepted in the timed run)
SQLite RSS: ${rss_sql_idle} KiB idle, ${rss_sql_100k} KiB with $q100k messages queued on disk; ${rss_sql_recovered} KiB after a restart recovered $q_recovered; database ${db_kib} KiB
(wrk -t2 -c32 -d${DURATION}s, 200-byte JSON body, $(nproc) cores, $(date -u +%F))
OUT

#!/usr/bin/env bash
# Builds the libFuzzer targets (tests/fuzz/, clang with ASan + UBSan) and runs
# each for SECONDS (default 60) from its seed corpus. Fails on any crash,
# leak, timeout or out-of-memory, and prints where the input that caused it
# was kept. See docs/hardening.md.
#   scripts/fuzz.sh [SECONDS]
#   FUZZ_BUILD_DIR=...   build directory (default build-fuzz). A tree already
#                        configured with -DSLACK_PROXY_FUZZ=ON (scripts/test.sh's
#                        sanitized one) is used as it is.
set -euo pipefail
source "$(dirname "$0")/common.sh"

SECONDS_PER_TARGET="${1:-60}"
if [[ ! "$SECONDS_PER_TARGET" =~ ^[1-9][0-9]*$ ]]; then
  echo "usage: scripts/fuzz.sh [SECONDS]  (whole seconds per target, default 60)" >&2
  exit 1
fi
FUZZ_BUILD_DIR="${FUZZ_BUILD_DIR:-$ROOT/build-fuzz}"

# Each target with the longest input worth trying: request bodies well past
# fuzz_ingress's 8 KiB body limit; for fuzz_transport, a URI past the fixed
# 16 KiB limit (414) inside its 20 KiB head limit; twice the largest shipped
# config.
declare -A max_len=([chat_message]=16384 [ingress]=16384 [transport]=24576 [config]=12288)
names=(chat_message ingress transport config)

if ! command -v clang++ >/dev/null ||
   ! compgen -G "/usr/lib/llvm-*/lib/clang/*/lib/linux/libclang_rt.fuzzer-x86_64.a" >/dev/null; then
  echo "fuzz.sh: needs clang and libFuzzer (Debian: apt-get install clang libclang-rt-14-dev)" >&2
  exit 1
fi

if ! grep -qx 'SLACK_PROXY_FUZZ:BOOL=ON' "$FUZZ_BUILD_DIR/CMakeCache.txt" 2>/dev/null; then
  BUILD_DIR="$FUZZ_BUILD_DIR" configure \
    -DCMAKE_C_COMPILER=clang -DCMAKE_CXX_COMPILER=clang++ -DSLACK_PROXY_FUZZ=ON
fi
cmake --build "$FUZZ_BUILD_DIR" -j "$(nproc)" --target "${names[@]/#/fuzz_}"

# UB is fatal (the build says -fno-sanitize-recover); print its stack too.
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1}"

failed=()
# One fuzzer is one process on one core: run as many at once as there are
# cores, so that the wall time is SECONDS per round of targets, not per
# target, with the same fuzzing each.
jobs="$(nproc)"
fuzz_target() {  # name: runs it, and leaves its exit status in its work dir
  local name="$1" work="$FUZZ_BUILD_DIR/fuzz-run/$1" status=0
  # New inputs go to the first directory, so the committed seeds stay as they are.
  mkdir -p "$work/corpus" "$work/artifacts"
  echo "fuzz_$name: ${SECONDS_PER_TARGET} s, max_len ${max_len[$name]}" >&2
  "$FUZZ_BUILD_DIR/bin/fuzz_$name" \
    -max_total_time="$SECONDS_PER_TARGET" -max_len="${max_len[$name]}" \
    -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
    -dict="$ROOT/tests/fuzz/$name.dict" \
    -artifact_prefix="$work/artifacts/" \
    "$work/corpus" "$ROOT/tests/fuzz/corpus/$name" >"$work/fuzz.log" 2>&1 || status=$?
  echo "$status" >"$work/status"
}
running=0
for name in "${names[@]}"; do
  rm -f "$FUZZ_BUILD_DIR/fuzz-run/$name/status"
  fuzz_target "$name" &
  running=$((running + 1))
  if [[ $running -ge $jobs ]]; then
    wait -n || true
    running=$((running - 1))
  fi
done
wait

summary=()
for name in "${names[@]}"; do
  work="$FUZZ_BUILD_DIR/fuzz-run/$name"
  log="$work/fuzz.log"
  status=$(cat "$work/status" 2>/dev/null || echo "no status")
  execs=$(awk '/^stat::number_of_executed_units:/ {print $2}' "$log" | tail -n 1)
  per_second=$(awk '/^stat::average_exec_per_sec:/ {print $2}' "$log" | tail -n 1)
  line=$(printf '%-18s %12s execs %8s exec/s' "fuzz_$name" "${execs:-?}" "${per_second:-?}")
  if [[ "$status" != 0 ]]; then
    # libFuzzer names the kept input: "Test unit written to <path>".
    kept=$(sed -n 's/.*Test unit written to \(.*\)$/\1/p' "$log" | tail -n 1)
    tail -n 60 "$log" >&2
    echo "fuzz_$name FAILED (exit $status); input kept at: ${kept:-none, see $log}" >&2
    [[ -n "$kept" ]] && echo "  reproduce: $FUZZ_BUILD_DIR/bin/fuzz_$name $kept" >&2
    failed+=("fuzz_$name")
    line+="  FAILED: ${kept:-$log}"
  fi
  summary+=("$line")
done

echo "fuzzing, ${SECONDS_PER_TARGET} s per target:"
printf '  %s\n' "${summary[@]}"
if [[ ${#failed[@]} -ne 0 ]]; then
  echo "fuzz.sh: ${failed[*]} failed" >&2
  exit 1
fi

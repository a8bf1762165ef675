#!/usr/bin/env bash
# Installs the Debian packages slack-proxy needs, only those missing.
#   scripts/install-deps.sh          build + test dependencies
#   scripts/install-deps.sh --bench  also wrk and nginx-light (benchmarks)
set -euo pipefail

packages=(
  build-essential cmake ninja-build pkg-config curl ca-certificates openssl
  libpoco-dev libboost-dev libspdlog-dev prometheus-cpp-dev libtomlplusplus-dev
  libgtest-dev libgmock-dev
  python3                    # scripts/test.sh reads CTest's JUnit report for skips
  prometheus-alertmanager prometheus   # the real Alertmanager; promtool (metrics check)
  clang libclang-rt-14-dev   # libFuzzer for the fuzz targets (scripts/fuzz.sh)
)
# The real Slack SDKs run on Node.js (18 or newer); keep one already there.
command -v node >/dev/null && command -v npm >/dev/null || packages+=(nodejs npm)
if [[ "${1:-}" == "--bench" ]]; then
  packages+=(wrk nginx-light)
fi

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[[ ${#missing[@]} -eq 0 ]] && exit 0

echo "installing: ${missing[*]}" >&2
SUDO=""
if [[ $(id -u) -ne 0 ]]; then
  command -v sudo >/dev/null || { echo "need root (or sudo) to install: ${missing[*]}" >&2; exit 1; }
  SUDO=sudo
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null

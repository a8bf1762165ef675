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
  redis-server               # the Redis tests start their own (tests/redis/redis_server.h)
  clang libclang-rt-14-dev   # libFuzzer for the fuzz targets (scripts/fuzz.sh)
  # scripts/package.sh: cpack's DEB generator finds binaries with `file`;
  # lintian; systemd-analyze (not in a minimal Debian, which has no systemd);
  # procps has /bin/kill, which the unit's ExecReload runs and verify checks.
  file lintian systemd procps
)
# The real Slack SDKs and playwright-core need Node.js 20 or newer (Debian
# 12's own is 18): keep the one the machine has; Debian's is a last resort.
command -v node >/dev/null && command -v npm >/dev/null || packages+=(nodejs npm)
# The status page's browser test (tests/clients/status_page.test.js) drives
# Debian's Chromium headless through playwright-core (npm). On a minimal
# Debian 12 with the rest of this list it adds about 145 packages and 180 MB
# to download; where the X and GTK libraries were already in, installing it
# took 36 s.
packages+=(chromium)
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

# Some of these packages are servers (prometheus on :9090, Alertmanager on
# :9093, Redis on :6379, nginx on :80) that Debian starts and enables on install. The tests
# and benchmarks start their own copies on free ports; a system Prometheus
# on :9090 would take the proxy's default metrics port. So: none is started
# during the install (policy-rc.d, unless the machine has its own), and
# those installed here are disabled afterwards.
declare -A service_of=([prometheus]=prometheus [prometheus-alertmanager]=prometheus-alertmanager
                       [redis-server]=redis-server [nginx-light]=nginx)
policy=/usr/sbin/policy-rc.d
if [[ ! -e $policy ]]; then
  printf '#!/bin/sh\nexit 101\n' | $SUDO tee "$policy" >/dev/null
  $SUDO chmod 755 "$policy"
  trap '$SUDO rm -f "$policy"' EXIT
fi
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
if command -v systemctl >/dev/null; then
  for p in "${missing[@]}"; do
    [[ -n ${service_of[$p]:-} ]] || continue
    $SUDO systemctl disable --now "${service_of[$p]}" >/dev/null 2>&1 || true
  done
fi

#!/usr/bin/env bash
# Installs what is missing, builds everything with warnings as errors, and
# runs every test: unit, plugin, fake Slack and end-to-end (the tests start
# the fake Slack and the proxy themselves).
set -euo pipefail
source "$(dirname "$0")/common.sh"

configure_and_build
cd "$BUILD_DIR"
ctest --output-on-failure --timeout 300 -j "$(nproc)"

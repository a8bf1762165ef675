# Shared by the scripts in this folder: where things are and how we build.
# Sourced, not run.
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BUILD_DIR="${BUILD_DIR:-$ROOT/build}"

# One configuration for running, testing and benchmarking, so switching
# between them never rebuilds the world.
configure_and_build() {
  "$ROOT/scripts/install-deps.sh" "$@"
  cmake -S "$ROOT" -B "$BUILD_DIR" -G Ninja \
    -DCMAKE_BUILD_TYPE=RelWithDebInfo -DSLACK_PROXY_WERROR=ON >/dev/null
  cmake --build "$BUILD_DIR" -j "$(nproc)"
}

# Shared by the scripts in this folder: where things are and how we build.
# Sourced, not run.
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BUILD_DIR="${BUILD_DIR:-$ROOT/build}"

# One configuration for running, testing and benchmarking, so switching
# between them never rebuilds the world. Optimized, with line tables only
# (-g1): stacks and sanitizer reports still name file and line, and GCC
# compiles the tests in about 70% of the time that full debug info (-g)
# takes. For a debugger's view of variables, configure a build of your own
# with -DCMAKE_BUILD_TYPE=Debug.
RELWITHDEBINFO_FLAGS="-O2 -g1 -DNDEBUG"
configure() {  # [extra cmake options]: (re)configures BUILD_DIR
  cmake -S "$ROOT" -B "$BUILD_DIR" -G Ninja \
    -DCMAKE_BUILD_TYPE=RelWithDebInfo "-DCMAKE_CXX_FLAGS_RELWITHDEBINFO=$RELWITHDEBINFO_FLAGS" \
    "-DCMAKE_C_FLAGS_RELWITHDEBINFO=$RELWITHDEBINFO_FLAGS" -DSLACK_PROXY_WERROR=ON "$@" >/dev/null
}
configure_and_build() {
  "$ROOT/scripts/install-deps.sh" "$@"
  configure
  cmake --build "$BUILD_DIR" -j "$(nproc)"
}

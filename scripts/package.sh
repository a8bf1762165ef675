#!/usr/bin/env bash
# Builds the Debian packages from a built tree (config/debian/package.cmake)
# and checks them as an administrator would meet them (docs/install.md):
#   - lintian passes: any error or warning fails, except those overridden in
#     config/debian/*.lintian-overrides, each with why;
#   - the packages hold every file a plain `cmake --install` installs, so no
#     install() rule is left out of the packages;
#   - unpacked into a throwaway root (dpkg-deb -x): `systemd-analyze verify`
#     passes on the packaged unit with nothing to say, `systemd-analyze
#     security` rates its hardening 2.0 or better, the unpacked binary
#     finds its plugins in that root and validates the config the unit runs
#     with, which is a conffile; that config reads the token from where the
#     unit's LoadCredential= puts it and queues in the unit's StateDirectory;
#     the man page names every option of --help.
# Runs from scripts/test.sh after the plain build's tests; the service itself
# is never started (that needs systemd as PID 1).
#   BUILD_DIR=DIR             build (or find the build) in DIR (default: build)
#   SLACK_PROXY_NO_BUILD=1    do not install, configure or build anything first
#                             (scripts/test.sh, which has just built it)
#   PACKAGE_DIR=DIR           where the .deb files go (default: $BUILD_DIR/packages)
set -euo pipefail
source "$(dirname "$0")/common.sh"

if [[ "${SLACK_PROXY_NO_BUILD:-0}" != 1 ]]; then configure_and_build; fi

PACKAGE_DIR="${PACKAGE_DIR:-$BUILD_DIR/packages}"
unit=slack-proxy.service
fail() { echo "package: $*" >&2; exit 1; }

WORK="$(mktemp -d "${TMPDIR:-/tmp}/package.XXXXXX")"
trap 'rm -rf "$WORK"' EXIT

# A package left by an earlier run must not stand in for this one's.
rm -f "$PACKAGE_DIR"/*.deb
(cd "$BUILD_DIR" && cpack -G DEB -B "$PACKAGE_DIR" >"$WORK/cpack.log") ||
  { cat "$WORK/cpack.log" >&2; fail "cpack failed"; }
shopt -s nullglob
debs=("$PACKAGE_DIR"/slack-proxy_*.deb "$PACKAGE_DIR"/slack-proxy-dev_*.deb)
shopt -u nullglob
[[ ${#debs[@]} -eq 2 ]] || fail "expected slack-proxy and slack-proxy-dev in $PACKAGE_DIR, found: ${debs[*]:-none}"
for deb in "${debs[@]}"; do
  echo "package: built $(basename "$deb")"
  dpkg-deb -f "$deb" Package Version Depends | sed 's/^/  /'
done

# --fail-on: lintian exits 0 on warnings unless told (Debian 12's 2.116);
# overridden tags never fail it.
lintian --fail-on error,warning "${debs[@]}" ||
  fail "lintian found errors or warnings (fix them, or override them with a reason in config/debian/*.lintian-overrides)"
echo "package: lintian: no error or warning"

root="$WORK/root"
for deb in "${debs[@]}"; do dpkg-deb -x "$deb" "$root"; done

# Everything a plain install puts in a prefix is in a package, under /usr.
cmake --install "$BUILD_DIR" --prefix "$WORK/plain" >/dev/null
missing=$(cd "$WORK/plain" && find . -type f -printf '%P\n' | while read -r f; do
  [[ -e "$root/usr/$f" ]] || echo "$f"
done)
[[ -z "$missing" ]] || fail "installed by cmake --install but in no package (an install() rule without COMPONENT runtime or dev?):
$missing"

# The unit as systemd reads it. verify checks that ExecStart's program
# exists, so it names the unpacked binary; the rest is the packaged file.
# verify exits 0 on some findings (an unknown key), so any output fails.
packaged_unit="$root/usr/lib/systemd/system/$unit"
[[ -f "$packaged_unit" ]] || fail "no $unit in the package"
mkdir -p "$WORK/units"
sed "s|^ExecStart=/usr/bin/slack-proxy |ExecStart=$root/usr/bin/slack-proxy |" \
  "$packaged_unit" >"$WORK/units/$unit"
grep -q "^ExecStart=$root/usr/bin/slack-proxy " "$WORK/units/$unit" ||
  fail "$unit: ExecStart does not run /usr/bin/slack-proxy"
verify_output="$(systemd-analyze verify "$WORK/units/$unit" 2>&1)" ||
  fail "systemd-analyze verify failed: $verify_output"
[[ -z "$verify_output" ]] || fail "systemd-analyze verify: $verify_output"
# Its hardening, as systemd rates it (0 best, 10 worst; 1.4 today,
# docs/install.md). --threshold counts tenths: fail above 2.0.
systemd-analyze security --offline=yes --threshold=20 "$WORK/units/$unit" >"$WORK/security.log" 2>&1 ||
  { cat "$WORK/security.log" >&2; fail "systemd-analyze security rates $unit above 2.0"; }
echo "package: systemd-analyze verify $unit: OK; $(grep -o 'Overall exposure level.*' "$WORK/security.log")"

# The config the unit runs with: packaged, a conffile, and valid for the
# packaged binary with the packaged plugins (never ones from the environment).
config="$(sed -n 's|^ExecStart=/usr/bin/slack-proxy --config \([^ ]*\)$|\1|p' "$packaged_unit")"
[[ -n "$config" ]] || fail "$unit: ExecStart names no --config FILE"
[[ -f "$root$config" ]] || fail "$unit runs with $config, which no package ships"
dpkg-deb -e "${debs[0]}" "$WORK/control"
grep -qx "$config" "$WORK/control/conffiles" || fail "$config is not a conffile"
proxy=(env -u SLACK_PROXY_PLUGIN_PATH "$root/usr/bin/slack-proxy")
"${proxy[@]}" validate "$root$config"
plugin_files="$("${proxy[@]}" plugins --config "$root$config" | sed -n 's/^  file: //p')"
builtin_count="$(find "$root/usr/lib/slack-proxy/plugins" -name '*.so' | wc -l)"
[[ $builtin_count -ge 1 && $(wc -l <<<"$plugin_files") -eq $builtin_count ]] ||
  fail "slack-proxy plugins lists $(wc -l <<<"$plugin_files") plugin file(s); the package has $builtin_count"
if grep -v "^$root/usr/lib/slack-proxy/plugins/" <<<"$plugin_files"; then
  fail "the packaged proxy loaded the plugins above from outside the package"
fi

# The token: where LoadCredential= puts it is where the config reads it.
credential="$(sed -n 's/^LoadCredential=\([^:]*\):.*/\1/p' "$packaged_unit")"
[[ -n "$credential" ]] || fail "$unit has no LoadCredential=ID:PATH"
grep -q "^token_file = \"/run/credentials/$unit/$credential\"" "$root$config" ||
  fail "$config does not read the token from /run/credentials/$unit/$credential"
# The queue: in the unit's state directory.
state="$(sed -n 's/^StateDirectory=//p' "$packaged_unit")"
grep -q "^path = \"/var/lib/$state/" "$root$config" ||
  fail "$config does not queue under /var/lib/$state (StateDirectory=$state)"

# The man page names every option and command of --help.
man_text="$(zcat "$root/usr/share/man/man1/slack-proxy.1.gz" | sed 's/\\-/-/g')"
for word in $("${proxy[@]}" --help | grep -oE -- '(^|[ [|])(--?[a-z][a-z-]*|validate|plugins)\b' | tr -d ' [|' | sort -u); do
  grep -qF -- "$word" <<<"$man_text" || fail "the man page (config/debian/slack-proxy.1) does not name $word"
done
echo "package: the packaged proxy validates $config with the $builtin_count packaged plugins"

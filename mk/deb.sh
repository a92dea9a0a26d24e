#!/bin/sh
# SPDX-License-Identifier: MIT
# Builds the Debian packages from a clean copy of the tree, runs lintian and,
# with --install (as root, e.g. in CI), installs them with dpkg, builds and
# runs the autopkgtest consumers against the installed files, then purges them.
# Usage: sh mk/deb.sh [--install]     output: build/deb/*.deb, build/deb/lintian.txt
set -eu
cd "$(dirname "$0")/.."
install=0
[ "${1:-}" = --install ] && install=1
top=$(pwd)
out=$top/build/deb
ver=$(sed -n 's/^#define SDFLOW_VERSION_\(MAJOR\|MINOR\|PATCH\) \([0-9]*\).*/\2/p' include/sdflow/version.h | paste -sd. -)
rm -rf "$out"
mkdir -p "$out/src/libsdflow-$ver"
now() { date +%s; }
t0=$(now)
# Clean copy: the files git knows (committed or not, minus ignored ones).
git ls-files --cached --others --exclude-standard | while IFS= read -r f; do [ -e "$f" ] && printf '%s\n' "$f"; done |
    tar -T - -cf - | tar -xf - -C "$out/src/libsdflow-$ver"
cd "$out/src/libsdflow-$ver"
# DEB_NOCHECK=1 skips the package build's make check (CI sets it: the same
# tree's make check has already run in that job); autopkgtests still run.
opts="parallel=${DEB_JOBS:-2}"
[ "${DEB_NOCHECK:-0}" = 1 ] && opts="$opts nocheck"
echo "deb: dpkg-buildpackage -us -uc -b in $out/src/libsdflow-$ver (DEB_BUILD_OPTIONS=$opts)"
DEB_BUILD_OPTIONS="$opts" dpkg-buildpackage -us -uc -b >"$out/build.log" 2>&1 ||
    { tail -n 60 "$out/build.log"; echo "deb: dpkg-buildpackage failed (log: $out/build.log)"; exit 1; }
cd "$out"
mv src/*.deb src/*.buildinfo src/*.changes . 2>/dev/null || true
t1=$(now)
grep -E '^(install-test|abi|debsymbols|spdx|[0-9]+ passed)' build.log | sed 's/^/deb: build: /'
ls -1 ./*.deb | sed 's|^\./|deb: built |'
echo "deb: build $((t1 - t0)) s"
lintian --info --display-info --tag-display-limit 0 ./*.changes >lintian.txt 2>&1 || true
t2=$(now)
echo "deb: lintian $((t2 - t1)) s:"
sed 's/^/    /' lintian.txt
if grep -q '^[EW]:' lintian.txt; then echo "deb: lintian reports errors or warnings"; exit 1; fi
[ "$install" -eq 1 ] || exit 0

# Install test: the packages on this (CI) machine, a consumer built with
# pkg-config, the autopkgtests, then the packages purged again.
pkgs="libsdflow0 libsdflow0-dbgsym libsdflow-dev libsdflow-doc python3-sdflow"
trap 'dpkg --purge $pkgs >/dev/null 2>&1 || true' EXIT
dpkg -i ./*.deb >dpkg.log 2>&1 || { cat dpkg.log; echo "deb: dpkg -i failed"; exit 1; }
dpkg -L libsdflow0 | grep -q "/usr/lib/$(dpkg-architecture -qDEB_HOST_MULTIARCH)/libsdflow.so.0" ||
    { echo "deb: libsdflow0 has no multiarch libsdflow.so.0"; exit 1; }
cd "$out/src/libsdflow-$ver"
export AUTOPKGTEST_TMP
for t in debian/tests/build-example debian/tests/python-import; do
    AUTOPKGTEST_TMP=$(mktemp -d)
    sh "$t" || { echo "deb: autopkgtest $t failed against the installed packages"; exit 1; }
    rm -rf "$AUTOPKGTEST_TMP"
done
man -w sdflow_ctx.h >/dev/null 2>&1 || [ -f /usr/share/man/man3/sdflow_ctx.h.3.gz ] || { echo "deb: man page sdflow_ctx.h(3) not installed"; exit 1; }
[ -f /usr/share/doc/libsdflow-doc/html/index.html ] || { echo "deb: HTML docs not installed"; exit 1; }
t3=$(now)
echo "deb: install test $((t3 - t2)) s: dpkg -i of the 4 packages, pkg-config consumer (shared + static), Python import, docs; purged"

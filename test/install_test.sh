#!/bin/sh
# SPDX-License-Identifier: MIT
# Installs into a temporary DESTDIR, checks the installed files and SONAME,
# builds examples/gmm_scores.c against the installed copy using only
# pkg-config (shared and static), runs it, uninstalls and checks that nothing
# is left. Usage (from the top directory, after `make all`):
#     sh test/install_test.sh "$(MAKE)"
set -u
MAKE_CMD=${1:-make}
tmp=$(mktemp -d "${TMPDIR:-/tmp}/sdflow-install.XXXXXX") || exit 1
trap 'rm -rf "$tmp"' EXIT INT TERM
fails=0
fail() { echo "install-test: FAIL: $*" >&2; fails=$((fails + 1)); }

ver=$(sed -n 's/^#define SDFLOW_VERSION_\(MAJOR\|MINOR\|PATCH\) \([0-9]*\).*/\2/p' include/sdflow/version.h | paste -sd. -)
prefix=$tmp/usr
# The layout is given in full: a caller's LIBDIR=/usr/lib/<multiarch> (e.g.
# debian/rules) would otherwise reach this make through MAKEFLAGS.
layout="PREFIX=/usr LIBDIR=/usr/lib INCLUDEDIR=/usr/include DOCDIR=/usr/share/doc/libsdflow MANDIR=/usr/share/man"
# shellcheck disable=SC2086
$MAKE_CMD --no-print-directory install DESTDIR="$tmp" $layout >"$tmp/install.log" 2>&1 ||
    { cat "$tmp/install.log" >&2; fail "make install"; }

for f in include/sdflow.h include/sdflow.hpp lib/libsdflow.so.$ver lib/libsdflow.a lib/pkgconfig/sdflow.pc \
    share/doc/libsdflow/html/index.html share/man/man3/sdflow.h.3 share/man/man3/sdflow_ctx.h.3; do
    [ -f "$prefix/$f" ] || fail "missing $f"
done
for h in include/sdflow/*.h; do
    [ -f "$prefix/include/sdflow/$(basename "$h")" ] || fail "missing $h"
done
[ "$(readlink "$prefix/lib/libsdflow.so.0")" = "libsdflow.so.$ver" ] || fail "libsdflow.so.0 does not link to libsdflow.so.$ver"
[ "$(readlink "$prefix/lib/libsdflow.so")" = "libsdflow.so.0" ] || fail "libsdflow.so does not link to libsdflow.so.0"
soname=$(readelf -d "$prefix/lib/libsdflow.so.$ver" 2>/dev/null | sed -n 's/.*(SONAME).*\[\(.*\)\].*/\1/p')
[ "$soname" = "libsdflow.so.0" ] || fail "SONAME is '$soname', want libsdflow.so.0"

# sdflow.pc names the BLAS by its pkg-config name, no build machine's -L path.
pc=$prefix/lib/pkgconfig/sdflow.pc
grep -q '^Requires.private: openblas' "$pc" || fail "sdflow.pc has no 'Requires.private: openblas'"
grep -q -- '-L/usr/lib/' "$pc" && fail "sdflow.pc hard-codes a library path: $(grep -- -L/usr/lib/ "$pc")"

# Consumer build through pkg-config only.
export PKG_CONFIG_PATH="$prefix/lib/pkgconfig" PKG_CONFIG_SYSROOT_DIR="$tmp"
CC=${CC:-cc}
if ! pkg-config --exists sdflow; then
    fail "pkg-config does not find sdflow"
else
    [ "$(pkg-config --modversion sdflow)" = "$ver" ] || fail "pkg-config version $(pkg-config --modversion sdflow), want $ver"
    # shellcheck disable=SC2046
    if $CC -std=c11 -o "$tmp/gmm_shared" examples/gmm_scores.c $(pkg-config --cflags --libs sdflow) -lm 2>"$tmp/cc.log"; then
        LD_LIBRARY_PATH="$prefix/lib" "$tmp/gmm_shared" >"$tmp/run.log" 2>&1 || { cat "$tmp/run.log" >&2; fail "shared example run"; }
        LD_LIBRARY_PATH="$prefix/lib" ldd "$tmp/gmm_shared" | grep -q "$prefix/lib/libsdflow.so.0" ||
            fail "shared example does not load the installed libsdflow.so.0"
    else
        cat "$tmp/cc.log" >&2
        fail "shared build with pkg-config"
    fi
    # The C++ header through the same pkg-config flags (C++17, the header's baseline).
    CXX=${CXX:-c++}
    # shellcheck disable=SC2046
    if $CXX -std=c++17 -o "$tmp/cxx_gmm" examples/cxx_gmm.cpp $(pkg-config --cflags --libs sdflow) 2>"$tmp/cxx.log"; then
        LD_LIBRARY_PATH="$prefix/lib" "$tmp/cxx_gmm" >"$tmp/run.log" 2>&1 || { cat "$tmp/run.log" >&2; fail "C++ example run"; }
    else
        cat "$tmp/cxx.log" >&2
        fail "C++ build with pkg-config"
    fi
    # Static: the archive by path, its private dependencies from pkg-config --static.
    libs=$(pkg-config --static --libs sdflow | sed "s|-lsdflow|$prefix/lib/libsdflow.a|")
    # shellcheck disable=SC2086
    if $CC -std=c11 -o "$tmp/gmm_static" examples/gmm_scores.c $(pkg-config --cflags sdflow) $libs -lm 2>"$tmp/cc.log"; then
        "$tmp/gmm_static" >"$tmp/run.log" 2>&1 || { cat "$tmp/run.log" >&2; fail "static example run"; }
        ldd "$tmp/gmm_static" | grep -q libsdflow && fail "static example still needs libsdflow.so"
    else
        cat "$tmp/cc.log" >&2
        fail "static build with pkg-config --static"
    fi
fi

# shellcheck disable=SC2086
$MAKE_CMD --no-print-directory uninstall DESTDIR="$tmp" $layout >"$tmp/uninstall.log" 2>&1 ||
    { cat "$tmp/uninstall.log" >&2; fail "make uninstall"; }
left=$(find "$tmp/usr" \( -name 'libsdflow*' -o -name 'sdflow*' \) 2>/dev/null)
[ -z "$left" ] || fail "left after uninstall: $left"

if [ "$fails" -eq 0 ]; then
    echo "install-test: PASS (DESTDIR install with HTML docs and man pages, SONAME libsdflow.so.0, pkg-config shared + static build and run, C++ header, uninstall)"
else
    echo "install-test: FAIL ($fails problems)"
    exit 1
fi

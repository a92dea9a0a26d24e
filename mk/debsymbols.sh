#!/bin/sh
# SPDX-License-Identifier: MIT
# Keeps debian/libsdflow0.symbols in step with abi/symbols.txt.
# Usage: sh mk/debsymbols.sh --check | --fix
# A symbol keeps the version already recorded for it (the upstream version it
# first appeared in); a symbol new in abi/symbols.txt gets the current version
# from include/sdflow/version.h; a symbol gone from abi/symbols.txt is an ABI
# break and is reported, never dropped silently. All symbols belong to the
# single version node of src/libsdflow.map.
set -u
mode=${1:-}
case "$mode" in --check|--fix) ;; *) echo "usage: sh mk/debsymbols.sh --check|--fix" >&2; exit 2;; esac
cd "$(dirname "$0")/.." || exit 2
out=debian/libsdflow0.symbols
ver=$(sed -n 's/^#define SDFLOW_VERSION_\(MAJOR\|MINOR\|PATCH\) \([0-9]*\).*/\2/p' include/sdflow/version.h | paste -sd. -)
soname=libsdflow.so.$(sed -n 's/^#define SDFLOW_VERSION_MAJOR \([0-9]*\).*/\1/p' include/sdflow/version.h)
nodes=$(sed -n 's/^\([A-Z][A-Z0-9_.]*\) *{.*/\1/p' src/libsdflow.map)
[ "$(printf '%s\n' "$nodes" | wc -l)" -eq 1 ] || { echo "debsymbols: src/libsdflow.map has several version nodes ($nodes): teach mk/debsymbols.sh which symbol is in which" >&2; exit 1; }
tmp=$(mktemp) || exit 1
trap 'rm -f "$tmp"' EXIT
{
    printf '%s libsdflow0 #MINVER#\n' "$soname"
    printf '* Build-Depends-Package: libsdflow-dev\n'
    printf '%s\n' "$nodes" | sed 's/.*/ &@& VER/'
    sed "s/\$/@$nodes VER/; s/^/ /" abi/symbols.txt
} | awk -v ver="$ver" -v old="$out" '
    BEGIN { while ((getline l < old) > 0) if (l ~ /^ /) { split(l, f, " "); have[f[1]] = f[2] } }
    / VER$/ { s = $1; print " " s " " ((s in have) ? have[s] : ver); next }
    { print }' > "$tmp"
gone=$(grep '^ ' "$out" 2>/dev/null | awk '{print $1}' | while read -r s; do grep -q "^ $s " "$tmp" || echo "$s"; done)
if [ -n "$gone" ]; then
    echo "debsymbols: symbols in $out but no longer exported (ABI break, needs a SONAME bump):" $gone >&2
    exit 1
fi
if cmp -s "$tmp" "$out"; then
    [ "$mode" = --check ] && echo "debsymbols: $out matches abi/symbols.txt ($(grep -c '^ ' "$out") symbols)"
    exit 0
fi
if [ "$mode" = --check ]; then
    diff -u "$out" "$tmp" >&2
    echo "debsymbols: $out is out of date with abi/symbols.txt (run: sh mk/debsymbols.sh --fix, or make abi-update)" >&2
    exit 1
fi
mkdir -p debian
cat "$tmp" > "$out"
echo "debsymbols: wrote $out ($(grep -c '^ ' "$out") symbols)"

#!/bin/sh
# SPDX-License-Identifier: MIT
# Layering check of src/ (architecture.md §1, docs/design.md): core ->
# process -> solvers/ot -> models/nn -> io -> samplers/train/density/metrics
# (io reads and writes models; trainer checkpoints build on io).
#  1. includes: no file includes a header of a higher layer, and no two
#     folders of one layer include each other's headers;
#  2. calls (from the built objects, nm): no object calls a function of a
#     higher layer, and the file-level call graph has no circle (A calls B
#     and B, directly or through others, calls A) -- so no algorithm calls
#     back into its dispatcher;
#  3. folders: the graph of folder -> folder edges (an include or a call
#     from a file of one to a file of the other) has no circle of any
#     length, within a layer too (samplers -> density -> samplers, or
#     train -> metrics -> density -> train, would be one).
# Usage: sh mk/layers.sh OBJDIR   (OBJDIR: build/obj)
set -eu
obj=${1:-build/obj}
rank() {
    case $1 in
    core) echo 0 ;; process) echo 1 ;; solvers | ot) echo 2 ;; models | nn) echo 3 ;; io) echo 4 ;;
    samplers | train | density | metrics) echo 5 ;; *) echo 9 ;;
    esac
}
tmp=$(mktemp -d "${TMPDIR:-/tmp}/sdflow-layers.XXXXXX")
trap 'rm -rf "$tmp"' EXIT INT TERM
bad=0
# header -> folder
for h in src/*/*.h; do echo "$(basename "$h") $(basename "$(dirname "$h")")"; done >"$tmp/hdr"
# 1. includes
for f in src/*/*.c src/*/*.h; do
    dir=$(basename "$(dirname "$f")")
    for inc in $(sed -n 's/^#include "\([^"]*\)".*/\1/p' "$f"); do
        to=$(awk -v h="$inc" '$1 == h {print $2}' "$tmp/hdr")
        [ -n "$to" ] || continue
        [ "$to" = "$dir" ] && continue
        echo "$dir $to" >>"$tmp/dirinc"
        if [ "$(rank "$to")" -gt "$(rank "$dir")" ]; then
            echo "layers: $f includes $inc of the higher layer $to/"
            bad=1
        fi
    done
done
if [ -f "$tmp/dirinc" ]; then
    sort -u "$tmp/dirinc" >"$tmp/dirinc.u"
    while read -r a b; do
        if grep -qx "$b $a" "$tmp/dirinc.u"; then
            echo "layers: $a/ and $b/ include each other's headers"
            bad=1
        fi
    done <"$tmp/dirinc.u"
fi
# 2. calls between object files
for o in $(find "$obj" -name '*.o' | sort); do
    rel=${o#"$obj"/}
    [ -f "src/${rel%.o}.c" ] || continue # stale object of a moved file
    nm "$o" | awk -v f="$rel" '$2 ~ /^[TDRB]$/ {print "D", $3, f} $1 == "U" {print "U", $2, f}'
done >"$tmp/syms"
awk '$1 == "D" {def[$2] = $3} $1 == "U" {use[NR] = $2; who[NR] = $3}
     END {for (i in use) if (use[i] in def && def[use[i]] != who[i]) print who[i], def[use[i]], use[i]}' \
    "$tmp/syms" | sort -u >"$tmp/calls"
while read -r from to sym; do
    a=${from%%/*} b=${to%%/*}
    if [ "$(rank "$b")" -gt "$(rank "$a")" ]; then
        echo "layers: src/${from%.o}.c calls $sym of the higher layer src/${to%.o}.c"
        bad=1
    fi
done <"$tmp/calls"
# circles: tsort names the files of every loop in the call graph
awk '{print $1, $2}' "$tmp/calls" | sort -u | tsort >/dev/null 2>"$tmp/loops" || true
if [ -s "$tmp/loops" ]; then
    echo "layers: call circle (tsort):"
    sed 's/^/  /' "$tmp/loops"
    while read -r from to sym; do
        if grep -q ": $from\$" "$tmp/loops" && grep -q ": $to\$" "$tmp/loops"; then
            echo "  src/${from%.o}.c calls $sym of src/${to%.o}.c"
        fi
    done <"$tmp/calls"
    bad=1
fi
# 3. folder circles over includes and calls together
{
    [ -f "$tmp/dirinc" ] && cat "$tmp/dirinc"
    while read -r from to sym; do
        a=${from%%/*} b=${to%%/*}
        [ "$a" = "$b" ] || echo "$a $b"
    done <"$tmp/calls"
} | sort -u >"$tmp/dirs"
tsort "$tmp/dirs" >/dev/null 2>"$tmp/dirloops" || true
if [ -s "$tmp/dirloops" ]; then
    echo "layers: folder circle (tsort over includes and calls):"
    sed 's/^/  /' "$tmp/dirloops"
    while read -r a b; do
        if grep -q ": $a\$" "$tmp/dirloops" && grep -q ": $b\$" "$tmp/dirloops"; then
            echo "  $a/ -> $b/"
        fi
    done <"$tmp/dirs"
    bad=1
fi
[ "$bad" -eq 0 ] && echo "layers: $(wc -l <"$tmp/calls") cross-file calls, $(wc -l <"$tmp/dirs") folder edges, no upward include or call, no circle"
exit "$bad"

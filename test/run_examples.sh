#!/bin/sh
# SPDX-License-Identifier: MIT
# Runs every executable in DIR (the built examples) from a temporary working
# directory, 60 s each, and reports each name and exit status.
# Usage: sh test/run_examples.sh DIR
set -u
dir=${1:?usage: run_examples.sh DIR}
dir=$(cd "$dir" && pwd) || exit 1
work=$(mktemp -d "${TMPDIR:-/tmp}/sdflow-examples.XXXXXX") || exit 1
trap 'rm -rf "$work"' EXIT INT TERM
total=0
failed=0
for exe in "$dir"/*; do
    [ -f "$exe" ] && [ -x "$exe" ] || continue
    name=$(basename "$exe")
    total=$((total + 1))
    (cd "$work" && timeout 60 "$exe" >"$work/$name.out" 2>"$work/$name.err")
    st=$?
    if [ "$st" -eq 0 ]; then
        echo "examples: $name ok"
    else
        [ "$st" -eq 124 ] && why=" (timed out after 60 s)" || why=""
        echo "examples: $name FAILED, exit status $st$why"
        tail -n 20 "$work/$name.out" "$work/$name.err"
        failed=$((failed + 1))
    fi
done
if [ "$total" -eq 0 ]; then
    echo "examples: no executables in $dir"
    exit 1
fi
echo "examples: $((total - failed))/$total passed"
[ "$failed" -eq 0 ]

#!/bin/sh
# SPDX-License-Identifier: MIT
# Runs every Check suite of the unit-test binary as its own process, JOBS
# (default 2) at a time, and prints each suite's output whole when it ends.
# Why: the suites are mostly single-threaded, so one runner leaves a core idle;
# results do not depend on it (every test is deterministic for any thread
# count, and each suite owns its process as under CK_FORK).
# SKIP_SUITES (space-separated names) are left out with a printed line.
# Usage: sh mk/run_suites.sh TEST_BIN test/test_*.c
set -u
bin=$1
shift
jobs=${JOBS:-2}
# the heaviest suites first, so that the two queues end together
suites=$(grep -ho 'suite_create("[a-z0-9_]*")' "$@" | sed 's/.*("//;s/")//' |
         awk '/^(dsb|torture_heavy|interp_learn|trainer|interpolant|mlp|torture)$/ {print 0, $0; next} {print 1, $0}' |
         sort -s -k1,1n | cut -d' ' -f2)
for skip in ${SKIP_SUITES:-}; do
    suites=$(printf '%s\n' $suites | grep -vx "$skip")
    echo "suite $skip: skipped (SKIP_SUITES)"
done
dir=$(mktemp -d "${TMPDIR:-/tmp}/sdflow-suites.XXXXXX") || exit 1
start=$(date +%s)
printf '%s\n' $suites | xargs -P "$jobs" -I{} sh -c \
    's=$(date +%s); "$0" "$2" > "$1/$2.log" 2>&1; echo $? > "$1/$2.rc"; cat "$1/$2.log"; echo "suite $2: exit $(cat "$1/$2.rc"), $(( $(date +%s) - s )) s"' \
    "$bin" "$dir" {}
fail=0 total=0 failed=0
for s in $suites; do
    rc=$(cat "$dir/$s.rc" 2>/dev/null || echo missing)
    n=$(sed -n 's/.*Checks: \([0-9]*\),.*/\1/p' "$dir/$s.log" | tail -n 1)
    total=$((total + ${n:-0}))
    [ "$rc" = 0 ] || { echo "FAILED: suite $s (exit $rc)"; fail=1; failed=$((failed + 1)); }
done
rm -rf "$dir"
echo "unit tests: $total tests in $(printf '%s\n' $suites | wc -l) suites, $failed suite(s) failed, $(( $(date +%s) - start )) s wall, $jobs at a time"
exit $fail

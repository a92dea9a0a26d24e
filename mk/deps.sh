#!/bin/sh
# SPDX-License-Identifier: MIT
# Ensures the build dependencies of one make target are present.
# Usage: mk/deps.sh TARGET. Installs missing Debian packages with apt-get when
# run as root; otherwise stops with the exact command to run.
set -u
target=${1:-all}
need=""
have_pc() { pkg-config --exists "$1" 2>/dev/null; }
command -v cc >/dev/null 2>&1 || need="$need gcc"
command -v make >/dev/null 2>&1 || need="$need make"
command -v pkg-config >/dev/null 2>&1 || need="$need pkg-config"
have_pc openblas || need="$need libopenblas-dev"
case "$target" in
check|asan|install-test|unit-test|python-test)
    have_pc check || need="$need check"
    /usr/bin/python3 -c 'import numpy' >/dev/null 2>&1 || need="$need python3-numpy"
    ;;
abi-check|abi-baseline)
    command -v abidiff >/dev/null 2>&1 || need="$need abigail-tools"
    ;;
docs)
    command -v doxygen >/dev/null 2>&1 || need="$need doxygen"
    ;;
esac
[ -z "$need" ] && exit 0
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "libsdflow: installing build dependencies:$need" >&2
    export DEBIAN_FRONTEND=noninteractive
    if ! apt-get install -y -q $need >/dev/null 2>&1; then
        apt-get update -q >/dev/null 2>&1
        apt-get install -y -q $need >&2 || { echo "libsdflow: 'apt-get install -y$need' failed" >&2; exit 1; }
    fi
    exit 0
fi
echo "libsdflow: missing build dependencies. Install them with:" >&2
echo "    sudo apt-get install -y$need" >&2
exit 1

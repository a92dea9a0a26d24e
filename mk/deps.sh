#!/bin/sh
# SPDX-License-Identifier: MIT
# Ensures the build dependencies of one make target are present.
# Usage: sh mk/deps.sh [TARGET]   (TARGET check covers building and testing;
# on a bare machine without make, run `sh mk/deps.sh check` as root first). Installs missing Debian packages with apt-get when
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
check|asan|install-test|unit-test|python-test|mlp-torch-test|io-python-test)
    have_pc check || need="$need check"
    command -v "${CXX:-g++}" >/dev/null 2>&1 || need="$need g++" # the C++ example of include/sdflow.hpp
    /usr/bin/python3 -c 'import numpy' >/dev/null 2>&1 || need="$need python3-numpy"
    /usr/bin/python3 -c 'import pytest' >/dev/null 2>&1 || need="$need python3-pytest" # make python-test
    # the MLP's derivative cross-check against PyTorch f64 (test/mlp_torch_check.py)
    /usr/bin/python3 -c 'import torch' >/dev/null 2>&1 || need="$need python3-torch"
    [ -f /usr/lib/python3/dist-packages/sklearn/datasets/data/breast_cancer.csv ] || need="$need python3-sklearn" # SD-flow tests read its tables
    command -v clang >/dev/null 2>&1 || need="$need clang" # make api-check: clang's JSON AST of the headers
    ;;
valgrind)
    have_pc check || need="$need check"
    command -v valgrind >/dev/null 2>&1 || need="$need valgrind"
    ;;
fuzz)
    command -v clang >/dev/null 2>&1 || need="$need clang"
    ls /usr/lib/llvm-*/lib/clang/*/lib/linux/libclang_rt.fuzzer-*.a >/dev/null 2>&1 || need="$need libclang-rt-14-dev"
    ;;
api-check|api-update)
    command -v clang >/dev/null 2>&1 || need="$need clang" # the API description comes from clang's JSON AST
    ;;
rust-test)
    command -v cargo >/dev/null 2>&1 || need="$need cargo" # Debian's cargo and rustc; no crates.io needed
    ;;
abi-check|abi-baseline)
    command -v abidiff >/dev/null 2>&1 || need="$need abigail-tools"
    ;;
docs|install)
    command -v doxygen >/dev/null 2>&1 || need="$need doxygen"
    ;;
deb)
    for p in dpkg-dev:dpkg-buildpackage debhelper:dh dh-python:pybuild lintian:lintian doxygen:doxygen; do
        command -v "${p#*:}" >/dev/null 2>&1 || need="$need ${p%%:*}"
    done
    have_pc check || need="$need check"
    /usr/bin/python3 -c 'import numpy, setuptools' >/dev/null 2>&1 || need="$need python3-numpy python3-setuptools python3-all"
    ;;
esac
[ -z "$need" ] && exit 0
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "libsdflow: installing build dependencies:$need (apt-get output follows)" >&2
    export DEBIAN_FRONTEND=noninteractive
    # apt's own progress goes to stderr: a minute of silence looks like a hang.
    # The package lists are refreshed first when they are missing (fresh
    # containers ship without them), else only when the install fails.
    if [ -z "$(ls /var/lib/apt/lists/ 2>/dev/null | grep -v -e '^lock$' -e '^partial$' -e '^auxfiles$')" ]; then
        echo "libsdflow: apt-get update" >&2
        apt-get update >&2
    fi
    if ! apt-get install -y --no-install-recommends $need >&2; then
        echo "libsdflow: apt-get update, then retrying" >&2
        apt-get update >&2
        apt-get install -y --no-install-recommends $need >&2 || { echo "libsdflow: 'apt-get install -y$need' failed" >&2; exit 1; }
    fi
    exit 0
fi
echo "libsdflow: missing build dependencies. Install them with:" >&2
echo "    sudo apt-get install -y$need" >&2
exit 1

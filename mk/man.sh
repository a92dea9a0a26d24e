#!/bin/sh
# SPDX-License-Identifier: MIT
# Tidies Doxygen's man3 output for installation (lintian/groff clean):
# drops the directory pages, names each header page sdflow_<header>.h (a bare
# ctx.h(3) would clash with other packages), escapes text lines that begin
# with a quote (roff reads them as requests), and gives a NAME line without a
# description one.
# Usage: sh mk/man.sh DIR   (DIR = the man3 directory Doxygen wrote)
set -eu
cd "$1"
rm -f _*.3
for f in *.3; do
    case $f in
    sdflow*) new=$f ;;
    *) new=sdflow_$f ;;
    esac
    sed -e '/^\.SH NAME$/{n;/\\-/!s|$| \\- libsdflow data type (see sdflow.h(3))|;}' \
        -e '1s|^\.TH "sdflow/|.TH "sdflow_|' \
        -e 's|^sdflow/\([^ ]*\) \\-|sdflow_\1 \\-|' \
        -e "s|^'|\\\\\\&'|" "$f" > "$f.tmp"
    rm "$f"
    mv "$f.tmp" "$new"
done

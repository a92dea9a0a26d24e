#!/bin/sh
# SPDX-License-Identifier: MIT
# Checks or inserts the SPDX licence line of every source, header, script,
# build and binding file.
# Usage: sh mk/spdx.sh --check | --fix   (from anywhere; works on the tree
# this script belongs to: git's file list, or every file when not in git)
#   C, C++ (.c .h .map .cpp .hpp): /* SPDX-License-Identifier: MIT */  as line 1
#   Rust (.rs):                 // SPDX-License-Identifier: MIT     as line 1
#   sh, py, make, pc, toml ...: # SPDX-License-Identifier: MIT      as line 1,
#                               or line 2 after a shebang
# Exempt (no comment syntax, or covered by LICENSE / debian/copyright):
# Markdown, JSON, CSV, SVG, plain-text data (abi/*.txt), the ABI dump, LICENSE,
# .gitignore/.gitkeep and debian/ metadata other than rules and test scripts.
# A file of a kind this script does not know fails the check: add a rule.
# --fix is idempotent: it only touches files without an SPDX line in their
# first five lines.
set -u
mode=${1:-}
case "$mode" in --check|--fix) ;; *) echo "usage: sh mk/spdx.sh --check|--fix" >&2; exit 2;; esac
cd "$(dirname "$0")/.." || exit 2
id='SPDX-License-Identifier: MIT'

list_files() {
    if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
        git ls-files --cached --others --exclude-standard
    else
        find . -type f ! -path './.git/*' ! -path './build/*' ! -path './lib/*' \
            ! -path './debian/.debhelper/*' ! -path './debian/tmp/*' | sed 's|^\./||'
    fi
}

# Prints the comment style of a file: c, hash, exempt or unknown.
style() {
    case "$1" in
    debian/tests/control) echo exempt; return;;
    debian/rules|debian/tests/*) echo hash; return;;
    debian/*) echo exempt; return;;
    */py.typed) echo exempt; return;; # PEP 561 marker: empty or "partial", no comments
    *.md|*.json|*.csv|*.svg|*.png|*.txt|*.abi|*.gitkeep|*.gitignore|LICENSE|*/__pycache__/*|*.pyc) echo exempt; return;;
    *.c|*.h|*.map|*.cpp|*.hpp) echo c; return;;
    *.rs) echo slash; return;;
    *.sh|*.py|*.jl|*.mk|*.in|*.toml|*.cfg|*.yml|*.yaml|Makefile|*/Makefile|.ci/*) echo hash; return;;
    esac
    if head -c 2 "$1" 2>/dev/null | grep -q '^#!'; then echo hash; else echo unknown; fi
}

missing=0
fixed=0
for f in $(list_files); do
    [ -f "$f" ] || continue
    s=$(style "$f")
    case "$s" in exempt) continue;; esac
    if head -n 5 "$f" | grep -q 'SPDX-License-Identifier:'; then
        head -n 5 "$f" | grep -q "$id" || { echo "spdx: $f: SPDX line is not '$id'" >&2; missing=$((missing + 1)); }
        continue
    fi
    if [ "$s" = unknown ]; then
        echo "spdx: $f: unknown file kind (add a rule to mk/spdx.sh)" >&2
        missing=$((missing + 1))
        continue
    fi
    if [ "$mode" = --check ]; then
        echo "spdx: $f: no '$id' line" >&2
        missing=$((missing + 1))
        continue
    fi
    tmp="$f.spdx-tmp"
    if [ "$s" = c ]; then
        { printf '/* %s */\n' "$id"; cat "$f"; } > "$tmp"
    elif [ "$s" = slash ]; then
        { printf '// %s\n' "$id"; cat "$f"; } > "$tmp"
    elif head -n 1 "$f" | grep -q '^#!'; then
        { head -n 1 "$f"; printf '# %s\n' "$id"; tail -n +2 "$f"; } > "$tmp"
    else
        { printf '# %s\n' "$id"; cat "$f"; } > "$tmp"
    fi
    # Keep the mode (executable scripts stay executable).
    chmod --reference="$f" "$tmp" 2>/dev/null
    mv "$tmp" "$f"
    fixed=$((fixed + 1))
done
if [ "$mode" = --fix ]; then
    echo "spdx: inserted the SPDX line into $fixed files"
    [ "$missing" -eq 0 ] || exit 1
elif [ "$missing" -ne 0 ]; then
    echo "spdx: $missing files without '$id' (run: sh mk/spdx.sh --fix)" >&2
    exit 1
else
    echo "spdx: every source, header, script and build file carries '$id'"
fi

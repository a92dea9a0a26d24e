# SPDX-License-Identifier: MIT
"""make api-check: the FFI surface has one source of truth.

1. Regenerates the API description from the headers (clang's JSON AST) into
   build/api/sdflow_api.json and compares it with the checked-in
   bindings/api/sdflow_api.json: a header change without `make api-update`
   fails here.
2. Reads every binding manifest (bindings/**/api-bindings.txt, format in
   bindings/api/README.md) and fails when a function of the description has
   no entry in one of them (a new public function must be bound, or listed
   as unbound with a reason, in every binding), when a manifest names a
   function the API does not have, or when a wrapper name does not occur in
   the binding's sources.
3. Runs each manifest's `# check:` commands (a binding's own verification,
   e.g. that its generated declarations are up to date and match the C
   signatures).

Usage: python3 bindings/api/api_check.py [--build DIR] [--no-regen] [--clang CLANG]
"""

import argparse
import difflib
import glob
import json
import os
import re
import shlex
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, HERE)
import gen_api  # noqa: E402

CHECKED_IN = os.path.join(HERE, "sdflow_api.json")


def read_manifest(path):
    """-> dict(binding, sources, checks, entries: {c_name: (wrapper or None, reason, line)})."""
    m = {"path": path, "binding": None, "sources": [], "checks": [], "entries": {}, "errors": []}
    with open(path, encoding="utf-8") as fh:
        for no, line in enumerate(fh, 1):
            s = line.strip()
            if not s:
                continue
            if s.startswith("#"):
                d = re.match(r"#\s*(binding|sources|check):\s*(.*)$", s)
                if d and d.group(1) == "binding":
                    m["binding"] = d.group(2).strip()
                elif d and d.group(1) == "sources":
                    m["sources"] += d.group(2).split()
                elif d and d.group(1) == "check":
                    m["checks"].append(d.group(2).strip())
                continue
            parts = s.split(None, 2)
            name = parts[0]
            if len(parts) < 2:
                m["errors"].append("%s:%d: %s has no wrapper (write '-  reason' if it is unbound)" % (path, no, name))
                continue
            if name in m["entries"]:
                m["errors"].append("%s:%d: %s listed twice" % (path, no, name))
            if parts[1] == "-":
                if len(parts) < 3:
                    m["errors"].append("%s:%d: %s is unbound without a reason" % (path, no, name))
                m["entries"][name] = (None, parts[2] if len(parts) > 2 else "", no)
            else:
                m["entries"][name] = (parts[1], parts[2] if len(parts) > 2 else "", no)
    if not m["binding"]:
        m["binding"] = os.path.relpath(os.path.dirname(path), os.path.join(ROOT, "bindings"))
    return m


def check_manifest(m, api_names):
    errors = list(m["errors"])
    rel = os.path.relpath(m["path"], ROOT)
    for n in api_names:
        if n not in m["entries"]:
            errors.append("%s: no entry for %s (bind it, or list it as '%s  -  reason')" % (rel, n, n))
    for n, (_, _, no) in m["entries"].items():
        if n not in api_names:
            errors.append("%s:%d: %s is not a function of include/sdflow.h" % (rel, no, n))
    if m["sources"]:
        base = os.path.dirname(m["path"])
        text = []
        for g in m["sources"]:
            files = sorted(glob.glob(os.path.join(base, g), recursive=True))
            if not files:
                errors.append("%s: sources glob %r matches no file" % (rel, g))
            for f in files:
                with open(f, encoding="utf-8") as fh:
                    text.append(fh.read())
        text = "\n".join(text)
        words = set(re.findall(r"[A-Za-z_][A-Za-z0-9_!]*", text))
        for n, (w, _, no) in m["entries"].items():
            if w is None:
                continue
            for part in re.split(r"[.:]+", w):
                part = part.rstrip("()")
                if part and part not in words:
                    errors.append("%s:%d: wrapper %s of %s: %r does not occur in the binding's sources"
                                  % (rel, no, w, n, part))
                    break
    return errors


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default=os.path.join(ROOT, "build"))
    ap.add_argument("--no-regen", action="store_true", help="skip step 1 (no clang)")
    ap.add_argument("--clang", default=os.environ.get("CLANG", "clang"))
    a = ap.parse_args(argv)
    errors = []

    with open(CHECKED_IN, encoding="utf-8") as fh:
        checked_text = fh.read()
    if not a.no_regen:
        fresh = gen_api.dumps(gen_api.generate(a.clang))
        out = os.path.join(a.build, "api", "sdflow_api.json")
        os.makedirs(os.path.dirname(out), exist_ok=True)
        with open(out, "w", encoding="utf-8") as fh:
            fh.write(fresh)
        if fresh != checked_text:
            diff = list(difflib.unified_diff(checked_text.splitlines(), fresh.splitlines(),
                                             "bindings/api/sdflow_api.json", os.path.relpath(out, ROOT), lineterm=""))
            print("\n".join(diff[:80]))
            if len(diff) > 80:
                print("... (%d more diff lines)" % (len(diff) - 80))
            errors.append("bindings/api/sdflow_api.json is out of date with include/: run `make api-update` "
                          "(then bind what changed in every binding)")
        api = json.loads(fresh)
    else:
        api = json.loads(checked_text)
    names = [f["name"] for f in api["functions"]]

    manifests = sorted(glob.glob(os.path.join(ROOT, "bindings", "**", "api-bindings.txt"), recursive=True))
    if not manifests:
        errors.append("no binding manifest (bindings/**/api-bindings.txt) found")
    for path in manifests:
        m = read_manifest(path)
        errs = check_manifest(m, names)
        bound = sum(1 for n in names if m["entries"].get(n, (None,))[0])
        unbound = sum(1 for n in names if n in m["entries"] and m["entries"][n][0] is None)
        status = "ok" if not errs else "%d problem(s)" % len(errs)
        print("api-check: %-8s %3d of %d functions bound, %d unbound with a reason: %s"
              % (m["binding"], bound, len(names), unbound, status))
        errors += errs
        for cmd in m["checks"]:
            argv_ = [sys.executable if w == "python3" else w for w in shlex.split(cmd)]
            r = subprocess.run(argv_, cwd=ROOT)
            if r.returncode:
                errors.append("%s: check `%s` failed (exit %d)" % (os.path.relpath(path, ROOT), cmd, r.returncode))

    if errors:
        for e in errors:
            print("api-check: FAIL: " + e)
        return 1
    print("api-check: %d functions, %d enums, %d callback types, %d opaque types; %d binding(s) complete"
          % (len(names), len(api["enums"]), len(api["callbacks"]), len(api["opaque_types"]), len(manifests)))
    return 0


if __name__ == "__main__":
    sys.exit(main())

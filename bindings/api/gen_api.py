# SPDX-License-Identifier: MIT
"""Writes the API description of libsdflow (bindings/api/sdflow_api.json)
from clang's JSON AST of include/sdflow.h.

Every binding (Python, Julia, Rust, C++) takes its declarations from, or
checks them against, this one file, so a signature, an enum value or a
callback type cannot drift between C and a binding. The format is described
in bindings/api/README.md and is stable (``"format": 1``): fields may be
added, none renamed or removed.

Usage: python3 bindings/api/gen_api.py [-o OUT] [--clang CLANG] [--include DIR]
Default OUT is stdout. Only the standard library is used.
"""

import argparse
import json
import os
import re
import subprocess
import sys

FORMAT = 1
HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, "..", ".."))

# Scalar C types that may appear in the public API, with their size class.
# A binding maps each of these names once; an unknown one fails generation,
# so a new scalar type (say int32_t) cannot slip into a header unnoticed.
# Option keys whose int values are an enum the key's doc comment does not
# name (the doc says "int 0..4"), and macros that extend an option's values.
VALUE_ENUM_EXTRA = {"SDFLOW_CTX_LOG_LEVEL": "sdflow_log_level"}
VALUE_CONSTANTS_EXTRA = {"SDFLOW_OPT_MLP_OUTPUT": ["SDFLOW_MLP_ENERGY"]}

SCALARS = ("void", "char", "int", "unsigned int", "long", "double", "size_t", "uint32_t", "uint64_t")


def walk_files(node, state, out):
    """Depth-first walk in document order that tracks the current file.

    clang's JSON prints "file" in a location only when it differs from the
    previous printed location, so the file of a declaration is whatever file
    was printed last before (or inside) its location."""
    if isinstance(node, dict):
        if "file" in node:
            state["file"] = node["file"]
        for k, v in node.items():
            if k == "loc" and isinstance(v, dict):
                walk_files(v, state, out)
                if "_file" not in out.get(id(node), {}):
                    out.setdefault(id(node), {})["_file"] = state["file"]
            elif k != "includedFrom" and isinstance(v, (dict, list)):  # includedFrom names the includer
                walk_files(v, state, out)
    elif isinstance(node, list):
        for v in node:
            walk_files(v, state, out)


def parse_type(c, enums, opaques, structs, callbacks):
    """Structured description of a C type spelling (clang's qualType)."""
    s = c.strip()
    s = re.sub(r"\b(enum|struct)\s+", "", s)
    m = re.match(r"^(.*?)\s*\*\s*(const)?$", s)
    if m:  # a pointer: strip the last '*' (and a const applying to the pointer itself)
        inner = parse_type(m.group(1), enums, opaques, structs, callbacks)
        d = {"kind": "pointer", "pointee": inner}
        if m.group(2):
            d["const_pointer"] = True
        return d
    const = False
    if s.startswith("const "):
        const, s = True, s[6:].strip()
    elif s.endswith(" const"):
        const, s = True, s[:-6].strip()
    if s in SCALARS:
        d = {"kind": "void" if s == "void" else "scalar", "name": s}
    elif s in enums:
        d = {"kind": "enum", "name": s}
    elif s in opaques:
        d = {"kind": "opaque", "name": s}
    elif s in structs:
        d = {"kind": "struct", "name": s}
    elif s in callbacks:
        d = {"kind": "callback", "name": s}
    else:
        raise SystemExit("gen_api: type %r (in %r) is not a known scalar, enum, struct, opaque or callback type; "
                         "add it to SCALARS in bindings/api/gen_api.py and to every binding" % (s, c))
    if const:
        d["const"] = True
    return d


def comment_text(node):
    """Flattened text of a Doxygen FullComment (paragraphs joined by blank lines)."""
    parts = []

    def rec(n):
        k = n.get("kind")
        if k == "TextComment":
            parts.append(n.get("text", ""))
        elif k == "InlineCommandComment":
            parts.append(" ".join(n.get("args", [])))
        elif k == "ParagraphComment" and parts:
            parts.append("\n\n")
        elif k in ("BlockCommandComment", "ParamCommandComment") and parts:
            parts.append("\n\n@%s " % n.get("name", "") if k == "BlockCommandComment" else "\n\n@param ")
        for ch in n.get("inner", []):
            rec(ch)

    for ch in node.get("inner", []):
        if ch.get("kind") == "FullComment":
            rec(ch)
    text = "".join(parts)
    text = re.sub(r"[ \t]*\n[ \t]*", "\n", text)
    text = re.sub(r"(?<!\n)\n(?!\n)", " ", text)  # one paragraph per line
    text = re.sub(r"[ \t]+", " ", text)
    text = re.sub(r"\n{3,}", "\n\n", text)
    return text.strip()


def source_slice(texts, path, rng):
    b, e = rng["begin"], rng["end"]
    b = b.get("expansionLoc", b)
    e = e.get("expansionLoc", e)
    return texts[path][b["offset"]:e["offset"] + e.get("tokLen", 0)].decode("utf-8")


def generate(clang="clang", include="include"):
    inc = os.path.join(ROOT, include)
    cmd = [clang, "-Xclang", "-ast-dump=json", "-fsyntax-only", "-I" + inc, os.path.join(inc, "sdflow.h")]
    ast = json.loads(subprocess.run(cmd, check=True, stdout=subprocess.PIPE).stdout)
    files = {}
    walk_files(ast, {"file": None}, files)

    texts = {}

    def header_of(node):
        f = files.get(id(node), {}).get("_file")
        if f is None:
            return None
        f = os.path.normpath(os.path.join(ROOT, f))  # clang prints paths as given: absolute here
        if f not in texts and os.path.exists(f):
            with open(f, "rb") as fh:  # clang's offsets count bytes (the headers hold UTF-8 dashes)
                texts[f] = fh.read()
        return f

    def rel(f):
        return os.path.relpath(f, inc).replace(os.sep, "/")

    # Paths in clang's output are as given on the command line (absolute here).
    decls = [d for d in ast["inner"] if not d.get("isImplicit")]
    ours = []
    for d in decls:
        f = header_of(d)
        if f and os.path.abspath(f).startswith(os.path.abspath(inc) + os.sep):
            ours.append((d, f))

    enums, opaques, structs, callbacks = {}, {}, {}, {}
    enum_decls = {}
    for d, f in ours:
        if d["kind"] == "EnumDecl" and d.get("name"):
            enum_decls[d["name"]] = (d, f)
        if d["kind"] == "RecordDecl" and d.get("name"):
            if d.get("completeDefinition"):
                structs[d["name"]] = (d, f)
            elif d["name"] not in structs:
                opaques[d["name"]] = (d, f)
    for n in list(opaques):
        if n in structs:
            del opaques[n]
    typedefs = [(d, f) for d, f in ours if d["kind"] == "TypedefDecl"]
    for d, f in typedefs:
        qt = d["type"]["qualType"]
        if re.match(r"^enum \w+$", qt):
            enums[d["name"]] = enum_decls[qt.split()[1]]
        elif "(*)" in qt:
            callbacks[d["name"]] = (d, f)
    for n in enum_decls:
        enums.setdefault(n, enum_decls[n])
    T = lambda c: dict(parse_type(c, enums, opaques, structs, callbacks), c=c)  # noqa: E731

    out = {"format": FORMAT, "generator": "bindings/api/gen_api.py", "header": "include/sdflow.h"}

    # Integer object-like macros (not in the AST): version numbers, SDFLOW_MLP_ENERGY, ...
    consts = []
    for f in sorted(texts):
        for m in re.finditer(r"^#define\s+(SDFLOW_\w+)\s+(-?\d+)\s*$", texts[f].decode("utf-8"), re.M):
            consts.append({"name": m.group(1), "value": int(m.group(2)), "header": rel(f)})
    out["version"] = {c["name"][len("SDFLOW_VERSION_"):].lower(): c["value"]
                      for c in consts if c["name"] in ("SDFLOW_VERSION_MAJOR", "SDFLOW_VERSION_MINOR",
                                                        "SDFLOW_VERSION_PATCH")}
    out["constants"] = consts

    out["opaque_types"] = [{"name": n, "header": rel(f)} for n, (d, f) in opaques.items()]
    out["structs"] = []
    for n, (d, f) in structs.items():
        fields = []
        for fd in d.get("inner", []):
            if fd["kind"] != "FieldDecl":
                continue
            qt = fd["type"]["qualType"]
            m = re.match(r"^(.*?)\s*\(\*\)\((.*)\)$", qt)
            if m:
                ty = {"kind": "function_pointer", "c": qt, "return": T(m.group(1)),
                      "params": [T(p.strip()) for p in m.group(2).split(",")]}
            else:
                ty = T(qt)
            fields.append({"name": fd["name"], "type": ty})
        out["structs"].append({"name": n, "header": rel(f), "fields": fields, "doc": comment_text(d)})

    out["enums"] = []
    for n, (d, f) in enums.items():
        consts_e = []
        for c in d.get("inner", []):
            if c["kind"] != "EnumConstantDecl":
                continue
            vals = [x for x in c.get("inner", []) if x.get("kind") == "ConstantExpr"]
            if not vals:
                raise SystemExit("gen_api: enum constant %s has no explicit value; libsdflow's enums give every "
                                 "value explicitly (numbers are never reused)" % c["name"])
            consts_e.append({"name": c["name"], "value": int(vals[0]["value"]), "doc": comment_text(c)})
        # Short names: the constants without their common prefix, lower case
        # ("SDFLOW_SOLVER_DOPRI5" -> "dopri5"), as bindings spell enum values.
        names = [c["name"] for c in consts_e]
        prefix = os.path.commonprefix(names) if len(names) > 1 else names[0].rsplit("_", 1)[0] + "_"
        prefix = prefix[:prefix.rfind("_") + 1]
        for c in consts_e:
            c["short"] = c["name"][len(prefix):].lower()
        out["enums"].append({"name": n, "header": rel(f), "prefix": prefix, "constants": consts_e,
                             "doc": comment_text(d)})
    # Option keys with enum values: the enum named in the key's doc ("int: sdflow_solver").
    for e in out["enums"]:
        if e["name"] != "sdflow_option":
            continue
        for c in e["constants"]:
            ve = VALUE_ENUM_EXTRA.get(c["name"])
            if ve is None:
                for w in re.findall(r"\bsdflow_\w+", c["doc"]):
                    if w in enums and w not in ("sdflow_option", "sdflow_status"):
                        ve = w
                        break
            if ve:
                c["value_enum"] = ve
            if c["name"] in VALUE_CONSTANTS_EXTRA:
                c["value_constants"] = VALUE_CONSTANTS_EXTRA[c["name"]]

    out["callbacks"] = []
    for n, (d, f) in callbacks.items():
        qt = d["type"]["qualType"]
        m = re.match(r"^(.*?)\s*\(\*\)\((.*)\)$", qt)
        src = source_slice(texts, f, d["range"])
        sm = re.search(r"\(\s*\*\s*%s\s*\)\s*\((.*)\)" % n, src, re.S)
        names = [re.search(r"(\w+)\s*(\[\d*\])?\s*$", p.strip()).group(1) for p in sm.group(1).split(",")]
        ptypes = [p.strip() for p in m.group(2).split(",")]
        out["callbacks"].append({"name": n, "header": rel(f), "return": T(m.group(1)),
                                 "params": [{"name": a, "type": T(b)} for a, b in zip(names, ptypes)],
                                 "doc": comment_text(d)})

    out["functions"] = []
    seen = set()
    for d, f in ours:
        if d["kind"] != "FunctionDecl" or not d["name"].startswith("sdflow_") or d["name"] in seen:
            continue
        seen.add(d["name"])
        ret = re.match(r"^(.*?)\s*\(", d["type"]["qualType"]).group(1)
        params = []
        for p in d.get("inner", []):
            if p["kind"] != "ParmVarDecl":
                continue
            entry = {"name": p.get("name", ""), "type": T(p["type"]["qualType"])}
            am = re.search(r"\[(\d+)\]\s*$", source_slice(texts, f, p["range"]))
            if am:  # "double out[4]": the array length the pointer must cover
                entry["array_len"] = int(am.group(1))
            params.append(entry)
        out["functions"].append({"name": d["name"], "header": rel(f), "return": T(ret), "params": params,
                                 "doc": comment_text(d)})
    return out


def dumps(api):
    return json.dumps(api, indent=1, ensure_ascii=False) + "\n"


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-o", "--output")
    ap.add_argument("--clang", default=os.environ.get("CLANG", "clang"))
    ap.add_argument("--include", default="include")
    a = ap.parse_args(argv)
    text = dumps(generate(a.clang, a.include))
    if a.output:
        os.makedirs(os.path.dirname(os.path.abspath(a.output)), exist_ok=True)
        with open(a.output, "w", encoding="utf-8") as fh:
            fh.write(text)
    else:
        sys.stdout.write(text)


if __name__ == "__main__":
    main()

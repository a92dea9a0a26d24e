# SPDX-License-Identifier: MIT
"""The consistency checks themselves can fail: a function added to a header
without a binding entry, a stale description, a Julia ccall whose signature
differs from C (bindings/api/api_check.py, bindings/julia/gen_julia.py)."""
import json
import os
import shutil
import subprocess
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, "..", "..", ".."))
sys.path.insert(0, os.path.join(ROOT, "bindings", "api"))
sys.path.insert(0, os.path.join(ROOT, "bindings", "julia"))
import api_check  # noqa: E402
import gen_api  # noqa: E402
import gen_julia  # noqa: E402

API = json.load(open(os.path.join(ROOT, "bindings", "api", "sdflow_api.json")))
NAMES = [f["name"] for f in API["functions"]]


@pytest.mark.skipif(shutil.which("clang") is None, reason="clang not installed")
def test_new_header_function_appears_in_the_description(tmp_path):
    inc = tmp_path / "include"
    shutil.copytree(os.path.join(ROOT, "include"), inc)
    ctx_h = inc / "sdflow" / "ctx.h"
    text = ctx_h.read_text()
    text = text.replace("SDFLOW_END_DECLS", "SDFLOW_API sdflow_status sdflow_unbound_demo(sdflow_ctx *ctx, double x[3]);\n"
                        "SDFLOW_END_DECLS")
    ctx_h.write_text(text)
    api = gen_api.generate(include=os.path.relpath(str(inc), gen_api.ROOT))
    f = [f for f in api["functions"] if f["name"] == "sdflow_unbound_demo"]
    assert f and f[0]["params"][1]["array_len"] == 3 and f[0]["params"][1]["type"]["c"] == "double *"
    # every manifest lacks it: the coverage check fails for each binding
    names = [g["name"] for g in api["functions"]]
    for man in ("python", "julia"):
        m = api_check.read_manifest(os.path.join(ROOT, "bindings", man, "api-bindings.txt"))
        errs = api_check.check_manifest(m, names)
        assert any("no entry for sdflow_unbound_demo" in e for e in errs), errs
    # and the checked-in description no longer equals a fresh one
    assert gen_api.dumps(api) != open(api_check.CHECKED_IN).read()


def test_checked_in_description_is_current():
    if shutil.which("clang") is None:
        pytest.skip("clang not installed")
    assert gen_api.dumps(gen_api.generate()) == open(api_check.CHECKED_IN).read()


def test_manifest_errors(tmp_path):
    man = tmp_path / "api-bindings.txt"
    src = tmp_path / "lib.py"
    src.write_text("def real_wrapper(): pass\n")
    lines = ["# binding: demo", "# sources: lib.py"] + ["%s real_wrapper" % n for n in NAMES[2:]]
    lines += ["%s ghost_wrapper" % NAMES[0], "sdflow_no_such_function real_wrapper", "%s -" % NAMES[1]]
    man.write_text("\n".join(lines) + "\n")
    errs = api_check.check_manifest(api_check.read_manifest(str(man)), NAMES)
    text = "\n".join(errs)
    assert "ghost_wrapper" in text and "does not occur" in text
    assert "sdflow_no_such_function is not a function" in text
    assert "unbound without a reason" in text


def test_julia_ccall_signature_mismatch_is_caught(tmp_path):
    bad = tmp_path / "bad.jl"
    bad.write_text("f() = ccall((:sdflow_model_dim, libsdflow), Cint, (Ptr{Cvoid},), C_NULL)\n"
                   "g(x) = ccall((:sdflow_rng_normal, libsdflow), Cint, (Ptr{Cvoid}, UInt64, UInt64, Csize_t, "
                   "Csize_t), x, 0, 0, 1, 1)\n"
                   "h() = ccall((:sdflow_not_in_api, libsdflow), Cint, ())\n")
    errs, n = gen_julia.check_ccalls(API, [str(bad)])
    assert n == 3
    text = "\n".join(errs)
    assert "sdflow_model_dim returns size_t" in text
    assert "sdflow_rng_normal takes" in text
    assert "sdflow_not_in_api, which is not in the API" in text
    good, n = gen_julia.check_ccalls(API, [gen_julia.OUT])
    assert good == [] and n == len(NAMES)


def test_julia_layer_is_current():
    r = subprocess.run([sys.executable, os.path.join(ROOT, "bindings", "julia", "gen_julia.py"), "--check"],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr


def test_julia_raw_call_argument_count_is_checked(tmp_path):
    bad = tmp_path / "Bad.jl"
    bad.write_text('f(s) = L.sdflow_sampler_run(s.h, 3, C_NULL)\ng() = L.sdflow_no_such(1)\n'
                   'h(m) = L.sdflow_model_dim(m.h)\nt = L.sdflow_solver_values["rk4"]\n')
    errs, n = gen_julia.check_raw_uses(API, [str(bad)])
    text = "\n".join(errs)
    assert n == 2 and len(errs) == 2
    assert "sdflow_sampler_run takes 4 arguments, called with 3" in text
    assert "LibSdflow.sdflow_no_such does not exist" in text

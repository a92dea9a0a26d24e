# SPDX-License-Identifier: MIT
"""The code blocks of docs/python.md run, in order, in one namespace."""
import os
import re

HERE = os.path.dirname(os.path.abspath(__file__))
DOC = os.path.normpath(os.path.join(HERE, "..", "..", "..", "docs", "python.md"))


def test_python_md_code_blocks_run(capsys):
    with open(DOC, encoding="utf-8") as fh:
        blocks = re.findall(r"```python\n(.*?)```", fh.read(), re.S)
    assert len(blocks) >= 10
    ns = {}
    for i, code in enumerate(blocks):
        exec(compile(code, "%s block %d" % (DOC, i + 1), "exec"), ns)
    assert ns["steps_seen"], "the ctx-wide progress handler saw the sampler's steps"
    assert ns["y"].shape == (1000, 2) and ns["logp"].shape == (20,)

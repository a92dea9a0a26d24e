# SPDX-License-Identifier: MIT
"""pytest setup: the package from this source tree, the library of this
build (lib/libsdflow.so unless SDFLOW_LIBRARY is set, as make python-test does)."""
import os
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, "..", "..", ".."))
sys.path.insert(0, os.path.dirname(HERE))
os.environ.setdefault("SDFLOW_LIBRARY", os.path.join(ROOT, "lib", "libsdflow.so"))

import sdflow  # noqa: E402


@pytest.fixture
def ctx():
    with sdflow.Ctx(seed=1234) as c:
        yield c

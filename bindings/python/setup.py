# SPDX-License-Identifier: MIT
"""Metadata is in pyproject.toml; the version comes from the C headers so the
binding and the library it loads are released together."""
import os
import re

from setuptools import setup


def _version():
    here = os.path.dirname(os.path.abspath(__file__))
    with open(os.path.join(here, "..", "..", "include", "sdflow", "version.h")) as f:
        text = f.read()
    parts = [re.search(r"#define SDFLOW_VERSION_%s (\d+)" % k, text).group(1) for k in ("MAJOR", "MINOR", "PATCH")]
    return ".".join(parts)


setup(version=_version())

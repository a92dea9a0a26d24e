# SPDX-License-Identifier: MIT
"""Metadata is in pyproject.toml. Two things come from the C side so the
binding and the library it loads are released together: the version (the
API description, generated from include/sdflow/version.h) and the API
description itself, copied into the package (its ctypes prototypes are
built from it at import time)."""
import json
import os
import shutil

from setuptools import setup
from setuptools.command.build_py import build_py

HERE = os.path.dirname(os.path.abspath(__file__))
API = os.path.join(HERE, "..", "api", "sdflow_api.json")


def _version():
    with open(API, encoding="utf-8") as f:
        v = json.load(f)["version"]
    return "%(major)d.%(minor)d.%(patch)d" % v


class BuildPy(build_py):
    """Copies bindings/api/sdflow_api.json into the built package."""

    def run(self):
        super().run()
        dst = os.path.join(self.build_lib, "sdflow", "sdflow_api.json")
        os.makedirs(os.path.dirname(dst), exist_ok=True)
        shutil.copyfile(API, dst)


setup(version=_version(), cmdclass={"build_py": BuildPy})

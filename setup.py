"""The compiled build (gateway/build.py says what and why): with GATEWAY_COMPILE=1 the
data plane's request path is compiled by mypyc; without it the package is plain Python.
Everything else about the package is in pyproject.toml.

mypyc type-checks what it compiles, so it needs the package's dependencies and mypy
installed where it runs (the `compile` extra), hence no build isolation:

    pip install '.[compile]'
    GATEWAY_COMPILE=1 pip wheel --no-deps --no-build-isolation -w dist .
"""

from __future__ import annotations

import os
import sys

from setuptools import setup

# The source tree's gateway/build.py (it imports nothing else), not an installed copy.
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from gateway.build import source_paths


def _extensions() -> list[object]:
    if os.environ.get("GATEWAY_COMPILE") != "1":
        return []
    from mypyc.build import mypycify

    return list(mypycify(source_paths(), opt_level="3"))


setup(ext_modules=_extensions())

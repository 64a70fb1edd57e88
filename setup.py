"""setuptools hook for the compiled build (tools/build_backend.py decides when it is wanted).

Everything about the package is in pyproject.toml. With ``IVR_SERVER_COMPILE=1`` (set by the
backend for its attempt to compile) the modules listed under ``[tool.ivr-server.compile]`` there are
compiled with mypyc; otherwise this adds nothing.

With GCC or Clang the compiled modules also get ``-fno-semantic-interposition``: mypyc's functions
are global symbols of one shared library, and without it every call between them goes through the
PLT and none can be inlined (the flag CPython itself is built with since 3.10). Measured on the
benchmark VM (docs/performance.md §6): 3-6% less CPU per call one request per read, 1-6% more
calls per second in the closed loops.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any

from setuptools import setup

ext_modules: list[Any] = []
if os.environ.get("IVR_SERVER_COMPILE", "") == "1":
    from mypyc.build import mypycify

    settings = tomllib.loads(Path("pyproject.toml").read_text(encoding="utf-8"))
    modules = settings["tool"]["ivr-server"]["compile"]["modules"]
    ext_modules = mypycify([f"src/ivr_server/{module}" for module in modules], opt_level="3")
    for extension in ext_modules:
        flags = extension.extra_compile_args  # one list, shared by all the extensions
        if "-O3" in flags and "-fno-semantic-interposition" not in flags:  # GCC/Clang-style
            flags.append("-fno-semantic-interposition")

setup(ext_modules=ext_modules)

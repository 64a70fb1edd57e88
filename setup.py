"""setuptools hook for the compiled build (tools/build_backend.py decides when it is wanted).

Everything about the package is in pyproject.toml. With ``IVR_SERVER_COMPILE=1`` (set by the
backend for its attempt to compile) the modules listed under ``[tool.ivr-server.compile]`` there are
compiled with mypyc; otherwise this adds nothing.
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

setup(ext_modules=ext_modules)

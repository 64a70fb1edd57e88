"""The package's build backend: setuptools, plus mypyc when ``IVR_SERVER_COMPILE=1``.

``IVR_SERVER_COMPILE=1 pip install .`` builds the optional compiled build (docs/performance.md,
"The compiled build"): the hot-path modules listed in ``setup.py`` are compiled to C extension
modules with mypyc (the compiler of the mypy project; it needs a C compiler and the Python
headers), the rest stays Python. mypyc type-checks what it compiles, so the build environment
also gets the package's own dependencies (for their types) and the pinned mypy. Without the
variable nothing changes: a plain setuptools build of the pure-Python package.

An editable install (``pip install -e .``) is never compiled: extension modules built next to the
sources would silently shadow later edits of them.
"""

from __future__ import annotations

import os
import shutil
import tomllib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from setuptools import build_meta as _setuptools
from setuptools.build_meta import (  # noqa: F401  (the hooks not overridden, as setuptools has them)
    build_sdist,
    get_requires_for_build_sdist,
    prepare_metadata_for_build_wheel,
)

COMPILE_VARIABLE = "IVR_SERVER_COMPILE"


def compile_requested() -> bool:
    return os.environ.get(COMPILE_VARIABLE, "") == "1"


def _compile_requires() -> list[str]:
    if not compile_requested():
        return []
    project = tomllib.loads(Path("pyproject.toml").read_text(encoding="utf-8"))["project"]
    # mypy as pinned for development: the same checker that keeps the code clean compiles it
    mypy = [r for r in project["optional-dependencies"]["dev"] if r.startswith("mypy==")]
    return [*mypy, *project["dependencies"]]


@contextmanager
def _not_compiling() -> Iterator[None]:
    """setuptools runs setup.py in every hook: without compiling where mypyc is not wanted."""
    saved = os.environ.pop(COMPILE_VARIABLE, None)
    try:
        yield
    finally:
        if saved is not None:
            os.environ[COMPILE_VARIABLE] = saved


def get_requires_for_build_wheel(config_settings: dict[str, Any] | None = None) -> list[str]:
    extra = _compile_requires()
    with _not_compiling():  # setuptools' own needs (mypyc is not installed yet)
        requires: list[str] = _setuptools.get_requires_for_build_wheel(config_settings)
    return requires + extra


def build_wheel(
    wheel_directory: str,
    config_settings: dict[str, Any] | None = None,
    metadata_directory: str | None = None,
) -> str:
    # setuptools packs everything under build/lib*: what an earlier build (compiled or not) left
    # there would end up in this wheel and shadow the sources (a stale extension module)
    for stale in Path("build").glob("lib*"):
        shutil.rmtree(stale)
    name: str = _setuptools.build_wheel(wheel_directory, config_settings, metadata_directory)
    return name


# An editable install is never compiled, whatever the variable says.


def get_requires_for_build_editable(config_settings: dict[str, Any] | None = None) -> list[str]:
    with _not_compiling():
        requires: list[str] = _setuptools.get_requires_for_build_editable(config_settings)
    return requires


def prepare_metadata_for_build_editable(
    metadata_directory: str, config_settings: dict[str, Any] | None = None
) -> str:
    with _not_compiling():
        name: str = _setuptools.prepare_metadata_for_build_editable(
            metadata_directory, config_settings
        )
    return name


def build_editable(
    wheel_directory: str,
    config_settings: dict[str, Any] | None = None,
    metadata_directory: str | None = None,
) -> str:
    if compile_requested():
        print(f"{COMPILE_VARIABLE}=1 ignored: an editable install is never compiled")
    with _not_compiling():
        name: str = _setuptools.build_editable(wheel_directory, config_settings, metadata_directory)
    return name

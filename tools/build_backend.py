"""The package's build backend: setuptools, with the hot path compiled by mypyc when it can be.

``pip install .`` builds the compiled build (docs/performance.md, "The compiled build"): the
hot-path modules listed under ``[tool.ivr-server.compile]`` in ``pyproject.toml`` are compiled to C
extension modules with mypyc (the compiler of the mypy project; it needs a C compiler and the
Python headers), the rest stays Python. mypyc type-checks what it compiles, so the build
environment also gets the package's own dependencies (for their types) and the pinned mypy.

``IVR_SERVER_COMPILE`` chooses:

- unset (or anything else): compile if possible; if compiling fails (no C compiler, no Python
  headers...), say why on stderr and build the pure-Python package instead;
- ``1``: compile, and fail the build if that fails (CI uses it);
- ``0``: the pure-Python package, without mypy in the build environment.

An editable install (``pip install -e .``) is never compiled: extension modules built next to the
sources would silently shadow later edits of them.
"""

from __future__ import annotations

import functools
import os
import shutil
import sys
import tomllib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from setuptools import build_meta as _setuptools

T = TypeVar("T")

COMPILE_VARIABLE = "IVR_SERVER_COMPILE"
"""``1``: compile or fail; ``0``: never compile; unset: compile if possible (setup.py reads
``1`` only: the backend sets it for the attempt)."""


def compile_mode() -> str:
    """``required``, ``off`` or ``auto``, from :data:`COMPILE_VARIABLE`."""
    value = os.environ.get(COMPILE_VARIABLE, "")
    return "required" if value == "1" else "off" if value == "0" else "auto"


def _compile_requires() -> list[str]:
    if compile_mode() == "off":
        return []
    project = tomllib.loads(Path("pyproject.toml").read_text(encoding="utf-8"))["project"]
    # mypy as pinned for development: the same checker that keeps the code clean compiles it
    mypy = [r for r in project["optional-dependencies"]["dev"] if r.startswith("mypy==")]
    return [*mypy, *project["dependencies"]]


@contextmanager
def _compiling(wanted: bool) -> Iterator[None]:
    """setuptools runs setup.py in every hook: with the variable at ``1`` only where mypyc
    compiles, and unset everywhere else."""
    saved = os.environ.pop(COMPILE_VARIABLE, None)
    if wanted:
        os.environ[COMPILE_VARIABLE] = "1"
    try:
        yield
    finally:
        os.environ.pop(COMPILE_VARIABLE, None)
        if saved is not None:
            os.environ[COMPILE_VARIABLE] = saved


def _clear_build() -> None:
    # setuptools packs everything under build/lib*: what an earlier build (compiled or not) left
    # there would end up in this wheel and shadow the sources (a stale extension module)
    for stale in Path("build").glob("lib*"):
        shutil.rmtree(stale)


def get_requires_for_build_wheel(config_settings: dict[str, Any] | None = None) -> list[str]:
    extra = _compile_requires()
    with _compiling(False):  # setuptools' own needs (mypyc is not installed yet)
        requires: list[str] = _setuptools.get_requires_for_build_wheel(config_settings)
    return requires + extra


def build_wheel(
    wheel_directory: str,
    config_settings: dict[str, Any] | None = None,
    metadata_directory: str | None = None,
) -> str:
    mode = compile_mode()
    if mode != "off":
        _clear_build()
        # pip shows this only with -v (the README says it too): a minute or two with no output
        # otherwise looks like a hang
        print(
            f"ivr-server: compiling the hot path with mypyc, about 1-2 minutes; "
            f"{COMPILE_VARIABLE}=0 skips it",
            file=sys.stderr,
            flush=True,
        )
        try:
            with _compiling(True):
                name: str = _setuptools.build_wheel(
                    wheel_directory, config_settings, metadata_directory
                )
            return name
        except (Exception, SystemExit) as failure:  # a compiler error, mypyc's exit, no mypy...
            if mode == "required":
                raise
            print(
                f"ivr-server: compiling the hot path failed ({failure!r}); building the "
                f"pure-Python package instead (same behaviour, more CPU per call; "
                f"{COMPILE_VARIABLE}=0 skips the attempt)",
                file=sys.stderr,
            )
    _clear_build()
    with _compiling(False):
        pure: str = _setuptools.build_wheel(wheel_directory, config_settings, metadata_directory)
    return pure


def _without_mypyc(hook: Callable[..., T]) -> Callable[..., T]:
    """A setuptools hook run as setuptools has it, with setup.py not compiling."""

    @functools.wraps(hook)
    def run(*args: Any, **kwargs: Any) -> T:
        with _compiling(False):
            return hook(*args, **kwargs)

    return run


# The metadata do not depend on what is compiled; a source distribution carries the sources; an
# editable install is never compiled, whatever the variable says.
prepare_metadata_for_build_wheel = _without_mypyc(_setuptools.prepare_metadata_for_build_wheel)
get_requires_for_build_sdist = _without_mypyc(_setuptools.get_requires_for_build_sdist)
build_sdist = _without_mypyc(_setuptools.build_sdist)
get_requires_for_build_editable = _without_mypyc(_setuptools.get_requires_for_build_editable)
prepare_metadata_for_build_editable = _without_mypyc(
    _setuptools.prepare_metadata_for_build_editable
)


def build_editable(
    wheel_directory: str,
    config_settings: dict[str, Any] | None = None,
    metadata_directory: str | None = None,
) -> str:
    if compile_mode() == "required":
        print(f"{COMPILE_VARIABLE}=1 ignored: an editable install is never compiled")
    with _compiling(False):
        name: str = _setuptools.build_editable(wheel_directory, config_settings, metadata_directory)
    return name

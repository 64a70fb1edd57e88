"""The optional compiled build: its build backend, its module list, and what the package reports.

``.ci/run`` builds the compiled package (``IVR_SERVER_COMPILE=1``) and runs the whole suite on it
with ``IVR_SERVER_EXPECT_COMPILED=1``; without that variable the suite runs on pure Python.
"""

from __future__ import annotations

import importlib
import os
import sys
import tomllib
from pathlib import Path

import pytest

from ivr_server import compiled_modules

ROOT = Path(__file__).resolve().parents[2]


def compile_list() -> list[str]:
    """The modules pyproject.toml says the compiled build compiles, as dotted names."""
    settings = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    paths = settings["tool"]["ivr-server"]["compile"]["modules"]
    return sorted("ivr_server." + p.removesuffix(".py").replace("/", ".") for p in paths)


def test_the_compile_list_names_modules_of_the_package() -> None:
    names = compile_list()
    assert names and len(set(names)) == len(names)
    for name in names:
        assert (ROOT / "src" / (name.replace(".", "/") + ".py")).is_file(), name


def test_the_package_reports_what_runs_compiled() -> None:
    for name in compile_list():
        importlib.import_module(name)
    if os.environ.get("IVR_SERVER_EXPECT_COMPILED") == "1":
        assert compiled_modules() == compile_list()
    else:
        assert compiled_modules() == []


def test_the_backend_asks_for_mypy_and_the_dependencies_only_when_compiling(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.chdir(ROOT)
    monkeypatch.syspath_prepend(str(ROOT / "tools"))
    sys.modules.pop("build_backend", None)
    backend = importlib.import_module("build_backend")
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]

    monkeypatch.delenv("IVR_SERVER_COMPILE", raising=False)
    assert not any(r.startswith("mypy") for r in backend._compile_requires())

    monkeypatch.setenv("IVR_SERVER_COMPILE", "1")
    needs = backend._compile_requires()
    pinned = [r for r in project["optional-dependencies"]["dev"] if r.startswith("mypy==")]
    assert len(pinned) == 1 and pinned[0] in needs
    assert set(project["dependencies"]) <= set(needs)

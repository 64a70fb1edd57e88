"""The compiled build: its build backend, its module list, and what the package reports.

``.ci/run`` builds the compiled package (``IVR_SERVER_COMPILE=1``) and runs the whole suite on it
with ``IVR_SERVER_EXPECT_COMPILED=1``; without that variable the suite runs on pure Python (the
editable install of the README's test command is never compiled).
"""

from __future__ import annotations

import importlib
import os
import sys
import tomllib
from pathlib import Path
from types import ModuleType
from typing import Any

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


def set_compile_variable(monkeypatch: pytest.MonkeyPatch, value: str | None) -> None:
    """``IVR_SERVER_COMPILE`` at ``value``; ``None``: unset."""
    if value is None:
        monkeypatch.delenv("IVR_SERVER_COMPILE", raising=False)
    else:
        monkeypatch.setenv("IVR_SERVER_COMPILE", value)


@pytest.fixture
def backend(monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    """tools/build_backend.py, imported as pip imports it (from the project's root)."""
    monkeypatch.chdir(ROOT)
    monkeypatch.syspath_prepend(str(ROOT / "tools"))
    sys.modules.pop("build_backend", None)
    return importlib.import_module("build_backend")


def test_the_backend_asks_for_mypy_and_the_dependencies_unless_told_not_to_compile(
    monkeypatch: pytest.MonkeyPatch, backend: ModuleType
) -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    pinned = [r for r in project["optional-dependencies"]["dev"] if r.startswith("mypy==")]
    assert len(pinned) == 1
    for value in (None, "1", "yes"):  # unset (compile if possible), required, anything else
        set_compile_variable(monkeypatch, value)
        needs = backend._compile_requires()
        assert pinned[0] in needs
        assert set(project["dependencies"]) <= set(needs)
    monkeypatch.setenv("IVR_SERVER_COMPILE", "0")
    assert backend._compile_requires() == []


class FakeSetuptools:
    """setuptools' build_wheel as the backend sees it: records the variable setup.py would
    read, and fails when asked to compile if told to."""

    def __init__(self, compile_fails: bool) -> None:
        self.compile_fails = compile_fails
        self.seen: list[str | None] = []

    def build_wheel(self, *args: Any) -> str:
        value = os.environ.get("IVR_SERVER_COMPILE")
        self.seen.append(value)
        if value == "1" and self.compile_fails:
            raise SystemExit("mypyc: error")  # what mypycify does on an error
        return "compiled.whl" if value == "1" else "pure.whl"


@pytest.mark.parametrize(
    ("variable", "compile_fails", "wheel", "attempts"),
    [
        (None, False, "compiled.whl", ["1"]),
        (None, True, "pure.whl", ["1", None]),
        ("1", False, "compiled.whl", ["1"]),
        ("0", False, "pure.whl", [None]),
        ("0", True, "pure.whl", [None]),
    ],
)
def test_the_backend_compiles_when_it_can_and_falls_back_to_pure_python(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    backend: ModuleType,
    variable: str | None,
    compile_fails: bool,
    wheel: str,
    attempts: list[str | None],
) -> None:
    set_compile_variable(monkeypatch, variable)
    fake = FakeSetuptools(compile_fails)
    monkeypatch.setattr(backend, "_setuptools", fake)
    monkeypatch.setattr(backend, "_clear_build", lambda: None)
    assert backend.build_wheel("dist") == wheel
    assert fake.seen == attempts
    assert os.environ.get("IVR_SERVER_COMPILE") == variable  # restored
    err = capsys.readouterr().err
    notice = "compiling the hot path with mypyc, about 1-2 minutes; IVR_SERVER_COMPILE=0 skips it"
    assert (notice in err) == ("1" in attempts), err  # said before compiling, and only then
    if len(attempts) == 2:
        assert "building the pure-Python package instead" in err


def test_the_backend_fails_when_compiling_is_required_and_fails(
    monkeypatch: pytest.MonkeyPatch, backend: ModuleType
) -> None:
    monkeypatch.setenv("IVR_SERVER_COMPILE", "1")
    fake = FakeSetuptools(compile_fails=True)
    monkeypatch.setattr(backend, "_setuptools", fake)
    monkeypatch.setattr(backend, "_clear_build", lambda: None)
    with pytest.raises(SystemExit):
        backend.build_wheel("dist")
    assert fake.seen == ["1"]

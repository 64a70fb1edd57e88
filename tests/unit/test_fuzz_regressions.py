"""The fuzz targets' corpora and every input a fuzzer ever found, replayed without the engine.

``fuzz/crashes/<target>/`` keeps each input that once broke a property (docs/fuzzing.md); each
is a test here, so a fixed crash stays fixed in every run of the suite, with or without atheris.
An input whose fix is still to come is listed in :data:`KNOWN` with the reason: it is expected
to fail (strictly: once fixed, the entry must go).
"""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest

from fuzz.harness import CORPUS_DIR, CRASHES_DIR, TARGETS

KNOWN: dict[str, str] = {}
"""``"<target>/<file>"`` -> why it still fails (strict: an entry whose input passes fails the
suite, so each goes with its fix)."""


def _inputs(folder: Path) -> list[Path]:
    if not folder.is_dir():
        return []
    return sorted(
        p
        for p in folder.iterdir()
        if p.is_file() and not p.name.startswith(".") and p.suffix != ".md"
    )


def _crashes() -> list[object]:
    params: list[object] = []
    for target in TARGETS:
        for path in _inputs(CRASHES_DIR / target):
            key = f"{target}/{path.name}"
            marks = [pytest.mark.xfail(reason=KNOWN[key], strict=True)] if key in KNOWN else []
            params.append(pytest.param(target, path, id=key, marks=marks))
    return params


@pytest.mark.parametrize("target", sorted(TARGETS))
def test_the_corpus_keeps_every_property(target: str) -> None:
    one_input = importlib.import_module(TARGETS[target].module).one_input
    inputs = _inputs(CORPUS_DIR / target)
    assert inputs, f"fuzz/corpus/{target}/ is empty: run python3 fuzz/seed.py"
    failed: list[str] = []
    for path in inputs:
        try:
            one_input(path.read_bytes())
        except Exception as exc:
            failed.append(f"{path.name}: {type(exc).__name__}: {str(exc)[:500]}")
    assert not failed, "\n".join(failed)


@pytest.mark.parametrize(("target", "path"), _crashes())
def test_a_crash_found_once_stays_fixed(target: str, path: Path) -> None:
    importlib.import_module(TARGETS[target].module).one_input(path.read_bytes())


def test_crash_folders_and_known_failures_name_real_targets_and_files() -> None:
    folders = (
        {p.name for p in CRASHES_DIR.iterdir() if p.is_dir()} if CRASHES_DIR.is_dir() else set()
    )
    assert folders <= set(TARGETS), folders - set(TARGETS)
    for key in KNOWN:
        target, _, name = key.partition("/")
        assert (CRASHES_DIR / target / name).is_file(), f"KNOWN lists {key}, which is not kept"

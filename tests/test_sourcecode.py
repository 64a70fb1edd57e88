"""The code's own checks run as tests: lint, format, strict typing, one-way layers, the layout doc."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TREES = ["src", "tests", "bench", "tools", "fuzz"]


def run(*cmd: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600, check=False)


def test_ruff_lint() -> None:
    done = run(sys.executable, "-m", "ruff", "check", *TREES)
    assert done.returncode == 0, done.stdout + done.stderr


def test_ruff_format() -> None:
    done = run(sys.executable, "-m", "ruff", "format", "--check", *TREES)
    assert done.returncode == 0, done.stdout + done.stderr


def test_mypy_strict() -> None:
    done = run(sys.executable, "-m", "mypy")
    assert done.returncode == 0, done.stdout + done.stderr


def test_layers_point_one_way() -> None:
    exe = shutil.which("lint-imports")
    if exe is None:
        pytest.fail("import-linter is not installed (pip install -e '.[dev]')")
    done = run(exe)
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_layout_in_the_design_doc_is_current() -> None:
    done = run(sys.executable, "tools/layout.py", "--check")
    assert done.returncode == 0, done.stdout + done.stderr

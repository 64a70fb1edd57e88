"""The protocol reference beside the clone (``../shared``): tests that need it skip without it,
except under CI (``CI`` set, as ``.ci/run`` is run), where they fail: CI must never pass without
them."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"


def require_shared(*paths: Path) -> None:
    """Return if every path exists; else fail under CI and skip elsewhere, naming what is missing."""
    missing = [p for p in paths if not p.exists()]
    if not missing:
        return
    names = ", ".join(str(p) for p in missing)
    if os.environ.get("CI"):
        pytest.fail(f"CI must run the tests on ../shared, and {names} is missing")
    pytest.skip(f"../shared is not beside the repository ({names} is missing)")

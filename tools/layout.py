#!/usr/bin/env python3
"""Write the source layout into ``docs/design.md``: one line per file, with what it holds.

The tree sits between the markers ``<!-- layout:begin -->`` and ``<!-- layout:end -->`` of the
"Layout" section. Each line is a file of ``src/ivr_server`` (Python modules, static files and
data) with the first sentence of its module docstring, so the tree is as true as the docstrings;
files without a docstring are listed with a description from ``OTHER`` below.

    python3 tools/layout.py            # rewrite the tree in docs/design.md
    python3 tools/layout.py --check    # exit 1 when the tree is out of date (the tests run this)
"""

from __future__ import annotations

import argparse
import ast
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "src/ivr_server"
DOC = ROOT / "docs/design.md"
BEGIN = "<!-- layout:begin -->"
END = "<!-- layout:end -->"
WIDTH = 100

OTHER = {
    "config/default.toml": "The built-in default configuration (served by a bare `ivr-server`).",
    "spec/messages.json": "The protocol schema, a copy of ../shared/spec/messages.json.",
    "py.typed": "Marks the package as typed (PEP 561).",
    "api/static/index.html": "The web view's page (docs/webview.md).",
    "api/static/app.js": "The web view's start: token, fetching the state, the live event stream.",
    "api/static/app.css": "The web view's style sheet.",
    "api/static/dom.js": "The web view's DOM helpers, formatting and redraw-only-on-change.",
    "api/static/views.js": "The web view's summary, server line, links, ports, routing points, sessions.",
    "api/static/panels.js": "The web view's Agents card (every DN of every switch) and Statistics card.",
    "api/static/calls.js": "The web view's Active calls table and its End call button.",
    "api/static/ha.js": "The web view's High availability card: this node, every node, the store's calls.",
}
"""Descriptions of the files that have no docstring, by path under src/ivr_server."""

SKIPPED_SUFFIXES = {".pyc", ".so", ".c", ".h"}


def summary(path: Path) -> str:
    """The first sentence of a module's docstring, or the description in ``OTHER``."""
    rel = path.relative_to(PACKAGE).as_posix()
    if rel in OTHER:
        return OTHER[rel]
    if path.suffix != ".py":
        return ""
    doc = ast.get_docstring(ast.parse(path.read_text(encoding="utf-8"))) or ""
    first = " ".join(doc.strip().split("\n\n", 1)[0].split())
    end = first.find(". ")
    return first if end < 0 else first[: end + 1]


def files(folder: Path) -> list[Path]:
    """The files of the tree, folders after the files beside them, each sorted by name."""
    entries = sorted(folder.iterdir(), key=lambda p: (p.is_dir(), p.name))
    found: list[Path] = []
    for entry in entries:
        if entry.name.startswith(".") or entry.name == "__pycache__":
            continue
        if entry.is_dir():
            found.append(entry)
            found.extend(files(entry))
        elif entry.suffix not in SKIPPED_SUFFIXES:
            found.append(entry)
    return found


def tree() -> str:
    """The layout as a fenced block: ``path  what it holds``, wrapped at ``WIDTH`` columns."""
    paths = files(PACKAGE)
    names = [
        "  " * len(p.relative_to(PACKAGE).parts) + p.name + ("/" if p.is_dir() else "")
        for p in paths
    ]
    column = max(len(n) for n in names) + 2
    lines = ["```", "src/ivr_server/"]
    for path, name in zip(paths, names, strict=True):
        text = "" if path.is_dir() else summary(path)
        wrapped = textwrap.wrap(text, WIDTH - column) or [""]
        lines.append((name.ljust(column) + wrapped[0]).rstrip())
        lines.extend(" " * column + more for more in wrapped[1:])
    lines.append("```")
    return "\n".join(lines)


def render(doc: str) -> str:
    """``doc`` with the tree between the markers replaced by the current one."""
    head, sep, rest = doc.partition(BEGIN)
    if not sep or END not in rest:
        raise SystemExit(f"{DOC}: markers {BEGIN} / {END} not found")
    _, _, tail = rest.partition(END)
    return f"{head}{BEGIN}\n{tree()}\n{END}{tail}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if docs/design.md is stale")
    args = parser.parse_args()
    current = DOC.read_text(encoding="utf-8")
    wanted = render(current)
    if args.check:
        if wanted != current:
            print("docs/design.md: the layout tree is out of date; run python3 tools/layout.py")
            return 1
        return 0
    DOC.write_text(wanted, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The value sets of ``ivr_server.vocabulary`` exist once: every layer imports them, none spells
one out again."""

from __future__ import annotations

import ast
import enum
import typing
from pathlib import Path

import ivr_server
from ivr_server import config, switch, vocabulary
from ivr_server.wire import messages

PACKAGE = Path(ivr_server.__file__).parent

PENDING: frozenset[tuple[str, str]] = frozenset()
"""Known repetitions (file, vocabulary name) still to be replaced by an import: none left."""


def vocabulary_sets() -> dict[frozenset[str], str]:
    """Value set → its name in ``ivr_server.vocabulary``, for every Literal alias and StrEnum."""
    sets: dict[frozenset[str], str] = {}
    for name in vocabulary.__all__:
        value = getattr(vocabulary, name)
        if isinstance(value, type) and issubclass(value, enum.StrEnum):
            sets[frozenset(member.value for member in value)] = name
        elif typing.get_origin(value) is typing.Literal:
            sets[frozenset(typing.get_args(value))] = name
    return sets


def string_sets(tree: ast.AST) -> list[frozenset[str]]:
    """The sets of two or more strings a module spells out: ``Literal[...]`` and tuples."""
    found: list[frozenset[str]] = []
    for node in ast.walk(tree):
        elements: list[ast.expr] | None = None
        if isinstance(node, ast.Subscript) and getattr(node.value, "id", None) == "Literal":
            elements = node.slice.elts if isinstance(node.slice, ast.Tuple) else [node.slice]
        elif isinstance(node, ast.Tuple | ast.Set):
            elements = node.elts
        if elements and len(elements) > 1:
            values = [
                e.value
                for e in elements
                if isinstance(e, ast.Constant) and isinstance(e.value, str)
            ]
            if len(values) == len(elements):
                found.append(frozenset(values))
    return found


def test_no_module_spells_out_a_vocabulary_set() -> None:
    sets = vocabulary_sets()
    repeated = set()
    for path in sorted(PACKAGE.rglob("*.py")):
        name = path.relative_to(PACKAGE).as_posix()
        if name == "vocabulary.py":
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        repeated |= {(name, sets[s]) for s in string_sets(tree) if s in sets}
    assert sorted(repeated - PENDING) == []


def test_the_layers_share_the_same_objects() -> None:
    assert config.DnType is switch.DnType is vocabulary.DnType
    assert switch.WorkMode is vocabulary.WorkMode
    assert config.RouteType is switch.RouteType is vocabulary.RouteType
    assert config.TreatmentType is vocabulary.TreatmentType
    hints = typing.get_type_hints(messages.RouteResponse)
    assert hints["RouteType"] == vocabulary.RouteType
    assert typing.get_type_hints(messages.TreatCall)["Type"] == vocabulary.TreatmentType

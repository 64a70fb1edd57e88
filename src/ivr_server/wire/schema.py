"""Schema records that drive the codec: one :class:`ElementSpec` per DTD element.

The records are built by the generated ``messages.py`` from ``spec/messages.json``; the codec reads
them to decode and encode every message without a per-message if/elif ladder.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, TypeAlias

import msgspec

__all__ = ["AttrSpec", "ChildKind", "ChildSpec", "ElementSpec"]

ChildKind: TypeAlias = Literal["text", "kvlist", "nvpairs", "element"]


@dataclass(frozen=True, slots=True)
class AttrSpec:
    """One XML attribute of an element."""

    name: str
    """Wire name, also the Python field name."""
    required: bool
    """``#REQUIRED`` in the DTD (and not relaxed by a documented leniency)."""
    values: frozenset[str] | None
    """Allowed values, or ``None`` for free text."""
    default: str | None
    """DTD default applied when the attribute is absent."""
    value_aliases: dict[str, str] = field(default_factory=dict)
    """Guide spellings accepted on input and mapped to the DTD value (PROTOCOL.md §3.11)."""


@dataclass(frozen=True, slots=True)
class ChildSpec:
    """One child element slot, in DTD order."""

    name: str
    """Element name, also the Python field name."""
    kind: ChildKind
    """How the child's content is represented."""
    required: bool
    """Must appear."""
    group: str | None = None
    """Choice group id: members of one group with different ``alt`` exclude each other."""
    alt: str | None = None
    """Alternative id within the choice group."""


@dataclass(frozen=True, slots=True)
class ElementSpec:
    """Everything the codec needs to know about one element."""

    tag: str
    """Element name on the wire."""
    cls: type[msgspec.Struct]
    """The Python class that represents it."""
    attrs: tuple[AttrSpec, ...]
    """Attributes in DTD declaration order (= emission order)."""
    children: tuple[ChildSpec, ...]
    """Child elements in DTD order (= emission order)."""
    exactly_one_of: tuple[str, ...] = ()
    """Names of children of which exactly one must appear (``MonitorInfo``)."""
    attr_aliases: dict[str, str] = field(default_factory=dict)
    """Guide spellings of attribute names accepted on input (e.g. ``RouteDn``)."""
    child_attrs: tuple[str, ...] = ()
    """Attributes also accepted as a text-only child element on input (``TreatStatus`` CED)."""
    child_by_name: dict[str, ChildSpec] = field(init=False, repr=False, compare=False)
    """Children indexed by name (derived)."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "child_by_name", {c.name: c for c in self.children})

"""Typed key/value lists (PROTOCOL.md §4): ``Node``, nested ``List`` and the legacy ``NVPair``.

``UDataEx``, ``ExtnsEx``, ``Parameters`` and ``ConfigOptions`` are tuples of :data:`Item`;
order and duplicates are significant and preserved. ``Val`` stays the exact text received
(``Int`` values are checked to be integers; ``Bin`` values are opaque), so a value round-trips
byte for byte; :attr:`Node.value` gives the typed Python value.
"""

from __future__ import annotations

from typing import TypeAlias

import msgspec

from ivr_server.vocabulary import NodeType

__all__ = ["Item", "KvList", "List", "NVPair", "Node", "NodeType", "int_node", "str_node"]


class Node(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """One key/value pair: ``<Node Name=… Type=… Val=…/>``."""

    Name: str
    """The key (case-sensitive; keys may repeat)."""
    Type: NodeType
    """``Int`` (32-bit signed decimal), ``Str`` or ``Bin`` (opaque)."""
    Val: str
    """The value exactly as written on the wire."""

    @property
    def value(self) -> int | str:
        """The typed value: ``int`` for ``Int`` nodes, else the text."""
        return int(self.Val) if self.Type == "Int" else self.Val


class List(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """A named nested list: ``<List Name=…>…</List>``."""

    Name: str
    """The key of the nested list."""
    items: tuple[Node | List, ...]
    """The nested items, in order (never empty on the wire)."""


Item: TypeAlias = Node | List
KvList: TypeAlias = tuple[Item, ...]


class NVPair(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """Legacy (call version 1.0) pair: ``<NVPair><NVName>…</NVName><NVVal>…</NVVal></NVPair>``."""

    NVName: str
    """The key."""
    NVVal: str
    """The value (always a string)."""


def str_node(name: str, value: str) -> Node:
    """A ``Str`` node."""
    return Node(Name=name, Type="Str", Val=value)


def int_node(name: str, value: int) -> Node:
    """An ``Int`` node."""
    return Node(Name=name, Type="Int", Val=str(value))

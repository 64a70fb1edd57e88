"""Key/value tables written in TOML that go on the wire as ``KvList`` items.

Extensions, treatment parameters and attached data in routing rules are written as TOML tables
and kept as ordered ``(key, value)`` pairs, checked against what a wire node can hold.
"""

from __future__ import annotations

__all__ = ["KvTable", "KvValue"]

from collections.abc import Mapping
from typing import Annotated, Any, Final, TypeAlias

from pydantic import BeforeValidator

from .base import describe_value

_INT_NODE_MIN: Final = -(2**31)
_INT_NODE_MAX: Final = 2**31 - 1

KvValue: TypeAlias = int | str | tuple[tuple[str, Any], ...]
"""A value of a :data:`KvTable`: ``int`` (an ``Int`` node), ``str`` (a ``Str`` node) or a nested
table (a ``List``), itself a tuple of ``(key, value)`` pairs."""


def _kv_table(value: object) -> object:
    """A TOML table of key/value items → ordered ``(key, value)`` pairs (see :data:`KvTable`)."""
    return _kv_pairs(value, "")


def _kv_pairs(value: object, path: str) -> tuple[tuple[str, KvValue], ...]:
    if isinstance(value, Mapping):
        items: list[tuple[object, object]] = list(value.items())
    elif isinstance(value, tuple):  # the pairs form, as built by this validator (model_copy)
        items = []
        for item in value:
            if not (isinstance(item, tuple) and len(item) == 2):
                raise ValueError(_where(path, "expected a table (key = value)"))
            items.append((item[0], item[1]))
    else:
        raise ValueError(
            _where(path, f"expected a table (key = value), got {describe_value(value)}")
        )
    pairs: list[tuple[str, KvValue]] = []
    for key, raw in items:
        if not isinstance(key, str) or not key:
            raise ValueError(_where(path, f"key {key!r} must be a non-empty string"))
        pairs.append((key, _kv_value(raw, f"{path}.{key}" if path else key)))
    return tuple(pairs)


def _kv_value(value: object, path: str) -> KvValue:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        if not _INT_NODE_MIN <= value <= _INT_NODE_MAX:
            raise ValueError(_where(path, f"{value} does not fit an Int node (32-bit signed)"))
        return value
    if isinstance(value, str):
        return value
    if isinstance(value, Mapping | tuple):
        nested = _kv_pairs(value, path)
        if not nested:
            raise ValueError(_where(path, "a nested table must not be empty"))
        return nested
    raise ValueError(
        _where(path, f"expected a string, integer, boolean or table, got {describe_value(value)}")
    )


def _where(path: str, message: str) -> str:
    return f"{path!r}: {message}" if path else message


KvTable = Annotated[tuple[tuple[str, KvValue], ...], BeforeValidator(_kv_table)]
"""Key/value items for the wire (extensions, treatment parameters, attached data), in the order
written. In TOML a table: an integer becomes an ``Int`` node (32-bit signed), a string a ``Str``
node, a boolean the ``Str`` node ``"true"``/``"false"``, a nested table a ``List``."""

"""A call's attached data as a switch keeps it: the size limit and the Replace rule.

Shared by every switch implementation and by the call side, which checks a ``UDataSet`` against
the same measure before asking the switch.
"""

from __future__ import annotations

from typing import Final

from ivr_server.wire.kv import Item, KvList, Node

__all__ = ["USER_DATA_LIMIT", "kv_size", "kv_update"]

USER_DATA_LIMIT: Final = 16_384
"""Largest attached data of a call in bytes, counted as the unescaped XML text of its nodes
(``<Node Name='' Type='Str' Val=''/>`` plus names and values; a list adds its name and tags).
PROTOCOL.md §4.6: key/value data forwarded to T-Server is limited to 16 KB."""


def kv_size(items: KvList) -> int:
    """The :data:`USER_DATA_LIMIT` measure of ``items``."""
    size = 0
    for item in items:
        if isinstance(item, Node):
            size += 33 + len(item.Name) + len(item.Val)
        else:
            size += 21 + len(item.Name) + kv_size(item.items)
    return size


def kv_update(current: KvList, new: KvList) -> KvList:
    """Replace semantics (PROTOCOL.md §4.3): an existing key is overwritten in place at its first
    occurrence and its later occurrences removed; new keys are appended in order. (A key given
    more than once in ``new`` takes its last value, at its first place.) Linear in the sizes of
    both lists."""
    if not new:
        return current
    latest: dict[str, Item] = {}
    for item in new:
        latest[item.Name] = item
    result: list[Item] = []
    placed: set[str] = set()
    for old in current:
        name = old.Name
        replacement = latest.get(name)
        if replacement is None:
            result.append(old)
        elif name not in placed:
            placed.add(name)
            result.append(replacement)
    for item in new:
        name = item.Name
        if name not in placed:
            placed.add(name)
            result.append(latest[name])
    return tuple(result)

"""Switch events and key/value lists as JSON (docs/api.md, "Event JSON").

A key/value list is a JSON array in stored order, duplicates kept: a node is
``{"name": ..., "type": "Str"|"Int"|"Bin", "value": ...}`` (``value`` a number for ``Int``), a
nested list ``{"name": ..., "list": [...]}``. An event is an object: ``event`` (the T-Library
name), ``switch``, ``time`` (Unix seconds), then every field of the event (a frozen ``msgspec.Struct``), with
key/value lists as above and enumerations as their values.

Also here: :func:`load_json`, the one parser of JSON the API receives (request bodies, webhook
answers), bounded in size and depth so that hostile input is an error, not a crash.
"""

from __future__ import annotations

__all__ = ["MAX_JSON_BYTES", "MAX_JSON_DEPTH", "event_json", "kv_json", "load_json", "value_json"]

import json
from enum import Enum
from typing import Any, Final

from ivr_server.switch import SwitchEvent
from ivr_server.wire import KvList, List, Node


def kv_json(items: KvList) -> list[dict[str, Any]]:
    """A key/value list as JSON."""
    out: list[dict[str, Any]] = []
    for item in items:
        if isinstance(item, Node):
            out.append({"name": item.Name, "type": item.Type, "value": item.value})
        else:
            out.append({"name": item.Name, "list": kv_json(item.items)})
    return out


def value_json(value: Any) -> Any:
    """An event attribute as JSON."""
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, tuple) and value and isinstance(value[0], Node | List):
        return kv_json(value)
    if isinstance(value, tuple):
        return [] if not value else [value_json(v) for v in value]
    return value


_FIELDS: dict[type[SwitchEvent], tuple[str, ...]] = {}


def _fields(cls: type[SwitchEvent]) -> tuple[str, ...]:
    names = _FIELDS.get(cls)
    if names is None:
        names = _FIELDS[cls] = tuple(f for f in cls.__struct_fields__ if f != "switch")
    return names


def event_json(event: SwitchEvent, time: float) -> dict[str, Any]:
    """``{"event": name, "switch": ..., "time": ..., <attributes>...}``."""
    out: dict[str, Any] = {"event": event.name, "switch": event.switch, "time": round(time, 6)}
    for name in _fields(type(event)):
        out[name] = value_json(getattr(event, name))
    return out


MAX_JSON_BYTES: Final = 1024 * 1024
"""The largest JSON document the API reads (a request body, a webhook's answer)."""
MAX_JSON_DEPTH: Final = 32
"""The deepest nesting of arrays and objects accepted: far more than any body needs (a key/value
list nested 15 levels deep), far less than what would overflow a parser's or a codec's stack."""


def load_json(raw: bytes | str) -> Any:
    """The JSON value of ``raw``; :class:`ValueError` (with the reason) if it is not JSON, is
    larger than :data:`MAX_JSON_BYTES` or nests deeper than :data:`MAX_JSON_DEPTH`."""
    if len(raw) > MAX_JSON_BYTES:
        raise ValueError(f"larger than {MAX_JSON_BYTES} bytes")
    try:
        data = json.loads(raw)
    except RecursionError:  # json.loads recurses once per level: 100,000 '[' exhaust the stack
        raise ValueError(f"nested deeper than {MAX_JSON_DEPTH} levels") from None
    if _too_deep(data):
        raise ValueError(f"nested deeper than {MAX_JSON_DEPTH} levels")
    return data


def _too_deep(data: Any) -> bool:
    """Does ``data`` nest arrays and objects more than :data:`MAX_JSON_DEPTH` levels? (No
    recursion: the stack holds one entry per container still to look at.)"""
    stack: list[tuple[Any, int]] = [(data, 1)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, dict):
            children: Any = value.values()
        elif isinstance(value, list):
            children = value
        else:
            continue
        if depth > MAX_JSON_DEPTH:
            return True
        stack.extend((child, depth + 1) for child in children if isinstance(child, dict | list))
    return False

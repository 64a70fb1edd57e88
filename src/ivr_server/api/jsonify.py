"""Switch events and key/value lists as JSON (docs/api.md, "Event JSON").

A key/value list is a JSON array in stored order, duplicates kept: a node is
``{"name": ..., "type": "Str"|"Int"|"Bin", "value": ...}`` (``value`` a number for ``Int``), a
nested list ``{"name": ..., "list": [...]}``. An event is an object: ``event`` (the T-Library
name), ``switch``, ``time`` (Unix seconds), then every field of the event (a frozen ``msgspec.Struct``), with
key/value lists as above and enumerations as their values.
"""

from __future__ import annotations

__all__ = ["event_json", "kv_json", "value_json"]

from enum import Enum
from typing import Any

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

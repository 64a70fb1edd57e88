"""Typed message → bytes: GctiMsg documents written exactly as the real server writes them
(PROTOCOL.md §2.2).

``<?xml version='1.0' encoding='ISO-8859-1'?>`` then ``<!DOCTYPE GctiMsg SYSTEM 'IServer.dtd'>``,
single-quoted attributes in DTD order, children in DTD order, no whitespace, empty elements
self-closed, all five special characters escaped, and characters outside the output encoding as
hexadecimal character references (the ``ivr_server.hexcharref`` error handler registered here).
Message elements and document heads that repeat are taken from a :class:`~.memo.Memo`.
"""

from __future__ import annotations

__all__ = ["encode_document", "encode_document_parts", "encoded_memo", "heads_memo"]

import codecs
import re
from collections.abc import Sequence
from typing import Any, Final

from msgspec.structs import astuple

from ivr_server.wire.kv import Item, List, Node
from ivr_server.wire.memo import MEMO_MAX_CALL_ID, MEMO_MAX_ENTRIES, MEMO_MAX_PAYLOAD, Memo
from ivr_server.wire.messages import SPECS, Message
from ivr_server.wire.schema import ElementSpec

_SPECIAL: Final = re.compile(r"[&<>'\"\x00-\x1f]")
_ESCAPES: Final = {
    "&": "&amp;",
    "<": "&lt;",
    ">": "&gt;",
    "'": "&apos;",
    '"': "&quot;",
    "\t": "&#x9;",
    "\n": "&#xA;",
    "\r": "&#xD;",
}


# C0 controls other than TAB/LF/CR cannot appear in XML 1.0 at all: write U+FFFD instead.
_ESCAPE_TABLE: Final = {i: _ESCAPES.get(chr(i), "\ufffd") for i in range(32)} | {
    ord(c): text for c, text in _ESCAPES.items()
}


def _esc(value: str) -> str:
    # One search; then one pass in C (a callback per special character cost 0.2 us each).
    if _SPECIAL.search(value) is None:
        return value
    return value.translate(_ESCAPE_TABLE)


def _hex_charref(exc: UnicodeError) -> tuple[str, int]:
    if not isinstance(exc, UnicodeEncodeError):
        raise exc
    bad = exc.object[exc.start : exc.end]
    return "".join(f"&#x{ord(c):X};" for c in bad), exc.end


codecs.register_error("ivr_server.hexcharref", _hex_charref)

_PROLOGS: Final[dict[tuple[str, str], str]] = {}


def _prolog(encoding: str, dtd_file: str) -> str:
    key = (encoding, dtd_file)
    text = _PROLOGS.get(key)
    if text is None:
        text = (
            f"<?xml version='1.0' encoding='{encoding}'?>"
            f"<!DOCTYPE GctiMsg SYSTEM '{_esc(dtd_file)}'><GctiMsg>"
        )
        _PROLOGS[key] = text
    return text


encoded_memo: Final[Memo[tuple[Message, str], bytes]] = Memo(MEMO_MAX_ENTRIES)
"""Encoded message elements (with ``</GctiMsg>``) by (message, encoding)."""
heads_memo: Final[Memo[tuple[str | None, str, str], bytes]] = Memo(MEMO_MAX_ENTRIES)
"""Encoded document heads (prolog, ``<GctiMsg>``, the CallId element) by (CallId, encoding, DTD):
every document sent about a call starts with the same bytes."""


def _encode_head(call_id: str | None, encoding: str, dtd_file: str) -> bytes:
    head = _prolog(encoding, dtd_file)
    if call_id is not None:
        head = f"{head}<CallId>{_esc(call_id)}</CallId>"
    return head.encode(encoding, "ivr_server.hexcharref")


def encode_document(
    call_id: str | None,
    message: Message,
    *,
    encoding: str = "ISO-8859-1",
    dtd_file: str = "IServer.dtd",
) -> bytes:
    """Serialise a message exactly as the real server does (PROTOCOL.md §2.2).

    Messages are immutable and hashable: the encoded element of one sent again (``CallStatus
    Event='Established'``, the ``UDataResp`` of a request id, the ``RouteResponse`` to the same
    destination...) is taken from a memo like the decoder's, and the head of the document (prolog
    and CallId, the same for every document about a call) from another, and the two are joined."""
    head, body = encode_document_parts(call_id, message, encoding, dtd_file)
    return head + body


def encode_document_parts(
    call_id: str | None, message: Message, encoding: str, dtd_file: str
) -> tuple[bytes, bytes]:
    """:func:`encode_document` as its two parts, head and body: the link copies each into its
    output buffer without joining them first."""
    head_key = (call_id, encoding, dtd_file)
    head = heads_memo.values.get(head_key)
    if head is None:
        head = _encode_head(call_id, encoding, dtd_file)
        if call_id is None or len(call_id) <= MEMO_MAX_CALL_ID:
            heads_memo.offer(head_key, head)
    key: tuple[Message, str] | None = (message, encoding) if encoded_memo.enabled else None
    try:
        body = encoded_memo.values.get(key) if key is not None else None
    except TypeError:  # a message built with a list where a tuple belongs: not hashable
        body, key = None, None
    if body is None:
        parts: list[str] = []
        _encode_element(message, SPECS[message.tag], parts)
        parts.append("</GctiMsg>")
        body = "".join(parts).encode(encoding, "ivr_server.hexcharref")
        if key is not None and len(body) <= MEMO_MAX_PAYLOAD:
            encoded_memo.offer(key, body)
    return head, body


_ATTR_PLANS: Final[dict[str, tuple[str, tuple[tuple[int, str], ...], tuple[int, ...]]]] = {}


def _attr_plan(
    obj: Any, spec: ElementSpec
) -> tuple[str, tuple[tuple[int, str], ...], tuple[int, ...]]:
    """For a message class: its ``<Tag`` opening, (field index, `` Name='``) per attribute and the
    field index of each child, in emission order (built once per class)."""
    fields: tuple[str, ...] = type(obj).__struct_fields__
    plan = (
        "<" + spec.tag,
        tuple((fields.index(a.name), f" {a.name}='") for a in spec.attrs),
        tuple(fields.index(c.name) for c in spec.children),
    )
    _ATTR_PLANS[spec.tag] = plan
    return plan


def _encode_element(obj: Any, spec: ElementSpec, parts: list[str]) -> None:
    tag = spec.tag
    plan = _ATTR_PLANS.get(tag)
    if plan is None:
        plan = _attr_plan(obj, spec)
    opening, attr_plan, child_indexes = plan
    values = astuple(obj)
    parts.append(opening)
    parts += [
        f"{prefix}{v if v.isalnum() else _esc(v)}'"
        for index, prefix in attr_plan
        if (v := values[index]) is not None
    ]
    opened = False
    for cs, index in zip(spec.children, child_indexes, strict=True):
        v = values[index]
        if v is None or (cs.kind != "text" and cs.kind != "element" and not v):
            continue
        if not opened:
            parts.append(">")
            opened = True
        kind = cs.kind
        if kind == "text":
            if v:
                parts.append(f"<{cs.name}>{_esc(v)}</{cs.name}>")
            else:
                parts.append(f"<{cs.name}/>")
        elif kind == "kvlist":
            parts.append(f"<{cs.name}>")
            _encode_items(v, parts)
            parts.append(f"</{cs.name}>")
        elif kind == "nvpairs":
            parts.append(f"<{cs.name}>")
            for p in v:
                parts.append(
                    f"<NVPair>{_nv_text('NVName', p.NVName)}{_nv_text('NVVal', p.NVVal)}</NVPair>"
                )
            parts.append(f"</{cs.name}>")
        else:
            _encode_element(v, SPECS[cs.name], parts)
    parts.append(f"</{tag}>" if opened else "/>")


def _nv_text(tag: str, value: str) -> str:
    return f"<{tag}>{_esc(value)}</{tag}>" if value else f"<{tag}/>"


def _encode_items(items: Sequence[Item], parts: list[str]) -> None:
    # Sequence, not KvList: a message built with a list still encodes (compiled or not)
    for item in items:
        if type(item) is Node:
            parts.append(
                f"<Node Name='{_esc(item.Name)}' Type='{item.Type}' Val='{_esc(item.Val)}'/>"
            )
        else:
            assert isinstance(item, List)
            parts.append(f"<List Name='{_esc(item.Name)}'>")
            _encode_items(item.items, parts)
            parts.append("</List>")

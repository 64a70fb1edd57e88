"""How long a document the server sends may be, and how long a text is once written into one.

A GLI frame could carry 65,533 bytes (PROTOCOL.md §1.8), but some IVR drivers read the 16-bit
MessageLength as a signed number: no document the server sends is longer than
:data:`MAX_DOCUMENT` bytes, so its MessageLength never passes 32,767. Whatever an IVR sends that
the server writes back later (the CallId, ReqId and RequestId its replies echo, the ANI and DNIS of
``CallInfoResp``, the call's user data read back by ``UDataGetAll``) is measured here as it will be
written: escaped as the codec escapes it and encoded, characters outside ISO-8859-1 as character
references. A request that would break a bound is refused before anything is stored, so every
reply the server can be made to produce fits (docs/errors.md, "Sizes").

Most texts are short and plain: measuring them costs a length comparison
(:data:`ECHO_ALWAYS_FITS`) or ``isascii`` and one regular-expression scan.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Final

from ivr_server.errors import LocalProtocolError
from ivr_server.wire import encode as _encode  # noqa: F401 (registers the "ivr_server.hexcharref" handler)
from ivr_server.wire.kv import Item, List, Node

__all__ = [
    "ECHO_ALWAYS_FITS",
    "MAX_DOCUMENT",
    "MAX_DTD_FILE",
    "MAX_ECHOED",
    "USER_DATA_WIRE_LIMIT",
    "DocumentTooLarge",
    "fit_echo",
    "kv_wire_size",
    "text_size",
]

MAX_DOCUMENT: Final = 0x7FFF - 2
"""32,765 bytes: the longest document the server sends. Its frame's MessageLength (payload + 2)
stays within 32,767, which a driver reading the length as a signed 16-bit number reads right."""

MAX_ECHOED: Final = 1024
"""Bytes, as written, of one identifier an IVR sends that a reply echoes: ``CallId``, ``ReqId``,
``RequestId``, and ``NewCall``'s ``ANI``, ``DNIS`` and ``CalledNum`` (``CallInfoResp``). Real ones
are 1-40 characters long (PROTOCOL.md §2.7)."""

ECHO_ALWAYS_FITS: Final = MAX_ECHOED // 10
"""Characters of a text that always fits :data:`MAX_ECHOED`: one character takes at most 10 bytes
written (``&#x10FFFF;``). The hot path measures nothing shorter."""

MAX_DTD_FILE: Final = 200
"""Characters of the ``dtd-file`` option (the DOCTYPE system id of every document we write)."""

_UDATA_RESP_MARKUP: Final = len(
    "<?xml version='1.0' encoding='ISO-8859-1'?><!DOCTYPE GctiMsg SYSTEM ''><GctiMsg><CallId>"
    "</CallId><UDataResp Result='Success'><RequestId></RequestId><UDataEx></UDataEx></UDataResp>"
    "</GctiMsg>"
)

USER_DATA_WIRE_LIMIT: Final = 28_000
"""Bytes a call's user data may take as written in a reply (:func:`kv_wire_size`, in the call's
output encoding), on top of the original's 16 KB (``switch.USER_DATA_LIMIT``, counted unescaped).
Ordinary data (no ``&<>'"``, control or non-ASCII characters) takes as many bytes as it counts
towards 16 KB and is never refused by this one; data that escaping or character references would
blow up past a frame is. The ``UDataResp`` of a ``UDataGetAll`` carrying all of it, with the
longest CallId and RequestId and ``dtd-file`` allowed, fits :data:`MAX_DOCUMENT`."""

assert USER_DATA_WIRE_LIMIT + _UDATA_RESP_MARKUP + 10 * MAX_DTD_FILE + 2 * MAX_ECHOED <= (
    MAX_DOCUMENT
)


class DocumentTooLarge(LocalProtocolError):
    """A document longer than the link may send: nothing of it was queued."""

    def __init__(self, tag: str, size: int, limit: int) -> None:
        super().__init__(f"{tag} document of {size} bytes is longer than {limit}")
        self.tag = tag
        """The message element."""
        self.size = size
        """Its length, encoded."""
        self.limit = limit
        """The longest document the link sends."""


_SPECIAL: Final = re.compile(r"[&<>'\"\x00-\x1f]")
_ESCAPED: Final = {
    **{code: "\ufffd" for code in range(0x20)},  # the codec writes U+FFFD for C0 controls
    ord("&"): "&amp;",
    ord("<"): "&lt;",
    ord(">"): "&gt;",
    ord("'"): "&apos;",
    ord('"'): "&quot;",
    ord("\t"): "&#x9;",
    ord("\n"): "&#xA;",
    ord("\r"): "&#xD;",
}
"""``str.translate`` table doing what the codec's escaping does (``encode._esc``)."""

_WIDEST: Final = ("ISO-8859-1", "UTF-8")


def text_size(text: str, encoding: str | None = None) -> int:
    """Bytes ``text`` takes in an attribute value or text element the server writes, encoded in
    ``encoding``; ``None``: in whichever of ISO-8859-1 and UTF-8 makes it longer."""
    if text.isascii():
        if _SPECIAL.search(text) is None:
            return len(text)
        escaped = text.translate(_ESCAPED)
        if escaped.isascii():
            return len(escaped)
    else:
        escaped = text.translate(_ESCAPED)
    if encoding is not None:
        return len(escaped.encode(encoding, "ivr_server.hexcharref"))
    return max(len(escaped.encode(name, "ivr_server.hexcharref")) for name in _WIDEST)


def kv_wire_size(items: Sequence[Item], encoding: str | None = None) -> int:
    """Bytes ``items`` take written in a ``UDataEx`` (``<Node Name='…' Type='Str' Val='…'/>``:
    33 bytes of markup, ``<List Name='…'>…</List>``: 21), in ``encoding`` as :func:`text_size`.
    The same count as ``switch.kv_size`` for ordinary data."""
    size = 0
    for item in items:
        if type(item) is Node:
            size += 33 + text_size(item.Name, encoding) + text_size(item.Val, encoding)
        else:
            assert isinstance(item, List)
            size += 21 + text_size(item.Name, encoding) + kv_wire_size(item.items, encoding)
    return size


def fit_echo(text: str) -> str:
    """``text`` if it fits :data:`MAX_ECHOED` bytes written (in any output encoding), else its
    longest prefix that does: the form in which a refusal echoes an identifier too long to echo."""
    if len(text) <= ECHO_ALWAYS_FITS or text_size(text) <= MAX_ECHOED:
        return text
    low, high = 0, min(len(text), MAX_ECHOED)  # no prefix of more characters than bytes fits
    while low < high:
        middle = (low + high + 1) // 2
        if text_size(text[:middle]) <= MAX_ECHOED:
            low = middle
        else:
            high = middle - 1
    return text[:low]

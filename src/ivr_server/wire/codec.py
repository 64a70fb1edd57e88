"""GctiMsg XML documents <-> typed messages (PROTOCOL.md §2, §4): the codec's public face.

Decoding is hardened and lenient in the ways real drivers need (§2.3): either quote style, any
whitespace between declaration, DOCTYPE and root, no DOCTYPE or no declaration at all, lower-case
encoding names, empty elements written with an end tag, undeclared extra attributes (ignored) and
children in any order. It is strict about what could hurt: no DOCTYPE internal subset, no entity
declaration (so no entity is ever expanded), no external DTD or entity ever read, nesting bounded by
:data:`MAX_DEPTH`. Anything else wrong raises :class:`DecodeError`, which carries what could still
be read (CallId, element, ReqId, RequestId) so the session can give the documented answer.

Encoding writes exactly what the real server writes (§2.2). Documents that repeat (on either side)
are served from memos that :func:`memoize` and :func:`forget_memos` control.

The work is split by direction: :mod:`.xmltree` (bytes → element tree), :mod:`.decode` (tree →
message), :mod:`.encode` (message → bytes), :mod:`.memo` (the memos they share). See
``bench/bench_codec.py`` for their speed.
"""

from __future__ import annotations

__all__ = [
    "MAX_DEPTH",
    "DecodeError",
    "Document",
    "PartialDocument",
    "decode_document",
    "encode_document",
    "encode_document_parts",
    "find_call_id",
    "forget_memos",
    "memoize",
]

from ivr_server.wire.decode import Document, PartialDocument, decode_document, decoded_memo
from ivr_server.wire.encode import (
    encode_document,
    encode_document_parts,
    encoded_memo,
    heads_memo,
)
from ivr_server.wire.xmltree import MAX_DEPTH, DecodeError, find_call_id


def memoize(enabled: bool) -> None:
    """Turn the decode and encode memos on (the default) or off (emptied): benchmarks measure
    the parser and the serialiser themselves that way."""
    decoded_memo.enabled = enabled
    encoded_memo.enabled = enabled
    heads_memo.enabled = enabled
    forget_memos()


def forget_memos() -> None:
    """Empty the decode and encode memos (they fill again with the traffic that repeats): after
    a crowd of calls has gone, their documents' heads and replies are of no more use."""
    decoded_memo.clear()
    encoded_memo.clear()
    heads_memo.clear()

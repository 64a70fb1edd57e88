"""Fuzz target ``codec``: the GctiMsg XML codec (``wire/codec.py`` and the modules it fronts).

Input: one Data frame's payload. Properties:

- ``decode_document`` returns ``(CallId, message)`` or raises ``DecodeError``, nothing else, and
  ``find_call_id`` never raises;
- the memo is invisible: decoding the same bytes again (the third time comes from the memo),
  or with another plain CallId, gives what a fresh parse gives;
- whatever decodes re-encodes without error, in ISO-8859-1 and in UTF-8, and the encoded
  document decodes back to the same CallId and an equal message (so the server can always
  repeat what it accepted).
"""

from __future__ import annotations

import re
from typing import Any

from ivr_server.wire import (
    MESSAGE_TAGS,
    DecodeError,
    Message,
    decode,
    decode_document,
    encode_document,
    find_call_id,
    forget_memos,
)

_CALL_ID: re.Pattern[bytes] = re.compile(rb"<CallId>[A-Za-z0-9_.:@#+-]{1,256}</CallId>")


def _outcome(decode: Any, payload: bytes) -> tuple[Any, ...]:
    try:
        call_id, message = decode(payload)
    except DecodeError as exc:
        assert isinstance(exc.well_formed, bool)
        for value in (exc.call_id, exc.tag, exc.req_id, exc.request_id, exc.attribute):
            assert value is None or isinstance(value, str), exc
        return (
            "error",
            exc.reason,
            exc.well_formed,
            exc.call_id,
            exc.tag,
            exc.req_id,
            exc.request_id,
            exc.attribute,
        )
    assert call_id is None or isinstance(call_id, str)
    assert isinstance(message, Message) and message.tag in MESSAGE_TAGS, message
    return ("ok", call_id, message)


def one_input(data: bytes) -> None:
    forget_memos()
    fresh = _outcome(decode._decode, data)
    for _ in range(3):  # offered twice, remembered, then served from the memo
        assert _outcome(decode_document, data) == fresh
    found = find_call_id(data)
    assert found is None or isinstance(found, str)

    other = _CALL_ID.sub(b"<CallId>Z9-fuzz</CallId>", data, count=1)
    if other != data:
        assert _outcome(decode_document, other) == _outcome(decode._decode, other)

    if fresh[0] != "ok":
        return
    _, call_id, message = fresh
    for encoding in ("ISO-8859-1", "UTF-8"):
        document = encode_document(call_id, message, encoding=encoding)
        again = decode_document(document)
        assert again == (call_id, message), (encoding, document, again, (call_id, message))

"""CSTA XML over TCP: the ECMA-323 Annex J.2 frame, sans-IO.

Every document on the link travels in one frame::

    0x00 0x00 | length (2 bytes, big-endian) | invoke id (4 ASCII digits) | XML document

``length`` counts the whole frame, its own 4-byte header included (so it is 8 + the document's
size): a captured OpenScape Voice event whose invoke id and document are 999 bytes carries 1003
(``docs/decisions.md``, "CSTA framing"). The invoke id pairs a response with its request; PBXs
send unsolicited events with any id, often ``9999``.

:class:`FrameDecoder` takes bytes in any pieces and hands out whole :class:`Frame` objects; it
never holds more than one frame's worth (at most :data:`MAX_FRAME` bytes) and raises
:class:`FramingError` on a bad header, after which the link must be closed (the byte stream has no
resynchronisation point). :func:`encode_frame` builds a frame.
"""

from __future__ import annotations

__all__ = ["HEADER_SIZE", "MAX_FRAME", "Frame", "FrameDecoder", "FramingError", "encode_frame"]

import struct
from typing import Final, NamedTuple

from ivr_server.errors import RemoteProtocolError

HEADER_SIZE: Final = 8
"""Two zero bytes, the 2-byte length and the 4-digit invoke id (ECMA-323 Annex J.2)."""

MAX_FRAME: Final = 0xFFFF
"""The largest frame the 2-byte length can describe, header included."""

MAX_INVOKE_ID: Final = 9999
"""Four ASCII digits."""

_LENGTH: Final = struct.Struct(">HH")


class Frame(NamedTuple):
    """One frame: its invoke id and the XML document it carries."""

    invoke_id: int
    body: bytes


class FramingError(RemoteProtocolError):
    """The peer sent bytes that are not an ECMA-323 Annex J.2 frame; the link cannot go on.

    ``frames`` are the whole frames the same read completed before the bad header: they were
    sent in good order and are handed out first, then the link closes."""

    def __init__(self, reason: str, frames: list[Frame] | None = None) -> None:
        super().__init__(reason)
        self.frames: list[Frame] = frames if frames is not None else []


def encode_frame(invoke_id: int, body: bytes) -> bytes:
    """The frame carrying ``body`` under ``invoke_id`` (0..9999)."""
    if not 0 <= invoke_id <= MAX_INVOKE_ID:
        raise ValueError(f"invoke id {invoke_id} is not four digits")
    length = HEADER_SIZE + len(body)
    if length > MAX_FRAME:
        raise ValueError(f"a CSTA frame holds at most {MAX_FRAME} bytes, not {length}")
    return _LENGTH.pack(0, length) + b"%04d" % invoke_id + body


class FrameDecoder:
    """Incremental decoder: :meth:`feed` bytes as they come, get the frames they complete."""

    __slots__ = ("_buffer", "_max_frame")

    def __init__(self, max_frame: int = MAX_FRAME) -> None:
        self._buffer = bytearray()
        self._max_frame = max_frame

    @property
    def buffered(self) -> int:
        """Bytes received that do not yet make a whole frame."""
        return len(self._buffer)

    def feed(self, data: bytes) -> list[Frame]:
        """The frames completed by ``data``; raises :class:`FramingError` on a bad header (with
        the frames completed before it)."""
        buffer = self._buffer
        buffer += data
        frames: list[Frame] = []
        start = 0
        end = len(buffer)
        while end - start >= HEADER_SIZE:
            zero, length = _LENGTH.unpack_from(buffer, start)
            digits = bytes(buffer[start + 4 : start + 8])
            problem = self._problem(zero, length, digits)
            if problem is not None:
                del buffer[:]  # the stream is broken: nothing after this is a frame
                raise FramingError(problem, frames)
            if end - start < length:
                break
            frames.append(Frame(int(digits), bytes(buffer[start + HEADER_SIZE : start + length])))
            start += length
        if start:
            del buffer[:start]
        return frames

    def _problem(self, zero: int, length: int, digits: bytes) -> str | None:
        """What is wrong with a frame header, or ``None``."""
        if zero != 0:
            return f"frame header starts with {zero:#06x}, not two zero bytes"
        if length < HEADER_SIZE:
            return f"frame length {length} is shorter than its header"
        if length > self._max_frame:
            return f"frame length {length} exceeds {self._max_frame}"
        if not digits.isdigit():
            return f"invoke id {digits!r} is not four ASCII digits"
        return None
